"""Intake: cases filed per second through the whole pipeline, next to aiogram alone.

Residents file 随手拍 photo reports, the shortest dialog that ends in a case: a photo with a
caption (the description), the category button, a typed address and Confirm — four updates a
case. Each update is a real Telegram ``Update`` fed to the application's dispatcher
(``Dispatcher.feed_update``: no network) through the service's own workers, as polling
hands them over (different people's at once, up to ``UPDATE_WORKERS``), so it passes the
unit of work (one transaction: the update id claimed, the user refreshed, the dialog state
read and written), the resident router and the services, and the Confirm commits the case,
its audit events, its ladder rungs and its outbox rows (receipt, card) together. Nothing is
sent: the outbox sender does not run.

The residents move in step — every resident's photo, then every resident's category press,
and so on — so hundreds of dialogs are open at once, as at a busy hour; between the steps
(untimed) the buttons' dialog tokens are read from the dialog state, as a client reads them
from the buttons.

The baseline is aiogram dispatching exactly the same updates to a no-op handler (a bare
``Dispatcher`` with its default in-memory FSM). The figure is (cases/s through the pipeline)
÷ (cases/s aiogram alone could take in, four updates a case), i.e. the baseline's time over
the pipeline's.
"""

from __future__ import annotations

import asyncio
import cProfile
import functools
import io
import pstats
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiogram import Bot, Dispatcher, Router
from aiogram.types import Update
from sqlalchemy import event, func, select
from sqlmodel import col

from bot.app import Whistle
from bot.callbacks import DraftAction
from bot.db import migrate
from bot.district import load_district
from bot.settings import Settings
from bot.workers import person_of
from models import Case, CaseEvent, DialogState, OutboxMessage

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "424242:BENCH-whistle-token"
BOT_ID = 424242
FIRST_RESIDENT = 5_000_000
# Report categories dispatched straight to a department (no triage), in turn (the ladder
# benchmark uses them too).
CATEGORIES = (
    "flying_wire",
    "clutter",
    "cooking_fumes",
    "food_safety",
    "road_damage",
    "noise",
    "water_supply",
    "power_supply",
    "heating",
)
STEPS = ("photo", "category", "address", "confirm")
UPDATES_PER_CASE = len(STEPS)


@dataclass
class IntakeFigures:
    database: str
    cases: int
    updates: int
    pipeline_seconds: float
    baseline_seconds: float
    step_seconds: dict[str, float] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    profile: list[dict[str, Any]] = field(default_factory=list)
    layers: dict[str, float] = field(default_factory=dict)
    statements_per_case: float = 0.0

    @property
    def cases_per_second(self) -> float:
        return self.cases / self.pipeline_seconds if self.pipeline_seconds else 0.0

    @property
    def baseline_cases_per_second(self) -> float:
        return self.cases / self.baseline_seconds if self.baseline_seconds else 0.0

    @property
    def ratio(self) -> float:
        return self.baseline_seconds / self.pipeline_seconds if self.pipeline_seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "cases": self.cases,
            "updates": self.updates,
            "pipeline_seconds": round(self.pipeline_seconds, 4),
            "baseline_seconds": round(self.baseline_seconds, 4),
            "cases_per_second": round(self.cases_per_second, 2),
            "ms_per_update": round(self.pipeline_seconds / self.updates * 1000, 2),
            "baseline_cases_per_second": round(self.baseline_cases_per_second, 1),
            "pipeline_ms_per_update": round(self.pipeline_seconds / self.updates * 1000, 3),
            "baseline_ms_per_update": round(self.baseline_seconds / self.updates * 1000, 4),
            "ratio": round(self.ratio, 4),
            "step_seconds": {k: round(v, 4) for k, v in self.step_seconds.items()},
            "rows": self.rows,
            "statements_per_case": round(self.statements_per_case, 1),
            "layers": {k: round(v, 3) for k, v in self.layers.items()},
            "profile": self.profile,
        }


