"""Residents and staff as the bot knows them: who they are and which language they read."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.i18n import match_language
from models import ChatLanguage, User


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
    if user is None:
        user = User(
            id=user_id,
            first_name=first_name[:128],
            telegram_language=telegram_language,
            created_at=now,
            last_seen_at=now,
        )
        session.add(user)
        return user
    user.first_name = first_name[:128]
    user.telegram_language = telegram_language
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


async def chat_language(
    session: AsyncSession, chat_id: int, supported: tuple[str, ...], default: str
) -> str:
    """A group chat's language: the one its admins chose with /lang, else the district's."""
    chosen = await session.get(ChatLanguage, chat_id)
    if chosen is not None and chosen.language in supported:
        return chosen.language
    return default


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
    chosen = await session.get(ChatLanguage, chat_id)
    if chosen is None:
        session.add(ChatLanguage(chat_id=chat_id, language=language, set_by=by, set_at=now))
        return
    chosen.language, chosen.set_by, chosen.set_at = language, by, now
