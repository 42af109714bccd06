"""Engines, sessions and migrations.

Two kinds of transaction, both defined here (the one place that decides how a transaction
begins):

- :func:`transaction` (a session from :func:`session_factory`): a unit of work that may
  write. On SQLite it begins with ``BEGIN IMMEDIATE``, taking the database's single write lock
  at once, so two writers queue (up to the busy timeout) instead of one failing with
  "database is locked" half-way through.
- :func:`read_transaction` (given either factory; its sessions come from the engine's
  :func:`read_view`, as :func:`read_factory` makes them): reads only. On SQLite it
  begins ``DEFERRED`` and takes no write lock: in WAL mode it reads a snapshot and never waits
  for a writer, nor makes one wait. On PostgreSQL it is an ordinary transaction set
  ``READ ONLY``, so a write in it fails at once (and the tests, which run on both databases,
  catch it). Never write in it: on SQLite a deferred transaction that starts writing after
  another writer committed fails with ``SQLITE_BUSY``. Work that reads what is due and then
  changes it reads in a read transaction and, only when something is due, opens a
  :func:`transaction` that reads (claims) it again.

SQLite (the embedded default) runs in WAL mode with a busy timeout and, by default,
``synchronous=FULL`` (a commit is on disk before it returns, so it survives a power loss;
``SQLITE_SYNCHRONOUS=normal`` trades that for faster commits, see the README's
"Guarantees"). PostgreSQL is used through asyncpg. The schema is owned by Alembic
(``migrations/``); nothing calls ``create_all``.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = ROOT / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 15_000
# The execution option that marks an engine view whose transactions only read.
READ_ONLY = "whistle_read_only"

Synchronous = Literal["full", "normal"]
SYNCHRONOUS_MODES: tuple[Synchronous, ...] = ("full", "normal")

SessionFactory = async_sessionmaker[AsyncSession]

# The session of the update being handled, so collaborators that aiogram calls for us (the FSM
# storage) write in the same transaction as the handler.
current_session: ContextVar[AsyncSession | None] = ContextVar("current_session", default=None)
# ``session.info`` key of the dialog rows an update has read or changed (``bot/fsm.py`` writes
# them once before the commit; forgetting a person drops them).
PENDING_DIALOGS = "whistle.dialogs"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, *, synchronous: Synchronous = "full", **kwargs: Any) -> AsyncEngine:
    """An engine for ``url``. ``synchronous`` is SQLite's ``PRAGMA synchronous`` (``full``:
    every commit is synced to disk; ``normal``: in WAL mode, commits since the last checkpoint
    may be lost to a power cut, never to a crash of the process)."""
    if synchronous not in SYNCHRONOUS_MODES:
        raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}, not {synchronous!r}")
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs
        )
        _configure_sqlite(engine, synchronous)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **kwargs)


def _configure_sqlite(engine: AsyncEngine, synchronous: Synchronous) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when a transaction begins (see "begin").
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute(f"PRAGMA synchronous={synchronous.upper()}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A read view's transaction takes no lock until it reads, and then only a snapshot.
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")


def read_view(engine: AsyncEngine) -> AsyncEngine:
    """The same engine (and connection pool) whose transactions only read: ``DEFERRED`` on
    SQLite (see the "begin" listener), ``READ ONLY`` on PostgreSQL."""
    options: dict[str, Any] = {READ_ONLY: True}
    if engine.dialect.name == "postgresql":
        options["postgresql_readonly"] = True
    return engine.execution_options(**options)


def session_factory(engine: AsyncEngine, info: dict[str, Any] | None = None) -> SessionFactory:
    """Sessions that may write; open them with :func:`transaction`. ``info`` is copied into
    every session's ``info`` (settings the services read, e.g. a group's budget)."""
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False, info=info)


def read_factory(engine: AsyncEngine) -> SessionFactory:
    """Sessions that only read; open them with :func:`read_transaction`."""
    return async_sessionmaker(read_view(engine), class_=AsyncSession, expire_on_commit=False)


@asynccontextmanager
async def transaction(factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """One unit of work: commits on success, rolls back on error. On SQLite it holds the
    write lock from its first statement to its end: keep slow work (drawing, statistics over
    many rows, network calls) out of it."""
    async with writer_turn(factory), factory() as session, session.begin():
        yield session


# SQLite: the writers of this process take turns on an asyncio lock (one per engine), in
# order, before they ask SQLite for its write lock. A writer that finds SQLite's lock taken
# polls for it with growing sleeps (up to 100 ms each), which under concurrent updates wastes
# more time than the writes take. The turn is taken before a connection is checked out and
# given back after the commit or rollback, so a writer cancelled while it waits holds nothing.
# Other processes on the same file (a second service, tools) still meet SQLite's busy timeout.
_turns: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()
_holding: ContextVar[Any] = ContextVar("whistle_writer_turn", default=None)


@asynccontextmanager
async def writer_turn(factory: SessionFactory) -> AsyncIterator[None]:
    """This process's turn to write (SQLite; nothing to wait for on PostgreSQL). A task that
    holds the turn already does not wait for it again."""
    bind = factory.kw.get("bind")
    engine = bind.sync_engine if isinstance(bind, AsyncEngine) else None
    if (
        engine is None
        or engine.dialect.name != "sqlite"
        or engine.get_execution_options().get(READ_ONLY, False)
        or _holding.get() is engine
    ):
        yield
        return
    lock = _turns.get(engine)
    if lock is None:
        lock = _turns[engine] = asyncio.Lock()
    async with asyncio.timeout(SQLITE_BUSY_TIMEOUT_MS / 1000):
        await lock.acquire()
    token = _holding.set(engine)
    try:
        yield
    finally:
        _holding.reset(token)
        lock.release()


_read_factories: weakref.WeakKeyDictionary[SessionFactory, SessionFactory] = (
    weakref.WeakKeyDictionary()
)


def reading(factory: SessionFactory) -> SessionFactory:
    """The read-only counterpart of a :func:`session_factory` (itself if it already reads):
    the same engine's :func:`read_view`, made once per factory."""
    bind = factory.kw.get("bind")
    if not isinstance(bind, AsyncEngine):
        raise TypeError("the session factory is not bound to one engine")
    if bind.get_execution_options().get(READ_ONLY):
        return factory
    made = _read_factories.get(factory)
    if made is None:
        made = _read_factories[factory] = read_factory(bind)
    return made


@asynccontextmanager
async def read_transaction(factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """A transaction that only reads, for ``factory`` (a :func:`session_factory` or a
    :func:`read_factory`): a consistent snapshot that takes no write lock on SQLite and waits
    for no writer. It ends with a rollback (there is nothing to commit); writing in it is a
    mistake (PostgreSQL refuses it, SQLite may fail with "database is locked")."""
    # Closing the session rolls the transaction back.
    async with reading(factory)() as session:
        yield session


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _upgrade(url: str, revision: str) -> None:
    command.upgrade(alembic_config(url), revision)


async def migrate(url: str, revision: str = "head") -> None:
    """Bring the schema up to date. Alembic's env runs its own event loop, hence the thread."""
    await asyncio.to_thread(_upgrade, url, revision)
