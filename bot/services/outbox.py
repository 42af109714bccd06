"""Writing to the outbox: the only way anything in Whistle reaches Telegram.

Rows are added to the caller's session, so they commit or roll back with the state change that
caused them. Nothing here talks to Telegram; :mod:`bot.sender` delivers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from models import OutboxMessage

# Set on a session that wrote outbox rows, so the sender is woken once it commits.
OUTBOX_WRITTEN = "outbox_written"


@dataclass(frozen=True)
class Link:
    """What a message is about; replies and button presses on it map back to this."""

    subject_type: str
    subject_id: str
    purpose: str = "message"

    def as_target(self) -> dict[str, str]:
        return {
            "subject_type": self.subject_type,
            "subject_id": self.subject_id,
            "purpose": self.purpose,
        }


def button(label: str, data: str, **label_params: Any) -> dict[str, Any]:
    """An inline button whose label is a message id, translated at send time."""
    return {"label": label, "params": label_params, "data": data}


def literal_button(text: str, data: str) -> dict[str, Any]:
    return {"text": text, "data": data}


def inline_keyboard(*rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"inline": [list(row) for row in rows]}


def reply_keyboard(*rows: list[str], persistent: bool = True) -> dict[str, Any]:
    """A reply keyboard of message ids (the labels are what the user's client sends back)."""
    return {
        "reply": [[{"label": label} for label in row] for row in rows],
        "persistent": persistent,
    }


REMOVE_KEYBOARD: dict[str, Any] = {"remove": True}


def enqueue(
    session: AsyncSession,
    *,
    chat_id: int,
    locale: str,
    now: datetime,
    method: str = "sendMessage",
    template: str | None = None,
    text_key: str | None = None,
    context: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    keyboard: dict[str, Any] | None = None,
    target: Link | int | None = None,
    link: Link | None = None,
) -> OutboxMessage:
    """Queue one Bot API call. ``target`` is the message a reply or an edit is about: a link
    (resolved at send time, so it may name a message not sent yet) or a known message id."""
    if template and text_key:
        raise ValueError("give a template or a text_key, not both")
    row = OutboxMessage(
        chat_id=chat_id,
        method=method,
        locale=locale,
        template=template,
        text_key=text_key,
        context=context or {},
        params=params or {},
        keyboard=keyboard,
        target=_target(target),
        link_subject_type=link.subject_type if link else None,
        link_subject_id=link.subject_id if link else None,
        link_purpose=link.purpose if link else None,
        created_at=now,
        next_attempt_at=now,
    )
    session.add(row)
    session.info[OUTBOX_WRITTEN] = True
    return row


def _target(target: Link | int | None) -> dict[str, Any] | None:
    if target is None:
        return None
    if isinstance(target, Link):
        return target.as_target()
    return {"message_id": target}


def send_text(
    session: AsyncSession,
    *,
    chat_id: int,
    locale: str,
    now: datetime,
    text_key: str,
    keyboard: dict[str, Any] | None = None,
    link: Link | None = None,
    reply_to: Link | None = None,
    **context: Any,
) -> OutboxMessage:
    """The common case: one catalogue message to one chat."""
    return enqueue(
        session,
        chat_id=chat_id,
        locale=locale,
        now=now,
        text_key=text_key,
        context=context,
        keyboard=keyboard,
        link=link,
        target=reply_to,
    )


def answer_callback(
    session: AsyncSession,
    *,
    chat_id: int,
    callback_query_id: str,
    locale: str,
    now: datetime,
    text_key: str | None = None,
    show_alert: bool = False,
    **context: Any,
) -> OutboxMessage:
    """Queued like any send, in the presser's chat, so it follows the messages before it."""
    return enqueue(
        session,
        chat_id=chat_id,
        locale=locale,
        now=now,
        method="answerCallbackQuery",
        text_key=text_key,
        context=context,
        params={"callback_query_id": callback_query_id, "show_alert": show_alert},
    )
