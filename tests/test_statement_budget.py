"""SQL statements per update: a budget that does not depend on the machine.

Every statement the database driver is handed is counted (an SQLAlchemy ``before_cursor_execute``
listener, ``BEGIN`` included where the dialect issues one as a statement, as SQLite does) while
one update goes through the real dispatcher, unit of work, handlers and services
(``feed_update``; the sender does not run, so only the update's own statements are seen).

Budgets: an update no handler takes ≤ 3; an ordinary dialog step ≤ 6; Confirm ≤ 20; a whole
photo report (photo with caption, category, address, Confirm) ≤ 30.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiogram.types import Update
from sqlalchemy import event, func, select

from bench.intake import CATEGORIES, TOKEN, Residents, district_file
from bot.app import Whistle
from bot.callbacks import DraftAction
from bot.clock import ManualClock
from bot.db import migrate
from bot.district import load_district
from bot.settings import Settings
from models import Case, DialogState

UNHANDLED, STEP, CONFIRM, REPORT = 3, 6, 20, 30
CGZF = -1001000000021  # 城管执法局's group in config.example.toml


class Counter:
    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        self.statements.append(statement.split("\n", 1)[0][:120])


@pytest.fixture
async def bare(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[Whistle, Counter]]:
    """The application, not started: updates are fed to its dispatcher, nothing is sent."""
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        BOT_TOKEN=TOKEN,
        TELEGRAM_API_BASE="http://127.0.0.1:9",
        DATABASE_URL=database_url,
        WEB_ENABLED=False,
    )
    await migrate(database_url)
    app = Whistle(settings=settings, district=load_district(district_file(tmp_path)))
    counter = Counter()
    event.listen(app.engine.sync_engine, "before_cursor_execute", counter)
    try:
        yield app, counter
    finally:
        await app.bot.session.close()
        await app.engine.dispose()


async def feed(app: Whistle, counter: Counter, update: Update) -> list[str]:
    counter.statements.clear()
    await app.dispatcher.feed_update(app.bot, update)
    return list(counter.statements)


async def token(app: Whistle, user_id: int) -> str:
    async with app.factory() as session:
        data = await session.scalar(
            select(DialogState.data).where(DialogState.user_id == user_id)  # type: ignore[arg-type]
        )
    assert data is not None
    return str(data["token"])


async def file_report(
    app: Whistle, counter: Counter, residents: Residents, user_id: int
) -> dict[str, list[str]]:
    steps = {"photo": await feed(app, counter, residents.photo(user_id))}
    draft = await token(app, user_id)
    category = DraftAction(draft, "cat", CATEGORIES[0]).pack()
    steps["category"] = await feed(app, counter, residents.press(user_id, category))
    steps["address"] = await feed(app, counter, residents.address(user_id))
    confirm = DraftAction(draft, "ok", "").pack()
    steps["confirm"] = await feed(app, counter, residents.press(user_id, confirm))
    return steps


def group_chatter(app: Whistle, update_id: int, user_id: int) -> Update:
    """A member's ordinary message in a department's group: no handler takes it."""
    return Update.model_validate(
        {
            "update_id": update_id,
            "message": {
                "message_id": 900 + update_id,
                "date": 1_700_000_000,
                "chat": {"id": CGZF, "type": "supergroup", "title": "城管执法局"},
                "from": {"id": user_id, "is_bot": False, "first_name": "王"},
                "text": "收到，下午去现场看看",
            },
        },
        context={"bot": app.bot},
    )


class TestStatementBudget:
    async def test_a_photo_report_stays_within_budget(self, bare: tuple[Whistle, Counter]) -> None:
        app, counter = bare
        residents = Residents(app.bot, 3)
        # The first report warms what is held in memory (group bindings); the second is
        # measured as any report after the service has been running a while.
        await file_report(app, counter, residents, residents.ids[0])
        steps = await file_report(app, counter, residents, residents.ids[1])

        async with app.factory() as session:
            assert await session.scalar(select(func.count()).select_from(Case)) == 2
        for name in ("photo", "category", "address"):
            assert len(steps[name]) <= STEP, (name, steps[name])
        assert len(steps["confirm"]) <= CONFIRM, steps["confirm"]
        total = sum(len(statements) for statements in steps.values())
        assert total <= REPORT, steps
        # The dialog row is read with the claim and written once an update: never re-read.
        for name, statements in steps.items():
            reads = [s for s in statements if s.startswith("SELECT dialog_states")]
            writes = [s for s in statements if "dialog_states" in s and not s.startswith("SELECT")]
            assert not reads, (name, statements)
            assert len(writes) <= 1, (name, statements)

    async def test_an_update_nobody_takes_costs_three_statements_at_most(
        self, bare: tuple[Whistle, Counter]
    ) -> None:
        app, counter = bare
        await feed(app, counter, group_chatter(app, 1, 8100))  # the member's first update
        statements = await feed(app, counter, group_chatter(app, 2, 8100))
        assert len(statements) <= UNHANDLED, statements
        # A redelivered update stops at its claim.
        again = await feed(app, counter, group_chatter(app, 2, 8100))
        assert len(again) <= 2, again
        assert not any(s.startswith("INSERT INTO users") for s in again)

    async def test_last_seen_is_written_at_most_once_a_minute(
        self, bare: tuple[Whistle, Counter]
    ) -> None:
        app, counter = bare
        clock = ManualClock()
        app.unit_of_work.clock = clock
        await feed(app, counter, group_chatter(app, 1, 8200))
        clock.advance(timedelta(seconds=30))
        quiet = await feed(app, counter, group_chatter(app, 2, 8200))
        clock.advance(timedelta(seconds=31))
        refreshed = await feed(app, counter, group_chatter(app, 3, 8200))

        assert not any(s.startswith("UPDATE users") for s in quiet), quiet
        assert any(s.startswith("UPDATE users") for s in refreshed), refreshed


class TestNoThreadHops:
    async def test_a_photo_report_runs_its_filters_in_the_event_loop(
        self, bare: tuple[Whistle, Counter], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """aiogram hands every synchronous filter (magic ``F`` filters, dialog states) to a
        thread; the routers run them inline instead (handlers.inline_sync_filters), so a
        whole photo report makes no thread round trip outside the database driver."""
        app, counter = bare
        residents = Residents(app.bot, 2)
        hops: list[Any] = []
        real = asyncio.to_thread

        async def counted(func: Any, /, *args: Any, **kwargs: Any) -> Any:
            hops.append(getattr(func, "func", func))
            return await real(func, *args, **kwargs)

        monkeypatch.setattr(asyncio, "to_thread", counted)
        await file_report(app, counter, residents, residents.ids[0])
        async with app.factory() as session:
            assert await session.scalar(select(func.count()).select_from(Case)) == 1
        assert hops == []
