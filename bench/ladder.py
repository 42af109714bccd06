"""Escalation scan: does one ladder scan cost the same with 100 times more open cases?

Two databases are prepared with bulk inserts (SQLAlchemy core, thousands of rows a
statement): every case is a photo report dispatched to a department and not acknowledged,
with its four card-ladder rungs (``escalations``). In both, the same number of cases (1,000
by default) have a rung due: dispatched 90 minutes ago, the 0 m rung fired, the 1 h yellow
card due 30 minutes ago, the 4 h and 15 h rungs pending. In the large database the other
99,000 cases were dispatched 30 minutes ago: their 1 h, 4 h and 15 h rungs are pending and
not due. So both scans fire exactly the same 1,000 rungs (a yellow card each: an event, the
department's reminder digest, the center head's phone task, the card refreshed) and only the
rows around them differ: 300,000 pending rungs that are not due against none.

A scan is the scheduler's job itself (``scheduler.jobs.escalate_due_cases``: batches of
short transactions until nothing is due) on a fresh copy of the prepared database each time
(a file copy on SQLite, ``CREATE DATABASE … TEMPLATE`` on PostgreSQL), so every run does the
same work. The figure is the median large scan ÷ the median small scan.
"""

from __future__ import annotations

import contextlib
import shutil
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from bench.intake import CATEGORIES
from bot.clock import ManualClock
from bot.db import create_engine, is_sqlite, migrate, session_factory
from bot.district import District
from models import Case, CaseKind, CaseStatus, Escalation, EscalationState, User
from scheduler.jobs import escalate_due_cases

FIRST_RESIDENT = 3_000_000
CHUNK = 2_000  # rows per INSERT statement


@dataclass
class ScanFigures:
    database: str
    due: int
    small_cases: int
    large_cases: int
    small_seconds: list[float] = field(default_factory=list)
    large_seconds: list[float] = field(default_factory=list)
    fired: dict[str, int] = field(default_factory=dict)
    build_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def small_median(self) -> float:
        return statistics.median(self.small_seconds) if self.small_seconds else 0.0

    @property
    def large_median(self) -> float:
        return statistics.median(self.large_seconds) if self.large_seconds else 0.0

    @property
    def ratio(self) -> float:
        return self.large_median / self.small_median if self.small_median else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "due_rungs": self.due,
            "small_open_cases": self.small_cases,
            "large_open_cases": self.large_cases,
            "small_seconds": [round(s, 4) for s in self.small_seconds],
            "large_seconds": [round(s, 4) for s in self.large_seconds],
            "small_median_seconds": round(self.small_median, 4),
            "large_median_seconds": round(self.large_median, 4),
            "ratio": round(self.ratio, 4),
            "rungs_fired": self.fired,
            "build_seconds": {k: round(v, 2) for k, v in self.build_seconds.items()},
        }


def _case_row(
    district: District, case_id: int, dispatched: datetime, lead: timedelta
) -> dict[str, Any]:
    category = district.category(CATEGORIES[case_id % len(CATEGORIES)])
    assert category is not None and category.department is not None
    created = dispatched - timedelta(seconds=1)
    return {
        "id": case_id,
        "number": district.case_number(case_id),
        "kind": CaseKind.REPORT,
        "status": CaseStatus.DISPATCHED,
        "category": category.code,
        "department": category.department,
        "resident_id": FIRST_RESIDENT + case_id,
        "resident_language": "zh-Hans",
        "resident_name": f"居民{case_id}",
        "anonymous": False,
        "description": f"楼道里有人飞线充电，晚上很危险（{case_id}）",
        "photos": [f"bench-photo-{case_id}"],
        "address": f"康乐小区{case_id % 1000}栋{case_id}号门口",
        "created_at": created,
        "updated_at": dispatched,
        "dispatched_at": dispatched,
        "dispatch_count": 1,
        "card_colour": "none",
        "next_rung_at": dispatched + lead,
        "reporters": 1,
        "source": "telegram",
    }


def _rung_rows(district: District, case_id: int, dispatched: datetime) -> list[dict[str, Any]]:
    rows = []
    for index, rung in enumerate(district.ladder):
        due = district.working_hours.add(dispatched, rung.offset, district.tzinfo)
        fired = index == 0
        rows.append(
            {
                "case_id": case_id,
                "ladder": "ack",
                "cycle": 1,
                "rung": index,
                "due_at": due,
                "state": EscalationState.FIRED if fired else EscalationState.PENDING,
                "fired_at": due if fired else None,
            }
        )
    return rows


