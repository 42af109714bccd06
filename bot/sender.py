"""The one place that talks to Telegram: delivers outbox rows.

Per chat, rows go out strictly in id order (the head of a chat's queue blocks the rest of that
chat only). Each delivery is: read the row → call the Bot API outside any transaction → record
the outcome in a short transaction (message id, message links). A crash between the call and
the record can repeat that one message; Telegram offers no idempotency key, so the window is
kept to a single call.

Network errors, 5xx and 429 (after its ``retry_after``) are retried with backoff; anything
Telegram refuses for good, or too many attempts, marks the row dead with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import Message
from sqlalchemy import func, select, update
from sqlmodel import col

from bot.clock import Clock
from bot.db import SessionFactory, transaction
from bot.logs import log_event
from bot.metrics import Metrics
from bot.rendering import Renderer, RenderError
from models import MessageLink, OutboxMessage, OutboxStatus

logger = logging.getLogger(__name__)

NOT_MODIFIED = "message is not modified"


class OutboxSender:
    def __init__(
        self,
        *,
        bot: Bot,
        factory: SessionFactory,
        renderer: Renderer,
        clock: Clock,
        max_attempts: int = 8,
        retry_base: float = 1.0,
        retry_cap: float = 300.0,
        batch_size: int = 100,
        concurrency: int = 16,
        idle_interval: float = 1.0,
    ) -> None:
        self.bot = bot
        self.factory = factory
        self.renderer = renderer
        self.clock = clock
        self.max_attempts = max_attempts
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.batch_size = batch_size
        self.idle_interval = idle_interval
        self._slots = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self._stopping = False
        self.metrics = Metrics()  # the app passes its own: send latency goes to /metrics

    def wake(self) -> None:
        self._wake.set()

    def request_stop(self) -> None:
        """Finish the sends in flight, then return from :meth:`run` (a graceful stop must not
        leave a message sent but unrecorded, which would be sent again after the restart)."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Deliver until :meth:`request_stop` (or cancellation)."""
        self._stopping = False
        while not self._stopping:
            try:
                sent = await self.deliver_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("outbox.pass_failed")
                sent = 0
            if sent or self._stopping:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=await self._idle_wait())

    async def _idle_wait(self) -> float:
        async with transaction(self.factory) as session:
            due: datetime | None = await session.scalar(
                select(func.min(col(OutboxMessage.next_attempt_at))).where(
                    col(OutboxMessage.status) == OutboxStatus.PENDING
                )
            )
        if due is None:
            return self.idle_interval
        wait = (due - self.clock.now()).total_seconds()
        return min(max(wait, 0.01), self.idle_interval)

    async def due_heads(self) -> Sequence[OutboxMessage]:
        """The oldest pending row of each chat, where that row is due now."""
        heads = (
            select(func.min(col(OutboxMessage.id)).label("id"))
            .where(col(OutboxMessage.status) == OutboxStatus.PENDING)
            .group_by(col(OutboxMessage.chat_id))
            .subquery()
        )
        query = (
            select(OutboxMessage)
            .join(heads, heads.c.id == col(OutboxMessage.id))
            .where(col(OutboxMessage.next_attempt_at) <= self.clock.now())
            .order_by(col(OutboxMessage.next_attempt_at), col(OutboxMessage.id))
            .limit(self.batch_size)
        )
        async with transaction(self.factory) as session:
            return list((await session.scalars(query)).all())

    async def deliver_due(self) -> int:
        """One pass over every chat's due head; returns how many rows reached an end state."""
        rows = await self.due_heads()
        if not rows:
            return 0
        results = await asyncio.gather(*(self._deliver_guarded(row) for row in rows))
        return sum(results)

    async def _deliver_guarded(self, row: OutboxMessage) -> int:
        async with self._slots:
            return await self.deliver(row)

    async def deliver(self, row: OutboxMessage) -> int:
        assert row.id is not None
        try:
            target = await self._resolve_target(row)
            method = self.renderer.method(row, target)
        except RenderError as error:
            await self._finish_dead(row.id, f"render: {error}")
            return 1
        except Exception as error:  # a template bug must not stall the chat forever
            logger.exception("outbox.render_failed", extra={"outbox_id": row.id})
            await self._finish_dead(row.id, f"render: {type(error).__name__}: {error}")
            return 1
        try:
            result = await self.metrics.timed_send(self.bot(method))
        except TelegramRetryAfter as error:
            await self._retry(row.id, f"429 retry after {error.retry_after}", error.retry_after)
            return 0
        except TelegramMigrateToChat as error:
            await self._migrate(row.chat_id, error.migrate_to_chat_id)
            return 0
        except (TelegramServerError, TelegramNetworkError) as error:
            await self._retry(row.id, f"{type(error).__name__}: {error.message}", None)
            return 0
        except TelegramBadRequest as error:
            if NOT_MODIFIED in error.message:
                await self._finish_delivered(row.id, None)
                return 1
            await self._finish_dead(row.id, f"{type(error).__name__}: {error.message}")
            return 1
        except TelegramAPIError as error:
            await self._finish_dead(row.id, f"{type(error).__name__}: {error.message}")
            return 1
        await self._finish_delivered(row.id, result)
        return 1

    async def _resolve_target(self, row: OutboxMessage) -> int | None:
        if row.target is None:
            return None
        if "message_id" in row.target:
            return int(row.target["message_id"])
        async with transaction(self.factory) as session:
            message_id: int | None = await session.scalar(
                select(col(MessageLink.message_id))
                .where(
                    col(MessageLink.chat_id) == row.chat_id,
                    col(MessageLink.subject_type) == row.target["subject_type"],
                    col(MessageLink.subject_id) == row.target["subject_id"],
                    col(MessageLink.purpose) == row.target["purpose"],
                )
                .order_by(col(MessageLink.message_id).desc())
                .limit(1)
            )
        return message_id

    async def _finish_delivered(self, row_id: int, result: Any) -> None:
        messages: list[Message] = []
        if isinstance(result, Message):
            messages = [result]
        elif isinstance(result, list):
            messages = [m for m in result if isinstance(m, Message)]
        now = self.clock.now()
        async with transaction(self.factory) as session:
            row = await session.get(OutboxMessage, row_id)
            if row is None or row.status is not OutboxStatus.PENDING:
                return
            row.mark_delivered(message_id=messages[0].message_id if messages else None, now=now)
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
            row = await session.get(OutboxMessage, row_id)
            if row is None or row.status is not OutboxStatus.PENDING:
                return
            if row.attempts + 1 >= self.max_attempts:
                row.mark_dead(
                    reason=f"gave up after {row.attempts + 1} attempts: {error}", now=now
                )
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

    async def _finish_dead(self, row_id: int, reason: str) -> None:
        now = self.clock.now()
        async with transaction(self.factory) as session:
            row = await session.get(OutboxMessage, row_id)
            if row is None or row.status is not OutboxStatus.PENDING:
                return
            row.mark_dead(reason=reason, now=now)
            chat_id = row.chat_id
        log_event(
            logger, "outbox.dead", logging.WARNING, outbox_id=row_id, chat_id=chat_id, error=reason
        )

    async def _migrate(self, old_chat_id: int, new_chat_id: int) -> None:
        """A group became a supergroup: its queue moves to the new id and is sent there."""
        async with transaction(self.factory) as session:
            await session.execute(
                update(OutboxMessage)
                .where(
                    col(OutboxMessage.chat_id) == old_chat_id,
                    col(OutboxMessage.status) == OutboxStatus.PENDING,
                )
                .values(chat_id=new_chat_id)
            )
        log_event(logger, "outbox.chat_migrated", old_chat_id=old_chat_id, chat_id=new_chat_id)
