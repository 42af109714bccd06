"""The per-bot queue of pending updates and getUpdates long polling over it.

Owns update ids, ``allowed_updates`` filtering, confirmation by ``offset`` (every update with a
smaller id is forgotten, like Telegram) and waking long polls.  A newer getUpdates or a
setWebhook terminates a waiting poll, which then fails with Telegram's 409 Conflict text.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

# Telegram delivers every update type by default except these three.
NOT_BY_DEFAULT = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


class PollTerminated(Exception):
    """A waiting getUpdates was superseded; the message is the Conflict description."""


class UpdateQueue:
    def __init__(self, first_update_id: int = 1) -> None:
        self.next_id = first_update_id
        self.pending: deque[dict[str, Any]] = deque()
        self.allowed_updates: list[str] = []
        self._changed = asyncio.Event()
        self._poll_generation = 0
        self._termination: str | None = None

    def allows(self, kind: str) -> bool:
        if not self.allowed_updates:
            return kind not in NOT_BY_DEFAULT
        return kind in self.allowed_updates

    def push(self, kind: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        """Append an update unless ``allowed_updates`` excludes its type."""
        if not self.allows(kind):
            return None
        update = {"update_id": self.next_id, kind: payload}
        self.next_id += 1
        self.pending.append(update)
        self.wake()
        return update

    def confirm(self, offset: int) -> None:
        if offset < 0:
            # A negative offset keeps only the last -offset updates.
            while len(self.pending) > -offset:
                self.pending.popleft()
            return
        while self.pending and self.pending[0]["update_id"] < offset:
            self.pending.popleft()

    def remove(self, update_id: int) -> None:
        """Forget one update (delivered on its own while earlier ones are still pending)."""
        for index, update in enumerate(self.pending):
            if update["update_id"] == update_id:
                del self.pending[index]
                return

    def peek(self, limit: int) -> list[dict[str, Any]]:
        return [self.pending[i] for i in range(min(limit, len(self.pending)))]

    def clear(self) -> None:
        self.pending.clear()
        self.wake()

    def reset(self) -> None:
        # update_id keeps counting: a bot still polling with a high offset would otherwise
        # silently confirm (drop) the new, lower-numbered updates.
        self.pending.clear()
        self.allowed_updates = []
        self.wake()

    def wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def changed_event(self) -> asyncio.Event:
        return self._changed

    def begin_poll(self, conflict: str) -> int:
        """Registers a new poll, terminating any poll still waiting."""
        self.terminate_poll(conflict)
        return self._poll_generation

    def terminate_poll(self, conflict: str) -> None:
        self._poll_generation += 1
        self._termination = conflict
        self.wake()

    def check_poll(self, generation: int) -> None:
        if generation != self._poll_generation:
            raise PollTerminated(self._termination or "Conflict")

    async def long_poll(
        self, offset: int, limit: int, wait: float, generation: int, closing: asyncio.Event
    ) -> list[dict[str, Any]]:
        """getUpdates: confirm by offset, then wait up to ``wait`` seconds for updates."""
        self.confirm(offset)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            self.check_poll(generation)
            updates = self.peek(limit)
            remaining = deadline - loop.time()
            if updates or remaining <= 0 or closing.is_set():
                return updates
            changed = self.changed_event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)
