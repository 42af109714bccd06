"""/stats [today|week|month] and /export week|month, in the governance center's group, a
department's group (its own figures) and district officials' private chats. The service
decides who sees what (:func:`bot.services.reports.viewer_of`)."""

from __future__ import annotations

from typing import Any

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.district import District
from bot.services import reports


def router() -> Router:
    r = Router(name="reports")

    # /stats and /export differ only in what the service makes of the viewer and the period.
    serve = {"stats": reports.show_stats, "export": reports.export_cases}

    @r.message(Command(*serve))
    async def stats_or_export(
        message: Message,
        command: CommandObject,
        session: AsyncSession,
        district: District,
        lang: str,
        now: Any,
    ) -> None:
        assert message.from_user is not None
        viewer = await reports.viewer_of(
            session,
            district,
            chat_id=message.chat.id,
            user_id=message.from_user.id,
            private=message.chat.type == "private",
        )
        await serve[command.command](
            session,
            district,
            viewer,
            chat_id=message.chat.id,
            lang=lang,
            period_name=command.args,
            now=now,
        )

    return r
