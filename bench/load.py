"""Load: many residents filing photo reports at once against the real service.

The service is ``python -m bot`` in its own process, long-polling the project's Bot API test
server (real HTTP on 127.0.0.1) with generous sending limits (this measures the pipeline, not
pacing; ``bench.pacing`` does that). All residents start together and each goes through the
real dialog as a Telegram client would: a photo with a caption, the category button, a typed
address, Confirm, then the receipt with the case number. Each step waits for the bot's
question, so the load is what 1,000 people tapping through the dialog at the same moment make.

Measured: whether every report became exactly one case, and the time from each resident's
last message (the Confirm press reaching the server) to the server receiving the bot's reply
that carries the case number (p50, p95, p99, max), plus the whole run's time; the time from
each button press (the category, Confirm) to its callback answer (p50, p99); and the Bot API
calls per case, by method.

With ``telegram_limits`` the service keeps its default sending limits (Telegram's: 30 a
second overall, 20 a minute in a group, about one a second in a chat after a burst of 3) and
the test server enforces the same: the receipts' p95 is then set beside the floor those limits
impose on the run, the messages it needed ÷ 30 a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlmodel import col

from bot.db import create_engine
from bot.pacing import Limits
from bot.testserver import BotAPIServer, BotMessage
from models import Case

ROOT = Path(__file__).resolve().parent.parent
BOT_ID = 424242
FIRST_RESIDENT = 8_100_000
CATEGORY_LABEL = "飞线充电"
CONFIRM_LABEL = "确认提交"
# The group of 城管执法局, where 飞线充电 reports go (config.example.toml).
DEPARTMENT_GROUP = -1001000000021
CASE_NUMBER = re.compile(r"HB-\d+")
WATCH_EVERY = 0.05  # seconds between looks at the waiting residents' chats
TELEGRAM_PER_SECOND = 30.0


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
    telegram_limits: bool = False
    answer_latencies: list[float] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    too_many_requests: int = 0
    # From Confirm to the case's number readable in its department's group (its card, or
    # its line in the group's burst digest), and the calls that group got.
    group_latencies: list[float] = field(default_factory=list)
    group_calls: int = 0

    def percentile(self, p: int, values: list[float] | None = None) -> float:
        values = self.latencies if values is None else values
        if not values:
            return 0.0
        if len(values) == 1:
            return values[0]
        return statistics.quantiles(values, n=100, method="inclusive")[p - 1]

    @property
    def paced_messages(self) -> int:
        """The calls Telegram's overall limit counts (every send and edit)."""
        return sum(n for method, n in self.calls.items() if method.startswith(("send", "edit")))

    @property
    def floor_seconds(self) -> float:
        """The shortest time 30 messages a second allow for the messages this run needed."""
        return self.paced_messages / TELEGRAM_PER_SECOND

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
            "telegram_limits": self.telegram_limits,
            "answer_p50_seconds": round(self.percentile(50, self.answer_latencies), 3),
            "answer_p99_seconds": round(self.percentile(99, self.answer_latencies), 3),
            "answers": len(self.answer_latencies),
            "calls_per_case": {
                method: round(n / self.cases, 2) for method, n in sorted(self.calls.items())
            }
            if self.cases
            else {},
            "api_calls_per_case": round(sum(self.calls.values()) / self.cases, 2)
            if self.cases
            else 0,
            "floor_seconds": round(self.floor_seconds, 2),
            "p95_over_floor": round(self.percentile(95) / self.floor_seconds, 3)
            if self.floor_seconds
            else 0,
            "too_many_requests": self.too_many_requests,
            "group_visible_p50_seconds": round(self.percentile(50, self.group_latencies), 3),
            "group_visible_p95_seconds": round(self.percentile(95, self.group_latencies), 3),
            "group_visible_max_seconds": round(max(self.group_latencies, default=0.0), 3),
            "group_visible_within_60s": round(
                sum(1 for t in self.group_latencies if t <= 60) / self.cases, 3
            )
            if self.cases
            else 0,
            "group_calls": self.group_calls,
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
        self.pressed: dict[str, float] = {}  # callback query id → when it was pressed

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

    def _press(self, message: BotMessage, label: str) -> None:
        pressed = time.monotonic()
        query = self.server.press_button(
            self.user_id, message.message_id, str(_button(message, label))
        )
        self.pressed[str(query["id"])] = pressed

    async def file_report(self) -> None:
        uid, server = self.user_id, self.server
        server.send_photo(uid, f"load {uid}".encode(), caption=f"楼道里有人飞线充电（L{uid}）")
        question = await self._next("category", lambda m: _button(m, CATEGORY_LABEL) is not None)
        self._press(question, CATEGORY_LABEL)
        await self._next("location", lambda m: (m.text or "").startswith("📍"))
        server.send_text(uid, f"康乐小区{uid % 1000}栋{uid}号门口")
        summary = await self._next("summary", lambda m: _button(m, CONFIRM_LABEL) is not None)
        self.confirmed_at = time.monotonic()
        self._press(summary, CONFIRM_LABEL)
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