def district_file(workdir: Path) -> Path:
    """The example district with the hourly intake limit lifted (1000 an hour)."""
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    limited = "[intake]\nper_hour = 10\n"
    if limited not in text:
        raise RuntimeError("config.example.toml's [intake] section changed; update bench")
    path = workdir / "district.toml"
    path.write_text(text.replace(limited, "[intake]\nper_hour = 1000\n"), encoding="utf-8")
    return path


class Residents:
    """Builds the updates residents send; ids and times are made up, as Telegram's would be."""

    def __init__(self, bot: Bot, count: int) -> None:
        self.bot = bot
        self.ids = [FIRST_RESIDENT + i for i in range(count)]
        self.next_update = 1
        self.next_message = 1
        self.now = int(time.time())

    def _user(self, user_id: int) -> dict[str, Any]:
        return {
            "id": user_id,
            "is_bot": False,
            "first_name": f"居民{user_id}",
            "language_code": "zh-hans",
        }

    def _chat(self, user_id: int) -> dict[str, Any]:
        return {"id": user_id, "type": "private", "first_name": f"居民{user_id}"}

    def _update(self, body: dict[str, Any]) -> Update:
        update_id, self.next_update = self.next_update, self.next_update + 1
        return Update.model_validate({"update_id": update_id, **body}, context={"bot": self.bot})

    def _message(self, user_id: int, content: dict[str, Any]) -> Update:
        message_id, self.next_message = self.next_message, self.next_message + 1
        message = {
            "message_id": message_id,
            "date": self.now,
            "chat": self._chat(user_id),
            "from": self._user(user_id),
            **content,
        }
        return self._update({"message": message})

    def photo(self, user_id: int) -> Update:
        unique = f"bench-{user_id}"
        return self._message(
            user_id,
            {
                "photo": [
                    {
                        "file_id": f"{unique}-{size}",
                        "file_unique_id": f"{unique}{size}",
                        "width": size,
                        "height": size,
                    }
                    for size in (90, 1280)
                ],
                "caption": f"楼道里有人飞线充电，晚上很危险（{user_id}）",
            },
        )

    def address(self, user_id: int) -> Update:
        return self._message(user_id, {"text": f"康乐小区{user_id % 1000}栋{user_id}号门口"})

    def press(self, user_id: int, data: str) -> Update:
        message_id, self.next_message = self.next_message, self.next_message + 1
        bot_user = {"id": BOT_ID, "is_bot": True, "first_name": "Whistle"}
        query = {
            "id": f"q{self.next_update}",
            "from": self._user(user_id),
            "chat_instance": f"ci{user_id}",
            "data": data,
            "message": {
                "message_id": message_id,
                "date": self.now,
                "chat": self._chat(user_id),
                "from": bot_user,
                "text": "…",
            },
        }
        return self._update({"callback_query": query})


async def _tokens(app: Whistle, residents: Sequence[int]) -> dict[int, str]:
    """Each resident's dialog token (what the buttons they were shown carry)."""
    async with app.factory() as session:
        rows = (
            await session.execute(
                select(col(DialogState.user_id), col(DialogState.data)).where(
                    col(DialogState.user_id).in_(list(residents))
                )
            )
        ).all()
    return {int(user_id): str(data.get("token", "")) for user_id, data in rows}


async def _count(app: Whistle, model: Any) -> int:
    async with app.factory() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def _noop_dispatcher() -> Dispatcher:
    dispatcher = Dispatcher()
    router = Router(name="noop")

    async def nothing(event: Any) -> None:
        return None

    router.message.register(nothing)
    router.callback_query.register(nothing)
    dispatcher.include_router(router)
    return dispatcher


async def _feed(dispatcher: Dispatcher, bot: Bot, updates: Sequence[Update]) -> float:
    started = time.perf_counter()
    for update in updates:
        await dispatcher.feed_update(bot, update)
    return time.perf_counter() - started


