"""Every benchmark figure in one run: prints a table and writes JSON.

    python -m bench [--quick] [--only intake,scan,pacing,memory,load,keywords,durability]
                    [--postgres ADMIN_URL | --no-postgres] [--results DIR]

Each figure is a ratio of two measurements taken in the same run, so it holds on a noisy
machine:

1. intake: cases filed per second through the whole pipeline ÷ aiogram dispatching the same
   updates to a no-op handler (``bench.intake``), on SQLite and PostgreSQL; with a profile of
   the pipeline;
2. scan: one escalation scan with 100,000 open cases ÷ with 1,000, the same 1,000 rungs due
   in both (``bench.ladder``), on SQLite and PostgreSQL;
3. pacing: messages delivered per second ÷ Telegram's limits, against the test server
   enforcing them (``bench.pacing``);
4. memory: the service's peak resident set size with 100,000 open cases and 1,000 dialogs ÷
   with 1,000 cases and 10 dialogs (``bench.memory``);
5. load: 1,000 residents filing photo reports at once against the real service: all
   persisted, p50/p95/p99 from the last message to the case number, button presses to their
   answers, Bot API calls per case; then 300 with Telegram's limits enforced, their p95 ÷
   the floor those limits impose (``bench.load``);
6. keywords: texts screened per second over 10,000 reports with the full library
   (``bench.keywords``);
7. durability: milliseconds per commit and intake cases per second on SQLite with
   ``synchronous=FULL`` (the default) and with ``NORMAL`` (``bench.durability``).

``--quick`` runs every measure at a tiny size (a smoke run, not figures). PostgreSQL is
used when its server answers (``WHISTLE_TEST_POSTGRES``, default
postgresql://postgres@127.0.0.1:5432/postgres); each measure creates its own databases there
and drops them. Results go to ``bench/results/latest.json`` and a dated copy
``bench-YYYYmmddTHHMMSSZ.json``; the intake profiles to ``intake-profile-<database>.txt``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from bench import durability, intake, keywords, ladder, load, memory, pacing
from bot.district import load_district
from bot.warning import load_library, resolve_keywords_path

RESULTS = Path(__file__).resolve().parent / "results"
MEASURES = ("keywords", "intake", "scan", "memory", "pacing", "load", "durability")
DEFAULT_POSTGRES = os.environ.get(
    "WHISTLE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@dataclass(frozen=True)
class Sizes:
    intake_cases: int
    intake_profiled: int
    intake_warm: int
    scan_due: int
    scan_large: int
    scan_runs: int
    memory_small_dialogs: int
    memory_large_dialogs: int
    pacing_private: int
    pacing_chats: int
    pacing_groups: int
    pacing_group_messages: int
    load_residents: int
    load_limited_residents: int
    keyword_texts: int
    keyword_rounds: int
    durability_commits: int
    durability_rounds: int
    durability_cases: int


FULL = Sizes(
    intake_cases=200,
    intake_profiled=40,
    intake_warm=20,
    scan_due=1_000,
    scan_large=100_000,
    scan_runs=3,
    memory_small_dialogs=10,
    memory_large_dialogs=1_000,
    pacing_private=600,
    pacing_chats=300,
    pacing_groups=20,
    pacing_group_messages=10,
    load_residents=1_000,
    load_limited_residents=300,
    keyword_texts=10_000,
    keyword_rounds=3,
    durability_commits=500,
    durability_rounds=4,
    durability_cases=100,
)
QUICK = Sizes(
    intake_cases=12,
    intake_profiled=4,
    intake_warm=4,
    scan_due=10,
    scan_large=200,
    scan_runs=1,
    memory_small_dialogs=1,
    memory_large_dialogs=10,
    pacing_private=60,
    pacing_chats=30,
    pacing_groups=3,
    pacing_group_messages=2,
    load_residents=10,
    load_limited_residents=5,
    keyword_texts=500,
    keyword_rounds=1,
    durability_commits=10,
    durability_rounds=1,
    durability_cases=3,
)


@dataclass(frozen=True)
class Row:
    figure: str
    value: str
    target: str
    passed: bool | None  # None: no target, reported only

    @property
    def verdict(self) -> str:
        return "—" if self.passed is None else "pass" if self.passed else "FAIL"


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- PostgreSQL scratch databases -------------------------------------------------------------


async def postgres_available(admin_url: str) -> bool:
    try:
        connection = await asyncpg.connect(_dsn(admin_url), timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await connection.close()
    return True


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.asynccontextmanager
async def scratch_postgres(admin_url: str, label: str) -> AsyncIterator[str]:
    """A database created for one measure and dropped after it."""
    name = f"whistle_bench_{label}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    connection = await asyncpg.connect(_dsn(admin_url))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    url = make_url(admin_url).set(drivername="postgresql+asyncpg", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        connection = await asyncpg.connect(_dsn(admin_url))
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()


# -- the measures ----------------------------------------------------------------------------


def run_keywords(sizes: Sizes) -> dict[str, Any]:
    library = load_library(resolve_keywords_path(None))
    texts = keywords.generate_texts(library, sizes.keyword_texts, seed=7)
    timings, flagged = keywords.run(library, texts, sizes.keyword_rounds)
    best = min(timings)
    return {
        "texts": len(texts),
        "keywords": len(library),
        "categories": len(library.categories),
        "rounds_seconds": [round(t, 4) for t in timings],
        "texts_per_second": round(len(texts) / best),
        "flagged": sum(flagged.values()),
    }


async def run_intake(sizes: Sizes, postgres: str | None, results: Path) -> dict[str, Any]:
    async def measure(url: str) -> dict[str, Any]:
        figures = await intake.measure(
            url,
            cases=sizes.intake_cases,
            profile_cases=sizes.intake_profiled,
            warm_cases=sizes.intake_warm,
            on_progress=_say,
        )
        return figures.to_dict()

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="whistle-bench-") as scratch:
        out["sqlite"] = await measure(f"sqlite+aiosqlite:///{Path(scratch) / 'intake.db'}")
    if postgres is not None:
        async with scratch_postgres(postgres, "intake") as url:
            out["postgresql"] = await measure(url)
    for database, figures_dict in out.items():
        path = results / f"intake-profile-{database}.txt"
        path.write_text(intake.format_profile(figures_dict["profile"]), encoding="utf-8")
    return out


async def run_scan_and_memory(
    sizes: Sizes, postgres: str | None, selected: set[str], workdir: Path
) -> dict[str, Any]:
    """The scan's databases are the memory measure's too (copied, with dialogs added)."""
    district_path = intake.district_file(workdir)
    district = load_district(district_path)

    async def scan(small: str, large: str, runs: int) -> ladder.ScanFigures:
        return await ladder.measure(
            small,
            large,
            district,
            workdir,
            due=sizes.scan_due,
            large=sizes.scan_large,
            runs=runs,
            on_progress=_say,
        )

    out: dict[str, Any] = {}
    small = f"sqlite+aiosqlite:///{workdir / 'scan-small.db'}"
    large = f"sqlite+aiosqlite:///{workdir / 'scan-large.db'}"
    figures = await scan(small, large, runs=sizes.scan_runs if "scan" in selected else 0)
    if "scan" in selected:
        out["scan"] = {"sqlite": figures.to_dict()}
    if "memory" in selected:
        used = await memory.measure(
            small,
            large,
            workdir,
            district_path,
            small_dialogs=sizes.memory_small_dialogs,
            large_dialogs=sizes.memory_large_dialogs,
            on_progress=_say,
        )
        out["memory"] = used.to_dict()
        out["memory"]["small"]["open_cases"] = sizes.scan_due
        out["memory"]["large"]["open_cases"] = sizes.scan_large
    if "scan" in selected and postgres is not None:
        async with (
            scratch_postgres(postgres, "small") as small_pg,
            scratch_postgres(postgres, "large") as large_pg,
        ):
            figures = await scan(small_pg, large_pg, runs=sizes.scan_runs)
        out["scan"]["postgresql"] = figures.to_dict()
    return out


async def run_pacing(sizes: Sizes) -> dict[str, Any]:
    args = argparse.Namespace(
        private=sizes.pacing_private,
        chats=sizes.pacing_chats,
        groups=sizes.pacing_groups,
        group_messages=sizes.pacing_group_messages,
        database=None,
    )
    figures = await pacing.bench(args)
    figures["database"] = "sqlite (scratch file)"
    _say(
        f"pacing: fan-out {figures['fan_out']['ratio_to_limit']:.3f} of the limit, "
        f"mixed {figures['mixed']['ratio_to_ideal']:.3f} of ideal"
    )
    return figures


async def run_load(sizes: Sizes) -> dict[str, Any]:
    """The burst with generous sending limits (the pipeline), then a smaller one with
    Telegram's own limits enforced (what those limits make of it)."""
    results: dict[str, Any] = {}
    for key, residents, telegram_limits in (
        ("generous", sizes.load_residents, False),
        ("telegram", sizes.load_limited_residents, True),
    ):
        with tempfile.TemporaryDirectory(prefix="whistle-bench-") as scratch:
            workdir = Path(scratch)
            figures = await load.measure(
                f"sqlite+aiosqlite:///{workdir / 'load.db'}",
                workdir,
                intake.district_file(workdir),
                residents=residents,
                telegram_limits=telegram_limits,
                on_progress=_say,
            )
        results[key] = figures.to_dict()
    return results


