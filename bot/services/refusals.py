"""Refusals of replies in groups, without flooding the group.

A reply in a group that is refused (a volunteer who was too late to claim a help request, a
second answer to an answered card) is told so, but a group must not fill with refusals: many
people can reply to one card at the same moment, and Telegram lets a bot post only about twenty
messages a minute into a group (edits of the bot's cards included). So:

- someone who has a private chat with the bot (the last message the bot sent them there
  arrived) is told privately, with the case number;
- anyone else gets a reply in the group, but only the first refusal of the same kind about the
  same subject in that group within :data:`WINDOW` is a message: later ones are folded into it
  ("also tried: N"), an ``editMessageText`` through the outbox, where queued edits of one
  message coalesce into the newest.

The folding state is a row of :class:`models.GroupRefusal` per (chat, subject, reason), changed
only by conditional statements in the refusing transaction (an insert that does nothing on a
conflict, then an UPDATE that counts within the window or one that opens a new window), so
concurrent handlers and several replicas fold into one message with the right count.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.services.outbox import Link, edit_text, enqueue
from models import Case, GroupRefusal, OutboxMessage, OutboxStatus

WINDOW = timedelta(minutes=1)
LINK_SUBJECT = "group_refusal"
LINK_PURPOSE = "refusal"
GROUP_TEMPLATE = "group_refusal.html"
PRIVATE_TEMPLATE = "refusal_private.html"


def case_subject(case_id: int) -> str:
    return f"case:{case_id}"


async def case_number(session: AsyncSession, case_id: int) -> str | None:
    number: str | None = await session.scalar(
        select(col(Case.number)).where(col(Case.id) == case_id)
    )
    return number


async def reachable_privately(session: AsyncSession, user_id: int) -> bool:
    """Whether the bot can write to this person: the last message it finished sending to
    their private chat (whose id is theirs) was delivered, not refused."""
    status = await session.scalar(
        select(col(OutboxMessage.status))
        .where(
            col(OutboxMessage.chat_id) == user_id,
            col(OutboxMessage.status).in_([OutboxStatus.DELIVERED, OutboxStatus.DEAD]),
        )
        .order_by(col(OutboxMessage.id).desc())
        .limit(1)
    )
    return status is OutboxStatus.DELIVERED


async def refuse_reply(
    session: AsyncSession,
    *,
    chat_id: int,
    message_id: int,
    user_id: int,
    user_locale: str,
    group_locale: str,
    subject: str,
    number: str | None,
    reason: str,
    params: dict[str, Any],
    now: datetime,
) -> None:
    """Tell the author of a refused reply in a group why: privately if the bot may write to
    them, else folded into the group's refusal message of this minute."""
    if await reachable_privately(session, user_id):
        enqueue(
            session,
            chat_id=user_id,
            locale=user_locale,
            now=now,
            template=PRIVATE_TEMPLATE,
            context={"number": number, "reason": reason, "params": params},
        )
        return
    await fold(
        session,
        chat_id=chat_id,
        message_id=message_id,
        locale=group_locale,
        subject=subject,
        reason=reason,
        params=params,
        now=now,
    )


def _insert(session: AsyncSession, values: dict[str, Any]) -> Any:
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return (
        dialect.insert(GroupRefusal)
        .values(**values)
        .on_conflict_do_nothing()
        .returning(col(GroupRefusal.id))
    )


async def fold(
    session: AsyncSession,
    *,
    chat_id: int,
    message_id: int,
    locale: str,
    subject: str,
    reason: str,
    params: dict[str, Any],
    now: datetime,
) -> GroupRefusal:
    """Count one refusal in the group: a new message (a reply to the refused one) when it
    opens a window, else an edit of the window's message with the new count. Returns the row
    as this transaction left it."""
    key = (
        col(GroupRefusal.chat_id) == chat_id,
        col(GroupRefusal.subject) == subject,
        col(GroupRefusal.reason) == reason,
    )
    fresh = col(GroupRefusal.window_start) > now - WINDOW
    new_id = await session.scalar(
        _insert(
            session,
            {
                "chat_id": chat_id,
                "subject": subject,
                "reason": reason,
                "serial": 1,
                "count": 1,
                "window_start": now,
                "updated_at": now,
            },
        )
    )
    opened = new_id is not None
    while not opened:
        # The row exists: count into its window while it lasts (a concurrent refusal that
        # holds the row makes this wait, then count on top of it) ...
        counted = await session.scalar(
            update(GroupRefusal)
            .where(*key, fresh)
            .values(count=col(GroupRefusal.count) + 1, updated_at=now)
            .returning(col(GroupRefusal.id))
            .execution_options(synchronize_session=False)
        )
        if counted is not None:
            break
        # ... or open the next window (if a concurrent refusal opened it first, this matches
        # nothing and the loop counts into that one).
        new_id = await session.scalar(
            update(GroupRefusal)
            .where(*key, ~fresh)
            .values(
                serial=col(GroupRefusal.serial) + 1,
                count=1,
                window_start=now,
                updated_at=now,
                outbox_id=None,
            )
            .returning(col(GroupRefusal.id))
            .execution_options(synchronize_session=False)
        )
        opened = new_id is not None
    row = await session.scalar(
        select(GroupRefusal).where(*key).execution_options(populate_existing=True)
    )
    assert row is not None and row.id is not None
    link = Link(LINK_SUBJECT, f"{row.id}.{row.serial}", LINK_PURPOSE)
    context = {"reason": reason, "params": params, "others": row.count - 1}
    if opened:
        sent = enqueue(
            session,
            chat_id=chat_id,
            locale=locale,
            now=now,
            template=GROUP_TEMPLATE,
            context=context,
            target=message_id,
            link=link,
        )
        await session.flush()
        row.outbox_id = sent.id
        await session.flush()
    else:
        edit_text(
            session,
            chat_id=chat_id,
            target=link,
            locale=locale,
            now=now,
            template=GROUP_TEMPLATE,
            context=context,
        )
    return row
