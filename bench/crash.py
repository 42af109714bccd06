"""Crash and fault run: the real service is killed with SIGKILL at random moments while residents
file photo reports, optionally with the Bot API failing in every way Telegram can, and what
came out is counted.

    python -m bench.crash [--kills 100] [--seconds N] [--faults] [--residents 6] [--seed S]
                          [--retry-after-max 5] [--postgres ADMIN_URL] [--cold]

Each resident files one report after another through the real dialog (a photo with a caption,
the category button, a typed address, Confirm); each report has its own description and
address, so bundling never joins two of them. The service process is killed 0.3–1.5 s after
its start-up is over (one kill in five instead at 0–1 s from its start, often mid-start-up) and
restarted at once; the Bot API test server keeps the unconfirmed updates, as Telegram does.
After the last kill the service runs undisturbed until every resident's report is through and
the outbox is empty, then stops gracefully. Then it checks:

* every report whose Confirm press reached the server is exactly one case (by its description);
* every case's card reached its department's group (at least once);
* how many messages were sent twice: a message the server holds that no delivered outbox row
  recorded is a duplicate (a send in flight at a kill, or whose answer was lost);
* what the outbox left dead, and why, and that nothing is left pending.

``--faults`` also arms a Bot API fault every 0.2–1 s during the kills: 429 with ``retry_after``
1..``--retry-after-max`` s, 500, 502, a reset connection (the call not performed), a slow answer
(1–5 s) and a lost answer (the call performed, the connection closed before the answer).

By default each restart is forked from a warm parent that has imported the service once
(importing aiogram's types alone takes seconds), so a run spends its time on restarts rather
than imports; every restart is still a new process with its own event loop and connections,
running ``python -m bot``'s ``main``. ``--cold`` starts ``python -m bot`` itself each time.
The database is a fresh SQLite file, or with ``--postgres`` a database created on that server
for the run and dropped after it. The table is printed; the JSON result is written to
bench/results/ (not under version control). ``tests/test_crash.py`` runs the same harness
with 20 kills on SQLite and PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import select
import signal
import statistics
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlalchemy import select as sql_select
from sqlmodel import col

from bench import intake
from bench.results import RESULTS, write_result
from bot.db import create_engine, session_factory
from bot.district import load_district
from bot.testserver import BotAPIServer, BotMessage
from bot.testserver.faults import Fault
from models import Case, OutboxMessage, OutboxStatus

ROOT = Path(__file__).resolve().parent.parent
DISTRICT_FILE = ROOT / "config.example.toml"
TOKEN = "424242:TEST-whistle-token"  # the tests' bot
BOT_ID = 424242
CATEGORY = "flying_wire"
CATEGORY_LABEL = "飞线充电"
DEPARTMENT_CHAT = -1001000000021  # cgzf, where flying-wire reports go
CONFIRM_LABEL = "确认提交"
STAFF = 7599
FIRST_RESIDENT = 7600
KILL_AFTER = (0.3, 1.5)  # seconds from the end of a process's start-up to its kill
START_UP_KILLS = 0.2  # the share of kills at 0-1 s from the process's start, maybe mid-start-up
START_UP_KILL_AFTER = (0.0, 1.0)


# -- the service processes --------------------------------------------------------------------


def serve_forks() -> int:
    """The warm parent (``--fork-server``): imports the service once, then for each line on
    stdin (a log file) forks a child that runs ``python -m bot``'s ``main`` with stdout and
    stderr in that file. Writes ``started PID`` and ``exited PID CODE`` lines to stdout."""
    import bot.__main__ as service
    import bot.app  # noqa: F401 - the slow imports, done once before forking

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pending = b""
    while True:
        readable, _, _ = select.select([0], [], [], 0.02)
        _reap_children()
        if not readable:
            continue
        chunk = os.read(0, 4096)
        if not chunk:  # the harness went away
            return 0
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            pid = os.fork()
            if pid == 0:
                _run_child(service.main, line.decode())
            os.write(1, f"started {pid}\n".encode())


def _reap_children() -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        os.write(1, f"exited {pid} {os.waitstatus_to_exitcode(status)}\n".encode())


def _run_child(main: Callable[[list[str]], int], log: str) -> None:
    code = 70
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        code = main([])
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1  # as python -m bot would
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


class ServiceProcesses:
    """One service process at a time: started (forked warm, or ``python -m bot`` cold),
    killed with SIGKILL, or stopped with SIGTERM. Remembers every exit code."""

    def __init__(self, env: dict[str, str], workdir: Path, *, cold: bool = False) -> None:
        self.env = env
        self.workdir = workdir
        self.cold = cold
        self.exits: dict[int, int] = {}
        self.logs: list[Path] = []
        self.pid: int | None = None
        self._changed = asyncio.Event()
        self._parent: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._started: asyncio.Queue[int] = asyncio.Queue()
        self._waiters: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        if self.cold:
            return
        self._parent = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.crash",
            "--fork-server",
            env=self.env,
            cwd=self.workdir,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._read_parent())

    async def _read_parent(self) -> None:
        assert self._parent is not None and self._parent.stdout is not None
        async for raw in self._parent.stdout:
            words = raw.decode().split()
            if words[:1] == ["started"]:
                self._started.put_nowait(int(words[1]))
            elif words[:1] == ["exited"]:
                self.exits[int(words[1])] = int(words[2])
                self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def start(self) -> int:
        log = self.workdir / f"service-{len(self.logs) + 1:04d}.log"
        self.logs.append(log)
        if self.cold:
            with log.open("ab") as out:
                process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bot", env=self.env, cwd=self.workdir, stdout=out,
                    stderr=out,
                )  # fmt: skip
            waiter = asyncio.create_task(self._wait_cold(process))
            self._waiters.add(waiter)
            waiter.add_done_callback(self._waiters.discard)
            self.pid = process.pid
        else:
            assert self._parent is not None and self._parent.stdin is not None
            self._parent.stdin.write(f"{log}\n".encode())
            await self._parent.stdin.drain()
            self.pid = await asyncio.wait_for(self._started.get(), timeout=30)
        return self.pid

    async def _wait_cold(self, process: asyncio.subprocess.Process) -> None:
        self.exits[process.pid] = await process.wait()
        self._notify()

    def running(self) -> bool:
        return self.pid is not None and self.pid not in self.exits

    async def wait_exit(self, pid: int, timeout: float) -> int:  # noqa: ASYNC109
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while pid not in self.exits:
            changed = self._changed
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"service process {pid} did not exit")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)
        return self.exits[pid]

    async def kill(self) -> None:
        assert self.pid is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        await self.wait_exit(self.pid, 30)

    async def stop(self) -> int:
        """SIGTERM: the graceful stop; returns the exit code."""
        assert self.pid is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        return await self.wait_exit(self.pid, 60)

    async def close(self) -> None:
        if self.running():
            await self.kill()
        if self._parent is not None:
            assert self._parent.stdin is not None
            self._parent.stdin.close()
            try:
                await asyncio.wait_for(self._parent.wait(), timeout=10)
            except TimeoutError:
                self._parent.kill()
                await self._parent.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    def log_events(self) -> Counter[str]:
        """How often each JSON log event occurred over every process."""
        events: Counter[str] = Counter()
        for log in self.logs:
            if not log.exists():
                continue
            for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
                with contextlib.suppress(ValueError, AttributeError):
                    events[str(json.loads(line).get("event"))] += 1
        return events

    def tail(self, pid_index: int = -1, lines: int = 30) -> str:
        if not self.logs:
            return ""
        text = self.logs[pid_index].read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


# -- the residents ----------------------------------------------------------------------------


def _button_data(message: BotMessage, label: str) -> str | None:
    for button in message.buttons():
        if label in str(button.get("text", "")) and "callback_data" in button:
            return str(button["callback_data"])
    return None


def _has_button(label: str) -> Callable[[BotMessage], bool]:
    return lambda message: _button_data(message, label) is not None


class Resident:
    """Files photo reports one after another until told to stop, through the real dialog.

    Waits are for a message of the expected kind (not just the next message), because a
    message sent in flight at a kill may arrive twice."""

    def __init__(self, server: BotAPIServer, user_id: int, *, step_timeout: float) -> None:
        self.server = server
        self.user_id = user_id
        self.step_timeout = step_timeout
        self.seen = 0  # how many of the bot's messages in this chat were looked at
        self.confirmed: list[str] = []  # descriptions whose Confirm press reached the server
        self.receipts = 0
        self.stuck: str | None = None  # what the resident waited for in vain
        # Each report from its photo to its receipt (time.monotonic()): what a kill cut into.
        self.spans: list[tuple[float, float]] = []

    def description(self, n: int) -> str:
        return f"楼道里飞线充电（R{self.user_id}-{n}）"

    async def run(self, stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                await self.file_report(n)
            except TimeoutError as error:
                self.stuck = str(error).splitlines()[0]
                return

    async def file_report(self, n: int) -> None:
        began = time.monotonic()
        photo = f"photo {self.user_id}-{n}".encode()
        self.server.send_photo(self.user_id, photo, caption=self.description(n))
        question = await self._next(_has_button(CATEGORY_LABEL), "the category question")
        self._press(question, CATEGORY_LABEL)
        await self._next(lambda m: (m.text or "").startswith("📍"), "the location question")
        self.server.send_text(self.user_id, f"康乐小区{self.user_id}栋{n}号门口")
        summary = await self._next(_has_button(CONFIRM_LABEL), "the summary")
        self._press(summary, CONFIRM_LABEL)
        self.confirmed.append(self.description(n))
        await self._next(lambda m: "HB-" in (m.text or ""), "the receipt")
        self.receipts += 1
        self.spans.append((began, time.monotonic()))

    def _press(self, message: BotMessage, label: str) -> None:
        data = _button_data(message, label)
        assert data is not None
        self.server.press_button(self.user_id, message.message_id, data)

    async def _next(self, wanted: Callable[[BotMessage], bool], what: str) -> BotMessage:
        def found(server: BotAPIServer) -> int | None:
            messages = server.messages(self.user_id)
            for index in range(len(messages) - 1, self.seen - 1, -1):
                if wanted(messages[index]):
                    return index + 1
            return None

        position = await self.server.wait_for(
            found, self.step_timeout, description=f"{what} for resident {self.user_id}"
        )
        assert position is not None
        self.seen = position
        return self.server.messages(self.user_id)[position - 1]


# -- faults -----------------------------------------------------------------------------------

FAULT_KINDS = ("429", "500", "502", "reset", "slow", "lost answer")
# Mostly the outbox's calls; None is any call but getUpdates, start-up calls included.
FAULT_METHODS = (
    "sendMessage",
    "sendPhoto",
    "editMessageText",
    "editMessageReplyMarkup",
    "answerCallbackQuery",
    None,
)


def arm_fault(server: BotAPIServer, rng: random.Random, retry_after_max: int) -> Fault:
    """One fault on the next matching Bot API call."""
    kind = rng.choice(FAULT_KINDS)
    method = rng.choice(FAULT_METHODS)
    if kind == "429":
        return server.fail_next(429, retry_after=rng.randint(1, retry_after_max), method=method)
    if kind in ("500", "502"):
        return server.fail_next(int(kind), method=method)
    if kind == "reset":
        return server.drop_next(method=method)
    if kind == "slow":
        return server.delay_next(rng.uniform(1.0, 5.0), method=method)
    return server.lose_answer_next(method=method)


def fault_kind(fault: Fault) -> str:
    if fault.kind == "fail":
        return str(fault.status)
    return {"drop": "reset", "delay": "slow", "lose_answer": "lost answer"}[fault.kind]


async def inject_faults(
    server: BotAPIServer, rng: random.Random, retry_after_max: int, armed: list[Fault]
) -> None:
    """A fault every 0.2-1 s, but only once the last one was met: faults armed faster than
    calls come would pile up on the few retries of an otherwise idle moment."""
    while True:
        await asyncio.sleep(rng.uniform(0.2, 1.0))
        if not server.faults:
            armed.append(arm_fault(server, rng, retry_after_max))


# -- the run ----------------------------------------------------------------------------------


@dataclass
class CrashFigures:
    seed: int
    database: str
    faults: bool
    residents: int
    kills: int = 0
    kills_during_start_up: int = 0
    kill_moments: list[float] = field(default_factory=list)  # time.monotonic()
    # Kills that cut into no report (no resident between a photo and its receipt): a kill
    # that tested nothing.
    kills_between_reports: int = 0
    self_exits: dict[str, int] = field(default_factory=dict)
    reports: int = 0
    cases: int = 0
    stuck_residents: list[str] = field(default_factory=list)
    lost_reports: list[str] = field(default_factory=list)
    duplicated_cases: list[str] = field(default_factory=list)
    unexpected_cases: list[str] = field(default_factory=list)
    cards_missing: list[str] = field(default_factory=list)
    card_duplicates: int = 0
    duplicate_messages: int = 0
    duplicates_by_chat: dict[str, int] = field(default_factory=dict)
    messages_sent: int = 0
    outbox_rows: int = 0
    outbox_pending: int = 0
    dead_rows: dict[str, int] = field(default_factory=dict)
    faults_armed: dict[str, int] = field(default_factory=dict)
    faults_hit: dict[str, int] = field(default_factory=dict)
    log_events: dict[str, int] = field(default_factory=dict)
    final_exit_code: int | None = None
    start_up_seconds: dict[str, float] = field(default_factory=dict)
    kill_phase_seconds: float = 0.0
    drain_seconds: float = 0.0
    total_seconds: float = 0.0

    @property
    def duplicates_per_kill(self) -> float:
        return self.duplicate_messages / self.kills if self.kills else 0.0

    def problems(self) -> list[str]:
        """What broke a guarantee (empty when the run is clean)."""
        checks = (
            (self.stuck_residents, f"residents left waiting: {self.stuck_residents}"),
            (self.lost_reports, f"reports without a case: {self.lost_reports}"),
            (self.duplicated_cases, f"reports filed more than once: {self.duplicated_cases}"),
            (self.unexpected_cases, f"cases nobody confirmed: {self.unexpected_cases}"),
            (
                self.cards_missing,
                f"cases whose card never reached the group: {self.cards_missing}",
            ),
            (self.outbox_pending, f"{self.outbox_pending} outbox rows still pending"),
            (
                self.final_exit_code != 0,
                f"the graceful stop exited with {self.final_exit_code}",
            ),
        )
        return [message for broken, message in checks if broken]

    def table(self) -> str:
        rows = [
            ("seed", str(self.seed)),
            ("database", self.database),
            ("residents", str(self.residents)),
            (
                "kills (SIGKILL)",
                f"{self.kills} ({self.kills_during_start_up} during start-up)",
            ),
            ("kills that cut into a report", f"{self.kills - self.kills_between_reports}"),
            ("exits on its own", _counts(self.self_exits)),
            ("reports confirmed", str(self.reports)),
            ("cases", str(self.cases)),
            ("residents left waiting", str(len(self.stuck_residents))),
            (
                "lost / duplicated cases",
                f"{len(self.lost_reports)} / {len(self.duplicated_cases)}",
            ),
            ("cards missing", str(len(self.cards_missing))),
            ("card duplicates", str(self.card_duplicates)),
            (
                "duplicate messages",
                f"{self.duplicate_messages} of {self.messages_sent} sent "
                f"({self.duplicates_per_kill:.2f} per kill)",
            ),
            ("redelivered updates ignored", str(self.log_events.get("update.duplicate", 0))),
            ("outbox rows / pending", f"{self.outbox_rows} / {self.outbox_pending}"),
            ("dead rows", _counts(self.dead_rows)),
            ("faults armed", _counts(self.faults_armed) if self.faults else "off"),
            ("faults hit", _counts(self.faults_hit) if self.faults else "off"),
            ("outbox retries", str(self.log_events.get("outbox.retry", 0))),
            (
                "start-up",
                f"median {self.start_up_seconds.get('median', 0):.2f} s, "
                f"max {self.start_up_seconds.get('max', 0):.2f} s",
            ),
            ("kill phase", f"{self.kill_phase_seconds:.1f} s"),
            ("drain after last kill", f"{self.drain_seconds:.1f} s"),
            ("total", f"{self.total_seconds:.1f} s"),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["duplicates_per_kill"] = round(self.duplicates_per_kill, 3)
        return out


def _counts(counter: dict[str, int]) -> str:
    if not counter:
        return "none"
    return ", ".join(f"{key}: {value}" for key, value in sorted(counter.items()))


def service_env(server: BotAPIServer, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "TELEGRAM_"))}
    path = [str(ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env.update(
        BOT_TOKEN=TOKEN,
        TELEGRAM_API_BASE=server.base_url,
        DATABASE_URL=database_url,
        WHISTLE_CONFIG=str(DISTRICT_FILE),
        POLLING_TIMEOUT="1",
        PYTHONPATH=os.pathsep.join(path),
    )
    # Outbound pacing at Telegram's real limits is measured by bench.pacing; here a burst of
    # reports would only queue behind the 20-a-minute budget of the one department group.
    env.setdefault("SEND_GROUP_PER_MINUTE", "100000")
    env.setdefault("SEND_PRIVATE_PER_SECOND", "1000")
    env.setdefault("SEND_GLOBAL_PER_SECOND", "1000")
    env.setdefault("SEND_BURST", "1000")
    return env


def build_world(server: BotAPIServer, residents: int) -> list[int]:
    """The district's groups (with one staff member each) and the residents."""
    server.add_user(STAFF, first_name="赵工")
    for chat_id in load_district(DISTRICT_FILE).configured_chat_ids():
        server.create_group(chat_id, f"group {chat_id}", members=[STAFF])
    ids = [FIRST_RESIDENT + i for i in range(residents)]
    for user_id in ids:
        server.add_user(user_id, first_name=f"居民{user_id}", language_code="zh-hans")
    return ids


