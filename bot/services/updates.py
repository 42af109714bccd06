"""Remembering handled updates, so a redelivered update has no second effect.

Claiming an update is the first statement of every unit of work, so it also brings what
every update needs next: the row of the person behind it and their dialog state. One
``INSERT … ON CONFLICT DO NOTHING`` records the update id and returns both rows through scalar
subqueries in its ``RETURNING`` clause (PostgreSQL and SQLite alike); a redelivered update
inserts nothing and gets no row back.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, bindparam, delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from models import DialogState, ProcessedUpdate, User
from models.types import UTCDateTime

# Telegram keeps undelivered updates for 24 hours; a week of memory is plenty.
KEEP_PROCESSED = timedelta(days=7)

# (bot id, chat id, user id, thread id, business connection id, destiny): a dialog row's key.
DialogKey = tuple[int, int, int, str, str, str]

_USER_COLUMNS = tuple(User.__table__.columns)  # type: ignore[attr-defined]
_DIALOG_COLUMNS = tuple(
    DialogState.__table__.columns[name]  # type: ignore[attr-defined]
    for name in ("state", "data", "updated_at")
)
_DIALOG_KEY_COLUMNS = tuple(
    DialogState.__table__.columns[name]  # type: ignore[attr-defined]
    for name in ("bot_id", "chat_id", "user_id", "thread_id", "business_connection_id", "destiny")
)


_DIALOG_KEY_PARAMS = tuple(f"claim_dialog_{column.name}" for column in _DIALOG_KEY_COLUMNS)


@functools.cache
def _claim_statement(dialect: str, with_user: bool, with_dialog: bool) -> Any:
    """The claim, built once per dialect and shape (every update runs it, and building its
    subqueries costs more than running them); the values are bound at execution."""
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    returning: list[Any] = [col(ProcessedUpdate.update_id)]
    if with_user:
        mine = col(User.id) == bindparam("claim_user_id")
        returning += [
            select(column).where(mine).scalar_subquery().label(f"u_{column.name}")
            for column in _USER_COLUMNS
        ]
    if with_dialog:
        where: list[ColumnElement[bool]] = [
            column == bindparam(name, type_=column.type)
            for column, name in zip(_DIALOG_KEY_COLUMNS, _DIALOG_KEY_PARAMS, strict=True)
        ]
        returning += [
            select(column).where(*where).scalar_subquery().label(f"d_{column.name}")
            for column in _DIALOG_COLUMNS
        ]
    return (
        insert(ProcessedUpdate)
        .values(
            bot_id=bindparam("bot_id"),
            update_id=bindparam("update_id"),
            processed_at=bindparam("processed_at", type_=UTCDateTime()),
        )
        .on_conflict_do_nothing()
        .returning(*returning)
    )


@dataclass(frozen=True)
class Claim:
    """A newly claimed update, with the rows it was asked to bring (None: no such row)."""

    user: dict[str, Any] | None = None
    dialog: dict[str, Any] | None = None


async def claim_update(
    session: AsyncSession,
    *,
    bot_id: int,
    update_id: int,
    now: datetime,
    user_id: int | None = None,
    dialog_key: DialogKey | None = None,
) -> Claim | None:
    """Record the update as handled in this transaction; None if it already was. With
    ``user_id`` / ``dialog_key`` the claim also returns that user's and that dialog's rows,
    in the same statement."""
    dialect = session.get_bind().dialect.name
    statement = _claim_statement(dialect, user_id is not None, dialog_key is not None)
    params: dict[str, Any] = {"bot_id": bot_id, "update_id": update_id, "processed_at": now}
    if user_id is not None:
        params["claim_user_id"] = user_id
    if dialog_key is not None:
        params.update(zip(_DIALOG_KEY_PARAMS, dialog_key, strict=True))
    row = (await session.execute(statement, params)).first()
    if row is None:
        return None
    values = row._mapping
    user = None
    if user_id is not None and values["u_id"] is not None:
        user = {column.name: values[f"u_{column.name}"] for column in _USER_COLUMNS}
    dialog = None
    if dialog_key is not None and values["d_updated_at"] is not None:
        dialog = {column.name: values[f"d_{column.name}"] for column in _DIALOG_COLUMNS}
    return Claim(user=user, dialog=dialog)


async def prune_processed_updates(session: AsyncSession, *, now: datetime) -> int:
    result = await session.execute(
        delete(ProcessedUpdate).where(col(ProcessedUpdate.processed_at) < now - KEEP_PROCESSED)
    )
    return int(getattr(result, "rowcount", 0) or 0)
