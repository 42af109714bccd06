"""What happened to an outbox row, recorded: delivered (with the links that map replies and
presses back to their subject), retried with backoff, dead (with the rest of its chat's queue
when the chat refuses the bot), moot, or moved with its group to a supergroup. Each is one short
transaction of its own. :class:`~bot.sender.OutboxSender` decides which; this is its
record-keeping half, kept apart so the sending loop reads on its own."""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, datetime, timedelta
from typing import Any

from aiogram.types import Message
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.clock import Clock
from bot.db import SessionFactory, transaction
from bot.logs import log_event
from bot.services import webapp
from models import Lane, MessageLink, OutboxFile, OutboxMessage, OutboxStatus
from models.webapp import UPLOAD_PREFIX

# The same logger as the sender: these are its events.
logger = logging.getLogger("bot.sender")

DeadHook = Callable[[AsyncSession, list[OutboxMessage], datetime, Collection[int]], Awaitable[Any]]


async def _settling(session: AsyncSession, row_id: int) -> OutboxMessage | None:
    """The row, released from the sender's claim, while its outcome is still to be recorded
    (not by another sender already); the caller records it."""
    row = await session.get(OutboxMessage, row_id)
    if row is None or row.status is not OutboxStatus.PENDING:
        return None
    row.claimed_by = row.claimed_until = None
    return row


def wall_now() -> datetime:
    return datetime.now(UTC)


class OutcomeRecorder:
    """Mixed into the sender: the attributes below are the sender's."""

    factory: SessionFactory
    clock: Clock
    on_dead: DeadHook | None
    max_attempts: int
    retry_base: float
    retry_cap: float
    _stale: bool
    _in_flight: dict[int, int]
    _answering: set[int]

    async def _finish_moot(self, row_id: int, reason: str) -> None:
        now = self.clock.now()
        async with transaction(self.factory) as session:
            row = await _settling(session, row_id)
            if row is None:
                return
            row.mark_moot(reason=reason, now=now)
        log_event(logger, "outbox.moot", outbox_id=row_id, reason=reason)

    async def _finish_delivered(self, row_id: int, result: Any) -> None:
        messages: list[Message] = []
        if isinstance(result, Message):
            messages = [result]
        elif isinstance(result, list):
            messages = [m for m in result if isinstance(m, Message)]
        now = self.clock.now()
        async with transaction(self.factory) as session:
            row = await _settling(session, row_id)
            if row is None:
                return
            row.mark_delivered(message_id=messages[0].message_id if messages else None, now=now)
            uploaded = row.params.get("upload")
            if uploaded is not None:
                # Telegram holds the file now; the bytes were kept only for retries.
                await session.execute(delete(OutboxFile).where(col(OutboxFile.key) == uploaded))
            if photos := _uploaded_photos(row, messages):
                await webapp.learned(session, photos)
            if row.link_subject_type and row.link_subject_id:
                for message in messages:
                    await session.merge(
                        MessageLink(
                            chat_id=message.chat.id,
                            message_id=message.message_id,
                            subject_type=row.link_subject_type,
                            subject_id=row.link_subject_id,
                            purpose=row.link_purpose or "message",
                            created_at=now,
                        )
                    )
        log_event(
            logger,
            "outbox.delivered",
            outbox_id=row_id,
            chat_id=row.chat_id,
            method=row.method,
            attempts=row.attempts,
        )

    async def _retry(self, row_id: int, error: str, retry_after: int | None) -> None:
        now = self.clock.now()
        async with transaction(self.factory) as session:
            row = await _settling(session, row_id)
            if row is None:
                return
            if row.attempts + 1 >= self.max_attempts:
                row.mark_dead(
                    reason=f"gave up after {row.attempts + 1} attempts: {error}", now=now
                )
                await self._dead_hook(session, [row], now)
                level, event = logging.WARNING, "outbox.dead"
            else:
                if retry_after is not None:
                    delay = float(retry_after)
                else:
                    delay = min(self.retry_cap, self.retry_base * 2**row.attempts)
                    delay *= random.uniform(0.8, 1.2)
                row.schedule_retry(error=error, delay=timedelta(seconds=delay), now=now)
                level, event = logging.INFO, "outbox.retry"
            attempts, chat_id = row.attempts, row.chat_id
        log_event(
            logger, event, level, outbox_id=row_id, chat_id=chat_id, attempts=attempts, error=error
        )

    async def _finish_dead(self, row_id: int, reason: str, *, whole_chat: bool = False) -> None:
        """The row is dead; with ``whole_chat`` (the chat refuses the bot) so is every other
        pending message of its chat, with the same reason: retrying them could only fail
        again (callback answers are not messages to the chat and are left to go out)."""
        now = self.clock.now()
        async with transaction(self.factory) as session:
            row = await _settling(session, row_id)
            if row is None:
                return
            row.mark_dead(reason=reason, now=now)
            dead = [row]
            if whole_chat:
                others = await session.scalars(
                    select(OutboxMessage)
                    .where(
                        col(OutboxMessage.chat_id) == row.chat_id,
                        col(OutboxMessage.status) == OutboxStatus.PENDING,
                        col(OutboxMessage.lane) != Lane.ANSWER,
                        col(OutboxMessage.id) != row_id,
                    )
                    .order_by(col(OutboxMessage.id))
                )
                for other in others.all():
                    other.mark_dead(reason=reason, now=now)
                    dead.append(other)
            await self._dead_hook(session, dead, now)
            chat_id = row.chat_id
        log_event(
            logger,
            "outbox.dead",
            logging.WARNING,
            outbox_id=row_id,
            chat_id=chat_id,
            count=len(dead),
            error=reason,
        )

    async def _dead_hook(
        self, session: AsyncSession, rows: list[OutboxMessage], now: datetime
    ) -> None:
        if self.on_dead is not None:
            self._stale = True  # a queued report may have changed
            # Rows being sent here or by another replica can no longer change.
            claimed = await session.scalars(
                select(col(OutboxMessage.id)).where(
                    col(OutboxMessage.status) == OutboxStatus.PENDING,
                    col(OutboxMessage.claimed_until) >= wall_now(),
                )
            )
            busy = (
                frozenset(self._in_flight.values())
                | self._answering
                | {i for i in claimed.all() if i}
            )
            await self.on_dead(session, rows, now, busy)

    async def _migrate(self, old_chat_id: int, new_chat_id: int) -> None:
        """A group became a supergroup: its queue moves to the new id and is sent there."""
        self._stale = True
        async with transaction(self.factory) as session:
            await session.execute(
                update(OutboxMessage)
                .where(
                    col(OutboxMessage.chat_id) == old_chat_id,
                    col(OutboxMessage.status) == OutboxStatus.PENDING,
                )
                .values(chat_id=new_chat_id, claimed_by=None, claimed_until=None)
            )
        log_event(logger, "outbox.chat_migrated", old_chat_id=old_chat_id, chat_id=new_chat_id)


def _uploaded_photos(row: OutboxMessage, messages: list[Message]) -> dict[str, str]:
    """The photos a delivered row uploaded (named ``upload:<key>``), each with the file id
    Telegram gave it."""
    p = row.params
    names = [p["photo"]] if "photo" in p else list(p.get("photos", ()))
    return {
        name: message.photo[-1].file_id
        for name, message in zip(names, messages, strict=False)
        if isinstance(name, str) and name.startswith(UPLOAD_PREFIX) and message.photo
    }
