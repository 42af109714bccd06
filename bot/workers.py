"""Updates of different people handled at once, one person's in the order they came.

Long polling and the webhook both hand every update to :class:`UpdateWorkers`: at most
``size`` run at a time (``UPDATE_WORKERS``; each holds a database connection for its
transaction, so the engine's pool is sized from it), and an update waits for the one before
it from the same person (the sender, else the chat) to finish, commit included, before it
starts. What still has to be serialized between different people is serialized by the
database: a case is changed under its row lock (``FOR UPDATE`` on PostgreSQL, the single
writer on SQLite) and every move is checked against the state it finds, so two clerks pressing
one card, or a filer and a co-reporter rating one case, make one change and one refusal; a
help request or an offer's stock is taken with one conditional UPDATE.

A button press goes first: when updates wait for a free worker, a callback query (and every
earlier update of the same person, which it must wait for anyway) is started before the
others, oldest first within each class. Telegram refuses an answer to a press older than about
15 seconds, and a spinning button is what a person under a burst notices first.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

from aiogram.types import Update
from aiogram.types.update import UpdateTypeLookupError

T = TypeVar("T")
DEFAULT_WORKERS = 8


def person_of(update: Update) -> Hashable:
    """Whose turn an update waits for: its sender's, else its chat's; an update with neither
    waits for nobody."""
    try:
        event: Any = update.event
    except UpdateTypeLookupError:
        return ("update", update.update_id)
    sender = getattr(event, "from_user", None) or getattr(event, "user", None)
    if sender is not None:
        return ("user", sender.id)
    chat = getattr(event, "chat", None) or getattr(getattr(event, "message", None), "chat", None)
    if chat is not None:
        return ("chat", chat.id)
    return ("update", update.update_id)


def is_urgent(update: Update) -> bool:
    """A button press: its answer is due within seconds."""
    return update.callback_query is not None


class _Ticket:
    """A job waiting for a slot: lower ``rank`` first, then in order of arrival."""

    __slots__ = ("granted", "rank", "seq")

    def __init__(self, rank: int, seq: int, granted: asyncio.Future[None]) -> None:
        self.rank, self.seq, self.granted = rank, seq, granted

    def __lt__(self, other: _Ticket) -> bool:
        return (self.rank, self.seq) < (other.rank, other.seq)


class _Slots:
    """At most ``size`` holders; waiters are let in by rank, then by arrival, and a waiter's
    rank may be raised while it waits."""

    def __init__(self, size: int) -> None:
        self.free = size
        self._waiting: list[_Ticket] = []
        self._seq = itertools.count()

    def ticket(self, rank: int) -> _Ticket:
        return _Ticket(rank, next(self._seq), asyncio.get_running_loop().create_future())

    async def acquire(self, ticket: _Ticket) -> None:
        if self.free > 0 and not self._waiting:
            self.free -= 1
            return
        heapq.heappush(self._waiting, ticket)
        try:
            await ticket.granted
        except asyncio.CancelledError:
            if ticket.granted.done() and not ticket.granted.cancelled():
                self.release()  # granted as it was cancelled: pass the slot on
            raise

    def raise_rank(self, ticket: _Ticket, rank: int) -> None:
        if rank < ticket.rank:
            ticket.rank = rank
            heapq.heapify(self._waiting)

    def release(self) -> None:
        while self._waiting:
            ticket = heapq.heappop(self._waiting)
            if not ticket.granted.done():
                ticket.granted.set_result(None)
                return
        self.free += 1


class UpdateWorkers:
    def __init__(self, size: int = DEFAULT_WORKERS) -> None:
        if size < 1:
            raise ValueError("at least one worker")
        self.size = size
        self._slots = _Slots(size)
        # person → a future done when that person's latest submitted job has finished.
        self._tails: dict[Hashable, asyncio.Future[None]] = {}
        # person → the tickets of their jobs not started yet (raised together).
        self._queued: dict[Hashable, list[_Ticket]] = {}
        self.running = 0  # jobs holding a slot now
        self.most_running = 0  # the most that ever held slots at once

    def submit(
        self, person: Hashable, job: Callable[[], Awaitable[T]], *, urgent: bool = False
    ) -> asyncio.Task[T]:
        """Start ``job`` once the person's previous job has finished and a slot is free. The
        order of calls is the order of one person's jobs. An ``urgent`` job, and the person's
        earlier jobs still waiting, are let in before the others."""
        loop = asyncio.get_running_loop()
        previous = self._tails.get(person)
        finished: asyncio.Future[None] = loop.create_future()
        self._tails[person] = finished
        rank = 0 if urgent else 1
        ticket = self._slots.ticket(rank)
        queued = self._queued.setdefault(person, [])
        if urgent:
            for earlier in queued:
                self._slots.raise_rank(earlier, rank)
        queued.append(ticket)

        async def run() -> T:
            try:
                if previous is not None:
                    await asyncio.shield(previous)
                await self._slots.acquire(ticket)
                _forget(self._queued, person, ticket)
                self.running += 1
                self.most_running = max(self.most_running, self.running)
                try:
                    return await job()
                finally:
                    self.running -= 1
                    self._slots.release()
            finally:
                _forget(self._queued, person, ticket)
                if previous is not None and not previous.done():
                    # Cancelled while waiting: the next job still waits for the previous one.
                    previous.add_done_callback(lambda _done: _finish(finished))
                else:
                    _finish(finished)
                if finished.done() and self._tails.get(person) is finished:
                    del self._tails[person]

        return asyncio.create_task(run(), name=f"update-worker:{person}")

    async def run(
        self, person: Hashable, job: Callable[[], Awaitable[T]], *, urgent: bool = False
    ) -> T:
        return await self.submit(person, job, urgent=urgent)


def _forget(queued: dict[Hashable, list[_Ticket]], person: Hashable, ticket: _Ticket) -> None:
    tickets = queued.get(person)
    if tickets is None:
        return
    if ticket in tickets:
        tickets.remove(ticket)
    if not tickets:
        del queued[person]


def _finish(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
