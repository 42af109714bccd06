"""Privacy and abuse in private chats: /forgetme (with a confirmation button) for anyone, and
/block, /unblock for the district's admins. The services check who asks."""

from __future__ import annotations

import logging
from typing import Any

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.callbacks import ForgetMe
from bot.district import District
from bot.i18n import N_
from bot.logs import log_event
from bot.services import erasure, privacy
from bot.services.errors import UserError
from bot.services.outbox import button, edit_text, inline_keyboard
from handlers.answers import answer_press, say
from handlers.filters import CallbackOf

logger = logging.getLogger(__name__)


def router() -> Router:
    r = Router(name="privacy")
    r.message.filter(F.chat.type == "private")
    r.callback_query.filter(F.message.chat.type == "private")

    @r.message(Command("forgetme"))
    async def forget_asked(message: Message, session: AsyncSession, lang: str, now: Any) -> None:
        say(
            session,
            message,
            lang,
            now,
            N_("forget.ask"),
            keyboard=inline_keyboard(
                [
                    button(N_("forget.button.yes"), ForgetMe("y").pack()),
                    button(N_("forget.button.no"), ForgetMe("n").pack()),
                ]
            ),
        )

    @r.callback_query(CallbackOf(ForgetMe))
    async def forget_answered(
        query: CallbackQuery,
        cb: ForgetMe,
        session: AsyncSession,
        district: District,
        lang: str,
        now: Any,
    ) -> None:
        if cb.answer not in ("y", "n") or query.message is None:
            raise UserError(N_("errors.stale-button"))
        user_id = query.from_user.id
        params: dict[str, Any]
        if cb.answer == "y":
            done = await erasure.forget(session, district, user_id=user_id, now=now)
            log_event(
                logger, "user.forgotten", user_id=user_id, cases=done.cases, edits=done.messages
            )
            text_key, params = done.answer(district, lang)
        else:
            text_key, params = N_("forget.kept"), {}
        answer_press(session, query, lang, now)
        edit_text(
            session,
            chat_id=user_id,
            target=query.message.message_id,
            locale=lang,
            now=now,
            text_key=text_key,
            context=params,
        )

    @r.message(Command("block", "unblock"))
    async def block_or_unblock(
        message: Message,
        command: CommandObject,
        session: AsyncSession,
        district: District,
        lang: str,
        now: Any,
    ) -> None:
        assert message.from_user is not None
        admin_id = message.from_user.id
        user_id, reason = privacy.parse_target(command.args)
        if command.command == "block":
            await privacy.block(
                session, district, admin_id=admin_id, user_id=user_id, reason=reason, now=now
            )
            event, text_key = "user.blocked", N_("block.done")
        else:
            await privacy.unblock(session, district, admin_id=admin_id, user_id=user_id)
            event, text_key = "user.unblocked", N_("block.undone")
        log_event(logger, event, user_id=user_id, admin_id=admin_id)
        say(session, message, lang, now, text_key, user_id=user_id)

    return r