async def run_crash(
    server: BotAPIServer,
    database_url: str,
    workdir: Path,
    *,
    kills: int,
    seconds: float | None = None,
    residents: int = 4,
    seed: int | None = None,
    faults: bool = False,
    retry_after_max: int = 5,
    cold: bool = False,
    step_timeout: float = 60.0,
    drain_timeout: float = 120.0,
    on_progress: Callable[[str], None] | None = None,
) -> CrashFigures:
    """Kill the service ``kills`` times (or for ``seconds``) while residents file reports,
    let it finish, and count what came out. ``server`` must be running."""
    seed = random.randrange(2**32) if seed is None else seed
    rng = random.Random(seed)
    kind = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    figures = CrashFigures(seed=seed, database=kind, faults=faults, residents=residents)
    progress = on_progress or (lambda _text: None)
    user_ids = build_world(server, residents)
    env = service_env(server, database_url)
    # A resident may file as often as the run makes them: the hourly intake limit is not
    # what this run measures.
    env["WHISTLE_CONFIG"] = str(intake.district_file(workdir))
    processes = ServiceProcesses(env, workdir, cold=cold)
    people = [Resident(server, user_id, step_timeout=step_timeout) for user_id in user_ids]
    stop_filing = asyncio.Event()
    armed: list[Fault] = []
    start_ups: list[float] = []
    started = time.monotonic()
    await processes.open()
    filing = [asyncio.create_task(person.run(stop_filing)) for person in people]
    injector: asyncio.Task[None] | None = None
    if faults:
        injector = asyncio.create_task(inject_faults(server, rng, retry_after_max, armed))
    try:
        deadline = None if seconds is None else started + seconds
        while figures.kills < kills and (deadline is None or time.monotonic() < deadline):
            first_request = len(server.requests)
            spawned = time.monotonic()
            pid = await processes.start()
            if rng.random() < START_UP_KILLS:
                await asyncio.sleep(rng.uniform(*START_UP_KILL_AFTER))
            else:
                if await _start_up_over(server, first_request, step_timeout):
                    start_ups.append(time.monotonic() - spawned)
                await asyncio.sleep(rng.uniform(*KILL_AFTER))
            _raise_failed(filing)
            if not processes.running():  # ended on its own (a start-up failure): restart
                code = processes.exits[pid]
                figures.self_exits[str(code)] = figures.self_exits.get(str(code), 0) + 1
                continue
            await processes.kill()
            figures.kills += 1
            figures.kill_moments.append(time.monotonic())
            if not _started_since(server, first_request):
                figures.kills_during_start_up += 1
            if figures.kills % 10 == 0:
                done = sum(len(p.confirmed) for p in people)
                progress(f"{figures.kills} kills, {done} reports confirmed")
        last_kill = time.monotonic()
        figures.kill_phase_seconds = last_kill - started
        if injector is not None:
            injector.cancel()
        await processes.start()
        stop_filing.set()
        await _finish_filing(filing, processes, figures, step_timeout * 2)
        factory_engine = create_engine(database_url)
        try:
            factory = session_factory(factory_engine)
            await _drain(server, factory, processes, figures, drain_timeout)
            figures.drain_seconds = time.monotonic() - last_kill
            figures.final_exit_code = await processes.stop()
            await _count(server, factory, people, figures)
        finally:
            await factory_engine.dispose()
    finally:
        if injector is not None:
            injector.cancel()
        stop_filing.set()
        for task in filing:
            task.cancel()
        await asyncio.gather(*filing, return_exceptions=True)
        await processes.close()
    figures.faults_armed = dict(Counter(fault_kind(fault) for fault in armed))
    figures.faults_hit = dict(Counter(fault_kind(f) for f in armed if f.remaining <= 0))
    server.clear_faults()
    figures.log_events = dict(processes.log_events())
    figures.total_seconds = time.monotonic() - started
    if start_ups:
        figures.start_up_seconds = {
            "median": round(statistics.median(start_ups), 3),
            "max": round(max(start_ups), 3),
        }
    return figures


