"""Dialog state in the database (aiogram's BaseStorage), so a dialog survives a restart.

While an update is being handled the storage works in that update's session: the dialog row is
read at most once (the unit of work usually hands it over from the update's claim, so not even
that), every ``get``/``set`` aiogram makes goes to a copy kept in the session, and the unit of
work writes the result once, just before it commits (:func:`write_dialogs`): one INSERT,
UPDATE or DELETE, or nothing when nothing changed. So the dialog state commits or rolls back
together with the handler's other changes. Outside an update (tests, tools) each call is a
transaction of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, StateType, StorageKey
from sqlalchemy import delete, insert, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.clock import Clock
from bot.db import PENDING_DIALOGS, SessionFactory, current_session, transaction
from bot.services.updates import DialogKey
from models import DialogState


def dialog_key(key: StorageKey) -> DialogKey:
    return (
        key.bot_id,
        key.chat_id,
        key.user_id,
        "" if key.thread_id is None else str(key.thread_id),
        key.business_connection_id or "",
        key.destiny,
    )


@dataclass
class _Dialog:
    """One dialog as the update sees it: whether its row exists, and its current values."""

    stored: bool
    state: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    changed: bool = False


def _dialogs(session: AsyncSession) -> dict[DialogKey, _Dialog]:
    dialogs: dict[DialogKey, _Dialog] = session.info.setdefault(PENDING_DIALOGS, {})
    return dialogs


def preload_dialog(session: AsyncSession, key: DialogKey, row: Mapping[str, Any] | None) -> None:
    """The dialog row as the update's claim returned it (None: there is none)."""
    _dialogs(session)[key] = (
        _Dialog(stored=True, state=row["state"], data=dict(row["data"] or {}))
        if row is not None
        else _Dialog(stored=False)
    )


async def write_dialogs(session: AsyncSession, now: datetime) -> None:
    """Write every dialog the update changed: one statement each."""
    for key, dialog in _dialogs(session).items():
        if not dialog.changed:
            continue
        where = _where(key)
        empty = dialog.state is None and not dialog.data
        if empty and dialog.stored:
            await session.execute(delete(DialogState).where(*where))
        elif not empty and dialog.stored:
            await session.execute(
                update(DialogState)
                .where(*where)
                .values(state=dialog.state, data=dialog.data, updated_at=now)
            )
        elif not empty:
            bot_id, chat_id, user_id, thread_id, connection, destiny = key
            await session.execute(
                insert(DialogState).values(
                    bot_id=bot_id,
                    chat_id=chat_id,
                    user_id=user_id,
                    thread_id=thread_id,
                    business_connection_id=connection,
                    destiny=destiny,
                    state=dialog.state,
                    data=dialog.data,
                    updated_at=now,
                )
            )
        dialog.stored, dialog.changed = not empty, False


def _where(key: DialogKey) -> list[Any]:
    bot_id, chat_id, user_id, thread_id, connection, destiny = key
    return [
        col(DialogState.bot_id) == bot_id,
        col(DialogState.chat_id) == chat_id,
        col(DialogState.user_id) == user_id,
        col(DialogState.thread_id) == thread_id,
        col(DialogState.business_connection_id) == connection,
        col(DialogState.destiny) == destiny,
    ]


class DatabaseStorage(BaseStorage):
    def __init__(self, factory: SessionFactory, clock: Clock) -> None:
        self.factory = factory
        self.clock = clock

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[tuple[AsyncSession, bool]]:
        """The update's session, or a transaction of this call's own (True: write at once)."""
        session = current_session.get()
        if session is not None:
            yield session, False
            return
        async with transaction(self.factory) as own:
            yield own, True

    async def _dialog(self, session: AsyncSession, key: StorageKey) -> _Dialog:
        dialogs, pk = _dialogs(session), dialog_key(key)
        dialog = dialogs.get(pk)
        if dialog is None:
            row = await session.get(DialogState, pk)
            preload_dialog(
                session, pk, None if row is None else {"state": row.state, "data": row.data}
            )
            dialog = dialogs[pk]
        return dialog

    async def _change(self, key: StorageKey, **values: Any) -> None:
        async with self._session() as (session, at_once):
            dialog = await self._dialog(session, key)
            for name, value in values.items():
                setattr(dialog, name, value)
            dialog.changed = True
            if at_once:
                await write_dialogs(session, self.clock.now())

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        value = state.state if isinstance(state, State) else state
        await self._change(key, state=value)

    async def get_state(self, key: StorageKey) -> str | None:
        async with self._session() as (session, _):
            return (await self._dialog(session, key)).state

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        await self._change(key, data=dict(data))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        async with self._session() as (session, _):
            return dict((await self._dialog(session, key)).data)

    async def close(self) -> None:
        """The engine belongs to the application, which disposes of it."""
