"""What nobody else handled in a private chat gets a clear answer instead of silence."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.district import District
from bot.i18n import N_
from bot.services import menu
from bot.services.outbox import told_since
from handlers.answers import answer_press, say
from handlers.groups import GROUPS, InUnitGroup

FALLBACK_EVERY = timedelta(minutes=1)


# Commands that exist but work only in a group, and where (asked in a private chat).
GROUP_ONLY = {
    "bind": N_("command.where.bind"),
    "bundle": N_("command.where.bundle"),
    "reload_keywords": N_("command.where.reload-keywords"),
}
# Commands of the private chat, asked in a work group: said where they work (in other groups
# the bot stays silent).
PRIVATE_ONLY = (
    "dashboard", "points", "top", "shop", "redeem", "adjust", "forgetme", "block", "unblock",
    "volunteer", "report", "say", "ask", "my",
)  # fmt: skip


def router() -> Router:
    r = Router(name="fallback")

    @r.message(F.chat.type == "private", Command(*GROUP_ONLY))
    async def group_only(
        message: Message, command: CommandObject, session: AsyncSession, lang: str, now: Any
    ) -> None:
        say(session, message, lang, now, GROUP_ONLY[command.command.lower()])

    @r.message(F.chat.type == "private", Command("skip"))
    async def nothing_to_skip(
        message: Message, session: AsyncSession, lang: str, now: Any
    ) -> None:
        say(session, message, lang, now, N_("command.no-skip"))

    @r.message(F.chat.type.in_(GROUPS), Command(*PRIVATE_ONLY), InUnitGroup())
    async def private_only(
        message: Message,
        command: CommandObject,
        session: AsyncSession,
        district: District,
        now: Any,
    ) -> None:
        # Said to the group: in the group's language (the sender applies its /lang choice).
        say(
            session,
            message,
            district.default_language,
            now,
            N_("command.private-only"),
            command=f"/{command.command.lower()}",
            reply_to=message.message_id,
        )

    @r.message(F.chat.type == "private")
    async def not_understood(message: Message, session: AsyncSession, lang: str, now: Any) -> None:
        is_command = (message.text or "").startswith("/")
        text_key = N_("fallback.unknown-command") if is_command else N_("fallback.not-understood")
        # The same fallback at most once a minute: a burst of messages nobody understood gets
        # one answer, not one each.
        if await told_since(
            session, chat_id=message.chat.id, text_key=text_key, since=now - FALLBACK_EVERY
        ):
            return
        say(session, message, lang, now, text_key, keyboard=menu.MAIN_MENU)

    @r.callback_query()
    async def stale_button(
        query: CallbackQuery, session: AsyncSession, lang: str, now: Any
    ) -> None:
        # Buttons from an older version, or forged data: the press must still be answered.
        answer_press(
            session, query, lang, now, text_key=N_("errors.stale-button"), show_alert=True
        )

    return r
