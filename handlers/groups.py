"""What every group-chat router shares: which groups the bot works in, and who may press.

Any group member can press any button, so every press is checked again against the group's
membership (Telegram's getChatMember), never trusted from the message it came from.
"""

from __future__ import annotations

from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Filter
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.district import District, Role
from bot.i18n import N_
from bot.services import cases, routing
from bot.services.errors import UserError

MEMBER_STATUSES = {"creator", "administrator", "member", "restricted"}
ADMIN_STATUSES = {"creator", "administrator"}
GROUPS = ("group", "supergroup")


class InUnitGroup(Filter):
    """Passes only in a group bound to a unit; the handler receives it as ``unit``."""

    async def __call__(
        self, event: Message | CallbackQuery, session: AsyncSession, district: District
    ) -> bool | dict[str, Any]:
        message = event if isinstance(event, Message) else event.message
        if message is None:
            return False
        unit = await routing.unit_of(session, district, message.chat.id)
        return False if unit is None else {"unit": unit}


async def status_in(bot: Bot, chat_id: int, user_id: int) -> str:
    """The user's status in the group; "left" when Telegram does not know them there (e.g. the
    anonymous-admin account, or a user who never joined)."""
    try:
        member = await bot.get_chat_member(chat_id, user_id)
    except TelegramBadRequest:
        return "left"
    if member.status == "restricted" and not getattr(member, "is_member", True):
        return "left"
    return str(member.status)


def actor(user: Any, lang: str) -> cases.Person:
    return cases.Person(user.id, user.first_name, lang)


async def require_admin(
    bot: Bot, chat_id: int, user_id: int, district: District, *, refusal: str
) -> None:
    """The group's admins decide (binding it, its language), and so do the district's."""
    person = district.person(user_id)
    if person is not None and person.has_role(Role.ADMIN):
        return
    if await status_in(bot, chat_id, user_id) not in ADMIN_STATUSES:
        raise UserError(refusal)


async def require_member(bot: Bot, chat_id: int, user: Any, district: District) -> cases.Person:
    """The presser as an actor, if they are a member of this group; refused otherwise."""
    if await status_in(bot, chat_id, user.id) not in MEMBER_STATUSES:
        raise UserError(N_("card.not-member"))
    return actor(user, district.default_language)
