"""Telegram's flood limits, kept by the sender before it calls: messages queue instead of
drawing 429s.

Three budgets (all configurable, see :class:`Limits`): about 30 calls per second overall, at
most 20 per rolling minute in one group, and about one per second in any one chat with a small
burst. A call that would break one of them waits; a chat without budget waits while the others
go on.

The budgets run on a monotonic real-time clock, not on the business clock the services use:
Telegram counts seconds on the wall, and tests move their business clock by hours.

Every send is counted from the moment its answer arrived (and as "in use" while in flight),
never from when it started: the server saw the request somewhere in between, so the sender's
count can only be more cautious than the server's, whatever the network's latency.
``answerCallbackQuery`` is not a message to a chat and spends no budget.

The sender asks a :class:`Budget`: :class:`LocalBudget` keeps these budgets in the process (one
replica), :class:`bot.shared_pacing.RedisBudget` keeps the same budgets in Redis so that
several replicas together stay within the bot's limits.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

# Float comparisons at the edge of a window must land on the safe side.
EPSILON = 0.002
UNPACED_METHODS = frozenset({"answerCallbackQuery"})


@dataclass(frozen=True)
class Limits:
    global_per_second: float = 30.0
    group_per_minute: int = 20
    # Per chat, groups included (Telegram: about one message a second in any chat).
    private_per_second: float = 1.0
    burst: int = 3


class SlidingWindow:
    """At most ``limit`` calls in any ``span`` seconds (as Telegram's per-group minute)."""

    def __init__(self, limit: int, span: float) -> None:
        self.limit = max(1, limit)
        self.span = span
        self.finished: deque[float] = deque()
        self.in_flight = 0

    def wait(self, now: float) -> float | None:
        """0 when a call may start now, else seconds to wait; None when only calls still in
        flight fill the window (their end will free it)."""
        while self.finished and self.finished[0] <= now - self.span:
            self.finished.popleft()
        used = len(self.finished) + self.in_flight
        if used < self.limit:
            return 0.0
        excess = used - self.limit
        if excess >= len(self.finished):
            return None
        return self.finished[excess] + self.span - now + EPSILON

    def take(self) -> None:
        self.in_flight += 1

    def release(self, at: float) -> None:
        self.in_flight = max(0, self.in_flight - 1)
        self.finished.append(at)

    def idle(self, now: float) -> bool:
        return self.in_flight == 0 and (not self.finished or self.finished[-1] <= now - self.span)


class TokenBucket:
    """``rate`` calls a second on average with bursts of ``burst`` (one chat's pace)."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(max(1, burst))
        self.tokens = self.burst
        self.last = now

    def available(self, now: float) -> float:
        return min(self.burst, self.tokens + max(0.0, now - self.last) * self.rate)

    def wait(self, now: float) -> float:
        tokens = self.available(now)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate + EPSILON

    def take(self, now: float) -> None:
        self.tokens = self.available(now) - 1.0
        self.last = now

    def release(self, at: float) -> None:
        # Refill only from the answer on: the time in flight is not credited.
        self.last = max(self.last, at)

    def idle(self, now: float) -> bool:
        return self.available(now) >= self.burst


@dataclass
class Ticket:
    chat_id: int
    window: SlidingWindow | None
    group: SlidingWindow | None
    bucket: TokenBucket | None


class Pacer:
    """The budgets of one bot. Not thread-safe: one event loop uses it."""

    PRUNE_ABOVE = 4096

    def __init__(self, limits: Limits, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self.overall = SlidingWindow(max(1, round(limits.global_per_second)), 1.0)
        if limits.global_per_second < 1:
            self.overall = SlidingWindow(1, 1.0 / limits.global_per_second)
        self._groups: dict[int, SlidingWindow] = {}
        self._chats: dict[int, TokenBucket] = {}

    @staticmethod
    def paced(method: str) -> bool:
        return method not in UNPACED_METHODS

    def global_wait(self, now: float) -> float | None:
        return self.overall.wait(now)

    def chat_wait(self, chat_id: int, now: float) -> float | None:
        wait = self._bucket(chat_id, now).wait(now)
        if chat_id < 0:
            group_wait = self._group(chat_id).wait(now)
            if group_wait is None:
                return None
            wait = max(wait, group_wait)
        return wait

    def take(self, chat_id: int, now: float) -> Ticket:
        self.overall.take()
        bucket = self._bucket(chat_id, now)
        bucket.take(now)
        group = None
        if chat_id < 0:
            group = self._group(chat_id)
            group.take()
        return Ticket(chat_id, self.overall, group, bucket)

    def cancel(self, ticket: Ticket) -> None:
        """Give back what :meth:`take` took, for a call that was not made after all."""
        for window in (ticket.window, ticket.group):
            if window is not None:
                window.in_flight = max(0, window.in_flight - 1)
        if ticket.bucket is not None:
            ticket.bucket.tokens = min(ticket.bucket.burst, ticket.bucket.tokens + 1.0)
        ticket.window = ticket.group = None
        ticket.bucket = None

    def release(self, ticket: Ticket) -> None:
        at = self.clock()
        for window in (ticket.window, ticket.group):
            if window is not None:
                window.release(at)
        if ticket.bucket is not None:
            ticket.bucket.release(at)
        ticket.window = ticket.group = None
        ticket.bucket = None

    def _bucket(self, chat_id: int, now: float) -> TokenBucket:
        bucket = self._chats.get(chat_id)
        if bucket is None:
            if len(self._chats) > self.PRUNE_ABOVE:
                self._prune(now)
            bucket = self._chats[chat_id] = TokenBucket(
                self.limits.private_per_second, self.limits.burst, now
            )
        return bucket

    def _group(self, chat_id: int) -> SlidingWindow:
        window = self._groups.get(chat_id)
        if window is None:
            window = self._groups[chat_id] = SlidingWindow(self.limits.group_per_minute, 60.0)
        return window

    def _prune(self, now: float) -> None:
        """Forget chats whose budgets are full again (they would start full anyway)."""
        for chat_id in [c for c, b in self._chats.items() if b.idle(now)]:
            del self._chats[chat_id]
        for chat_id in [c for c, w in self._groups.items() if w.idle(now)]:
            del self._groups[chat_id]


@dataclass(frozen=True)
class Grant:
    """A budget's answer: a ticket to call now, or how long to wait (None: until a call in
    flight ends); ``overall`` when the overall budget said no, so every chat waits."""

    ticket: Any = None
    wait: float | None = 0.0
    overall: bool = False


class Budget(Protocol):
    """What the sender asks before a paced call and tells after it."""

    async def acquire(self, chat_id: int) -> Grant:
        """Check every budget the call spends and take them all, or none."""
        ...

    async def release(self, ticket: Any) -> None:
        """The call's answer arrived: count it from now."""
        ...

    async def cancel(self, ticket: Any) -> None:
        """The call was not made: give the budget back."""
        ...

    async def close(self) -> None: ...


class LocalBudget:
    """The budgets in this process: enough when one process sends."""

    def __init__(self, pacer: Pacer) -> None:
        self.pacer = pacer

    async def acquire(self, chat_id: int) -> Grant:
        now = self.pacer.clock()
        wait = self.pacer.global_wait(now)
        if wait != 0:
            return Grant(wait=wait, overall=True)
        wait = self.pacer.chat_wait(chat_id, now)
        if wait != 0:
            return Grant(wait=wait)
        return Grant(ticket=self.pacer.take(chat_id, now))

    async def release(self, ticket: Any) -> None:
        self.pacer.release(ticket)

    async def cancel(self, ticket: Any) -> None:
        self.pacer.cancel(ticket)

    async def close(self) -> None:
        return None
