"""/bundle in a street office's or the governance center's group, and its Confirm / Cancel.

Only members of that group (or people with the admin role in the district file) may propose
or decide; a press is checked again like every other group button.
"""

from __future__ import annotations

from typing import Any

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message, User
from sqlalchemy.ext.asyncio import AsyncSession

from bot.callbacks import BundleDecision
from bot.district import District, Role
from bot.i18n import N_
from bot.services import bundling, cases
from bot.services.errors import UserError
from handlers.filters import CallbackOf
from handlers.groups import GROUPS, MEMBER_STATUSES, InUnitGroup, status_in


async def _allowed(bot: Bot, district: District, chat_id: int, user: User) -> cases.Person:
    person = district.person(user.id)
    if not (person is not None and person.has_role(Role.ADMIN)) and (
        await status_in(bot, chat_id, user.id) not in MEMBER_STATUSES
    ):
        raise UserError(N_("bundle.not-member"))
    return cases.Person(user.id, user.first_name, district.default_language)


def router() -> Router:
    r = Router(name="bundling")
    r.message.filter(F.chat.type.in_(GROUPS))
    r.callback_query.filter(F.message.chat.type.in_(GROUPS))

    @r.message(Command("bundle"), InUnitGroup())
    async def bundle(
        message: Message,
        command: CommandObject,
        unit: str,
        bot: Bot,
        session: AsyncSession,
        district: District,
        now: Any,
    ) -> None:
        assert message.from_user is not None
        actor = await _allowed(bot, district, message.chat.id, message.from_user)
        await bundling.propose(
            session,
            district,
            text=command.args,
            unit=unit,
            chat_id=message.chat.id,
            message_id=message.message_id,
            actor=actor,
            now=now,
        )

    @r.callback_query(CallbackOf(BundleDecision), InUnitGroup())
    async def decided(
        query: CallbackQuery,
        cb: BundleDecision,
        bot: Bot,
        session: AsyncSession,
        district: District,
        now: Any,
    ) -> None:
        assert query.message is not None
        if cb.action not in ("y", "n"):
            raise UserError(N_("errors.stale-button"))
        actor = await _allowed(bot, district, query.message.chat.id, query.from_user)
        await bundling.decide(
            session,
            district,
            proposal_id=cb.proposal,
            approve=cb.action == "y",
            chat_id=query.message.chat.id,
            message_id=query.message.message_id,
            actor=actor,
            callback_query_id=query.id,
            now=now,
        )

    return r