def _started_since(server: BotAPIServer, first_request: int) -> bool:
    """Has a process finished its start-up since ``first_request``? Its last start-up call is
    deleteWebhook, right before polling (a request is logged once it is answered, so the
    first getUpdates, a long poll, would show up late)."""
    requests = server.requests
    return any(
        requests[i].method.lower() == "deletewebhook" and requests[i].ok
        for i in range(first_request, len(requests))
    )


async def _start_up_over(server: BotAPIServer, first_request: int, timeout: float) -> bool:  # noqa: ASYNC109
    with contextlib.suppress(TimeoutError):
        await server.wait_for(lambda s: _started_since(s, first_request), timeout)
        return True
    return False


def _raise_failed(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise RuntimeError("a resident got stuck") from task.exception()


async def _finish_filing(
    filing: list[asyncio.Task[None]],
    processes: ServiceProcesses,
    figures: CrashFigures,
    timeout: float,  # noqa: ASYNC109
) -> None:
    """Let every resident finish the report in hand (the service is no longer killed; a
    process that ends on its own is restarted, as a supervisor would)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not all(task.done() for task in filing):
        await _restart_if_ended(processes, figures)
        if loop.time() > deadline:
            raise TimeoutError(f"residents did not finish; last log:\n{processes.tail()}")
        await asyncio.wait(filing, timeout=0.2)
    _raise_failed(filing)


async def _restart_if_ended(processes: ServiceProcesses, figures: CrashFigures) -> None:
    if processes.running():
        return
    assert processes.pid is not None
    code = str(processes.exits[processes.pid])
    figures.self_exits[code] = figures.self_exits.get(code, 0) + 1
    await processes.start()


async def _drain(
    server: BotAPIServer,
    factory: Any,
    processes: ServiceProcesses,
    figures: CrashFigures,
    timeout: float,  # noqa: ASYNC109
) -> None:
    """Until no update waits at the server and no outbox row is pending."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        await _restart_if_ended(processes, figures)
        async with factory() as session:
            pending = await session.scalar(
                sql_select(func.count())
                .select_from(OutboxMessage)
                .where(col(OutboxMessage.status) == OutboxStatus.PENDING)
            )
        if not pending and not server.pending_updates():
            return
        if loop.time() > deadline:
            return
        await asyncio.sleep(0.1)


async def _count(
    server: BotAPIServer, factory: Any, people: list[Resident], figures: CrashFigures
) -> None:
    async with factory() as session:
        residents = [person.user_id for person in people]
        descriptions = (
            await session.scalars(
                sql_select(col(Case.description)).where(col(Case.resident_id).in_(residents))
            )
        ).all()
        rows = (
            await session.execute(
                sql_select(
                    col(OutboxMessage.chat_id),
                    col(OutboxMessage.message_id),
                    col(OutboxMessage.status),
                    col(OutboxMessage.method),
                    col(OutboxMessage.last_error),
                )
            )
        ).all()
    confirmed = [d for person in people for d in person.confirmed]
    spans = [span for person in people for span in person.spans]
    figures.kills_between_reports = sum(
        1 for moment in figures.kill_moments if not any(a < moment < b for a, b in spans)
    )
    figures.stuck_residents = [person.stuck for person in people if person.stuck]
    filed = Counter(descriptions)
    figures.reports = len(confirmed)
    figures.cases = len(descriptions)
    figures.lost_reports = [d for d in confirmed if filed[d] == 0]
    figures.duplicated_cases = sorted(d for d, n in filed.items() if n > 1)
    figures.unexpected_cases = sorted(set(filed) - set(confirmed))

    cards = [m for m in server.messages(DEPARTMENT_CHAT) if m.method == "sendPhoto"]
    for description in confirmed:
        posted = sum(1 for m in cards if description in (m.caption or ""))
        if posted == 0:
            figures.cards_missing.append(description)
        figures.card_duplicates += max(posted - 1, 0)

    recorded: set[tuple[int, int]] = set()
    dead: Counter[str] = Counter()
    for chat_id, message_id, status, method, last_error in rows:
        if status == OutboxStatus.DELIVERED and message_id is not None:
            recorded.add((chat_id, message_id))
        elif status == OutboxStatus.DEAD:
            dead[f"{method}: {_reason(last_error or '')}"] += 1
        elif status == OutboxStatus.PENDING:
            figures.outbox_pending += 1
    figures.outbox_rows = len(rows)
    figures.dead_rows = dict(dead)
    sent = server.messages(bot=BOT_ID)
    figures.messages_sent = len(sent)
    by_chat: Counter[str] = Counter()
    albums: set[tuple[int, str]] = set()
    for message in sent:
        if message.media_group_id is not None:
            # An album is one outbox row; only its first message's id is recorded.
            key = (message.chat_id, message.media_group_id)
            if key in albums:
                continue
            albums.add(key)
        if (message.chat_id, message.message_id) not in recorded:
            by_chat[str(message.chat_id)] += 1
    figures.duplicates_by_chat = dict(by_chat)
    figures.duplicate_messages = sum(by_chat.values())


def _reason(error: str) -> str:
    """A dead row's reason without the numbers that make every row different."""
    return "".join("N" if char.isdigit() else char for char in error)[:80]


# -- the command ------------------------------------------------------------------------------


async def _with_database(args: argparse.Namespace, workdir: Path) -> CrashFigures:
    database_url = f"sqlite+aiosqlite:///{workdir / 'whistle.db'}"
    created: str | None = None
    if args.postgres:
        import asyncpg
        from sqlalchemy.engine import make_url

        admin = make_url(args.postgres).set(drivername="postgresql")
        created = f"whistle_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        connection = await asyncpg.connect(admin.render_as_string(hide_password=False))
        await connection.execute(f'CREATE DATABASE "{created}"')
        await connection.close()
        url = admin.set(drivername="postgresql+asyncpg", database=created)
        database_url = url.render_as_string(hide_password=False)
    try:
        async with BotAPIServer(tokens=[TOKEN]) as server:
            return await run_crash(
                server,
                database_url,
                workdir,
                kills=args.kills,
                seconds=args.seconds,
                residents=args.residents,
                seed=args.seed,
                faults=args.faults,
                retry_after_max=args.retry_after_max,
                cold=args.cold,
                step_timeout=180.0,
                drain_timeout=600.0,
                on_progress=lambda text: print(text, file=sys.stderr, flush=True),
            )
    finally:
        if created is not None:
            import asyncpg

            connection = await asyncpg.connect(admin.render_as_string(hide_password=False))
            await connection.execute(f'DROP DATABASE IF EXISTS "{created}" WITH (FORCE)')
            await connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.crash",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--seconds", type=float, help="end the kills after this long")
    parser.add_argument("--faults", action="store_true", help="inject Bot API faults")
    parser.add_argument("--retry-after-max", type=int, default=5, help="longest 429 (s)")
    parser.add_argument("--residents", type=int, default=6)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--postgres", metavar="ADMIN_URL", help="run on PostgreSQL")
    parser.add_argument("--cold", action="store_true", help="start python -m bot each time")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where to write JSON")
    parser.add_argument("--fork-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.fork_server:
        return serve_forks()

    with tempfile.TemporaryDirectory(prefix="whistle-crash-") as tmp:
        figures = asyncio.run(_with_database(args, Path(tmp)))
    command = " ".join(["python -m bench.crash", *(argv or sys.argv[1:])])
    out = write_result(args.results, "crash", {"command": command, **figures.to_dict()})
    print(figures.table())
    problems = figures.problems()
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print(f"written to {out}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
