"""Another connection holding the database's write lock, for tests of work that must not
wait for a writer."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.engine import make_url

# The tables the service writes; on PostgreSQL an EXCLUSIVE lock on them lets plain reads
# through and stops every write and every SELECT … FOR UPDATE.
WRITTEN = (
    "cases, case_events, escalations, outbox, outbox_files, report_runs, redemptions, "
    "point_entries, offer_stock, help_claims, volunteers, users"
)


@asynccontextmanager
async def write_lock_held(database_url: str) -> AsyncIterator[None]:
    """Meanwhile a separate connection holds the write lock: on SQLite a ``BEGIN IMMEDIATE``
    transaction (the database's single writer lock), on PostgreSQL ``EXCLUSIVE`` locks on
    the tables the service writes. Released (rolled back) at the end."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database
        connection = sqlite3.connect(
            url.database, timeout=10, isolation_level=None, check_same_thread=False
        )
        try:
            await asyncio.to_thread(connection.execute, "BEGIN IMMEDIATE")
            try:
                yield
            finally:
                connection.execute("ROLLBACK")
        finally:
            connection.close()
        return
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    pg = await asyncpg.connect(dsn, timeout=5)
    try:
        async with pg.transaction():
            await pg.execute(f"LOCK TABLE {WRITTEN} IN EXCLUSIVE MODE")
            yield
    finally:
        await pg.close()
