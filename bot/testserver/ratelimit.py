"""Telegram's flood limits for sending, enforced on demand.

Owns the accounting of send*/edit* calls per bot: about one message per second in a private
chat (with a small burst), at most 20 per rolling minute in a group, and 30 per rolling second
over all chats.  When a call would exceed a limit it is refused with the number of whole
seconds until the window frees up (at least 1), which becomes ``retry_after``.  The clock is
injectable so benchmarks can run against real time and tests against a fake one.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class LimitConfig:
    enabled: bool = False
    per_chat_per_second: float = 1.0
    per_group_per_minute: int = 20
    global_per_second: float = 30.0
    burst: int = 3


class RateLimiter:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.config = LimitConfig()
        self._private: dict[tuple[int, int], tuple[float, float]] = {}
        self._groups: dict[tuple[int, int], deque[float]] = {}
        self._global: dict[int, deque[float]] = {}

    def reset(self) -> None:
        self._private.clear()
        self._groups.clear()
        self._global.clear()

    def acquire(self, bot_id: int, chat_id: int, is_group: bool) -> int | None:
        """Counts one send; returns ``retry_after`` seconds instead if it is over a limit."""
        if not self.config.enabled:
            return None
        now = self.clock()
        waits: list[float] = []
        global_window = self._window(self._global, bot_id, now, 1.0)
        if len(global_window) >= self.config.global_per_second:
            waits.append(global_window[0] + 1.0 - now)
        tokens = 0.0
        if is_group:
            window = self._window(self._groups, (bot_id, chat_id), now, 60.0)
            if len(window) >= self.config.per_group_per_minute:
                waits.append(window[0] + 60.0 - now)
        else:
            tokens = self._tokens(bot_id, chat_id, now)
            if tokens < 1.0:
                waits.append((1.0 - tokens) / self.config.per_chat_per_second)
        if waits:
            return max(1, math.ceil(max(waits) - 1e-9))
        global_window.append(now)
        if is_group:
            self._groups[(bot_id, chat_id)].append(now)
        else:
            self._private[(bot_id, chat_id)] = (tokens - 1.0, now)
        return None

    def _tokens(self, bot_id: int, chat_id: int, now: float) -> float:
        burst = float(max(1, self.config.burst))
        tokens, last = self._private.get((bot_id, chat_id), (burst, now))
        return min(burst, tokens + (now - last) * self.config.per_chat_per_second)

    @staticmethod
    def _window(
        store: dict[int, deque[float]] | dict[tuple[int, int], deque[float]],
        key: int | tuple[int, int],
        now: float,
        span: float,
    ) -> deque[float]:
        window = store.setdefault(key, deque())  # type: ignore[arg-type]
        while window and window[0] <= now - span:
            window.popleft()
        return window
