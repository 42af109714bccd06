"""Small tables read by nearly every update, kept in memory: which group belongs to which
unit (``group_bindings``) and the language each group chose (``chat_languages``).

Each is read whole (a row per unit or group) on first use and kept per database engine until
a change made in this process commits (the change invalidates it) or until it is
:data:`MAX_AGE` seconds old, which bounds how long a change made by another replica (a
``/bind`` or ``/lang`` handled there) takes to be seen here.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

from sqlalchemy import event, select
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from models import ChatLanguage, GroupBinding

T = TypeVar("T")
MAX_AGE = 60.0
BINDINGS = "group_bindings"
CHAT_LANGUAGES = "chat_languages"

# engine → snapshot name → (monotonic time read, value)
_held: WeakKeyDictionary[Engine, dict[str, tuple[float, Any]]] = WeakKeyDictionary()


async def _snapshot(
    session: AsyncSession, name: str, load: Callable[[AsyncSession], Awaitable[T]]
) -> T:
    held = _held.setdefault(_engine(session), {})
    found = held.get(name)
    now = time.monotonic()
    if found is not None and now - found[0] < MAX_AGE:
        value: T = found[1]
        return value
    value = await load(session)
    held[name] = (now, value)
    return value


def invalidate(session: AsyncSession, name: str) -> None:
    """The table changed in this session: forget the snapshot now and again once the change
    commits (a read in between, by another update, may still see the old rows)."""
    engine = _engine(session)

    def forget(*_args: Any) -> None:
        _held.get(engine, {}).pop(name, None)

    forget()
    event.listen(session.sync_session, "after_commit", forget, once=True)


def _engine(session: AsyncSession) -> Engine:
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


def forget_all(engine: Engine) -> None:
    """Drop every snapshot of this engine (after its tables were written from outside)."""
    _held.pop(engine, None)


async def _bindings(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(col(GroupBinding.unit), col(GroupBinding.chat_id)))
    return {str(unit): int(chat_id) for unit, chat_id in rows.all()}


async def bindings(session: AsyncSession) -> dict[str, int]:
    """unit code → the group bound to it with /bind."""
    return await _snapshot(session, BINDINGS, _bindings)


async def _languages(session: AsyncSession) -> dict[int, str]:
    rows = await session.execute(select(col(ChatLanguage.chat_id), col(ChatLanguage.language)))
    return {int(chat_id): str(language) for chat_id, language in rows.all()}


async def chat_languages(session: AsyncSession) -> dict[int, str]:
    """group chat id → the language its admins chose with /lang."""
    return await _snapshot(session, CHAT_LANGUAGES, _languages)
