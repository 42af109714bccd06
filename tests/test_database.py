"""The database layer on SQLite and PostgreSQL: migrations match the models, dialog state is
stored and scoped, handled updates are remembered and pruned."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiogram.fsm.storage.base import StorageKey
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pydantic import ValidationError
from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    DateTime,
    Float,
    Integer,
    MetaData,
    Table,
    inspect,
    text,
)
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import SQLModel, func, select

import models  # noqa: F401
from bot.app import Whistle
from bot.clock import ManualClock
from bot.db import (
    SessionFactory,
    alembic_config,
    create_engine,
    migrate,
    read_transaction,
    reading,
    transaction,
)
from bot.district import District
from bot.fsm import DatabaseStorage
from bot.services.updates import claim_update
from bot.settings import normalize_database_url
from models import Case, CaseFollower, CaseKind, CaseStatus, DialogState, ProcessedUpdate
from scheduler.jobs import prune_processed_updates
from tests.conftest import make_settings
from tests.locking import write_lock_held

TEST_API = "http://127.0.0.1:9"  # never called: the app is not started


class TestMigrations:
    async def test_models_and_migrations_agree(self, database_url: str) -> None:
        await migrate(database_url)
        engine = create_engine(database_url)

        def diff(connection: Connection) -> list[object]:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, SQLModel.metadata))

        async with engine.connect() as connection:
            differences = await connection.run_sync(diff)
        await engine.dispose()
        assert differences == []

    async def test_downgrade_and_upgrade_again(self, database_url: str) -> None:
        await migrate(database_url)
        await asyncio.to_thread(command.downgrade, alembic_config(database_url), "base")
        await migrate(database_url)
        engine = create_engine(database_url)
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(c.dialect.get_table_names(c)))
        await engine.dispose()
        assert {"outbox", "message_links", "dialog_states", "processed_updates", "users"} <= tables

    async def test_help_requests_move_to_their_own_table_and_back(self, database_url: str) -> None:
        """Migration 0020 on a populated database: each help case's own part moves, value for
        value, from ``cases`` to ``help_requests``; other cases get none; and back down."""
        await migrate(database_url, "0019")
        engine = create_engine(database_url)
        at = datetime(2026, 12, 1, 8, 30, tzinfo=UTC).replace(tzinfo=None)  # stored naive, UTC
        claimed = {
            "needed_when": "周六上午",
            "help_door": "2单元501",
            "help_skills": ["代购", "陪诊"],
            "claimed_by": 8_100_000_001,
            "claimed_by_name": "志愿者小李",
            "help_progress": "way",
            "help_due_at": at,
            "help_stage": 1,
        }
        unclaimed = {"help_skills": [], "help_stage": 0, "help_due_at": at}
        rows = [
            (1, "help", "published", claimed),
            (2, "help", "published", unclaimed),
            (3, "report", "dispatched", {}),
        ]

        def fill(connection: Connection) -> None:
            cases = Table("cases", MetaData(), autoload_with=connection)
            for case_id, kind, status, extra in rows:
                values: dict[str, object] = {
                    "id": case_id,
                    "number": f"A-{case_id}",
                    "kind": kind,
                    "status": status,
                    "resident_id": 7000 + case_id,
                    "resident_language": "zh-Hans",
                    "created_at": at,
                    "updated_at": at,
                    **extra,
                }
                for column in cases.columns:  # every other required column, at its zero value
                    if column.name in values or column.nullable or column.server_default:
                        continue
                    values[column.name] = _zero(column.type)
                connection.execute(cases.insert().values(**values))

        async with engine.begin() as connection:
            await connection.run_sync(fill)
        await migrate(database_url)
        async with engine.connect() as connection:
            moved = {
                row.case_id: row._asdict()
                for row in await connection.execute(text("SELECT * FROM help_requests"))
            }
            columns = await connection.run_sync(
                lambda c: {column["name"] for column in inspect(c).get_columns("cases")}
            )
        assert set(moved) == {1, 2}  # the report has no help part
        assert {k: v for k, v in moved[1].items() if k not in ("skills", "due_at")} == {
            "case_id": 1,
            "needed_when": "周六上午",
            "door": "2单元501",
            "volunteer_id": 8_100_000_001,
            "volunteer_name": "志愿者小李",
            "progress": "way",
            "stage": 1,
        }
        assert _json(moved[1]["skills"]) == ["代购", "陪诊"]
        assert _naive(moved[1]["due_at"]) == at and _naive(moved[2]["due_at"]) == at
        assert moved[2]["volunteer_id"] is None and _json(moved[2]["skills"]) == []
        assert not columns & set(claimed)  # nothing of it is left in cases

        await asyncio.to_thread(command.downgrade, alembic_config(database_url), "0019")
        async with engine.connect() as connection:
            back = (
                await connection.execute(
                    text(
                        "SELECT id, claimed_by, claimed_by_name, help_progress, help_door,"
                        " needed_when, help_stage FROM cases ORDER BY id"
                    )
                )
            ).all()
        await engine.dispose()
        assert [tuple(row) for row in back] == [
            (1, 8_100_000_001, "志愿者小李", "way", "2单元501", "周六上午", 1),
            (2, None, None, None, None, None, 0),
            (3, None, None, None, None, None, 0),
        ]


def _zero(kind: object) -> object:
    if isinstance(kind, JSON):
        return []
    if isinstance(kind, Boolean):
        return False
    if isinstance(kind, (Integer, Float)):
        return 0
    if isinstance(kind, DateTime):
        return datetime(2026, 12, 1, tzinfo=UTC).replace(tzinfo=None)
    return ""


def _json(value: object) -> object:
    return json.loads(value) if isinstance(value, str) else value


def _naive(value: object) -> object:
    if isinstance(value, str):  # SQLite hands a DATETIME back as its text
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=None)


class TestCaseFollowers:
    async def test_a_resident_follows_a_case_once(self, factory: SessionFactory) -> None:
        now = ManualClock().now()
        async with transaction(factory) as session:
            case = Case(
                kind=CaseKind.REPORT,
                status=CaseStatus.DISPATCHED,
                resident_id=1,
                resident_language="zh-Hans",
                created_at=now,
                updated_at=now,
            )
            session.add(case)
            await session.flush()
            assert case.id is not None and case.reporters == 1
            case.bundle_id = case.id  # a bundle's lead points at itself
            session.add(CaseFollower(case_id=case.id, user_id=2, language="en", joined_at=now))
        with pytest.raises(IntegrityError):
            async with transaction(factory) as session:
                session.add(CaseFollower(case_id=case.id, user_id=2, language="en", joined_at=now))
        async with factory() as session:
            follower = await session.scalar(select(CaseFollower))
            assert follower is not None
            assert (follower.case_id, follower.user_id, follower.joined_at) == (case.id, 2, now)


class TestDialogStorage:
    async def test_state_and_data_are_kept_per_chat_and_user(
        self, factory: SessionFactory
    ) -> None:
        storage = DatabaseStorage(factory, ManualClock())
        mine = StorageKey(bot_id=1, chat_id=10, user_id=10)
        other = StorageKey(bot_id=1, chat_id=-100, user_id=10)
        await storage.set_state(mine, "Report:photos")
        await storage.update_data(mine, {"photos": ["f1"], "text": "油烟"})
        await storage.update_data(mine, {"photos": ["f1", "f2"]})
        assert await storage.get_state(mine) == "Report:photos"
        assert await storage.get_data(mine) == {"photos": ["f1", "f2"], "text": "油烟"}
        assert await storage.get_state(other) is None
        assert await storage.get_data(other) == {}

    async def test_clearing_removes_the_row(self, factory: SessionFactory) -> None:
        storage = DatabaseStorage(factory, ManualClock())
        key = StorageKey(bot_id=1, chat_id=10, user_id=10)
        await storage.set_state(key, "x")
        await storage.set_data(key, {"a": 1})
        await storage.set_state(key, None)
        await storage.set_data(key, {})
        async with factory() as session:
            count = await session.scalar(select(func.count()).select_from(DialogState))
        assert count == 0


class TestProcessedUpdates:
    async def test_claimed_once_and_pruned_after_a_week(self, factory: SessionFactory) -> None:
        clock = ManualClock()
        async with transaction(factory) as session:
            assert await claim_update(session, bot_id=1, update_id=5, now=clock.now())
        async with transaction(factory) as session:
            assert not await claim_update(session, bot_id=1, update_id=5, now=clock.now())
            assert await claim_update(session, bot_id=2, update_id=5, now=clock.now())
        clock.advance(timedelta(days=6))
        assert await prune_processed_updates(factory=factory, clock=clock) == 0
        clock.advance(timedelta(days=2))
        assert await prune_processed_updates(factory=factory, clock=clock) == 2
        async with factory() as session:
            assert await session.scalar(select(func.count()).select_from(ProcessedUpdate)) == 0


def test_plain_database_urls_get_async_drivers() -> None:
    assert normalize_database_url("postgresql://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert normalize_database_url("postgres://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert normalize_database_url("sqlite:///./x.db") == "sqlite+aiosqlite:///./x.db"
    assert normalize_database_url("sqlite+aiosqlite:///x.db") == "sqlite+aiosqlite:///x.db"


class TestDurability:
    async def test_sqlite_syncs_every_commit_unless_told_otherwise(
        self, tmp_path: Path, district: District
    ) -> None:
        url = f"sqlite:///{tmp_path / 'whistle.db'}"
        # PRAGMA synchronous: 1 is NORMAL, 2 is FULL.
        for env, expected in (({}, 2), ({"SQLITE_SYNCHRONOUS": "normal"}, 1),
                              ({"SQLITE_SYNCHRONOUS": "FULL"}, 2)):  # fmt: skip
            app = Whistle(settings=make_settings(TEST_API, url, **env), district=district)
            try:
                async with transaction(app.factory) as session:
                    value = await session.scalar(text("PRAGMA synchronous"))
                async with read_transaction(app.factory) as session:
                    read_value = await session.scalar(text("PRAGMA synchronous"))
            finally:
                await app.engine.dispose()
                await app.bot.session.close()
            assert (value, read_value) == (expected, expected), env

    def test_an_unknown_mode_is_refused(self) -> None:
        with pytest.raises(ValidationError, match="SQLITE_SYNCHRONOUS"):
            make_settings(TEST_API, "sqlite:///x.db", SQLITE_SYNCHRONOUS="off")
        with pytest.raises(ValueError, match="synchronous"):
            create_engine("sqlite:///x.db", synchronous="off")  # type: ignore[arg-type]


class TestReadTransactions:
    async def test_reads_do_not_wait_for_a_writer_and_may_not_write(
        self, factory: SessionFactory, database_url: str
    ) -> None:
        async with (
            write_lock_held(database_url),
            asyncio.timeout(10),  # the busy timeout is 15 s
            read_transaction(factory) as session,
        ):
            assert await session.scalar(select(func.count()).select_from(Case)) == 0
        if database_url.startswith("postgresql"):
            # PostgreSQL refuses a write in a read transaction outright.
            with pytest.raises(DBAPIError, match="read-only transaction"):
                async with read_transaction(factory) as session:
                    await session.execute(text("DELETE FROM processed_updates"))
        # The read view of a read view is itself.
        assert reading(reading(factory)) is reading(factory)