async def run_durability(sizes: Sizes) -> dict[str, Any]:
    figures = await durability.measure(
        commits=sizes.durability_commits,
        rounds=sizes.durability_rounds,
        cases=sizes.durability_cases,
        warm_cases=min(10, sizes.durability_cases),
        batch=max(1, sizes.durability_cases // 10),
        on_progress=_say,
    )
    return figures.to_dict()


async def run(
    selected: set[str], sizes: Sizes, postgres: str | None, results: Path
) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    seconds: dict[str, float] = {}

    async def timed(name: str, work: Callable[[], Any]) -> None:
        started = time.perf_counter()
        result = work()
        if asyncio.iscoroutine(result):
            result = await result
        seconds[name] = round(time.perf_counter() - started, 1)
        figures.update(result if name == "scan+memory" else {name: result})

    if "keywords" in selected:
        await timed("keywords", lambda: run_keywords(sizes))
    if "intake" in selected:
        await timed("intake", lambda: run_intake(sizes, postgres, results))
    if selected & {"scan", "memory"}:
        with tempfile.TemporaryDirectory(prefix="whistle-bench-") as scratch:
            workdir = Path(scratch)
            await timed(
                "scan+memory", lambda: run_scan_and_memory(sizes, postgres, selected, workdir)
            )
    if "pacing" in selected:
        await timed("pacing", lambda: run_pacing(sizes))
    if "load" in selected:
        await timed("load", lambda: run_load(sizes))
    if "durability" in selected:
        await timed("durability", lambda: run_durability(sizes))
    figures["seconds"] = seconds
    return figures


# -- the table --------------------------------------------------------------------------------


def rows(figures: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    for database, label in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        found = figures.get("intake", {}).get(database)
        if found:
            out.append(
                Row(
                    f"intake, {label}: cases/s ÷ no-op dispatch",
                    f"{found['ratio']:.4f} ({found['cases_per_second']:.1f} ÷ "
                    f"{found['baseline_cases_per_second']:,.0f} cases/s)",
                    "≥ 0.03" if database == "sqlite" else "—",
                    found["ratio"] >= 0.03 if database == "sqlite" else None,
                )
            )
    for database, label in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        found = figures.get("scan", {}).get(database)
        if found:
            out.append(
                Row(
                    f"scan, {label}: {found['large_open_cases']:,} ÷ "
                    f"{found['small_open_cases']:,} open cases",
                    f"{found['ratio']:.3f} ({found['large_median_seconds']:.2f} s ÷ "
                    f"{found['small_median_seconds']:.2f} s, {found['due_rungs']:,} due)",
                    "≤ 1.5",
                    found["ratio"] <= 1.5,
                )
            )
    found = figures.get("pacing")
    if found:
        limit = found["limits"]["global_per_second"]
        one, two = found["fan_out"], found["mixed"]
        out.append(
            Row(
                "pacing, fan-out: delivered/s ÷ limit",
                f"{one['ratio_to_limit']:.3f} ({one['delivered_per_second']:.1f} ÷ "
                f"{limit:g}/s; {one['responses_429']} × 429)",
                "≥ 0.95, 0 × 429",
                one["ratio_to_limit"] >= 0.95 and one["responses_429"] == 0,
            )
        )
        out.append(
            Row(
                "pacing, mixed: ideal time ÷ time",
                f"{two['ratio_to_ideal']:.3f} ({two['ideal_seconds']:.1f} s ÷ "
                f"{two['seconds']:.1f} s; {two['responses_429']} × 429)",
                "≥ 0.95, 0 × 429",
                two["ratio_to_ideal"] >= 0.95 and two["responses_429"] == 0,
            )
        )
    found = figures.get("memory")
    if found:
        small, large = found["small"], found["large"]
        out.append(
            Row(
                f"memory: peak RSS, {large['open_cases']:,} cases + {large['dialogs']:,} "
                f"dialogs ÷ {small['open_cases']:,} + {small['dialogs']:,}",
                f"{found['ratio']:.3f} ({large['peak_kb'] / 1024:.0f} ÷ "
                f"{small['peak_kb'] / 1024:.0f} MiB)",
                "≤ 1.2",
                found["ratio"] <= 1.2,
            )
        )
    found = figures.get("load", {}).get("generous")
    if found:
        out.append(
            Row(
                f"load: {found['residents']:,} residents at once, persisted",
                f"{found['cases']:,} cases, {found['receipts']:,} receipts "
                f"in {found['seconds']:.0f} s ({found['updates_per_second']:.1f} updates/s)",
                "all",
                found["all_persisted"],
            )
        )
        out.append(
            Row(
                "load: last message → case number, generous limits",
                f"p50 {found['p50_seconds']:.1f} s, p95 {found['p95_seconds']:.1f} s, "
                f"p99 {found['p99_seconds']:.1f} s",
                "p95 ≤ 10 s",
                found["p95_seconds"] <= 10,
            )
        )
        out.append(
            Row(
                "load: button press → its answer, during that burst",
                f"p50 {found['answer_p50_seconds']:.2f} s, "
                f"p99 {found['answer_p99_seconds']:.2f} s ({found['answers']:,} presses)",
                "p99 ≤ 1 s",
                found["answer_p99_seconds"] <= 1,
            )
        )
        calls = ", ".join(f"{m} {n:g}" for m, n in found["calls_per_case"].items())
        out.append(
            Row(
                "load: Bot API calls per photo report",
                f"{found['api_calls_per_case']:g} ({calls})",
                "—",
                None,
            )
        )
    found = figures.get("load", {}).get("telegram")
    if found:
        out.append(
            Row(
                f"load, Telegram's limits: {found['residents']:,} residents, p95 ÷ floor",
                f"{found['p95_over_floor']:.2f} (p95 {found['p95_seconds']:.1f} s ÷ "
                f"{found['floor_seconds']:.1f} s for {found['floor_seconds'] * 30:,.0f} "
                f"messages at 30/s; {found['too_many_requests']} × 429)",
                "—",
                None,
            )
        )
        out.append(
            Row(
                "load, Telegram's limits: case readable in its group (card or digest line)",
                f"p50 {found['group_visible_p50_seconds']:.1f} s, "
                f"p95 {found['group_visible_p95_seconds']:.1f} s, "
                f"max {found['group_visible_max_seconds']:.1f} s; "
                f"{found['group_visible_within_60s']:.0%} within 60 s "
                f"({found['group_calls']} calls to the group)",
                "every case ≤ 60 s",
                found["group_visible_within_60s"] >= 1,
            )
        )
        out.append(
            Row(
                "load, Telegram's limits: button press → its answer",
                f"p50 {found['answer_p50_seconds']:.2f} s, "
                f"p99 {found['answer_p99_seconds']:.2f} s",
                "p99 ≤ 1 s",
                found["answer_p99_seconds"] <= 1,
            )
        )
    found = figures.get("durability")
    if found:
        ms, rate = found["commit_ms"], found["intake_cases_per_second"]
        out.append(
            Row(
                "durability, SQLite: ms per commit, synchronous FULL ÷ NORMAL",
                f"{found['commit_ratio_full_to_normal']:.2f} ({ms['full']:.2f} ÷ "
                f"{ms['normal']:.2f} ms; {found['filesystem']})",
                "—",
                None,
            )
        )
        out.append(
            Row(
                "durability, SQLite: intake cases/s, FULL ÷ NORMAL",
                f"{found['intake_ratio_full_to_normal']:.3f} ({rate['full']:.1f} ÷ "
                f"{rate['normal']:.1f} cases/s)",
                "—",
                None,
            )
        )
    found = figures.get("keywords")
    if found:
        out.append(
            Row(
                f"keywords: {found['texts']:,} texts, {found['keywords']:,} keywords",
                f"{found['texts_per_second']:,} texts/s",
                "—",
                None,
            )
        )
    return out


def table(found: list[Row]) -> str:
    header = Row("figure", "value", "target", None)
    widths = [
        max(len(r.figure) for r in [header, *found]),
        max(len(r.value) for r in [header, *found]),
        max(len(r.target) for r in [header, *found]),
    ]
    lines = []
    for row in [header, *found]:
        verdict = "result" if row is header else row.verdict
        lines.append(
            f"{row.figure:<{widths[0]}}  {row.value:<{widths[1]}}  "
            f"{row.target:<{widths[2]}}  {verdict}"
        )
        if row is header:
            lines.append("  ".join("-" * w for w in [*widths, 6]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument(
        "--only", help=f"comma-separated measures (default all: {','.join(MEASURES)})"
    )
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, metavar="ADMIN_URL")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where to write JSON")
    args = parser.parse_args(argv)
    selected = set(MEASURES if not args.only else args.only.split(","))
    unknown = selected - set(MEASURES)
    if unknown:
        parser.error(f"unknown measures: {', '.join(sorted(unknown))}")
    sizes = QUICK if args.quick else FULL
    # The services' own warnings (dead card edits in the prepared data, unreachable groups)
    # are not what this run reports.
    logging.basicConfig(level=logging.ERROR)

    started = time.perf_counter()
    args.results.mkdir(parents=True, exist_ok=True)
    postgres = None
    if not args.no_postgres and asyncio.run(postgres_available(args.postgres)):
        postgres = args.postgres
    elif not args.no_postgres:
        _say(f"PostgreSQL does not answer at {args.postgres}: SQLite only")
    figures = asyncio.run(run(selected, sizes, postgres, args.results))
    total = time.perf_counter() - started
    now = datetime.now(UTC)
    found = rows(figures)
    result = {
        "benchmark": "all",
        "at": now.isoformat(timespec="seconds"),
        "quick": args.quick,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "postgresql": postgres is not None,
        "total_seconds": round(total, 1),
        "table": [
            {"figure": r.figure, "value": r.value, "target": r.target, "result": r.verdict}
            for r in found
        ],
        **figures,
    }
    text = json.dumps(result, ensure_ascii=False, indent=2) + "\n"
    (args.results / "latest.json").write_text(text, encoding="utf-8")
    dated = args.results / f"bench-{now:%Y%m%dT%H%M%SZ}.json"
    dated.write_text(text, encoding="utf-8")
    print(table(found))
    for database in ("sqlite", "postgresql"):
        profile = figures.get("intake", {}).get(database, {}).get("profile")
        if profile:
            print(f"\nintake profile ({database}), own time by layer:")
            print(intake.format_layers(figures["intake"][database]["layers"]))
    print(f"\n{total:.0f} s on {os.cpu_count()} CPUs; results: {dated} (and latest.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
