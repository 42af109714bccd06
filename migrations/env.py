"""Alembic environment: runs migrations over the project's async engines."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

import models  # noqa: F401  (registers the tables)
from bot.db import create_engine
from models.types import UTCDateTime

target_metadata = SQLModel.metadata
# Replicas starting at once all migrate: on PostgreSQL they take turns on this advisory lock
# (held until the migration's transaction ends), so the first upgrades and the others then
# find the schema current. SQLite serialises writers by itself.
MIGRATION_LOCK = 0x57484953  # "WHIS"


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    # Migrations spell plain SQLAlchemy types so they never import the models they predate.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime()"
    if type_ == "type" and isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    return False


def _run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=sqlite,
        compare_type=True,
        render_item=_render_item,
    )
    if sqlite:
        # Batch mode rebuilds a table (copy, drop, rename). With foreign keys enforced, dropping
        # a table that other rows refer to fails, so they are off for the migration (it must be
        # said outside a transaction) and checked once it is done, as SQLite advises.
        cursor = connection.connection.cursor()
        cursor.execute("PRAGMA foreign_keys=OFF")
        cursor.close()
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        context.run_migrations()
        if sqlite:
            dangling = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
            if dangling:
                raise RuntimeError(f"the migration left rows that refer to nothing: {dangling}")


async def _run_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is not set"
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
