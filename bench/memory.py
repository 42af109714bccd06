"""Memory: the service's resident set size with 100,000 open cases and 1,000 dialogs in
progress, next to 1,000 cases and 10 dialogs.

The databases are copies of the escalation scan's (every case dispatched and waiting for
acknowledgement, 1,000 rungs due in both) with half-finished photo reports added to the
dialog state (``dialog_states``: photo and description given, the address asked for). The
service runs in a child process (``python -m bench.memory --child``): the same ``Whistle``
application ``python -m bot`` runs, polling the Bot API test server, except that every
scheduled job is made due at once instead of in 30 seconds to hours, so the ladder scan, the
help requests, the unrated cases, the reports, the retention and the pruning all run over the
data. Once every job has run and the sender has had a few seconds, the child reports its
resident set size (``VmRSS``) and its peak (``VmHWM``) from ``/proc/self/status``. The figure
is the peak with the large database ÷ the peak with the small one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from bot.db import create_engine
from bot.services.cases import Draft
from bot.testserver import BotAPIServer
from models import CaseKind, DialogState, User

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "424242:TEST-whistle-token"
BOT_ID = 424242
FIRST_DIALOG_USER = 6_000_000
SETTLE_SECONDS = 3.0


@dataclass
class MemoryFigures:
    database: str
    small: dict[str, Any] = field(default_factory=dict)
    large: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        small = self.small.get("peak_kb", 0)
        return self.large.get("peak_kb", 0) / small if small else 0.0

    @property
    def current_ratio(self) -> float:
        small = self.small.get("rss_kb", 0)
        return self.large.get("rss_kb", 0) / small if small else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "small": self.small,
            "large": self.large,
            "ratio": round(self.ratio, 4),
            "current_rss_ratio": round(self.current_ratio, 4),
        }


def status_kb() -> dict[str, int]:
    """VmRSS and VmHWM of this process, in kB."""
    found: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0])
    return found


async def add_dialogs(database_url: str, count: int, now: datetime) -> None:
    """``count`` residents half-way through a photo report (the address asked for)."""
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            users = range(FIRST_DIALOG_USER, FIRST_DIALOG_USER + count)
            await connection.execute(
                insert(User),
                [
                    {
                        "id": user,
                        "first_name": f"居民{user}",
                        "telegram_language": "zh-hans",
                        "created_at": now - timedelta(minutes=5),
                        "last_seen_at": now - timedelta(minutes=1),
                    }
                    for user in users
                ],
            )
            rows = []
            for user in users:
                draft = Draft(
                    kind=CaseKind.REPORT,
                    photos=[f"bench-dialog-{user}"],
                    description=f"楼道里有人飞线充电，晚上很危险（{user}）",
                    category="flying_wire",
                )
                rows.append(
                    {
                        "bot_id": BOT_ID,
                        "chat_id": user,
                        "user_id": user,
                        "thread_id": "",
                        "business_connection_id": "",
                        "destiny": "default",
                        "state": "Filing:location",
                        "data": {"token": f"{user:08x}"[-8:], "draft": draft.to_dict()},
                        "updated_at": now - timedelta(minutes=1),
                    }
                )
            await connection.execute(insert(DialogState), rows)
    finally:
        await engine.dispose()


async def run_service(
    server: BotAPIServer, database_url: str, workdir: Path, env: dict[str, str], label: str
) -> dict[str, Any]:
    """Start the child, wait for its report, stop it."""
    log = workdir / f"memory-{label}.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.memory",
            "--child",
            env={**env, "DATABASE_URL": database_url},
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=out,
        )
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), timeout=180)
            code = await asyncio.wait_for(process.wait(), timeout=60)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    if not line or code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise RuntimeError(f"the service ({label}) exited with {code}:\n{tail}")
    report: dict[str, Any] = json.loads(line)
    return report


async def measure(
    small_url: str,
    large_url: str,
    workdir: Path,
    district_path: Path,
    *,
    small_dialogs: int = 10,
    large_dialogs: int = 1_000,
    on_progress: Callable[[str], None] | None = None,
) -> MemoryFigures:
    """Add the dialogs to both databases (copies of the scan's) and measure each."""
    from bench.crash import build_world, service_env

    progress = on_progress or (lambda _text: None)
    kind = "postgresql" if small_url.startswith("postgresql") else "sqlite"
    figures = MemoryFigures(database=kind)
    now = datetime.now(UTC)
    async with BotAPIServer(tokens=[TOKEN]) as server:
        build_world(server, 0)
        env = service_env(server, small_url)
        env["WHISTLE_CONFIG"] = str(district_path)
        env["WEB_ENABLED"] = "false"
        env["LOG_LEVEL"] = "WARNING"
        for label, url, dialogs in (
            ("small", small_url, small_dialogs),
            ("large", large_url, large_dialogs),
        ):
            await add_dialogs(url, dialogs, now)
            report = await run_service(server, url, workdir, env, label)
            report["dialogs"] = dialogs
            setattr(figures, label, report)
            progress(
                f"memory ({kind}, {label}): peak {report['peak_kb'] / 1024:.1f} MiB, "
                f"now {report['rss_kb'] / 1024:.1f} MiB"
            )
    return figures


# -- the child: the service itself ------------------------------------------------------------


async def _child() -> dict[str, Any]:
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
    from sqlalchemy import func, select

    from bot.app import Whistle
    from bot.district import load_district, resolve_district_path
    from bot.logs import configure_logging
    from bot.settings import Settings
    from models import Case, DialogState

    settings = Settings()
    configure_logging(settings.log_level)
    district = load_district(resolve_district_path(settings.whistle_config))
    app = Whistle(settings=settings, district=district)
    started = time.monotonic()
    await app.start()
    failed: list[str] = []
    try:
        pending = {job.id for job in app.scheduler.get_jobs()}
        done = asyncio.Event()

        def finished(event: JobExecutionEvent) -> None:
            if event.exception is not None:
                failed.append(event.job_id)
            pending.discard(event.job_id)
            if not pending:
                done.set()

        app.scheduler.add_listener(finished, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
        for job in app.scheduler.get_jobs():
            job.modify(next_run_time=datetime.now(UTC))
        await asyncio.wait_for(done.wait(), timeout=150)
        jobs_seconds = time.monotonic() - started
        await asyncio.sleep(SETTLE_SECONDS)
        async with app.factory() as session:
            cases = await session.scalar(select(func.count()).select_from(Case))
            dialogs = await session.scalar(select(func.count()).select_from(DialogState))
        memory = status_kb()
    finally:
        await app.stop()
    return {
        "rss_kb": memory["VmRSS"],
        "peak_kb": memory["VmHWM"],
        "cases": int(cases or 0),
        "dialogs_in_database": int(dialogs or 0),
        "jobs_seconds": round(jobs_seconds, 2),
        "failed_jobs": failed,
    }


def child_main() -> int:
    report = asyncio.run(_child())
    with contextlib.suppress(BrokenPipeError):
        sys.stdout.write(json.dumps(report) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        os.environ.setdefault("PYTHONUNBUFFERED", "1")
        sys.exit(child_main())
    print("python -m bench.memory is run by python -m bench", file=sys.stderr)
    sys.exit(2)
