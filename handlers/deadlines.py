"""Deadline proposals in group chats: the department's card and the approver's group."""

from __future__ import annotations

from typing import Any

from aiogram import Bot, F, Router
from aiogram.types import CallbackQuery
from sqlalchemy.ext.asyncio import AsyncSession

from bot.callbacks import DecideDeadline, ProposeDeadline
from bot.district import District
from bot.services import deadlines
from handlers.filters import CallbackOf
from handlers.groups import GROUPS, InUnitGroup, require_member_pressing


def router() -> Router:
    r = Router(name="deadlines")
    r.callback_query.filter(F.message.chat.type.in_(GROUPS))

    @r.callback_query(CallbackOf(ProposeDeadline), InUnitGroup())
    async def proposed(
        query: CallbackQuery,
        cb: ProposeDeadline,
        unit: str,
        bot: Bot,
        session: AsyncSession,
        district: District,
        now: Any,
        lang: str,
    ) -> None:
        assert query.message is not None
        actor = await require_member_pressing(query, bot, district, unit=unit, lang=lang)
        if cb.days == 0:
            await deadlines.offer_choices(
                session,
                district,
                case_id=cb.case_id,
                unit=unit,
                chat_id=query.message.chat.id,
                callback_query_id=query.id,
                now=now,
            )
            return
        await deadlines.propose(
            session,
            district,
            case_id=cb.case_id,
            unit=unit,
            days=cb.days,
            actor=actor,
            chat_id=query.message.chat.id,
            message_id=query.message.message_id,
            callback_query_id=query.id,
            now=now,
        )

    @r.callback_query(CallbackOf(DecideDeadline), InUnitGroup())
    async def decided(
        query: CallbackQuery,
        cb: DecideDeadline,
        unit: str,
        bot: Bot,
        session: AsyncSession,
        district: District,
        now: Any,
        lang: str,
    ) -> None:
        assert query.message is not None
        actor = await require_member_pressing(query, bot, district, unit=unit, lang=lang)
        await deadlines.decide(
            session,
            district,
            case_id=cb.case_id,
            unit=unit,
            days=cb.days,
            approve=cb.decision == "y",
            actor=actor,
            chat_id=query.message.chat.id,
            callback_query_id=query.id,
            now=now,
        )

    return r
