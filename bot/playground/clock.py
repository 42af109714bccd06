"""The playground's clock: real time, shifted and sped up on request.

Virtual time runs from an anchor: ``now = virtual_anchor + (real_now - real_anchor) * speed``.
Changing the speed or jumping re-anchors, so time never runs backwards.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Real = Callable[[], datetime]


def _system_now() -> datetime:
    return datetime.now(UTC)


class PlaygroundClock:
    def __init__(self, *, real: Real = _system_now, start: datetime | None = None) -> None:
        self._real = real
        self._real_anchor = real()
        self._virtual_anchor = start or self._real_anchor
        self._speed = 1.0

    def now(self) -> datetime:
        elapsed = self._real() - self._real_anchor
        return self._virtual_anchor + elapsed * self._speed

    @property
    def speed(self) -> float:
        return self._speed

    def set_speed(self, speed: float) -> None:
        if not 0 < speed <= 3600:
            raise ValueError("speed must be above 0 and at most 3600")
        self._reanchor(self.now())
        self._speed = speed

    def jump_to(self, when: datetime) -> datetime:
        """Move forward to ``when`` (never back)."""
        if when.tzinfo is None:
            raise ValueError("the clock needs an aware datetime")
        self._reanchor(max(when, self.now()))
        return self._virtual_anchor

    @property
    def offset_seconds(self) -> float:
        """How far ahead of real time the clock is."""
        return (self.now() - self._real()).total_seconds()

    def _reanchor(self, virtual: datetime) -> None:
        self._real_anchor = self._real()
        self._virtual_anchor = virtual
