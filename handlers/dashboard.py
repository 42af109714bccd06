"""``/dashboard`` in a private chat: a one-time sign-in link to the web dashboard for the
district's roles and department staff (the service checks who asks)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.district import District
from bot.services import dashboard


def router() -> Router:
    r = Router(name="dashboard")
    r.message.filter(F.chat.type == "private")

    @r.message(Command("dashboard"))
    async def sign_in_link(
        message: Message,
        session: AsyncSession,
        district: District,
        lang: str,
        now: Any,
        web_base_url: str | None,
        dashboard_link_ttl: timedelta,
    ) -> None:
        assert message.from_user is not None
        await dashboard.request_link(
            session,
            district,
            user_id=message.from_user.id,
            lang=lang,
            now=now,
            base_url=web_base_url,
            valid_for=dashboard_link_ttl,
        )

    return r
