"""Points in private chats: /points, /top, /shop and its Redeem buttons, /redeem CODE for
partner merchants, and /adjust for the district's admins. Each handler calls one service in
:mod:`bot.services.points`, which checks who asks."""

from __future__ import annotations

from typing import Any

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.callbacks import RedeemOffer
from bot.district import District
from bot.services import points
from handlers.answers import answer_press
from handlers.filters import CallbackOf


def router() -> Router:
    r = Router(name="points")
    r.message.filter(F.chat.type == "private")
    r.callback_query.filter(F.message.chat.type == "private")

    # What a resident asks about their points: each command is one service answering them.
    show = {"points": points.show_points, "top": points.show_top, "shop": points.show_shop}

    @r.message(Command(*show))
    async def show_own(
        message: Message,
        command: CommandObject,
        session: AsyncSession,
        district: District,
        lang: str,
        now: Any,
    ) -> None:
        assert message.from_user is not None
        await show[command.command](
            session, district, user_id=message.from_user.id, lang=lang, now=now
        )

    @r.callback_query(CallbackOf(RedeemOffer))
    async def redeem_pressed(
        query: CallbackQuery,
        cb: RedeemOffer,
        session: AsyncSession,
        district: District,
        lang: str,
        now: Any,
    ) -> None:
        await points.redeem(
            session, district, user_id=query.from_user.id, key=cb.offer, price=cb.price, now=now
        )
        answer_press(session, query, lang, now)

    @r.message(Command("redeem"))
    async def check_code(
        message: Message,
        command: CommandObject,
        session: AsyncSession,
        district: District,
        lang: str,
        now: Any,
    ) -> None:
        assert message.from_user is not None
        await points.check_code(
            session,
            district,
            staff_id=message.from_user.id,
            text=command.args,
            lang=lang,
            now=now,
        )

    @r.message(Command("adjust"))
    async def adjust(
        message: Message,
        command: CommandObject,
        session: AsyncSession,
        district: District,
        now: Any,
    ) -> None:
        assert message.from_user is not None
        await points.adjust(
            session, district, admin_id=message.from_user.id, args=command.args, now=now
        )

    return r