# Where a profiled function's own time is counted, by its file (first match wins). Built-in
# functions (``~``) count where their callers are.
LAYERS = (
    ("waiting for the database", ("selectors.py:select", "~:<method 'poll' of 'select.epoll")),
    ("database driver (aiosqlite, asyncpg)", ("aiosqlite/", "asyncpg/", "threading.py")),
    ("SQLAlchemy / SQLModel (ORM, SQL, async bridge)", ("sqlalchemy/", "sqlmodel/", "greenlet")),
    ("aiogram", ("aiogram/",)),
    ("pydantic", ("pydantic/", "pydantic_core")),
    ("Jinja2 / Babel", ("jinja2/", "babel/", "markupsafe/")),
    ("Whistle", ("/bot/", "/handlers/", "/models/", "/scheduler/")),
    ("asyncio event loop", ("asyncio/", "selectors.py")),
    ("benchmark harness (the await chain)", ("/bench/",)),
)


def _layer(key: Any) -> str:
    filename, _line, name = key
    where = f"{filename}:{name}"
    for layer, markers in LAYERS:
        if any(marker in where for marker in markers):
            return layer
    return "other (standard library)"


def _profile(
    profiler: cProfile.Profile, limit: int
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """The functions with the most own time, and own time summed by layer (shares of the
    profiled run)."""
    stats = pstats.Stats(profiler, stream=io.StringIO())
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in raw.values()) or 1.0

    def row(key: Any, entry: Any) -> dict[str, Any]:
        filename, line, name = key
        where = filename
        for marker in ("site-packages/", str(ROOT) + "/", "/lib/python3.11/"):
            if marker in where:
                where = where.split(marker, 1)[1]
        return {
            "function": f"{where}:{line}({name})",
            "calls": entry[1],
            "own_s": round(entry[2], 4),
            "own_share": round(entry[2] / total, 3),
            "cumulative_s": round(entry[3], 4),
        }

    by_own = sorted(raw.items(), key=lambda item: item[1][2], reverse=True)[:limit]
    layers: dict[str, float] = {}
    for key, entry in raw.items():
        own, callers = entry[2], entry[4]
        layer = _layer(key)
        if key[0] == "~" and callers and layer.startswith("other"):
            # A builtin's time goes to its callers' layers, in proportion to what each spent
            # in it (the per-caller times need not add up to the builtin's own time).
            spent = sum(by_caller[2] for by_caller in callers.values())
            if spent > 0:
                for caller, by_caller in callers.items():
                    share = _layer(caller)
                    layers[share] = layers.get(share, 0.0) + own * by_caller[2] / spent / total
                continue
        layers[layer] = layers.get(layer, 0.0) + own / total
    ordered = dict(sorted(layers.items(), key=lambda item: item[1], reverse=True))
    return [row(key, entry) for key, entry in by_own], ordered


def format_layers(layers: dict[str, float]) -> str:
    return "\n".join(f"  {share:6.1%}  {layer}" for layer, share in layers.items())


def format_profile(profile: list[dict[str, Any]]) -> str:
    lines = [f"{'own s':>8}  {'share':>6}  {'calls':>8}  function"]
    for entry in profile:
        lines.append(
            f"{entry['own_s']:8.3f}  {entry['own_share']:6.1%}  {entry['calls']:8}  "
            f"{entry['function']}"
        )
    return "\n".join(lines) + "\n"


async def measure(
    database_url: str,
    *,
    cases: int = 300,
    profile_cases: int = 0,
    warm_cases: int = 20,
    workdir: Path | None = None,
    on_progress: Callable[[str], None] | None = None,
    synchronous: str = "full",
) -> IntakeFigures:
    """File ``cases`` photo reports through the pipeline and the same updates through a no-op
    dispatcher, after ``warm_cases`` untimed ones. ``profile_cases`` more are then filed
    under cProfile (not timed). ``synchronous`` is ``SQLITE_SYNCHRONOUS``."""
    progress = on_progress or (lambda _text: None)
    with tempfile.TemporaryDirectory(prefix="whistle-intake-") as scratch:
        where = workdir or Path(scratch)
        district = load_district(district_file(where))
        settings = Settings(
            _env_file=None,
            BOT_TOKEN=TOKEN,
            TELEGRAM_API_BASE="http://127.0.0.1:9",  # never called: the sender does not run
            DATABASE_URL=database_url,
            WEB_ENABLED=False,
            SQLITE_SYNCHRONOUS=synchronous,
        )
        await migrate(database_url)
        app = Whistle(settings=settings, district=district)
        try:
            return await _run(app, cases, profile_cases, warm_cases, progress)
        finally:
            await app.bot.session.close()
            await app.engine.dispose()


