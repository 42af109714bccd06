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
"""

from __future__ import annotations

import asyncio
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


class UpdateWorkers:
    def __init__(self, size: int = DEFAULT_WORKERS) -> None:
        if size < 1:
            raise ValueError("at least one worker")
        self.size = size
        self._slots = asyncio.Semaphore(size)
        # person → a future done when that person's latest submitted job has finished.
        self._tails: dict[Hashable, asyncio.Future[None]] = {}
        self.running = 0  # jobs holding a slot now
        self.most_running = 0  # the most that ever held slots at once

    def submit(self, person: Hashable, job: Callable[[], Awaitable[T]]) -> asyncio.Task[T]:
        """Start ``job`` once the person's previous job has finished and a slot is free. The
        order of calls is the order of one person's jobs."""
        loop = asyncio.get_running_loop()
        previous = self._tails.get(person)
        finished: asyncio.Future[None] = loop.create_future()
        self._tails[person] = finished

        async def run() -> T:
            try:
                if previous is not None:
                    await asyncio.shield(previous)
                async with self._slots:
                    self.running += 1
                    self.most_running = max(self.most_running, self.running)
                    try:
                        return await job()
                    finally:
                        self.running -= 1
            finally:
                if previous is not None and not previous.done():
                    # Cancelled while waiting: the next job still waits for the previous one.
                    previous.add_done_callback(lambda _done: _finish(finished))
                else:
                    _finish(finished)
                if finished.done() and self._tails.get(person) is finished:
                    del self._tails[person]

        return asyncio.create_task(run(), name=f"update-worker:{person}")

    async def run(self, person: Hashable, job: Callable[[], Awaitable[T]]) -> T:
        return await self.submit(person, job)


def _finish(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
