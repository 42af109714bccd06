"""Writing to the outbox: the only way anything in Whistle reaches Telegram.

Rows are added to the caller's session, so they commit or roll back with the state change that
caused them. Nothing here talks to Telegram; :mod:`bot.sender` delivers.

Every row gets its lane here (:class:`models.Lane`): a callback answer is sent at once, in no
chat's order; ``bulk=True`` marks a notice nobody is waiting for (digests, scheduled reports,
re-announcements, dead-message reports), which yields the overall budget to the rest.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.i18n import N_
from models import Case, Lane, OutboxFile, OutboxMessage, OutboxStatus

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


def reply_keyboard(*rows: list[str | dict[str, Any]], persistent: bool = True) -> dict[str, Any]:
    """A reply keyboard of message ids (the labels are what the user's client sends back) or
    buttons already made (:func:`web_app_button`)."""
    return {
        "reply": [[b if isinstance(b, dict) else {"label": b} for b in row] for row in rows],
        "persistent": persistent,
    }


def web_app_button(label: str) -> dict[str, Any]:
    """A reply keyboard button that opens the Mini App (left out while the app is off)."""
    return {"label": label, "web_app": True}


REMOVE_KEYBOARD: dict[str, Any] = {"remove": True}


async def told_since(
    session: AsyncSession, *, chat_id: int, text_key: str, since: datetime
) -> bool:
    """Whether the chat was sent (or is about to be sent) this text after ``since``."""
    found = await session.scalar(
        select(col(OutboxMessage.id))
        .where(
            col(OutboxMessage.chat_id) == chat_id,
            col(OutboxMessage.text_key) == text_key,
            col(OutboxMessage.created_at) > since,
        )
        .limit(1)
    )
    return found is not None


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
    bulk: bool = False,
) -> OutboxMessage:
    """Queue one Bot API call. ``target`` is the message a reply or an edit is about: a link
    (resolved at send time, so it may name a message not sent yet) or a known message id.
    ``bulk``: nobody is waiting for it, so it goes after the interactive messages of other
    chats (never before an earlier message of its own chat, nor after a later one)."""
    if template and text_key:
        raise ValueError("give a template or a text_key, not both")
    if method == "answerCallbackQuery":
        lane = Lane.ANSWER
    else:
        lane = Lane.BULK if bulk else Lane.INTERACTIVE
    row = OutboxMessage(
        chat_id=chat_id,
        lane=lane,
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


def attach(session: AsyncSession, *, filename: str, content: bytes, now: datetime) -> str:
    """Keep a file to upload with an outbox row (``params={"upload": key}``) until it is
    delivered; returns its key."""
    key = secrets.token_hex(16)
    session.add(OutboxFile(key=key, filename=filename, content=content, created_at=now))
    return key


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
    reply_to: Link | int | None = None,
    bulk: bool = False,
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
        bulk=bulk,
    )


def edit_text(
    session: AsyncSession,
    *,
    chat_id: int,
    target: Link | int,
    locale: str,
    now: datetime,
    **content: Any,
) -> OutboxMessage:
    """Replace the text of a message the bot sent (``target``: its link or its id); the new
    ``content`` is a ``template`` or a ``text_key`` with its ``context``, and a ``keyboard``
    (none when not given), as for :func:`enqueue`."""
    return enqueue(
        session,
        chat_id=chat_id,
        locale=locale,
        now=now,
        method="editMessageText",
        target=target,
        **content,
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
    """Queued in the update's transaction like any send, but delivered at once: an answer is
    not a message, so it waits for no message of the presser's chat (Telegram refuses answers
    to presses older than about 15 seconds)."""
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


# -- dead messages -------------------------------------------------------------------------
# A report about undeliverable messages is an outbox row to the governance center, linked to
# the chat it is about (subject "dead_chat", the chat id), so the last report per chat is found
# by plain indexed columns.
DEAD_REPORT_SUBJECT = "dead_chat"
DEAD_REPORT_PURPOSE = "dead_report"
# At most one report per chat per cooldown, and at most so many reports in any hour: deaths in
# between are counted into the chat's next report ("since the previous report"), and every dead
# row stays in the outbox with its reason (see dead_summary).
DEAD_REPORT_COOLDOWN = timedelta(hours=1)
DEAD_REPORTS_PER_HOUR = 20
_LISTED = 3


def _kind(row: OutboxMessage) -> str:
    return row.template or row.text_key or row.method


def _case_id(row: OutboxMessage) -> int | None:
    subject: tuple[Any, Any] = (row.link_subject_type, row.link_subject_id)
    if subject[0] != "case" and row.target is not None:
        subject = (row.target.get("subject_type"), row.target.get("subject_id"))
    if subject[0] == "case" and str(subject[1]).isdigit():
        return int(subject[1])
    return None


def _merged(listed: Sequence[str], more: Sequence[str]) -> list[str]:
    merged = list(listed)
    for item in more:
        if item not in merged:
            merged.append(item)
    return merged[: _LISTED + 1]  # one more than shown says "and more"


def _shown(items: Sequence[str]) -> str:
    if not items:
        return "—"
    text = ", ".join(items[:_LISTED])
    return text + ", …" if len(items) > _LISTED else text


async def report_dead(
    session: AsyncSession,
    rows: Sequence[OutboxMessage],
    now: datetime,
    busy: Collection[int] = (),
    *,
    center_chat_id: int | None,
    locale: str,
) -> list[OutboxMessage]:
    """Tell the governance center about rows that just became dead, in their transaction.

    One report per chat: folded into that chat's report while it is still queued (``busy``
    names rows being sent right now, which can no longer change), else a new one unless the
    chat was reported within :data:`DEAD_REPORT_COOLDOWN` or the center already got
    :data:`DEAD_REPORTS_PER_HOUR` reports in the last hour. Rows to the center itself are never
    reported (a report about a report could loop). Returns the report rows written."""
    if not center_chat_id:
        return []
    by_chat: dict[int, list[OutboxMessage]] = {}
    for row in rows:
        if row.chat_id != center_chat_id:
            by_chat.setdefault(row.chat_id, []).append(row)
    written: list[OutboxMessage] = []
    for chat_id, dead in by_chat.items():
        kinds = _merged([], [_kind(r) for r in dead])
        cases = _merged([], await _case_numbers(session, dead))
        reason = dead[-1].last_error or "?"
        last = await session.scalar(
            select(OutboxMessage)
            .where(
                col(OutboxMessage.chat_id) == center_chat_id,
                col(OutboxMessage.link_subject_type) == DEAD_REPORT_SUBJECT,
                col(OutboxMessage.link_subject_id) == str(chat_id),
            )
            .order_by(col(OutboxMessage.id).desc())
            .limit(1)
        )
        if last is not None and last.status is OutboxStatus.PENDING and last.id not in busy:
            last.context = _report_context(
                chat_id,
                int(last.context.get("count", 0)) + len(dead),
                _merged(last.context.get("kind_list", []), kinds),
                _merged(last.context.get("case_list", []), cases),
                reason,
            )
            continue
        if last is not None and last.created_at > now - DEAD_REPORT_COOLDOWN:
            continue
        recent = await session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(
                col(OutboxMessage.chat_id) == center_chat_id,
                col(OutboxMessage.link_subject_type) == DEAD_REPORT_SUBJECT,
                col(OutboxMessage.created_at) > now - timedelta(hours=1),
            )
        )
        if (recent or 0) >= DEAD_REPORTS_PER_HOUR:
            continue
        await session.flush()
        count_query = (
            select(func.count())
            .select_from(OutboxMessage)
            .where(
                col(OutboxMessage.chat_id) == chat_id,
                col(OutboxMessage.status) == OutboxStatus.DEAD,
            )
        )
        if last is not None:
            count_query = count_query.where(col(OutboxMessage.next_attempt_at) > last.created_at)
        count = max(len(dead), int(await session.scalar(count_query) or 0))
        written.append(
            enqueue(
                session,
                chat_id=center_chat_id,
                locale=locale,
                now=now,
                text_key=N_("outbox.dead-report"),
                context=_report_context(chat_id, count, kinds, cases, reason),
                link=Link(DEAD_REPORT_SUBJECT, str(chat_id), DEAD_REPORT_PURPOSE),
                bulk=True,
            )
        )
    return written


def _report_context(
    chat_id: int, count: int, kinds: list[str], cases: list[str], reason: str
) -> dict[str, Any]:
    # The catalogue's parameters, plus the lists they were made from (for folding).
    return {
        "chat": chat_id,
        "count": count,
        "kinds": _shown(kinds),
        "cases": _shown(cases),
        "reason": reason[:300],
        "kind_list": kinds,
        "case_list": cases,
    }


async def _case_numbers(session: AsyncSession, rows: Sequence[OutboxMessage]) -> list[str]:
    ids = sorted({i for i in (_case_id(r) for r in rows) if i is not None})
    if not ids:
        return []
    found = await session.execute(
        select(col(Case.id), col(Case.number)).where(col(Case.id).in_(ids))
    )
    numbers = {case_id: number for case_id, number in found.all() if case_id is not None}
    return [numbers.get(i) or f"#{i}" for i in ids]
