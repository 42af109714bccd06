"""What handlers say back: a message to the chat one came from, and the answer to a button
press. Telegram keeps the presser's button spinning until the press is answered, so a handler
that takes a press answers it (silently, unless it has something to say); a refused press is
answered by the unit of work instead.

:func:`answer_press` speaks the presser's language (a private chat's buttons, a stale button
anywhere); :func:`answer_group_press` the group's, like the card it is on (the sender applies
the group's /lang choice)."""

from __future__ import annotations

from typing import Any

from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.district import District
from bot.services.outbox import answer_callback, send_text


def say(
    session: AsyncSession, message: Message, lang: str, now: Any, text_key: str, **more: Any
) -> None:
    """One catalogue message to the chat ``message`` came from, in ``lang`` (``more``: as for
    :func:`bot.services.outbox.send_text`)."""
    send_text(session, chat_id=message.chat.id, locale=lang, now=now, text_key=text_key, **more)


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
