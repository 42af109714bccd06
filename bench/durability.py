"""Durability: what ``synchronous=FULL`` (the default on SQLite) costs next to ``NORMAL``.

In WAL mode SQLite with ``FULL`` syncs the write-ahead log to disk at every commit, so a
committed transaction survives a power loss; with ``NORMAL`` it syncs only at checkpoints, so
the last commits before a power cut (never before a crash of the process alone) can be lost.
Two measurements, each with both settings in the same run (the ratio holds on a noisy
machine):

1. commits: one small transaction at a time through the service's own engine
   (``bot.db.transaction``: SQLAlchemy, aiosqlite, ``BEGIN IMMEDIATE``, one INSERT, COMMIT),
   in rounds that alternate FULL and NORMAL; milliseconds per commit, median of the rounds;
2. intake: cases per second through the whole pipeline (``bench.intake``: four updates, so
   four commits, a case) with each setting: two applications, one per setting, each on its
   own database file, file reports in turns of ``batch`` cases (FULL first, then NORMAL
   first, …), so a busy moment of the machine falls on both alike.

The databases are files in a scratch directory on the disk of the system's temporary
directory (its filesystem type is recorded: on tmpfs a sync costs nothing and the figures
mean little).

    python -m bench --only durability     (or ``python -m bench.durability``)
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench import intake
from bot.app import Whistle
from bot.db import Synchronous, create_engine, migrate, session_factory, transaction
from bot.district import load_district
from bot.settings import Settings

MODES: tuple[Synchronous, ...] = ("full", "normal")


@dataclass
class DurabilityFigures:
    filesystem: str
    commits: int
    rounds: int
    cases: int
    commit_ms: dict[str, list[float]] = field(default_factory=dict)
    intake_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def intake_cases_per_second(self) -> dict[str, float]:
        return {
            mode: self.cases / seconds for mode, seconds in self.intake_seconds.items() if seconds
        }

    def median_ms(self, mode: str) -> float:
        return statistics.median(self.commit_ms[mode])

    @property
    def commit_ratio(self) -> float:
        """How many times longer a commit takes with FULL than with NORMAL."""
        normal = self.median_ms("normal")
        return self.median_ms("full") / normal if normal else 0.0

    @property
    def intake_ratio(self) -> float:
        """Intake with FULL ÷ with NORMAL (1.0: FULL costs nothing)."""
        normal = self.intake_cases_per_second.get("normal", 0.0)
        return self.intake_cases_per_second.get("full", 0.0) / normal if normal else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "filesystem": self.filesystem,
            "commits_per_round": self.commits,
            "rounds": self.rounds,
            "commit_ms": {mode: round(self.median_ms(mode), 3) for mode in self.commit_ms},
            "commit_ms_rounds": {
                mode: [round(ms, 3) for ms in values] for mode, values in self.commit_ms.items()
            },
            "commit_ratio_full_to_normal": round(self.commit_ratio, 3),
            "intake_cases": self.cases,
            "intake_cases_per_second": {
                mode: round(value, 2) for mode, value in self.intake_cases_per_second.items()
            },
            "intake_seconds": {
                mode: round(seconds, 3) for mode, seconds in self.intake_seconds.items()
            },
            "intake_ratio_full_to_normal": round(self.intake_ratio, 3),
        }


def filesystem_of(path: Path) -> str:
    """The type of the filesystem ``path`` is on (from /proc/mounts; "unknown" elsewhere)."""
    try:
        mounts = Path("/proc/mounts").read_text(encoding="utf-8").splitlines()
    except OSError:
        return "unknown"
    best, kind = "", "unknown"
    resolved = str(path.resolve())
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1]
        inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
        if inside and len(point) > len(best):
            best, kind = point, parts[2]
    return kind


async def commit_round(url: str, mode: Synchronous, commits: int) -> float:
    """Milliseconds per commit of ``commits`` one-row transactions, one after another."""
    engine = create_engine(url, synchronous=mode)
    try:
        factory = session_factory(engine)
        async with transaction(factory) as session:
            await session.execute(
                text("CREATE TABLE IF NOT EXISTS bench_commits (id INTEGER PRIMARY KEY, n INT)")
            )
        started = time.perf_counter()
        for n in range(commits):
            async with transaction(factory) as session:
                await session.execute(text("INSERT INTO bench_commits (n) VALUES (:n)"), {"n": n})
        return (time.perf_counter() - started) / commits * 1000
    finally:
        await engine.dispose()


async def measure(
    *,
    commits: int = 500,
    rounds: int = 3,
    cases: int = 100,
    warm_cases: int = 10,
    batch: int = 10,
    workdir: Path | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> DurabilityFigures:
    progress = on_progress or (lambda _text: None)
    with tempfile.TemporaryDirectory(prefix="whistle-durability-", dir=workdir) as scratch:
        where = Path(scratch)
        figures = DurabilityFigures(filesystem_of(where), commits, rounds, cases)
        for mode in MODES:
            figures.commit_ms[mode] = []
        for index in range(rounds):
            # Alternating, so both settings meet the same moments of a busy machine.
            order = MODES if index % 2 == 0 else tuple(reversed(MODES))
            for mode in order:
                url = f"sqlite+aiosqlite:///{where / f'commits-{mode}.db'}"
                figures.commit_ms[mode].append(await commit_round(url, mode, commits))
        progress(
            "durability: "
            + ", ".join(f"{mode} {figures.median_ms(mode):.2f} ms/commit" for mode in MODES)
        )
        figures.intake_seconds = await intake_in_turns(where, cases, warm_cases, batch)
        progress(
            "durability: intake "
            + ", ".join(
                f"{mode} {rate:.1f} cases/s"
                for mode, rate in figures.intake_cases_per_second.items()
            )
        )
    return figures


async def intake_in_turns(
    where: Path, cases: int, warm_cases: int, batch: int
) -> dict[str, float]:
    """Seconds each setting took to file ``cases`` photo reports, in alternating turns."""
    district = load_district(intake.district_file(where))
    apps: dict[str, Whistle] = {}
    try:
        for mode in MODES:
            url = f"sqlite+aiosqlite:///{where / f'intake-{mode}.db'}"
            await migrate(url)
            settings = Settings(
                _env_file=None,
                BOT_TOKEN=intake.TOKEN,
                TELEGRAM_API_BASE="http://127.0.0.1:9",  # never called: nothing is sent
                DATABASE_URL=url,
                WEB_ENABLED=False,
                SQLITE_SYNCHRONOUS=mode,
            )
            apps[mode] = Whistle(settings=settings, district=district)
        residents = {
            mode: intake.Residents(app.bot, warm_cases + cases) for mode, app in apps.items()
        }
        for name, app in apps.items():
            await intake.file_reports(app, residents[name], residents[name].ids[:warm_cases])
        seconds: dict[str, float] = dict.fromkeys(MODES, 0.0)
        for index, first in enumerate(range(warm_cases, warm_cases + cases, batch)):
            order = MODES if index % 2 == 0 else tuple(reversed(MODES))
            for mode in order:
                ids = residents[mode].ids[first : min(first + batch, warm_cases + cases)]
                steps, _ = await intake.file_reports(apps[mode], residents[mode], ids)
                seconds[mode] += sum(steps.values())
        return seconds
    finally:
        for app in apps.values():
            await app.bot.session.close()
            await app.engine.dispose()


def main() -> int:
    figures = asyncio.run(measure(on_progress=lambda line: print(line, file=sys.stderr)))
    print(json.dumps(figures.to_dict(), indent=2))
    print(f"{os.cpu_count()} CPUs", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
