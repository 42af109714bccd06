"""Load: many residents filing photo reports at once against the real service.

The service is ``python -m bot`` in its own process, long-polling the project's Bot API test
server (real HTTP on 127.0.0.1) with generous sending limits (this measures the pipeline, not
pacing; ``bench.pacing`` does that). All residents start together and each goes through the
real dialog as a Telegram client would: a photo with a caption, the category button, a typed
address, Confirm, then the receipt with the case number. Each step waits for the bot's
question, so the load is what 1,000 people tapping through the dialog at the same moment make.

Measured: whether every report became exactly one case, and the time from each resident's
last message (the Confirm press reaching the server) to the server receiving the bot's reply
that carries the case number (p50, p95, p99, max), plus the whole run's time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlmodel import col

from bot.db import create_engine
from bot.testserver import BotAPIServer, BotMessage
from models import Case

ROOT = Path(__file__).resolve().parent.parent
BOT_ID = 424242
FIRST_RESIDENT = 8_100_000
CATEGORY_LABEL = "飞线充电"
CONFIRM_LABEL = "确认提交"
WATCH_EVERY = 0.05  # seconds between looks at the waiting residents' chats


@dataclass
class LoadFigures:
    database: str
    residents: int
    cases: int = 0
    receipts: int = 0
    stuck: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    start_up_seconds: float = 0.0
    updates: int = 0

    def percentile(self, p: int) -> float:
        if not self.latencies:
            return 0.0
        if len(self.latencies) == 1:
            return self.latencies[0]
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[p - 1]

    @property
    def all_persisted(self) -> bool:
        return self.cases == self.residents and self.receipts == self.residents

    def to_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "residents": self.residents,
            "cases": self.cases,
            "receipts": self.receipts,
            "all_persisted": self.all_persisted,
            "stuck": self.stuck[:10],
            "p50_seconds": round(self.percentile(50), 3),
            "p95_seconds": round(self.percentile(95), 3),
            "p99_seconds": round(self.percentile(99), 3),
            "max_seconds": round(max(self.latencies, default=0.0), 3),
            "seconds": round(self.seconds, 2),
            "updates": self.updates,
            "updates_per_second": round(self.updates / self.seconds, 1) if self.seconds else 0,
            "start_up_seconds": round(self.start_up_seconds, 2),
        }


class Watcher:
    """Looks at the chats of waiting residents now and then, and wakes those whose awaited
    message has come: one task instead of a thousand woken by every change on the server."""

    def __init__(self, server: BotAPIServer) -> None:
        self.server = server
        self.waiting: dict[int, tuple[Callable[[list[BotMessage]], Any], asyncio.Future[Any]]] = {}

    async def wait(self, user_id: int, found: Callable[[list[BotMessage]], Any]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiting[user_id] = (found, future)
        try:
            return await future
        finally:
            self.waiting.pop(user_id, None)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(WATCH_EVERY)
            for user_id, (found, future) in list(self.waiting.items()):
                if future.done():
                    continue
                result = found(self.server.messages(user_id, bot=BOT_ID))
                if result is not None:
                    future.set_result(result)


def _button(message: BotMessage, label: str) -> str | None:
    for button in message.buttons():
        if label in str(button.get("text", "")) and "callback_data" in button:
            return str(button["callback_data"])
    return None


class Resident:
    def __init__(self, server: BotAPIServer, watcher: Watcher, user_id: int) -> None:
        self.server = server
        self.watcher = watcher
        self.user_id = user_id
        self.seen = 0
        self.confirmed_at: float | None = None
        self.step = "photo"

    def _after(self, wanted: Callable[[BotMessage], bool]) -> Callable[[list[BotMessage]], Any]:
        def found(messages: list[BotMessage]) -> tuple[int, BotMessage] | None:
            for index in range(len(messages) - 1, self.seen - 1, -1):
                if wanted(messages[index]):
                    return index + 1, messages[index]
            return None

        return found

    async def _next(self, step: str, wanted: Callable[[BotMessage], bool]) -> BotMessage:
        self.step = step
        position, message = await self.watcher.wait(self.user_id, self._after(wanted))
        self.seen = position
        return message  # type: ignore[no-any-return]

    async def file_report(self) -> None:
        uid, server = self.user_id, self.server
        server.send_photo(uid, f"load {uid}".encode(), caption=f"楼道里有人飞线充电（L{uid}）")
        question = await self._next("category", lambda m: _button(m, CATEGORY_LABEL) is not None)
        server.press_button(uid, question.message_id, str(_button(question, CATEGORY_LABEL)))
        await self._next("location", lambda m: (m.text or "").startswith("📍"))
        server.send_text(uid, f"康乐小区{uid % 1000}栋{uid}号门口")
        summary = await self._next("summary", lambda m: _button(m, CONFIRM_LABEL) is not None)
        self.confirmed_at = time.monotonic()
        server.press_button(uid, summary.message_id, str(_button(summary, CONFIRM_LABEL)))
        await self._next("receipt", lambda m: "HB-" in (m.text or ""))
        self.step = "done"


def _receipt_times(server: BotAPIServer, residents: set[int]) -> dict[int, float]:
    """When the server received each resident's first message with a case number."""
    times: dict[int, float] = {}
    for record in server.requests:
        if record.method != "sendMessage" or not record.ok:
            continue
        chat = int(record.params.get("chat_id", 0) or 0)
        if chat in residents and chat not in times and "HB-" in str(record.params.get("text")):
            times[chat] = record.time
    return times


