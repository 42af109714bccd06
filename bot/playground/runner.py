"""The playground's moving parts: the Bot API test server, the real application pointed at it
with a controllable clock and a SQLite database of its own, and starting over."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import func, select, text
from sqlmodel import col

from bot.app import Whistle
from bot.db import create_engine, transaction
from bot.district import District
from bot.logs import log_event
from bot.playground.clock import PlaygroundClock
from bot.playground.world import VOLUNTEERS, populate
from bot.services import cases, volunteers
from bot.settings import Settings
from bot.testserver import BotAPIServer
from models import Case, CaseStatus, Escalation, EscalationState, HelpRequest, OutboxMessage
from scheduler import jobs

logger = logging.getLogger(__name__)
TOKEN = "700000001:PLAYGROUND-whistle"
# Due times a jump may pass over before one that changes something (a jump that finds nothing
# to show within this many stops there).
JUMP_TRIES = 20
# While the clock runs fast the due jobs run this often (the scheduler's own ticks are minutes).
FAST_TICK = 2.0


class Playground:
    def __init__(
        self,
        *,
        settings: Settings,
        district: District,
        data_dir: Path,
        database_url: str | None = None,
    ) -> None:
        self.settings = settings
        self.district = district
        self.data_dir = data_dir
        # A PostgreSQL database of its own instead of the SQLite file (emptied at each start
        # over); the playground owns whatever is in it.
        self.database_url = database_url
        # Messages are dated by the playground's clock, the one the page's header shows.
        self.server = BotAPIServer(
            tokens=[TOKEN],
            username="whistle_playground_bot",
            first_name="吹哨 Whistle",
            dates=lambda: int(self.clock.now().timestamp()),
        )
        self.clock = PlaygroundClock()
        self.app: Whistle | None = None
        self.web_port = _free_port()
        self.generation = 0
        self._lock = asyncio.Lock()
        self._ticker: asyncio.Task[None] | None = None

    @property
    def database_path(self) -> Path:
        return self.data_dir / "playground.db"

    @property
    def webapp_url(self) -> str:
        """Where the bot's web server serves the Mini App."""
        return f"http://127.0.0.1:{self.web_port}/app/"

    @property
    def bot_id(self) -> int:
        return int(TOKEN.split(":", 1)[0])

    async def start(self) -> None:
        await self.server.start()
        await self._start_world()
        self._ticker = asyncio.create_task(self._tick(), name="playground-ticker")

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self.app is not None:
            await self.app.stop()
            self.app = None
        await self.server.stop()

    async def reset(self) -> None:
        """Start over: a fresh database, a fresh world, the clock back to now."""
        async with self._lock:
            if self.app is not None:
                await self.app.stop()
                self.app = None
            self.server.reset()
            await self._start_world()

    async def _start_world(self) -> None:
        if self.database_url is None:
            await asyncio.to_thread(self._remove_database)
        else:
            await _empty(self.database_url)
        self.clock = PlaygroundClock()
        starters = populate(self.server, self.district)
        settings = self.settings.model_copy(
            update={
                "bot_token": SecretStr(TOKEN),
                "telegram_api_base": self.server.base_url,
                "database_url": self.database_url or f"sqlite+aiosqlite:///{self.database_path}",
                "webhook_url": None,
                # The bot's own web server serves the Mini App the page opens beside the chat
                # (and the dashboard); Telegram's test environment, which the playground stands
                # for, takes an http:// Mini App address.
                "web_enabled": True,
                "web_host": "127.0.0.1",
                "web_port": self.web_port,
                "webapp_url": self.webapp_url,
                "polling_timeout": 10,
            }
        )
        app = Whistle(settings=settings, district=self.district, clock=self.clock)
        await app.start()
        self.app = app
        for user_id in starters:
            self.server.send_text(user_id, "/start")
        await self._seed_volunteers(app)
        self.generation += 1
        log_event(logger, "playground.started", generation=self.generation)

    def _remove_database(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{self.database_path}{suffix}").unlink(missing_ok=True)

    async def _seed_volunteers(self, app: Whistle) -> None:
        """The playground's volunteers apply and are approved, through the same services as
        /volunteer and the admin's button."""
        community = next(d for d in self.district.departments if d.kind == "community")
        admins = volunteers.approvers(self.district, community.code)
        async with transaction(app.factory) as session:
            for uid, name in VOLUNTEERS:
                await volunteers.register(
                    session,
                    self.district,
                    user=cases.Person(uid, name, "zh-Hans"),
                    display_name=name,
                    community=community.code,
                    skills=list(self.district.volunteers.skills[:2]),
                    availability="周末 weekends",
                    now=self.clock.now(),
                )
                if admins:
                    await volunteers.decide(
                        session,
                        self.district,
                        admin_id=admins[0],
                        user_id=uid,
                        approve=True,
                        now=self.clock.now(),
                    )
        app.sender.wake()

    # -- the clock ---------------------------------------------------------------------------
    def set_speed(self, speed: float) -> None:
        self.clock.set_speed(speed)

    async def jump(self) -> datetime | None:
        """Jump to the next due time (a rung of the ladder, a help request's next step, a
        rating's deadline, a scheduled report) and run what is due at once. A due time whose
        jobs change nothing anyone sees (a rung that raises no card, a time already past) is
        passed over for the next one, so one press always shows something."""
        async with self._lock:
            app = self.app
            if app is None:
                return None
            due: datetime | None = None
            for _ in range(JUMP_TRIES):
                before = await self._outbox_size(app)
                due = await self.next_due()
                if due is not None and due > self.clock.now():
                    self.clock.jump_to(due + timedelta(seconds=1))
                await self.run_due()
                if due is None or await self._outbox_size(app) > before:
                    break
            return due

    @staticmethod
    async def _outbox_size(app: Whistle) -> int:
        async with app.factory() as session:
            return int(await session.scalar(select(func.max(col(OutboxMessage.id)))) or 0)

    async def next_due(self) -> datetime | None:
        app = self.app
        assert app is not None
        now = self.clock.now()
        async with app.factory() as session:
            found: list[datetime] = []
            for query in (
                select(col(Escalation.due_at))
                .where(col(Escalation.state) == EscalationState.PENDING)
                .order_by(col(Escalation.due_at)),
                select(col(HelpRequest.due_at))
                .join(Case, col(Case.id) == col(HelpRequest.case_id))
                .where(
                    col(Case.status) == CaseStatus.PUBLISHED, col(HelpRequest.due_at).is_not(None)
                )
                .order_by(col(HelpRequest.due_at)),
                select(col(Case.rating_due_at))
                .where(
                    col(Case.status) == CaseStatus.ANSWERED, col(Case.rating_due_at).is_not(None)
                )
                .order_by(col(Case.rating_due_at)),
            ):
                value = await session.scalar(query.limit(1))
                if value is not None:
                    found.append(value)
        report = self.next_report(now)
        if report is not None:
            found.append(report)
        return min(found) if found else None

    def next_report(self, now: datetime) -> datetime | None:
        """The next daily, weekly or monthly report time after ``now``."""
        tz = self.district.tzinfo
        local = now.astimezone(tz)
        found: list[datetime] = []
        reports = self.district.reports
        for kind in ("daily", "weekly", "monthly"):
            at: str | None = getattr(reports, kind)
            if not at:
                continue
            clock = time.fromisoformat(at)
            day = local.date()
            for _ in range(40):
                candidate = datetime.combine(day, clock, tzinfo=tz)
                fits = (
                    kind == "daily"
                    or (kind == "weekly" and day.weekday() == 0)
                    or (kind == "monthly" and day.day == 1)
                )
                if fits and candidate > local:
                    found.append(candidate)
                    break
                day += timedelta(days=1)
        return min(found) if found else None

    async def run_due(self) -> None:
        """The scheduler's due jobs, now."""
        app = self.app
        if app is None:
            return
        kwargs: dict[str, Any] = {
            "factory": app.factory,
            "clock": app.clock,
            "district": self.district,
            "on_commit": app.sender.wake,
        }
        await jobs.escalate_due_cases(**kwargs)
        await jobs.settle_help_requests(**kwargs)
        await jobs.close_unrated_cases(**kwargs)
        await jobs.post_reports(**kwargs, catalogues=app.catalogues)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(FAST_TICK)
            if self.clock.speed <= 1:
                continue
            try:
                async with self._lock:
                    await self.run_due()
            except Exception:
                logger.exception("playground.tick_failed")


def _free_port() -> int:
    """A port nothing listens on now, for the bot's web server (its address goes into the
    Mini App buttons before the server starts)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _empty(database_url: str) -> None:
    """Drop everything in the playground's PostgreSQL database (the service migrates it)."""
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
    finally:
        await engine.dispose()
