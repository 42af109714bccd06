"""Remembering handled updates, so a redelivered update has no second effect."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from models import ProcessedUpdate

# Telegram keeps undelivered updates for 24 hours; a week of memory is plenty.
KEEP_PROCESSED = timedelta(days=7)


async def claim_update(
    session: AsyncSession, *, bot_id: int, update_id: int, now: datetime
) -> bool:
    """Record the update as handled in this transaction; False if it already was."""
    if await session.get(ProcessedUpdate, (bot_id, update_id)) is not None:
        return False
    session.add(ProcessedUpdate(bot_id=bot_id, update_id=update_id, processed_at=now))
    await session.flush()
    return True


async def prune_processed_updates(session: AsyncSession, *, now: datetime) -> int:
    result = await session.execute(
        delete(ProcessedUpdate).where(col(ProcessedUpdate.processed_at) < now - KEEP_PROCESSED)
    )
    return int(getattr(result, "rowcount", 0) or 0)
