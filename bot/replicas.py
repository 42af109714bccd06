"""What the replicas of one bot share, chosen by the settings.

One machine (the default): SQLite or PostgreSQL, and the pacing budget and each user's update
lock in the process. Several replicas: PostgreSQL, and with ``REDIS_URL`` the budget
(:mod:`bot.shared_pacing`) and the user locks (aiogram's ``RedisEventIsolation``) in Redis.
Either way the outbox claims (:mod:`bot.sender`) and the scheduled jobs' row claims keep
background work from being done twice.

At start the database and Redis must answer within a few seconds, or the service stops with a
:class:`StartupError` naming which (without its password) and why.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Hashable
from contextlib import asynccontextmanager

from aiogram.fsm.storage.base import BaseEventIsolation, DefaultKeyBuilder, StorageKey
from aiogram.fsm.storage.redis import RedisEventIsolation
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

CONNECT_TIMEOUT = 5.0
# How often a replica waiting for a user's lock in Redis looks again.
LOCK_POLL = 0.02


class StartupError(Exception):
    """The service cannot start; the message says what does not answer."""


def _reason(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT:g} s"
    return f"{type(error).__name__}: {error}".strip().rstrip(":")


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.rsplit("@", maxsplit=1)[-1]


async def check_database(engine: AsyncEngine, url: str) -> None:
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as error:
        raise StartupError(
            f"the database at {safe_url(url)} does not answer ({_reason(error)}); "
            "check DATABASE_URL and that the server is running"
        ) from error


def connect_redis(url: str) -> Redis:
    """A client (connections are made on first use)."""
    return Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=10.0)


async def check_redis(redis: Redis, url: str) -> None:
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            await redis.ping()
    except Exception as error:
        shown = url.rsplit("@", maxsplit=1)[-1] if "@" in url else url
        raise StartupError(
            f"Redis at {shown} does not answer ({_reason(error)}); check REDIS_URL and that "
            "Redis is running, or unset REDIS_URL to run a single replica"
        ) from error


class LocalIsolation(BaseEventIsolation):
    """One user's updates one at a time in this process (aiogram's SimpleEventIsolation keeps
    a lock per user forever; these go when nobody waits for them)."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, list[int]]] = {}

    @asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncGenerator[None, None]:
        entry = self._locks.get(key)
        if entry is None:
            entry = self._locks[key] = (asyncio.Lock(), [0])
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._locks[key]

    async def close(self) -> None:
        self._locks.clear()


def build_isolation(
    redis: Redis | None, *, lock_seconds: float, prefix: str = "whistle"
) -> BaseEventIsolation:
    """Per-user update locks: in Redis for several replicas (a lock lapses after
    ``lock_seconds`` if its replica dies), else in the process."""
    if redis is None:
        return LocalIsolation()
    return RedisEventIsolation(
        redis,
        key_builder=DefaultKeyBuilder(prefix=f"{prefix}:lock", with_bot_id=True),
        lock_kwargs={"timeout": lock_seconds, "sleep": LOCK_POLL},
    )