def _case_numbers(server: BotAPIServer, residents: set[int]) -> dict[int, str]:
    """Each resident's case number, read from their receipt."""
    numbers: dict[int, str] = {}
    for record in server.requests:
        chat = int(record.params.get("chat_id", 0) or 0)
        if record.method == "sendMessage" and record.ok and chat in residents:
            found = CASE_NUMBER.search(str(record.params.get("text")))
            if found and chat not in numbers:
                numbers[chat] = found.group(0)
    return numbers


def _first_in_group(server: BotAPIServer, group: int) -> tuple[dict[str, float], int]:
    """When each case number first became readable in the group (a card, or a line of a
    digest sent or edited in), by the server's clock; and how many calls the group got."""
    seen: dict[str, float] = {}
    calls = 0
    for record in server.requests:
        if not record.ok or str(record.params.get("chat_id")) != str(group):
            continue
        if not record.method.startswith(("send", "edit")):
            continue
        calls += 1
        shown = str(record.params.get("text") or record.params.get("caption") or "")
        for number in CASE_NUMBER.findall(shown):
            seen.setdefault(number, record.time)
    return seen, calls


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
    telegram_limits: bool = False,
    timeout: float = 600.0,  # noqa: ASYNC109
    on_progress: Callable[[str], None] | None = None,
) -> LoadFigures:
    from bench.crash import build_world, service_env

    progress = on_progress or (lambda _text: None)
    kind = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    figures = LoadFigures(database=kind, residents=residents, telegram_limits=telegram_limits)
    async with BotAPIServer(tokens=["424242:TEST-whistle-token"]) as server:
        build_world(server, 0)
        ids = [FIRST_RESIDENT + i for i in range(residents)]
        for user_id in ids:
            server.add_user(user_id, first_name=f"居民{user_id}", language_code="zh-hans")
        env = service_env(server, database_url)
        env.update(WHISTLE_CONFIG=str(district_path), WEB_ENABLED="false", LOG_LEVEL="WARNING")
        if telegram_limits:
            limits = Limits()
            env.update(
                SEND_GLOBAL_PER_SECOND=str(limits.global_per_second),
                SEND_GROUP_PER_MINUTE=str(limits.group_per_minute),
                SEND_PRIVATE_PER_SECOND=str(limits.private_per_second),
                SEND_BURST=str(limits.burst),
            )
            server.enforce_limits(
                per_chat_per_second=limits.private_per_second,
                per_group_per_minute=limits.group_per_minute,
                global_per_second=limits.global_per_second,
                burst=limits.burst,
            )
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
            first_call = len(server.requests)
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
            # Whatever is still queued for the last reports goes out before calls are counted
            # (at Telegram's limits a group may wait for its minute: until every case is
            # readable there, or four minutes).
            await _quiet(server)
            if telegram_limits:
                await _until_shown(server, set(ids), limit=240.0)
                await _quiet(server)
            calls = [r for r in server.requests[first_call:] if r.method != "getUpdates"]
            figures.calls = dict(Counter(r.method for r in calls if r.ok))
            figures.too_many_requests = sum(1 for r in calls if r.status == 429)
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
        numbers = _case_numbers(server, set(ids))
        shown, figures.group_calls = _first_in_group(server, DEPARTMENT_GROUP)
        figures.group_latencies = sorted(
            shown[numbers[p.user_id]] - p.confirmed_at
            for p in people
            if p.confirmed_at is not None and p.user_id in numbers and numbers[p.user_id] in shown
        )
        figures.stuck = [f"{p.user_id}: {p.step}" for p in people if p.step != "done"]
        figures.receipts = len(receipts)
        figures.latencies = sorted(
            receipts[p.user_id] - p.confirmed_at
            for p in people
            if p.confirmed_at is not None and p.user_id in receipts
        )
        answered = {a.callback_query_id: a.time for a in server.callback_answers}
        figures.answer_latencies = sorted(
            answered[query] - pressed
            for person in people
            for query, pressed in person.pressed.items()
            if query in answered
        )
    figures.cases = await _count_cases(database_url, ids)
    progress(
        f"load ({kind}): {figures.cases}/{residents} cases in {figures.seconds:.1f} s, "
        f"p50 {figures.percentile(50):.2f} s, p95 {figures.percentile(95):.2f} s, "
        f"p99 {figures.percentile(99):.2f} s; answers p50 "
        f"{figures.percentile(50, figures.answer_latencies):.2f} s, p99 "
        f"{figures.percentile(99, figures.answer_latencies):.2f} s; in the group p95 "
        f"{figures.percentile(95, figures.group_latencies):.1f} s, max "
        f"{max(figures.group_latencies, default=0.0):.1f} s"
    )
    return figures


async def _until_shown(server: BotAPIServer, residents: set[int], *, limit: float) -> None:
    """Until every resident's case number is readable in the department's group."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while loop.time() < deadline:
        numbers = set(_case_numbers(server, residents).values())
        shown, _calls = _first_in_group(server, DEPARTMENT_GROUP)
        if numbers <= set(shown):
            return
        await asyncio.sleep(0.5)


async def _quiet(server: BotAPIServer, *, idle: float = 2.0, limit: float = 120.0) -> None:
    """Until the service has made no call but getUpdates for ``idle`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while loop.time() < deadline:
        calls = [r for r in server.requests if r.method != "getUpdates"]
        last = calls[-1].time if calls else 0.0
        if time.monotonic() - last >= idle:
            return
        await asyncio.sleep(0.25)