async def _count_cases(database_url: str, residents: list[int]) -> int:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            found = await connection.scalar(
                select(func.count())
                .select_from(Case)
                .where(col(Case.resident_id).between(residents[0], residents[-1]))
            )
    finally:
        await engine.dispose()
    return int(found or 0)


async def measure(
    database_url: str,
    workdir: Path,
    district_path: Path,
    *,
    residents: int = 1_000,
    timeout: float = 600.0,  # noqa: ASYNC109
    on_progress: Callable[[str], None] | None = None,
) -> LoadFigures:
    from bench.crash import build_world, service_env

    progress = on_progress or (lambda _text: None)
    kind = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    figures = LoadFigures(database=kind, residents=residents)
    async with BotAPIServer(tokens=["424242:TEST-whistle-token"]) as server:
        build_world(server, 0)
        ids = [FIRST_RESIDENT + i for i in range(residents)]
        for user_id in ids:
            server.add_user(user_id, first_name=f"居民{user_id}", language_code="zh-hans")
        env = service_env(server, database_url)
        env.update(WHISTLE_CONFIG=str(district_path), WEB_ENABLED="false", LOG_LEVEL="WARNING")
        log = workdir / "load-service.log"
        spawned = time.monotonic()
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", env=env, cwd=ROOT, stdout=out, stderr=out
            )
        watcher_task: asyncio.Task[None] | None = None
        people: list[Resident] = []
        try:
            await server.wait_for(
                lambda s: any(r.method.lower() == "deletewebhook" and r.ok for r in s.requests),
                timeout=120,
                description="the service's start-up",
            )
            figures.start_up_seconds = time.monotonic() - spawned
            watcher = Watcher(server)
            watcher_task = asyncio.create_task(watcher.run())
            people = [Resident(server, watcher, user_id) for user_id in ids]
            started = time.monotonic()
            filing = [asyncio.create_task(person.file_report()) for person in people]
            done, pending = await asyncio.wait(filing, timeout=timeout)
            figures.seconds = time.monotonic() - started
            for task in pending:
                task.cancel()
            for task in done:
                if task.exception() is not None:
                    raise RuntimeError("a resident failed") from task.exception()
            # A photo, a press, a text and a press each.
            figures.updates = 4 * sum(1 for p in people if p.step == "done")
        finally:
            if watcher_task is not None:
                watcher_task.cancel()
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), timeout=60)
                except TimeoutError:
                    process.kill()
                    await process.wait()
        receipts = _receipt_times(server, set(ids))
        figures.stuck = [f"{p.user_id}: {p.step}" for p in people if p.step != "done"]
        figures.receipts = len(receipts)
        figures.latencies = sorted(
            receipts[p.user_id] - p.confirmed_at
            for p in people
            if p.confirmed_at is not None and p.user_id in receipts
        )
    figures.cases = await _count_cases(database_url, ids)
    progress(
        f"load ({kind}): {figures.cases}/{residents} cases in {figures.seconds:.1f} s, "
        f"p50 {figures.percentile(50):.2f} s, p95 {figures.percentile(95):.2f} s, "
        f"p99 {figures.percentile(99):.2f} s"
    )
    return figures
