"""The unit of work around every update.

One transaction per update: the update id is claimed (a redelivered update stops here; the
claim also brings the user's row and dialog state), the user is refreshed and their language
chosen, the handler runs, and its state changes, dialog state and outbox rows commit together.
A :class:`UserError` rolls back what the handler did but still commits the claim and the
localized answer, so bad input changes nothing and is never processed twice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.fsm.middleware import FSMContextMiddleware
from aiogram.fsm.storage.base import StorageKey
from aiogram.types import TelegramObject, Update
from aiogram.types import User as TelegramUser
from aiogram.types.update import UpdateTypeLookupError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.db import SessionFactory, current_session, writer_turn
from bot.flood import LIMIT as FLOOD_LIMIT
from bot.flood import FloodWatch
from bot.fsm import dialog_key, preload_dialog, write_dialogs
from bot.i18n import N_, Catalogues
from bot.logs import log_event
from bot.services.errors import UserError
from bot.services.outbox import OUTBOX_WRITTEN, answer_callback, send_text
from bot.services.privacy import should_tell_blocked
from bot.services.updates import Claim, claim_update
from bot.services.users import adopt_user, language_of
from models import User

logger = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


# Workflow-data key of the update's dialog key (aiogram's StorageKey), resolved once by
# UserIsolation for its lock and used by the unit of work to bring the dialog with the claim.
DIALOG_KEY = "whistle_dialog_key"


class UserIsolation(BaseMiddleware):
    """One user's updates (per chat, as aiogram keys dialog state) are handled one at a time:
    the FSM middleware's event isolation (in the process, or in Redis across replicas) is held
    around the whole unit of work, commit included, so the next update of the same user never
    reads dialog state an uncommitted transaction is about to change."""

    def __init__(self, fsm: FSMContextMiddleware) -> None:
        self.fsm = fsm

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        context = self.fsm.resolve_event_context(data["bot"], data)
        if context is None:
            return await handler(event, data)
        data[DIALOG_KEY] = context.key
        async with self.fsm.events_isolation.lock(context.key):
            return await handler(event, data)


class UnitOfWork(BaseMiddleware):
    """The statements of an ordinary update: BEGIN; the claim, which also returns the user's
    row and dialog state; what the handler changes (the dialog written once, at the end);
    COMMIT. A handler that refuses (``UserError``) has its whole transaction rolled back, and
    a second, short one records the claim and the answer."""

    def __init__(
        self,
        *,
        factory: SessionFactory,
        clock: Clock,
        catalogues: Catalogues,
        on_commit: Callable[[], None],
        flood_limit: int = FLOOD_LIMIT,
    ) -> None:
        self.factory = factory
        self.clock = clock
        self.catalogues = catalogues
        self.on_commit = on_commit
        self.flood = FloodWatch(limit=flood_limit)
        self.in_flight = 0  # units of work begun and not yet committed or rolled back
        self.most_in_flight = 0

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            return await self._handle(handler, event, data)
        finally:
            self.in_flight -= 1

    async def _handle(self, handler: Handler, event: Update, data: dict[str, Any]) -> Any:
        bot: Bot = data["bot"]
        now = self.clock.now()
        sender: TelegramUser | None = data.get("event_from_user")
        user_id = sender.id if sender is not None and not sender.is_bot else None
        key: StorageKey | None = data.get(DIALOG_KEY)
        dialog = dialog_key(key) if key is not None else None
        refused: UserError | None = None
        result: Any = None
        async with writer_turn(self.factory), self.factory() as session:
            token = current_session.set(session)
            try:
                async with session.begin():
                    claim = await claim_update(
                        session,
                        bot_id=bot.id,
                        update_id=event.update_id,
                        now=now,
                        user_id=user_id,
                        dialog_key=dialog,
                    )
                    if claim is None:
                        log_event(logger, "update.duplicate", update_id=event.update_id)
                        return UNHANDLED
                    self._prepare(session, data, now, claim)
                    if dialog is not None:
                        preload_dialog(session, dialog, claim.dialog)
                    user = data.get("user")
                    flood = self._flood(event, data)
                    if user is not None and user.blocked_at is not None:
                        # No handler runs; the notice (if any) commits with the claim.
                        self._refuse_blocked(session, event, data, user)
                    elif flood is not None:
                        # Part of a flood: no handler runs; one notice a minute.
                        log_event(logger, "update.flood", update_id=event.update_id)
                        if flood == "notice":
                            self._answer(session, event, data, N_("flood.notice"), {})
                    else:
                        result = await handler(event, data)
                        await write_dialogs(session, now)
            except UserError as error:
                refused = error  # everything the handler did is rolled back
            finally:
                current_session.reset(token)
        if refused is not None:
            answered = await self._refuse(event, data, refused)
            if answered is None:
                return UNHANDLED
            session = answered
        if session.info.get(OUTBOX_WRITTEN):
            self.on_commit()
        return result

    async def _refuse(
        self, event: Update, data: dict[str, Any], error: UserError
    ) -> AsyncSession | None:
        """The claim and the localized answer of a refused update, in their own transaction
        (None if another delivery of the update claimed it meanwhile)."""
        bot: Bot = data["bot"]
        async with writer_turn(self.factory), self.factory() as session, session.begin():
            if not await claim_update(
                session, bot_id=bot.id, update_id=event.update_id, now=data["now"]
            ):
                return None
            self._answer(session, event, data, error.message_id, error.params)
        log_event(logger, "update.refused", update_id=event.update_id, reason=error.message_id)
        return session

    def _prepare(
        self, session: AsyncSession, data: dict[str, Any], now: Any, claim: Claim
    ) -> None:
        telegram_user: TelegramUser | None = data.get("event_from_user")
        user = None
        if telegram_user is not None and not telegram_user.is_bot:
            user = adopt_user(
                session,
                claim.user,
                user_id=telegram_user.id,
                first_name=telegram_user.first_name,
                telegram_language=telegram_user.language_code,
                now=now,
            )
        lang = language_of(user, self.catalogues.languages, self.catalogues.default_language)
        data.update(
            session=session,
            user=user,
            lang=lang,
            t=self.catalogues.translator(lang),
            now=now,
        )

    def _flood(self, event: Update, data: dict[str, Any]) -> str | None:
        """Whether a private message is part of a flood (bot/flood.py)."""
        message = event.message
        if message is None or message.chat.type != "private" or message.from_user is None:
            return None
        date = int(message.date.timestamp())
        return self.flood.check(message.from_user.id, date, message.media_group_id)

    def _refuse_blocked(
        self, session: AsyncSession, event: Update, data: dict[str, Any], user: User
    ) -> None:
        """A blocked user is told so in their private chat (not at every message of a
        flood); in groups the bot just ignores them."""
        chat = data.get("event_chat")
        private = chat is not None and chat.type == "private"
        log_event(logger, "update.blocked_user", update_id=event.update_id, user_id=user.id)
        if event.callback_query is not None or (
            private and should_tell_blocked(user, data["now"])
        ):
            self._answer(session, event, data, N_("blocked.notice"), {})

    def _answer(
        self,
        session: AsyncSession,
        event: Update,
        data: dict[str, Any],
        message_id: str,
        params: dict[str, Any],
    ) -> None:
        lang: str = data["lang"]
        now = data["now"]
        if event.callback_query is not None:
            answer_callback(
                session,
                chat_id=event.callback_query.from_user.id,
                callback_query_id=event.callback_query.id,
                locale=lang,
                now=now,
                text_key=message_id,
                show_alert=True,
                **params,
            )
            return
        chat = data.get("event_chat")
        if chat is not None:
            send_text(
                session, chat_id=chat.id, locale=lang, now=now, text_key=message_id, **params
            )

    async def give_up(self, bot: Bot, event: Update) -> None:
        """After repeated crashes on one update: remember it as handled and apologise."""
        now = self.clock.now()
        async with writer_turn(self.factory), self.factory() as session, session.begin():
            telegram_user: TelegramUser | None = None
            try:
                inner: Any = event.event
            except UpdateTypeLookupError:  # a type newer than this aiogram: nobody to answer
                inner = None
            user = getattr(inner, "from_user", None)
            if isinstance(user, TelegramUser) and not user.is_bot:
                telegram_user = user
            claim = await claim_update(
                session,
                bot_id=bot.id,
                update_id=event.update_id,
                now=now,
                user_id=telegram_user.id if telegram_user is not None else None,
            )
            if claim is None:
                return
            data: dict[str, Any] = {}
            if telegram_user is not None:
                data["event_from_user"] = telegram_user
            chat = getattr(inner, "chat", None) or getattr(
                getattr(inner, "message", None), "chat", None
            )
            self._prepare(session, data, now, claim)
            if chat is not None and chat.type == "private":
                data["event_chat"] = chat
                self._answer(session, event, data, N_("errors.internal"), {})
        self.on_commit()
