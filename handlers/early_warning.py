"""/reload_keywords in the governance center's group: load the keyword library again.

Only people with the admin or center head role in the district file may reload; being an
administrator of the Telegram group is not enough, because the library decides what the
center is alerted about.
"""

from __future__ import annotations

from typing import Any

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.district import District, Role
from bot.i18n import N_
from bot.services import early_warning as warning_service
from bot.services import routing
from bot.services.errors import UserError
from bot.warning import EarlyWarning
from handlers.groups import GROUPS, InUnitGroup

RELOADERS = (Role.ADMIN, Role.CENTER_HEAD)


def router() -> Router:
    r = Router(name="early_warning")
    r.message.filter(F.chat.type.in_(GROUPS))

    @r.message(Command("reload_keywords"), InUnitGroup())
    async def reload_keywords(
        message: Message,
        unit: str,
        session: AsyncSession,
        district: District,
        early_warning: EarlyWarning,
        now: Any,
    ) -> None:
        assert message.from_user is not None
        if unit != routing.CENTER:
            raise UserError(N_("warning.reload-center-only"))
        person = district.person(message.from_user.id)
        if person is None or not any(person.has_role(role) for role in RELOADERS):
            raise UserError(N_("warning.reload-not-allowed"))
        await warning_service.reload_library(
            session,
            district,
            early_warning,
            chat_id=message.chat.id,
            by=message.from_user.id,
            now=now,
        )

    return r
