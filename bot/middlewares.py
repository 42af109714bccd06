"""The unit of work around every update.

One transaction per update: the update id is claimed (a redelivered update stops here), the
user is refreshed and their language chosen, the handler runs, and its state changes, dialog
state and outbox rows commit together. A :class:`UserError` rolls back what the handler did
but still commits the claim and the localized answer, so bad input changes nothing and is
never processed twice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.fsm.middleware import FSMContextMiddleware
from aiogram.types import TelegramObject, Update
from aiogram.types import User as TelegramUser
from aiogram.types.update import UpdateTypeLookupError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.db import SessionFactory, current_session
from bot.i18n import N_, Catalogues
from bot.logs import log_event
from bot.services.errors import UserError
from bot.services.outbox import OUTBOX_WRITTEN, answer_callback, send_text
from bot.services.privacy import should_tell_blocked
from bot.services.updates import claim_update
from bot.services.users import language_of, touch_user
from models import User

logger = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


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
        async with self.fsm.events_isolation.lock(context.key):
            return await handler(event, data)


class UnitOfWork(BaseMiddleware):
    def __init__(
        self,
        *,
        factory: SessionFactory,
        clock: Clock,
        catalogues: Catalogues,
        on_commit: Callable[[], None],
    ) -> None:
        self.factory = factory
        self.clock = clock
        self.catalogues = catalogues
        self.on_commit = on_commit

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        bot: Bot = data["bot"]
        now = self.clock.now()
        async with self.factory() as session:
            token = current_session.set(session)
            try:
                async with session.begin():
                    claimed = await claim_update(
                        session, bot_id=bot.id, update_id=event.update_id, now=now
                    )
                    if not claimed:
                        log_event(logger, "update.duplicate", update_id=event.update_id)
                        return UNHANDLED
                    await self._prepare(session, data, now)
                    user = data.get("user")
                    if user is not None and user.blocked_at is not None:
                        # No handler runs; the notice (if any) commits with the claim.
                        self._refuse_blocked(session, event, data, user)
                        result = None
                    else:
                        result = await self._run(handler, event, data, session)
            finally:
                current_session.reset(token)
        if session.info.get(OUTBOX_WRITTEN):
            self.on_commit()
        return result

    async def _prepare(self, session: AsyncSession, data: dict[str, Any], now: Any) -> None:
        telegram_user: TelegramUser | None = data.get("event_from_user")
        user = None
        if telegram_user is not None and not telegram_user.is_bot:
            user = await touch_user(
                session,
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

    async def _run(
        self, handler: Handler, event: Update, data: dict[str, Any], session: AsyncSession
    ) -> Any:
        """The handler in a savepoint: a UserError undoes its changes and is answered."""
        savepoint = await session.begin_nested()
        try:
            result = await handler(event, data)
        except UserError as error:
            await savepoint.rollback()
            self._answer(session, event, data, error.message_id, error.params)
            log_event(logger, "update.refused", update_id=event.update_id, reason=error.message_id)
            return None
        await savepoint.commit()
        return result

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
        async with self.factory() as session, session.begin():
            if not await claim_update(session, bot_id=bot.id, update_id=event.update_id, now=now):
                return
            data: dict[str, Any] = {}
            try:
                inner: Any = event.event
            except UpdateTypeLookupError:  # a type newer than this aiogram: nobody to answer
                inner = None
            user = getattr(inner, "from_user", None)
            if isinstance(user, TelegramUser):
                data["event_from_user"] = user
            chat = getattr(inner, "chat", None) or getattr(
                getattr(inner, "message", None), "chat", None
            )
            await self._prepare(session, data, now)
            if chat is not None and chat.type == "private":
                data["event_chat"] = chat
                self._answer(session, event, data, N_("errors.internal"), {})
        self.on_commit()
