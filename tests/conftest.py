"""Shared fixtures: databases (SQLite and PostgreSQL), the Bot API test server, the app.

Every test that takes ``database_url`` runs twice, on SQLite and on PostgreSQL. PostgreSQL
tests use a database created for this test run (``WHISTLE_TEST_POSTGRES`` is the server's
admin URL); they are skipped when no server answers, unless ``WHISTLE_REQUIRE_POSTGRES=1``
(as in CI), which turns that into a failure.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from bot.app import Whistle
from bot.clock import ManualClock
from bot.db import SessionFactory, create_engine, migrate, session_factory
from bot.district import District, load_district
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.testserver import BotAPIServer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_DISTRICT = ROOT / "config.example.toml"
TOKEN = "424242:TEST-whistle-token"
BOT_ID = 424242

POSTGRES_ADMIN_URL = os.environ.get(
    "WHISTLE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_POSTGRES = os.environ.get("WHISTLE_REQUIRE_POSTGRES") == "1"
# Redis for the replica tests; each test writes under its own key prefix and removes it.
# Required with WHISTLE_REQUIRE_REDIS=1, and with WHISTLE_REQUIRE_POSTGRES=1 (as in CI).
REDIS_TEST_URL = os.environ.get("WHISTLE_TEST_REDIS", "redis://127.0.0.1:6379/0")
REQUIRE_REDIS = REQUIRE_POSTGRES or os.environ.get("WHISTLE_REQUIRE_REDIS") == "1"


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _pg_execute(url: str, *statements: str) -> None:
    connection = await asyncpg.connect(_asyncpg_dsn(url), timeout=5)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str | None]:
    """A fresh PostgreSQL database for this test run, dropped at the end."""
    name = f"whistle_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        asyncio.run(_pg_execute(POSTGRES_ADMIN_URL, f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, TimeoutError) as error:
        if REQUIRE_POSTGRES:
            pytest.fail(f"PostgreSQL is required but unavailable: {error}")
        yield None
        return
    url = make_url(POSTGRES_ADMIN_URL).set(drivername="postgresql+asyncpg", database=name)
    yield url.render_as_string(hide_password=False)
    asyncio.run(_pg_execute(POSTGRES_ADMIN_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_url: str | None
) -> str:
    """An empty database (no tables); migrations create the schema."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'whistle.db'}"
    if postgres_url is None:
        pytest.skip("PostgreSQL is not available (set WHISTLE_REQUIRE_POSTGRES=1 to fail)")
    await _pg_execute(postgres_url, "DROP SCHEMA IF EXISTS public CASCADE", "CREATE SCHEMA public")
    return postgres_url


@pytest.fixture
async def factory(database_url: str) -> AsyncIterator[SessionFactory]:
    """A migrated database and a session factory on it."""
    await migrate(database_url)
    engine = create_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def redis_env() -> AsyncIterator[dict[str, str]]:
    """Settings that put a service on the test Redis under a key prefix of its own."""
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except Exception as error:
        await client.aclose()
        if REQUIRE_REDIS:
            pytest.fail(f"Redis is required but unavailable: {error}")
        pytest.skip("Redis is not available (set WHISTLE_REQUIRE_REDIS=1 to fail)")
    prefix = f"whistle-test-{uuid.uuid4().hex[:12]}"
    yield {"REDIS_URL": REDIS_TEST_URL, "REDIS_PREFIX": prefix}
    keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture(autouse=True, scope="session")
