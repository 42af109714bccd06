"""The one place that talks to Telegram: delivers outbox rows.

Per chat, messages go out strictly in id order (the head of a chat's queue blocks the rest of
that chat only; callback answers are in no chat's queue, see Lanes). Each delivery is: read the
row → call the Bot API outside any transaction → record the outcome in a short transaction
(message id, message links). A crash between the call and the record can repeat that one
message; Telegram offers no idempotency key, so the window is kept to a single call.

Lanes (``OutboxMessage.lane``, :class:`models.Lane`): a callback answer is not a message to a
chat. Answers stand in no chat's order, wait for no message in flight, spend no budget, and
have a loop and slots (``answer_concurrency``) of their own, so neither a burst of messages nor
a slow pass over them holds one up; each is claimed like a message, but alone. Among the chats
whose next message is due, those whose head is interactive are taken before those whose head
is a bulk notice, so when the overall budget is short a reply someone waits for goes first;
inside a chat the order of ids is never changed.

Pacing: before a call the chat's head must have budget under Telegram's limits
(:mod:`bot.pacing`, or :mod:`bot.shared_pacing` when replicas share the budget in Redis); a
chat without budget waits while the others go on, so messages queue instead of drawing 429s.
A 429 that comes anyway is honoured for that chat only.

Replicas: every replica runs a sender on the same outbox. Before sending a chat's head, a
sender claims it (``claimed_by``/``claimed_until``, one conditional UPDATE that succeeds only
while the row is still pending, due, unclaimed or its claim has lapsed, and no earlier message
of its chat is pending), renews its claims while the calls last and clears the claim when it
records the outcome. So a row is sent by one sender at a time, each chat has at most one call
in flight over all replicas (its order holds), and the chats of a replica that died are taken
over once its claims lapse (``claim_ttl``). Claims use the wall clock, not the business clock.
Before its sender's first pass the app releases the claims of senders that are certainly dead
(:meth:`OutboxSender.release_stale_claims`): with ``sole_sender`` (one replica) every claim
but its own, otherwise those of processes of this host that no longer run. So a restarted
service does not wait for its predecessor's claims to lapse.

Coalescing happens here, when a chat's head is picked: of a run of consecutive pending edits of
one chat, only the newest edit of each message (same method, same target) is sent; the older
ones become SUPERSEDED without a call. A row that is not an edit ends the run, so edits never
move across the messages around them. An edit of a card that was folded into a group's burst
digest and never posted is SUPERSEDED too (bot/services/folding.py): the card, once posted,
shows the case as it is then.

Network errors, 5xx and 429 (after its ``retry_after``) are retried with backoff; anything
Telegram refuses for good, or too many attempts, marks the row dead with the reason. When the
chat itself refuses the bot (kicked, blocked, chat not found) every pending message of that
chat dies with the same reason at once. Rows that die are handed, in their transaction, to the
``on_dead`` hook (the app reports them to the governance center).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import BufferedInputFile
from sqlalchemy import bindparam, case, func, or_, select, update
from sqlalchemy.orm import aliased
from sqlmodel import col

from bot.clock import Clock
from bot.db import SessionFactory, transaction
from bot.logs import log_event
from bot.metrics import Metrics
from bot.outcomes import DeadHook, OutcomeRecorder, wall_now
from bot.pacing import Budget, Limits, LocalBudget, Pacer
from bot.rendering import Renderer, RenderError
from bot.services import folding, notify, users
from models import Lane, MessageLink, OutboxFile, OutboxMessage, OutboxStatus, PhotoUpload
from models.types import UTCDateTime
from models.webapp import UPLOAD_PREFIX

logger = logging.getLogger(__name__)

NOT_MODIFIED = "message is not modified"
# 400s that mean the chat itself is gone for the bot, like any 403.
CHAT_GONE = ("chat not found", "group chat was deactivated", "peer_id_invalid")
EDIT_METHODS = frozenset({"editMessageText", "editMessageCaption", "editMessageReplyMarkup"})
COALESCE_SCAN = 100
READY_TTL = 1.0  # seconds a read of due heads is used while the overall budget holds them
CLAIM_TTL = 30.0  # seconds a claim lasts unless renewed (a dead replica's chats wait this long)

# The identities of the senders running in this process (tests run several in one).
_RUNNING: set[str] = set()

# (session, rows that just died, now, ids of rows being sent right now) → None


class OutboxSender(OutcomeRecorder):
    def __init__(
        self,
        *,
        bot: Bot,
        factory: SessionFactory,
        renderer: Renderer,
        clock: Clock,
        limits: Limits | None = None,
        pacer: Pacer | None = None,
        budget: Budget | None = None,
        owner: str | None = None,
        claim_ttl: float = CLAIM_TTL,
        on_dead: DeadHook | None = None,
        max_attempts: int = 8,
        retry_base: float = 1.0,
        retry_cap: float = 300.0,
        batch_size: int = 100,
        concurrency: int = 16,
        answer_concurrency: int = 8,
        idle_interval: float = 1.0,
        sole_sender: bool = False,
    ) -> None:
        self.bot = bot
        self.factory = factory
        self.renderer = renderer
        self.clock = clock
        self.pacer = pacer or Pacer(limits or Limits())
        self.budget: Budget = budget or LocalBudget(self.pacer)
        # Who this sender is in the claims of outbox rows: unique per process.
        self.owner = owner or sender_identity()
        self.claim_ttl = claim_ttl
        self.on_dead = on_dead
        self.max_attempts = max_attempts
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.batch_size = batch_size
        self.concurrency = concurrency  # messages in flight (one per chat)
        self.answer_concurrency = answer_concurrency  # callback answers in flight, besides
        self.idle_interval = idle_interval
        # No other sender works on this outbox (no replicas): every claim not ours is stale
        # when this one starts.
        self.sole_sender = sole_sender
        self._wake = asyncio.Event()  # for the messages' loop
        self._answer_wake = asyncio.Event()  # for the callback answers' loop
        self._stopping = False
        self.metrics = Metrics()  # the app passes its own: send latency goes to /metrics
        # chat id → the message being sent to it (one at a time per chat).
        self._in_flight: dict[int, int] = {}
        # Ids of the callback answers being sent (in no chat's order).
        self._answering: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        # chat id → monotonic time its budget (or its 429) allows the next call.
        self._paced: dict[int, float] = {}
        # Due heads held back by the overall budget, read at _ready_at; _stale forces a read.
        self._ready: list[OutboxMessage] = []
        self._ready_at = 0.0
        self._stale = True
        # Set while nothing is in flight and nothing due could be sent (see until_idle).
        self._idle = asyncio.Event()
        self._wakes = 0  # how many times wake() was called
        # Per loop: its last pass started nothing and nothing was committed meanwhile.
        self._quiet: dict[str, bool] = {}

    def wake(self) -> None:
        """New rows were committed."""
        self._stale = True
        self._wakes += 1
        self._idle.clear()
        self._wake.set()
        self._answer_wake.set()

    async def until_idle(self) -> None:
        """Return once a pass found nothing to send now: no call in flight, no due row held
        back by a budget (rows due later, or held by another sender's live claim, may wait)."""
        await self._idle.wait()

    def request_stop(self) -> None:
        """Finish the sends in flight, then return from :meth:`run` (a graceful stop must not
        leave a message sent but unrecorded, which would be sent again after the restart)."""
        self._stopping = True
        self._wake.set()
        self._answer_wake.set()

    async def run(self) -> None:
        """Deliver until :meth:`request_stop` (or cancellation)."""
        self._stopping = False
        _RUNNING.add(self.owner)
        renewing = asyncio.create_task(self._renew_claims(), name="outbox-claims")
        # Callback answers have a loop of their own: a slow pass over the messages never
        # delays one.
        answering = asyncio.create_task(
            self._loop("answers", self._answer_wake, self._dispatch_answers),
            name="outbox-answers",
        )
        try:
            await self._loop("messages", self._wake, self._dispatch_messages)
            await answering  # it stops too: no answer starts after this
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            _RUNNING.discard(self.owner)
            renewing.cancel()
            answering.cancel()
            for task in self._tasks:
                task.cancel()

    async def _loop(
        self, name: str, woken: asyncio.Event, dispatch: Callable[[float], Awaitable[float]]
    ) -> None:
        """Run passes of ``dispatch`` until stopped, sleeping between them as long as the pass
        says or until ``woken``."""
        while not self._stopping:
            woken.clear()
            wakes = self._wakes
            try:
                wait = await dispatch(self.pacer.clock())
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("outbox.pass_failed")
                wait = self.idle_interval
            if self._stopping:
                break
            self._quiet[name] = wait > 0 and wakes == self._wakes
            self._note_idle()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), timeout=wait)

    def _note_idle(self) -> None:
        busy = self._tasks or self._ready or self._paced or self._stale
        if all(self._quiet.get(name) for name in ("answers", "messages")) and not busy:
            self._idle.set()
        else:
            self._idle.clear()

    async def _renew_claims(self) -> None:
        """Keep the claims of the rows being sent from lapsing while their calls last."""
        while True:
            await asyncio.sleep(self.claim_ttl / 3)
            ids = [*self._in_flight.values(), *self._answering]
            if not ids:
                continue
            try:
                async with transaction(self.factory) as session:
                    await session.execute(
                        update(OutboxMessage)
                        .where(
                            col(OutboxMessage.id).in_(ids),
                            col(OutboxMessage.claimed_by) == self.owner,
                            col(OutboxMessage.status) == OutboxStatus.PENDING,
                        )
                        .values(claimed_until=wall_now() + timedelta(seconds=self.claim_ttl))
                        .execution_options(synchronize_session=False)
                    )
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("outbox.renew_failed")

    async def release_stale_claims(self) -> int:
        """Give back the live claims of senders that are certainly dead, so that their rows
        go out now instead of when the claims lapse: with ``sole_sender`` every claim but this
        sender's, otherwise those whose owner ran on this host in a process that is gone.
        Returns how many rows were released."""
        async with transaction(self.factory) as session:
            owners = await session.scalars(
                select(col(OutboxMessage.claimed_by))
                .where(
                    col(OutboxMessage.status) == OutboxStatus.PENDING,
                    col(OutboxMessage.claimed_until) >= wall_now(),
                    col(OutboxMessage.claimed_by) != self.owner,
                )
                .distinct()
            )
            dead = [
                owner
                for owner in owners.all()
                if owner is not None and (self.sole_sender or not _may_be_alive(owner))
            ]
            if not dead:
                return 0
            released = await session.execute(
                update(OutboxMessage)
                .where(
                    col(OutboxMessage.status) == OutboxStatus.PENDING,
                    col(OutboxMessage.claimed_by).in_(dead),
                )
                .values(claimed_by=None, claimed_until=None)
                .execution_options(synchronize_session=False)
            )
        count = int(getattr(released, "rowcount", 0) or 0)
        log_event(logger, "outbox.claims_released", rows=count, owners=len(dead))
        return count

    async def _dispatch_answers(self, now: float) -> float:
        """Claim and start the due callback answers (unpaced, in no chat's order) on slots of
        their own, in one statement to lose no time; returns how long the loop may sleep.
        Deliveries run on as tasks."""
        free = self.answer_concurrency - len(self._answering)
        if free <= 0:
            return self.idle_interval  # a finishing answer wakes the loop
        wall, business_now = wall_now(), self.clock.now()
        answers = [
            col(OutboxMessage.status) == OutboxStatus.PENDING,
            col(OutboxMessage.lane) == Lane.ANSWER,
            self._unclaimed(),
        ]
        if self._answering:  # being sent here (claimed by this sender)
            answers.append(col(OutboxMessage.id).not_in(list(self._answering)))
        due = select(col(OutboxMessage.id)).where(
            *answers, col(OutboxMessage.next_attempt_at) <= business_now
        )
        async with transaction(self.factory) as session:
            claimed = list(
                (
                    await session.scalars(
                        update(OutboxMessage)
                        .where(
                            *answers,
                            col(OutboxMessage.next_attempt_at) <= business_now,
                            col(OutboxMessage.id).in_(
                                due.order_by(col(OutboxMessage.id)).limit(free).scalar_subquery()
                            ),
                        )
                        .values(
                            claimed_by=self.owner,
                            claimed_until=wall + timedelta(seconds=self.claim_ttl),
                        )
                        .returning(OutboxMessage)
                        .execution_options(synchronize_session=False)
                    )
                ).all()
            )
            later: datetime | None = None
            if not claimed:
                later = await session.scalar(
                    select(func.min(col(OutboxMessage.next_attempt_at))).where(*answers)
                )
        for row in claimed:
            self._start(row, None)
        if claimed:
            return 0.0  # look again at once (with no slot free: when an answer ends)
        # Look again when the next is due (at the latest after idle_interval: a claim of
        # another sender may lapse), or at once when new rows are committed.
        if later is None:
            return self.idle_interval
        return min(self.idle_interval, max(0.005, (later - business_now).total_seconds()))

    async def _dispatch_messages(self, now: float) -> float:
        """Start a delivery for every due chat head that has budget, interactive heads first;
        returns how long the loop may sleep (0: look again at once). Deliveries run on as
        tasks."""
        self._paced = {c: t for c, t in self._paced.items() if t > now}
        if len(self._in_flight) >= self.concurrency:
            return self.idle_interval  # a finishing delivery wakes the loop
        blocked = set(self._in_flight) | set(self._paced)
        # Heads read earlier but held back by the overall budget are most likely still the
        # heads of their chats (this sender drops them when it touches other rows, and the
        # claim catches one another replica moved): use them while they are fresh instead of
        # reading again each time a slot frees.
        if self._stale or not self._ready or now - self._ready_at > READY_TTL:
            self._stale = False
            self._ready = list(await self.due_heads(exclude=blocked))
            self._ready_at = now
        started = 0
        global_wait: float | None = None
        global_full = False
        held: list[OutboxMessage] = []
        for row in self._ready:
            if row.chat_id in blocked:
                continue
            if len(self._in_flight) >= self.concurrency or global_full:
                held.append(row)
                continue
            ticket: Any = None
            if Pacer.paced(row.method):
                grant = await self.budget.acquire(row.chat_id)
                if grant.ticket is None:
                    if grant.overall:
                        global_full, global_wait = True, grant.wait
                        held.append(row)
                    elif grant.wait is not None:
                        self._paced[row.chat_id] = now + grant.wait
                    continue
                ticket = grant.ticket
            self._start(row, ticket)
            blocked.add(row.chat_id)
            started += 1
        self._ready = held
        if started or self._stopping:
            return 0.0
        if global_full:
            # Due heads wait for the overall budget: when it frees (None: when a call ends).
            return max(0.001, global_wait if global_wait is not None else self.idle_interval)
        waits = [self.idle_interval, await self._next_due(blocked | set(self._paced))]
        if self._paced:
            waits.append(min(self._paced.values()) - now)
        return max(0.005, min(waits))

    def _start(self, row: OutboxMessage, ticket: Any) -> None:
        assert row.id is not None
        if row.lane == Lane.ANSWER:
            self._answering.add(row.id)
        else:
            self._in_flight[row.chat_id] = row.id
        self._idle.clear()
        task = asyncio.create_task(self._deliver_task(row, ticket))
        self._tasks.add(task)

    async def _deliver_task(self, row: OutboxMessage, ticket: Any) -> None:
        spent = False
        try:
            claimed = row if row.lane == Lane.ANSWER else await self._claim(row)
            if claimed is None:
                self._stale = True  # another replica has this chat, or the row moved on
                return
            row = claimed  # as it is now (a dead-message report may have grown meanwhile)
            if row.method in EDIT_METHODS and await self._coalesce(row):
                self._stale = True  # the chat has a new head: look again
                return
            spent = True
            await self.deliver(row, ticket)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("outbox.delivery_failed", extra={"outbox_id": row.id})
            with contextlib.suppress(Exception):
                await self._unclaim(row)
        finally:
            if ticket is not None and not spent:
                with contextlib.suppress(Exception):
                    await self.budget.cancel(ticket)
            task = asyncio.current_task()
            if task is not None:
                self._tasks.discard(task)
            if row.lane == Lane.ANSWER:
                assert row.id is not None
                self._answering.discard(row.id)
                self._answer_wake.set()
                if self._stale:  # a dead answer queued a report
                    self._wake.set()
            else:
                self._in_flight.pop(row.chat_id, None)
                self._wake.set()

    async def _claim(self, row: OutboxMessage) -> OutboxMessage | None:
        """Take a message for this sender: only while it is pending and due, nobody else holds
        a live claim on it and no earlier message of its chat is pending (so a chat's messages
        go out in order, one at a time over all replicas). Callback answers are claimed in
        :meth:`_dispatch_answers`."""
        assert row.id is not None
        wall = wall_now()
        async with transaction(self.factory) as session:
            claimed: OutboxMessage | None = await session.scalar(
                _message_claim(),
                {
                    "claim_row": row.id,
                    "claim_chat": row.chat_id,
                    "claim_now": self.clock.now(),
                    "wall": wall,
                    "owner": self.owner,
                    "until": wall + timedelta(seconds=self.claim_ttl),
                },
            )
            return claimed

    async def _unclaim(self, row: OutboxMessage) -> None:
        async with transaction(self.factory) as session:
            await session.execute(
                update(OutboxMessage)
                .where(
                    col(OutboxMessage.id) == row.id, col(OutboxMessage.claimed_by) == self.owner
                )
                .values(claimed_by=None, claimed_until=None)
                .execution_options(synchronize_session=False)
            )

    async def _next_due(self, blocked: Collection[int]) -> float:
        """Seconds until the earliest head not already waiting becomes due."""
        heads = self._heads_subquery(blocked)
        async with transaction(self.factory) as session:
            due: datetime | None = await session.scalar(
                select(func.min(col(OutboxMessage.next_attempt_at)))
                .join(heads, heads.c.id == col(OutboxMessage.id))
                .where(self._unclaimed())
            )
        if due is None:
            return self.idle_interval
        return (due - self.clock.now()).total_seconds()

    def _unclaimed(self) -> Any:
        """Rows no other sender holds a live claim on."""
        return or_(
            col(OutboxMessage.claimed_until).is_(None),
            col(OutboxMessage.claimed_until) < wall_now(),
            col(OutboxMessage.claimed_by) == self.owner,
        )

    @staticmethod
    def _heads_subquery(exclude: Collection[int]) -> Any:
        # Callback answers stand in no chat's order.
        query = select(func.min(col(OutboxMessage.id)).label("id")).where(
            col(OutboxMessage.status) == OutboxStatus.PENDING,
            col(OutboxMessage.lane) != Lane.ANSWER,
        )
        if exclude:
            query = query.where(col(OutboxMessage.chat_id).not_in(list(exclude)))
        return query.group_by(col(OutboxMessage.chat_id)).subquery()

    async def due_heads(self, exclude: Collection[int] = ()) -> Sequence[OutboxMessage]:
        """The oldest pending message of each chat (but those in ``exclude``), where that row
        is due now: interactive heads first, then bulk ones; within each, groups' before
        people's chats (a group takes at most its 20 a minute, so it never starves the others,
        and its minute is the scarcest budget there is); each by due time."""
        heads = self._heads_subquery(exclude)
        query = (
            select(OutboxMessage)
            .join(heads, heads.c.id == col(OutboxMessage.id))
            .where(col(OutboxMessage.next_attempt_at) <= self.clock.now(), self._unclaimed())
            .order_by(
                col(OutboxMessage.lane),
                case((col(OutboxMessage.chat_id) < 0, 0), else_=1),
                col(OutboxMessage.next_attempt_at),
                col(OutboxMessage.id),
            )
            .limit(self.batch_size)
        )
        async with transaction(self.factory) as session:
            return list((await session.scalars(query)).all())

    async def _coalesce(self, head: OutboxMessage) -> bool:
        """Supersede every edit in the head's run of consecutive edits that a later edit of the
        same message replaces; True when the head itself was superseded."""
        now = self.clock.now()
        async with transaction(self.factory) as session:
            run = list(
                (
                    await session.scalars(
                        select(OutboxMessage)
                        .where(
                            col(OutboxMessage.chat_id) == head.chat_id,
                            col(OutboxMessage.status) == OutboxStatus.PENDING,
                            col(OutboxMessage.lane) != Lane.ANSWER,
                            col(OutboxMessage.id) >= head.id,
                        )
                        .order_by(col(OutboxMessage.id))
                        .limit(COALESCE_SCAN)
                    )
                ).all()
            )
            edits: list[OutboxMessage] = []
            for row in run:
                if row.method not in EDIT_METHODS or row.target is None:
                    break
                edits.append(row)
            newest: dict[tuple[str, str], int] = {}
            for row in edits:
                assert row.id is not None and row.target is not None
                newest[(row.method, json.dumps(row.target, sort_keys=True))] = row.id
            superseded: list[int] = []
            for row in edits:
                assert row.id is not None and row.target is not None
                replacement = newest[(row.method, json.dumps(row.target, sort_keys=True))]
                if replacement != row.id:
                    row.mark_superseded(by=replacement, now=now)
                    superseded.append(row.id)
        if superseded:
            log_event(
                logger,
                "outbox.superseded",
                chat_id=head.chat_id,
                count=len(superseded),
                first_id=superseded[0],
            )
        return head.id in superseded

    async def deliver(self, row: OutboxMessage, ticket: Any = None) -> int:
        """Send one row and record the outcome; 1 when it reached an end state. The budget
        ``ticket`` is released when the answer arrives, or given back if no call is made."""
        assert row.id is not None
        try:
            target = await self._resolve_target(row)
            moot = await self._moot(row, target)
            if moot is not None:
                if ticket is not None:
                    await self.budget.cancel(ticket)
                await self._finish_moot(row.id, moot)
                return 1
            upload = await self._upload(row)
            photos = await self._photos(row)
            locale = await self._chat_locale(row)
            method = self.renderer.method(row, target, upload, locale, photos)
        except Exception as error:
            if ticket is not None:
                await self.budget.cancel(ticket)
            if isinstance(error, RenderError):
                await self._finish_dead(row.id, f"render: {error}")
                return 1
            # a template bug must not stall the chat forever
            logger.exception("outbox.render_failed", extra={"outbox_id": row.id})
            await self._finish_dead(row.id, f"render: {type(error).__name__}: {error}")
            return 1
        try:
            try:
                result = await self.metrics.timed_send(self.bot(method))
            finally:
                if ticket is not None:
                    await self.budget.release(ticket)
        except TelegramRetryAfter as error:
            # This chat waits out retry_after; the others go on.
            if row.lane != Lane.ANSWER:
                self._paced[row.chat_id] = self.pacer.clock() + error.retry_after
            await self._retry(row.id, f"429 retry after {error.retry_after}", error.retry_after)
            return 0
        except TelegramMigrateToChat as error:
            await self._migrate(row.chat_id, error.migrate_to_chat_id)
            return 0
        except (TelegramServerError, TelegramNetworkError) as error:
            await self._retry(row.id, f"{type(error).__name__}: {error.message}", None)
            return 0
        except TelegramForbiddenError as error:
            await self._finish_dead(row.id, _reason(error), whole_chat=True)
            return 1
        except TelegramBadRequest as error:
            if NOT_MODIFIED in error.message:
                await self._finish_delivered(row.id, None)
                return 1
            gone = any(text in error.message.lower() for text in CHAT_GONE)
            await self._finish_dead(row.id, _reason(error), whole_chat=gone)
            return 1
        except TelegramAPIError as error:
            await self._finish_dead(row.id, _reason(error))
            return 1
        await self._finish_delivered(row.id, result)
        return 1

    async def _upload(self, row: OutboxMessage) -> BufferedInputFile | None:
        key = row.params.get("upload")
        if key is None:
            return None
        async with transaction(self.factory) as session:
            file = await session.get(OutboxFile, key)
        if file is None:
            raise RenderError(f"the file {key} to upload is gone")
        return BufferedInputFile(file.content, filename=file.filename)

    async def _photos(self, row: OutboxMessage) -> dict[str, BufferedInputFile] | None:
        """The bytes of the photos a row names ``upload:<key>`` (checked and re-encoded when
        the Mini App took them), for the rows that show a case's photos."""
        names = [row.params.get("photo"), *row.params.get("photos", ())]
        keys = {name: name.removeprefix(UPLOAD_PREFIX) for name in names
                if isinstance(name, str) and name.startswith(UPLOAD_PREFIX)}  # fmt: skip
        if not keys:
            return None
        async with self.factory() as session:
            found = {
                upload.key: upload
                for upload in await session.scalars(
                    select(PhotoUpload).where(col(PhotoUpload.key).in_(keys.values()))
                )
            }
        missing = [key for key in keys.values() if key not in found]
        if missing:
            raise RenderError(f"{len(missing)} uploaded photos to send are gone")
        return {
            name: BufferedInputFile(found[key].content, filename=f"{key}.jpg")
            for name, key in keys.items()
        }

    async def _chat_locale(self, row: OutboxMessage) -> str | None:
        """A group chat is spoken to in its own language (chosen by its admins with /lang),
        whatever language the row was queued in; a person's chat keeps the row's."""
        if row.chat_id >= 0 or row.method == "answerCallbackQuery":
            return None
        async with self.factory() as session:
            return await users.chosen_chat_language(
                session, row.chat_id, self.renderer.catalogues.languages
            )

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

    async def _moot(self, row: OutboxMessage, target: int | None) -> str | None:
        """Why the row has nothing left to say, if so: an edit of a card that was folded into
        a digest and never posted (bot/services/folding.py), or a question about a case whose
        state has moved on since it was queued (notify.WHILE: a rating question for an answer
        the case's resident already rated)."""
        folded_edit = (
            target is None
            and row.method in EDIT_METHODS
            and row.target is not None
            and "message_id" not in row.target
        )
        condition = row.context.get(notify.WHILE)
        if not folded_edit and not condition:
            return None
        async with transaction(self.factory) as session:
            if folded_edit and await folding.moot_edit(
                session, chat_id=row.chat_id, target=row.target or {}
            ):
                return "edit of a card folded into a digest"
            if condition and await notify.moved_on(session, condition):
                return "its case moved on"
        return None


