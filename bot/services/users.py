"""Residents and staff as the bot knows them: who they are and which language they read."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached

from bot.i18n import match_language
from bot.services import snapshots
from models import ChatLanguage, User

# ``last_seen_at`` is refreshed at most this often: it is for people, not for auditing, and
# writing the user's row at every update would cost a statement each.
LAST_SEEN_EVERY = timedelta(minutes=1)


async def touch_user(
    session: AsyncSession,
    *,
    user_id: int,
    first_name: str,
    telegram_language: str | None,
    now: datetime,
) -> User:
    """Create or refresh the user behind an update."""
    user = await session.get(User, user_id)
    return _refresh(session, user, user_id, first_name, telegram_language, now)


def adopt_user(
    session: AsyncSession,
    row: Mapping[str, Any] | None,
    *,
    user_id: int,
    first_name: str,
    telegram_language: str | None,
    now: datetime,
) -> User:
    """Like :func:`touch_user`, from the user's row already read (by the update's claim):
    the row joins the session as it is stored, without being read again."""
    user = None
    if row is not None:
        user = User(**row)
        make_transient_to_detached(user)
        session.add(user)
    return _refresh(session, user, user_id, first_name, telegram_language, now)


def _refresh(
    session: AsyncSession,
    user: User | None,
    user_id: int,
    first_name: str,
    telegram_language: str | None,
    now: datetime,
) -> User:
    """A newcomer is added; a known user's row changes only when their name or their app's
    language did, or when they were last seen over :data:`LAST_SEEN_EVERY` ago."""
    name = first_name[:128]
    if user is None:
        user = User(
            id=user_id,
            first_name=name,
            telegram_language=telegram_language,
            created_at=now,
            last_seen_at=now,
        )
        session.add(user)
        return user
    if user.first_name != name:
        user.first_name = name
    if user.telegram_language != telegram_language:
        user.telegram_language = telegram_language
    if now - user.last_seen_at >= LAST_SEEN_EVERY:
        user.last_seen_at = now
    return user


def language_of(user: User | None, supported: tuple[str, ...], default: str) -> str:
    """The user's choice, else what their Telegram app is set to, else the district's."""
    if user is not None:
        if user.language in supported:
            return user.language
        matched = match_language(user.telegram_language, supported)
        if matched:
            return matched
    return default


def set_language(user: User, language: str, supported: tuple[str, ...]) -> None:
    if language not in supported:
        raise ValueError(f"unsupported language {language!r}")
    user.language = language


async def chosen_chat_language(
    session: AsyncSession, chat_id: int, supported: Collection[str]
) -> str | None:
    """The language a group's admins chose with /lang, if any (and still supported)."""
    chosen = (await snapshots.chat_languages(session)).get(chat_id)
    return chosen if chosen in supported else None


async def chat_language(
    session: AsyncSession, chat_id: int, supported: tuple[str, ...], default: str
) -> str:
    """A group chat's language: the one its admins chose with /lang, else the district's."""
    return await chosen_chat_language(session, chat_id, supported) or default


async def set_chat_language(
    session: AsyncSession,
    *,
    chat_id: int,
    language: str,
    supported: tuple[str, ...],
    by: int,
    now: datetime,
) -> None:
    if language not in supported:
        raise ValueError(f"unsupported language {language!r}")
    snapshots.invalidate(session, snapshots.CHAT_LANGUAGES)
    chosen = await session.get(ChatLanguage, chat_id)
    if chosen is None:
        session.add(ChatLanguage(chat_id=chat_id, language=language, set_by=by, set_at=now))
        return
    chosen.language, chosen.set_by, chosen.set_at = language, by, now