def _free_web_port() -> Iterator[None]:
    """Services started by tests (also as processes) listen on a free port, never on the
    default 8080, so test runs side by side do not fight over it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WEB_PORT", "0")
        yield


@pytest.fixture(scope="session")
def district() -> District:
    return load_district(EXAMPLE_DISTRICT)


@pytest.fixture
async def api_server() -> AsyncIterator[BotAPIServer]:
    from bot.testserver import BotAPIServer

    async with BotAPIServer(tokens=[TOKEN]) as server:
        yield server


# Tests send bursts (fifty replies in one group) that Telegram's real limits would spread over
# minutes; they get generous limits unless they ask for real ones (tests/test_pacing.py).
GENEROUS_LIMITS: dict[str, Any] = {
    "SEND_GLOBAL_PER_SECOND": 10_000,
    "SEND_GROUP_PER_MINUTE": 100_000,
    "SEND_PRIVATE_PER_SECOND": 10_000,
    "SEND_BURST": 1_000,
}


def make_settings(api_base: str, database_url: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "BOT_TOKEN": TOKEN,
        "TELEGRAM_API_BASE": api_base,
        "DATABASE_URL": database_url,
        "POLLING_TIMEOUT": 1,
        **GENEROUS_LIMITS,
        **extra,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


AppFactory = Callable[..., Awaitable[Whistle]]


@pytest.fixture
async def make_app(
    api_server: BotAPIServer, database_url: str, district: District
) -> AsyncIterator[AppFactory]:
    """Start the real application against the test server; several may run one after
    another on the same database (a restart). ``env`` overrides settings, e.g. real limits."""
    running: list[Whistle] = []

    async def start(
        *, polling: bool = True, env: dict[str, Any] | None = None, **kwargs: Any
    ) -> Whistle:
        # The web server (/health, /metrics, the webhook) is off unless a test asks for it.
        values = {"WEB_ENABLED": False, **(env or {})}
        app = Whistle(
            settings=make_settings(api_server.base_url, database_url, **values),
            district=district,
            retry_base=0.05,
            **kwargs,
        )
        await app.start(receive=polling)
        running.append(app)
        return app

    yield start
    for app in running:
        await app.stop()


@pytest.fixture
async def app(make_app: AppFactory) -> Whistle:
    return await make_app()


async def start_with_residents(
    api_server: BotAPIServer,
    make_app: AppFactory,
    residents: dict[int, str],
    *,
    center: int,
    **kwargs: Any,
) -> Whistle:
    """The residents (first names by id, their Telegram in Chinese) send /start before the
    service starts (on a ManualClock unless ``clock`` is given, and with ``kwargs`` as for
    ``make_app``); their greetings are read, and the start-up check's note to the ``center``
    group about the groups the bot cannot post in (those the test did not create)."""
    for user, name in residents.items():
        api_server.add_user(user, first_name=name, language_code="zh-hans")
        api_server.send_text(user, "/start")
    kwargs.setdefault("clock", ManualClock())
    app = await make_app(**kwargs)
    for user in residents:
        await api_server.wait_for_message(user)
    await api_server.wait_for_message(center)
    return app


async def say(api_server: BotAPIServer, user: int, text: str) -> Any:
    """``user`` sends ``text`` to the bot in their private chat; the bot's one reply."""
    api_server.send_text(user, text)
    [reply] = await api_server.wait_for_message(user)
    return reply


async def first_words(
    api_server: BotAPIServer, user: int, *, name: str, language: str, text: str = "/start"
) -> Any:
    """A Telegram user (first name ``name``, their app in ``language``) writes to the bot for
    the first time: ``text``, by default /start; the bot's one reply."""
    api_server.add_user(user, first_name=name, language_code=language)
    return await say(api_server, user, text)


async def settled(app: Whistle) -> None:
    """Wait until the outbox has nothing pending, so every sent message's link is recorded
    (a reply to a message can only be mapped back once its link is committed)."""
    from sqlalchemy import func, select

    from models import OutboxMessage, OutboxStatus

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    while True:
        async with app.factory() as session:
            pending = await session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status == OutboxStatus.PENDING)  # type: ignore[arg-type]
            )
        if not pending:
            return
        if loop.time() > deadline:
            raise TimeoutError(f"{pending} outbox rows still pending")
        await asyncio.sleep(0.02)
