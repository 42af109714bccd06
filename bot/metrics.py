"""In-process metrics and their Prometheus text exposition (format 0.0.4), written by hand.

Counters live in this process (updates handled, send latency); gauges that describe the
database (cases by status, outbox depth, dead messages) are read at scrape time by
``bot/web.py`` and passed to :meth:`Metrics.render`, so they are true for every replica.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")

# Bot API calls take tens of milliseconds when healthy; 429 back-offs are not in here (the
# sender waits between attempts, not inside one).
SEND_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        self.total += value
        self.count += 1
        for index, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[index] += 1


@dataclass(frozen=True)
class Gauges:
    """What the database says at scrape time; ``None`` when it could not be read."""

    database_up: bool
    cases_by_status: Mapping[str, int] | None = None
    outbox_pending: int | None = None
    outbox_dead: int | None = None


class Metrics:
    def __init__(self, *, build: Mapping[str, str] | None = None) -> None:
        self.build = dict(build or {})
        self.updates: Counter[tuple[str, str]] = Counter()
        self.send_latency: dict[str, Histogram] = {}

    def count_update(self, update_type: str, outcome: str) -> None:
        self.updates[(update_type, outcome)] += 1

    def observe_send(self, seconds: float, *, outcome: str) -> None:
        histogram = self.send_latency.get(outcome)
        if histogram is None:
            histogram = self.send_latency[outcome] = Histogram(SEND_LATENCY_BUCKETS)
        histogram.observe(seconds)

    async def timed_send(self, call: Awaitable[T]) -> T:
        """Await one Bot API call and record how long it took (``ok`` or ``error``)."""
        started = time.perf_counter()
        outcome = "error"
        try:
            result = await call
            outcome = "ok"
            return result
        finally:
            self.observe_send(time.perf_counter() - started, outcome=outcome)

    def render(self, gauges: Gauges) -> str:
        lines: list[str] = []
        family(lines, "whistle_build_info", "gauge", "The running build.", [(self.build, 1)])
        family(
            lines,
            "whistle_database_up",
            "gauge",
            "1 when the database answered this scrape.",
            [({}, int(gauges.database_up))],
        )
        family(
            lines,
            "whistle_updates_total",
            "counter",
            "Updates taken from Telegram by this process, by type and outcome "
            "(handled, ignored: a redelivery or nothing to do, failed: to be redelivered, "
            "given_up: answered with an apology after repeated failures).",
            [
                ({"type": kind, "outcome": outcome}, count)
                for (kind, outcome), count in sorted(self.updates.items())
            ],
        )
        if gauges.cases_by_status is not None:
            family(
                lines,
                "whistle_cases",
                "gauge",
                "Cases by status.",
                [({"status": s}, n) for s, n in sorted(gauges.cases_by_status.items())],
            )
        if gauges.outbox_pending is not None:
            family(
                lines,
                "whistle_outbox_pending",
                "gauge",
                "Outgoing messages not yet delivered (outbox depth).",
                [({}, gauges.outbox_pending)],
            )
        if gauges.outbox_dead is not None:
            family(
                lines,
                "whistle_outbox_dead",
                "gauge",
                "Outgoing messages Telegram refused for good or that ran out of attempts.",
                [({}, gauges.outbox_dead)],
            )
        name = "whistle_send_latency_seconds"
        lines.append(f"# HELP {name} Duration of one Bot API call by the outbox sender.")
        lines.append(f"# TYPE {name} histogram")
        for outcome, histogram in sorted(self.send_latency.items()):
            for bound, count in zip(histogram.buckets, histogram.counts, strict=True):
                labels = {"outcome": outcome, "le": number(bound)}
                lines.append(f"{name}_bucket{label_text(labels)} {count}")
            inf = {"outcome": outcome, "le": "+Inf"}
            lines.append(f"{name}_bucket{label_text(inf)} {histogram.count}")
            lines.append(f"{name}_sum{label_text({'outcome': outcome})} {histogram.total!r}")
            lines.append(f"{name}_count{label_text({'outcome': outcome})} {histogram.count}")
        return "\n".join(lines) + "\n"


def family(
    lines: list[str],
    name: str,
    kind: str,
    help_text: str,
    samples: Iterable[tuple[Mapping[str, str], float]],
) -> None:
    lines.append(f"# HELP {name} {help_text}")
    lines.append(f"# TYPE {name} {kind}")
    lines.extend(f"{name}{label_text(labels)} {number(value)}" for labels, value in samples)


def label_text(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{key}="{escape(value)}"' for key, value in labels.items())
    return "{" + inner + "}"


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))
