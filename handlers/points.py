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
from bot.services.outbox import answer_callback
from handlers.filters import CallbackOf


def router() -> Router:
    r = Router(name="points")
    r.message.filter(F.chat.type == "private")
    r.callback_query.filter(F.message.chat.type == "private")

    @r.message(Command("points"))
    async def show_points(
        message: Message, session: AsyncSession, district: District, lang: str, now: Any
    ) -> None:
        assert message.from_user is not None
        await points.show_points(
            session, district, user_id=message.from_user.id, lang=lang, now=now
        )

    @r.message(Command("top"))
    async def show_top(
        message: Message, session: AsyncSession, district: District, lang: str, now: Any
    ) -> None:
        assert message.from_user is not None
        await points.show_top(session, district, user_id=message.from_user.id, lang=lang, now=now)

    @r.message(Command("shop"))
    async def show_shop(
        message: Message, session: AsyncSession, district: District, lang: str, now: Any
    ) -> None:
        assert message.from_user is not None
        await points.show_shop(session, district, user_id=message.from_user.id, lang=lang, now=now)

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
        answer_callback(
            session, chat_id=query.from_user.id, callback_query_id=query.id, locale=lang, now=now
        )

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