async def _through_workers(app: Whistle, updates: Sequence[Update]) -> float:
    """The updates handed to the service's own workers at once, as polling hands over a
    batch: different people's at the same time, each person's in order."""
    dispatcher, bot = app.dispatcher, app.bot
    started = time.perf_counter()
    await asyncio.gather(
        *(
            app.workers.run(
                person_of(update), functools.partial(dispatcher.feed_update, bot, update)
            )
            for update in updates
        )
    )
    return time.perf_counter() - started


async def file_reports(
    app: Whistle, residents: Residents, ids: Sequence[int]
) -> tuple[dict[str, float], list[Update]]:
    """Every resident files one report, each step through the service's workers; returns the
    time of each step and the updates."""
    timings: dict[str, float] = {}
    fed: list[Update] = []
    updates = [residents.photo(user_id) for user_id in ids]
    timings["photo"] = await _through_workers(app, updates)
    fed += updates
    tokens = await _tokens(app, ids)
    updates = [
        residents.press(u, DraftAction(tokens[u], "cat", CATEGORIES[u % len(CATEGORIES)]).pack())
        for u in ids
    ]
    timings["category"] = await _through_workers(app, updates)
    fed += updates
    updates = [residents.address(user_id) for user_id in ids]
    timings["address"] = await _through_workers(app, updates)
    fed += updates
    updates = [residents.press(u, DraftAction(tokens[u], "ok", "").pack()) for u in ids]
    timings["confirm"] = await _through_workers(app, updates)
    fed += updates
    return timings, fed


async def _run(
    app: Whistle, cases: int, profile_cases: int, warm_cases: int, progress: Callable[[str], None]
) -> IntakeFigures:
    kind = "postgresql" if app.settings.database_url.startswith("postgresql") else "sqlite"
    residents = Residents(app.bot, warm_cases + cases + profile_cases)
    warm, timed, profiled = (
        residents.ids[:warm_cases],
        residents.ids[warm_cases : warm_cases + cases],
        residents.ids[warm_cases + cases :],
    )
    # A few reports first: connections opened, caches filled, code paths warm in both.
    _, warm_updates = await file_reports(app, residents, warm)
    noop = _noop_dispatcher()
    await _feed(noop, app.bot, warm_updates)

    before = await _count(app, Case)
    steps, fed = await file_reports(app, residents, timed)
    pipeline = sum(steps.values())
    filed = await _count(app, Case) - before
    if filed != cases:
        raise RuntimeError(f"{cases} reports confirmed but {filed} cases filed")
    baseline = min([await _feed(noop, app.bot, fed) for _ in range(3)])
    progress(f"intake ({kind}): {cases} cases in {pipeline:.2f} s; no-op {baseline:.3f} s")

    figures = IntakeFigures(
        database=kind,
        cases=cases,
        updates=len(fed),
        pipeline_seconds=pipeline,
        baseline_seconds=baseline,
        step_seconds=steps,
        rows={
            "cases": await _count(app, Case),
            "case_events": await _count(app, CaseEvent),
            "outbox": await _count(app, OutboxMessage),
        },
    )
    if profiled:
        statements = 0

        def count(*_args: Any) -> None:
            nonlocal statements
            statements += 1

        event.listen(app.engine.sync_engine, "before_cursor_execute", count)
        profiler = cProfile.Profile()
        profiler.enable()
        await file_reports(app, residents, profiled)
        profiler.disable()
        event.remove(app.engine.sync_engine, "before_cursor_execute", count)
        figures.profile, figures.layers = _profile(profiler, 30)
        figures.statements_per_case = statements / len(profiled)
    return figures