@functools.cache
def _message_claim() -> Any:
    """The claim of one message (see ``OutboxSender._claim``), built once: every delivery
    runs it, and building its subquery costs more than running it."""
    earlier = aliased(OutboxMessage)
    stamp = UTCDateTime()
    wall = bindparam("wall", type_=stamp)
    pending_before = (
        select(col(earlier.id))
        .where(
            col(earlier.chat_id) == bindparam("claim_chat"),
            col(earlier.status) == OutboxStatus.PENDING,
            col(earlier.lane) != Lane.ANSWER,
            col(earlier.id) < bindparam("claim_row"),
        )
        .exists()
    )
    return (
        update(OutboxMessage)
        .where(
            col(OutboxMessage.id) == bindparam("claim_row"),
            col(OutboxMessage.status) == OutboxStatus.PENDING,
            col(OutboxMessage.next_attempt_at) <= bindparam("claim_now", type_=stamp),
            or_(
                col(OutboxMessage.claimed_until).is_(None),
                col(OutboxMessage.claimed_until) < wall,
                col(OutboxMessage.claimed_by) == bindparam("owner"),
            ),
            ~pending_before,
        )
        .values(claimed_by=bindparam("owner"), claimed_until=bindparam("until", type_=stamp))
        .returning(OutboxMessage)
        .execution_options(synchronize_session=False)
    )


def sender_identity() -> str:
    """This process among the replicas: host, process id and a random part (a restarted
    process with a reused pid is someone else)."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _may_be_alive(owner: str) -> bool:
    """Whether the sender ``owner`` (a :func:`sender_identity`) may still be running: False
    only for a process of this host that is gone, or a process before this one with this
    pid (a restarted container's process often gets the same pid) that runs no such sender."""
    host, _, rest = owner.partition(":")
    pid_text, _, _ = rest.partition(":")
    if host != socket.gethostname()[:32] or not pid_text.isdigit():
        return True  # another machine, or not an identity this code made: cannot tell
    pid = int(pid_text)
    if pid == os.getpid():
        return owner in _RUNNING
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def _reason(error: TelegramAPIError) -> str:
    return f"{type(error).__name__}: {error.message}"
