"""Dialog state in the database (aiogram's BaseStorage), so a dialog survives a restart.

While an update is being handled the storage writes through that update's session, so the
dialog state commits or rolls back together with the handler's other changes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, StateType, StorageKey
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.db import SessionFactory, current_session, transaction
from models import DialogState


def _pk(key: StorageKey) -> tuple[int, int, int, str, str, str]:
    return (
        key.bot_id,
        key.chat_id,
        key.user_id,
        "" if key.thread_id is None else str(key.thread_id),
        key.business_connection_id or "",
        key.destiny,
    )


class DatabaseStorage(BaseStorage):
    def __init__(self, factory: SessionFactory, clock: Clock) -> None:
        self.factory = factory
        self.clock = clock

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[AsyncSession]:
        session = current_session.get()
        if session is not None:
            yield session
            return
        async with transaction(self.factory) as own:
            yield own

    async def _row(self, session: AsyncSession, key: StorageKey) -> DialogState | None:
        return await session.get(DialogState, _pk(key))

    async def _upsert(self, key: StorageKey, **values: Any) -> None:
        async with self._session() as session:
            row = await self._row(session, key)
            if row is None:
                if not any(values.values()):
                    return  # nothing to remember, nothing stored
                bot_id, chat_id, user_id, thread_id, connection, destiny = _pk(key)
                row = DialogState(
                    bot_id=bot_id,
                    chat_id=chat_id,
                    user_id=user_id,
                    thread_id=thread_id,
                    business_connection_id=connection,
                    destiny=destiny,
                    updated_at=self.clock.now(),
                )
                session.add(row)
            for name, value in values.items():
                setattr(row, name, value)
            row.updated_at = self.clock.now()
            if row.state is None and not row.data:
                await session.delete(row)
            await session.flush()

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        value = state.state if isinstance(state, State) else state
        await self._upsert(key, state=value)

    async def get_state(self, key: StorageKey) -> str | None:
        async with self._session() as session:
            row = await self._row(session, key)
            return row.state if row else None

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        await self._upsert(key, data=dict(data))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        async with self._session() as session:
            row = await self._row(session, key)
            return dict(row.data) if row else {}

    async def close(self) -> None:
        """The engine belongs to the application, which disposes of it."""
