"""Answering a button press. Telegram keeps the presser's button spinning until the press is
answered, so a handler that takes a press answers it (silently, unless it has something to
say); a refused press is answered by the unit of work instead.

:func:`answer_press` speaks the presser's language (a private chat's buttons, a stale button
anywhere); :func:`answer_group_press` the group's, like the card it is on (the sender applies
the group's /lang choice)."""

from __future__ import annotations

from typing import Any

from aiogram.types import CallbackQuery
from sqlalchemy.ext.asyncio import AsyncSession

from bot.district import District
from bot.services.outbox import answer_callback


def answer_press(
    session: AsyncSession, query: CallbackQuery, lang: str, now: Any, **say: Any
) -> None:
    _answer(session, query, chat_id=query.from_user.id, locale=lang, now=now, say=say)


def answer_group_press(
    session: AsyncSession, query: CallbackQuery, district: District, now: Any, **say: Any
) -> None:
    assert query.message is not None
    chat_id, locale = query.message.chat.id, district.default_language
    _answer(session, query, chat_id=chat_id, locale=locale, now=now, say=say)


def _answer(
    session: AsyncSession,
    query: CallbackQuery,
    *,
    chat_id: int,
    locale: str,
    now: Any,
    say: dict[str, Any],
) -> None:
    answer_callback(
        session, chat_id=chat_id, callback_query_id=query.id, locale=locale, now=now, **say
    )