async def build(
    database_url: str, district: District, *, cases: int, due: int, now: datetime
) -> None:
    """A migrated database with ``cases`` dispatched cases, ``due`` of them with a rung due."""
    await migrate(database_url)
    engine = create_engine(database_url)
    ladder = district.ladder
    # Cases whose 1 h rung is due, and cases whose next rung is still ahead.
    due_at = now - ladder[1].offset - timedelta(minutes=30)
    not_due_at = now - min(ladder[1].offset / 2, timedelta(minutes=30))
    try:
        async with engine.begin() as connection:
            await connection.execute(
                insert(User),
                [
                    {
                        "id": person.telegram_id,
                        "first_name": person.name,
                        "telegram_language": "zh-hans",
                        "created_at": now - timedelta(days=30),
                        "last_seen_at": now - timedelta(days=1),
                    }
                    for person in district.people
                ],
            )
            for start in range(1, cases + 1, CHUNK):
                ids = range(start, min(start + CHUNK, cases + 1))
                # The due cases are spread over the id range, as they would be.
                times = {
                    i: due_at if (i * due) // cases != ((i - 1) * due) // cases else not_due_at
                    for i in ids
                }
                await connection.execute(
                    insert(Case),
                    [_case_row(district, i, times[i], ladder[1].offset) for i in ids],
                )
                await connection.execute(
                    insert(Escalation),
                    [row for i in ids for row in _rung_rows(district, i, times[i])],
                )
            if not is_sqlite(database_url):
                for table in ("cases", "escalations"):
                    await connection.execute(
                        text(
                            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                            f"(SELECT max(id) FROM {table}))"
                        )
                    )
                await connection.execute(text("ANALYZE"))
    finally:
        await engine.dispose()


async def count_due(engine: AsyncEngine, now: datetime) -> int:
    async with engine.connect() as connection:
        found = await connection.scalar(
            select(func.count())
            .select_from(Escalation)
            .where(
                col(Escalation.state) == EscalationState.PENDING,
                col(Escalation.due_at) <= now,
            )
        )
    return int(found or 0)


class Copies:
    """Fresh copies of a prepared database: a file copy (SQLite) or a template (PostgreSQL)."""

    def __init__(self, url: str, workdir: Path) -> None:
        self.url = url
        self.workdir = workdir

    def _admin_dsn(self) -> str:
        return (
            make_url(self.url)
            .set(drivername="postgresql", database="postgres")
            .render_as_string(hide_password=False)
        )

    @contextlib.asynccontextmanager
    async def fresh(self) -> AsyncIterator[str]:
        url = make_url(self.url)
        if is_sqlite(self.url):
            assert url.database is not None
            copy = self.workdir / f"copy-{uuid.uuid4().hex[:8]}.db"
            shutil.copyfile(url.database, copy)
            try:
                yield url.set(database=str(copy)).render_as_string(hide_password=False)
            finally:
                _remove_sqlite(copy)
            return
        name = f"{url.database}_run_{uuid.uuid4().hex[:6]}"
        admin = await asyncpg.connect(self._admin_dsn())
        try:
            await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{url.database}"')
        finally:
            await admin.close()
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            admin = await asyncpg.connect(self._admin_dsn())
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await admin.close()


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def scan_once(database_url: str, district: District, now: datetime) -> tuple[float, int]:
    """One run of the scheduler's ladder job; its time and the rows it settled."""
    engine = create_engine(database_url)
    try:
        factory = session_factory(engine)
        # Connections open and the schema read before the clock starts, as in a running
        # service whose scan comes every 30 seconds.
        await count_due(engine, now)
        started = time.perf_counter()
        settled = await escalate_due_cases(
            factory=factory, clock=ManualClock(now), district=district, on_commit=lambda: None
        )
        seconds = time.perf_counter() - started
        left = await count_due(engine, now)
    finally:
        await engine.dispose()
    if left:
        raise RuntimeError(f"{left} rungs still due after the scan")
    return seconds, settled


async def measure(
    small_url: str,
    large_url: str,
    district: District,
    workdir: Path,
    *,
    due: int = 1_000,
    large: int = 100_000,
    runs: int = 3,
    on_progress: Callable[[str], None] | None = None,
) -> ScanFigures:
    """Prepare both databases (left in place for the memory measure) and time the scans."""
    progress = on_progress or (lambda _text: None)
    kind = "sqlite" if is_sqlite(small_url) else "postgresql"
    now = datetime.now(UTC).replace(microsecond=0)
    figures = ScanFigures(database=kind, due=due, small_cases=due, large_cases=large)
    for label, url, cases in (("small", small_url, due), ("large", large_url, large)):
        started = time.perf_counter()
        await build(url, district, cases=cases, due=due, now=now)
        figures.build_seconds[label] = time.perf_counter() - started
        progress(f"scan ({kind}): {cases:,} cases built in {figures.build_seconds[label]:.1f} s")
    copies = {"small": Copies(small_url, workdir), "large": Copies(large_url, workdir)}
    for _ in range(runs):
        for label in ("small", "large"):
            async with copies[label].fresh() as url:
                seconds, settled = await scan_once(url, district, now)
            getattr(figures, f"{label}_seconds").append(seconds)
            figures.fired[label] = settled
    progress(
        f"scan ({kind}): {figures.small_median:.3f} s with {due:,} open, "
        f"{figures.large_median:.3f} s with {large:,} open"
    )
    return figures
