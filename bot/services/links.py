"""Reading the message link table: which case a message in a chat is about."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from models import MessageLink


async def subject_of(session: AsyncSession, chat_id: int, message_id: int) -> MessageLink | None:
    return await session.get(MessageLink, (chat_id, message_id))
