"""A group's own budget: during a burst, new cards are folded into one digest.

Telegram lets a bot post about twenty messages a minute into one group
(``SEND_GROUP_PER_MINUTE``). A new case's card queued behind a long queue in its group would
appear minutes after filing. So before a card is queued, the group's minute is measured: when
the card would not fit (the group's messages of the last minute, those still queued and the
card's own, against half the group's minute: the other half is kept for digests), or when
cards of the group are folded already (so that cards keep their order), the card is folded instead
(:class:`models.CardFold`):

- the case becomes a line of the group's open digest (:class:`models.FoldDigest`), one
  message edited in place as lines are added (queued edits of one message coalesce in the
  sender, so a burst costs the group one call every few seconds, not one per case);
- each line has its buttons: "open" posts that case's own card now, and a department card's
  line can be acknowledged (应哨) right there, which stops its reminder clock;
- once the group's queue is short again, :func:`release_due` (a scheduled job) gives every
  folded case its own card, drawn from the case as it is then, oldest first and only as many
  as the group's minute still takes (leaving five a minute for the rest, and half a minute's
  budget at most a run); a case that left the group meanwhile gets none. A digest whose lines
  are all released says so and loses its buttons.

Edits of a folded card that was never posted are moot: the sender drops them (the card, once
posted, shows the case as it is). How a card is drawn again belongs to the module that drew it
first; it registers a :data:`Poster` here with :func:`reposts`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.callbacks import CaseAction, OpenFolded
from bot.district import District
from bot.i18n import N_
from bot.services import notify
from bot.services.errors import UserError
from bot.services.outbox import Link, button, enqueue, inline_keyboard
from models import CardFold, Case, CaseStatus, FoldDigest, Lane, OutboxMessage, OutboxStatus

# ``session.info`` key (set on the app's session factory from SEND_GROUP_PER_MINUTE): how many
# messages a group may receive in a minute. Without it nothing is folded.
GROUP_BUDGET = "group_per_minute"
# Lines in one digest message (two buttons a line at most, under Telegram's 100; the text
# under its 4096 characters, tests/test_template_limits.py). With half a group's minute for
# cards, the other ten messages show 300 more cases in the first minute of a burst.
DIGEST_LINES = 30
# At most this many of a group's messages pending (of its fold limit, a third): the burst has
# passed, folded cards are released.
QUIET_SHARE = 3
# Of a group's minute, never taken by released cards (digest edits, replies, reminders).
RELEASE_RESERVE = 5
# Telegram's span for a group's budget.
WINDOW = timedelta(minutes=1)
DIGEST_SUBJECT = "fold"
DIGEST_PURPOSE = "fold-digest"

# Draws a folded case's card again; False when the case no longer belongs in that group.
Poster = Callable[[AsyncSession, District, Case, CardFold, datetime], Awaitable[bool]]
_POSTERS: dict[str, Poster] = {}


def reposts(purpose: str) -> Callable[[Poster], Poster]:
    """Register how a card of ``purpose`` is drawn again when its fold is released."""

    def register(poster: Poster) -> Poster:
        _POSTERS[purpose] = poster
        return poster

    return register


def fold_limit(session: AsyncSession) -> int | None:
    """A group's messages of the last minute and still queued beyond which a new card is
    folded (half its minute: the other half shows the rest, thirty cases a digest message);
    None: never fold."""
    per_minute = session.info.get(GROUP_BUDGET)
    if per_minute is None:
        return None
    return max(1, int(per_minute) // 2)


def _pending_in(chat_id: int) -> Any:
    return (
        select(func.count())
        .select_from(OutboxMessage)
        .where(
            col(OutboxMessage.status) == OutboxStatus.PENDING,
            col(OutboxMessage.chat_id) == chat_id,
            col(OutboxMessage.lane) != Lane.ANSWER,
        )
        .scalar_subquery()
    )


def _sent_in(chat_id: int, now: datetime) -> Any:
    """The group's messages of the last minute (sends and edits: both spend its budget)."""
    return (
        select(func.count())
        .select_from(OutboxMessage)
        .where(
            col(OutboxMessage.chat_id) == chat_id,
            col(OutboxMessage.delivered_at) > now - WINDOW,
            col(OutboxMessage.lane) != Lane.ANSWER,
        )
        .scalar_subquery()
    )


def _open_digest(chat_id: int) -> Any:
    return (
        select(col(FoldDigest.id))
        .where(col(FoldDigest.chat_id) == chat_id, col(FoldDigest.finished_at).is_(None))
        .order_by(col(FoldDigest.id).desc())
        .limit(1)
        .scalar_subquery()
    )


async def fold(
    session: AsyncSession,
    *,
    case: Case,
    chat_id: int,
    purpose: str,
    rows: int,
    locale: str,
    now: datetime,
    extra: dict[str, Any] | None = None,
) -> bool:
    """Fold the case's card (``rows`` messages) into the group's digest when the group is in
    a burst; True when folded (the caller then queues no card)."""
    limit = fold_limit(session)
    if limit is None:
        return False
    pending, sent, open_id = (
        await session.execute(
            select(_pending_in(chat_id), _sent_in(chat_id, now), _open_digest(chat_id))
        )
    ).one()
    if open_id is None and sent + pending + rows <= limit:
        return False
    assert case.id is not None
    digest_id, opened = await _take_line(session, chat_id, open_id, now)
    session.add(
        CardFold(
            digest_id=digest_id,
            chat_id=chat_id,
            case_id=case.id,
            purpose=purpose,
            extra=extra or {},
            folded_at=now,
        )
    )
    await _draw(session, digest_id, chat_id=chat_id, locale=locale, now=now, first=opened)
    return True


async def _take_line(
    session: AsyncSession, chat_id: int, open_id: int | None, now: datetime
) -> tuple[int, bool]:
    """A line in the open digest (its row locked by the UPDATE until commit, so concurrent
    folds into one digest draw it one after the other), or in a new one when it is full;
    returns the digest and whether it is new."""
    if open_id is not None:
        taken = await session.scalar(
            update(FoldDigest)
            .where(col(FoldDigest.id) == open_id, col(FoldDigest.lines) < DIGEST_LINES)
            .values(lines=col(FoldDigest.lines) + 1)
            .returning(col(FoldDigest.id))
        )
        if taken is not None:
            return int(taken), False
    digest = FoldDigest(chat_id=chat_id, opened_at=now, lines=1)
    session.add(digest)
    await session.flush()
    assert digest.id is not None
    return digest.id, True


def _digest_link(digest_id: int) -> Link:
    return Link(DIGEST_SUBJECT, str(digest_id), DIGEST_PURPOSE)


async def redraw(
    session: AsyncSession, digest_id: int, *, chat_id: int, locale: str, now: datetime
) -> None:
    """Edit a digest to what its lines' cases show now (a resident's data was erased)."""
    await _draw(session, digest_id, chat_id=chat_id, locale=locale, now=now)


async def _draw(
    session: AsyncSession,
    digest_id: int,
    *,
    chat_id: int,
    locale: str,
    now: datetime,
    first: bool = False,
) -> None:
    """Queue the digest as it is now: the ``first`` drawing (of a digest just opened) posts
    it, later ones edit it."""
    await session.flush()
    lines = (
        await session.execute(
            select(CardFold, Case)
            .join(Case, col(Case.id) == col(CardFold.case_id))
            .where(col(CardFold.digest_id) == digest_id)
            .order_by(col(CardFold.id))
        )
    ).all()
    items = [_item(f, c) for f, c in lines]
    released = sum(1 for f, _ in lines if f.released_at is not None)
    finished = released == len(lines)
    context = {"items": items, "count": len(items), "released": released, "finished": finished}
    keyboard = None if finished else _keyboard([(f, c) for f, c in lines])
    link = _digest_link(digest_id)
    enqueue(
        session,
        chat_id=chat_id,
        locale=locale,
        now=now,
        method="sendMessage" if first else "editMessageText",
        template="fold_digest.html",
        context=context,
        keyboard=keyboard,
        link=link if first else None,
        target=None if first else link,
    )


def _item(folded: CardFold, case: Case) -> dict[str, Any]:
    summary = case.address or case.description
    return {
        **notify.case_facts(case),
        "summary": summary,
        "outcome": folded.outcome,
    }


def _keyboard(lines: list[tuple[CardFold, Case]]) -> dict[str, Any] | None:
    rows = []
    for folded, case in lines:
        if folded.released_at is not None:
            continue
        assert folded.id is not None and case.id is not None
        row = [button(N_("fold.button.open"), OpenFolded(folded.id).pack(), number=case.number)]
        if folded.purpose == "card" and case.status is CaseStatus.DISPATCHED:
            row.insert(
                0,
                button(
                    N_("fold.button.ack"), CaseAction("ack", case.id).pack(), number=case.number
                ),
            )
        rows.append(row)
    return inline_keyboard(*rows) if rows else None


async def changed(session: AsyncSession, *, case: Case, locale: str, now: datetime) -> None:
    """The case changed while its card is folded: its digest line follows."""
    assert case.id is not None
    digests = (
        await session.execute(
            select(col(CardFold.digest_id), col(CardFold.chat_id)).where(
                col(CardFold.case_id) == case.id, col(CardFold.released_at).is_(None)
            )
        )
    ).all()
    for digest_id, chat_id in digests:
        await _draw(session, digest_id, chat_id=chat_id, locale=locale, now=now)


async def open_now(
    session: AsyncSession, district: District, *, fold_id: int, chat_id: int, now: datetime
) -> str:
    """Someone in the group asked for a folded case's own card: posted now, whatever the
    queue. Returns the case number."""
    folded = await session.get(CardFold, fold_id)
    if folded is None or folded.chat_id != chat_id:
        raise UserError(N_("errors.stale-button"))
    case = await session.get(Case, folded.case_id)
    if case is None:
        raise UserError(N_("errors.stale-button"))
    if folded.released_at is not None:
        raise UserError(N_("fold.already-open"), number=case.number)
    await _release(session, district, folded, case, now)
    await _draw(
        session, folded.digest_id, chat_id=chat_id, locale=district.default_language, now=now
    )
    return case.number


async def _release(
    session: AsyncSession, district: District, folded: CardFold, case: Case | None, now: datetime
) -> bool:
    poster = _POSTERS.get(folded.purpose)
    posted = (
        case is not None
        and poster is not None
        and await poster(session, district, case, folded, now)
    )
    folded.released_at = now
    folded.outcome = "posted" if posted else "gone"
    return posted


async def any_folded(session: AsyncSession) -> bool:
    return (
        await session.scalar(
            select(col(FoldDigest.id)).where(col(FoldDigest.finished_at).is_(None)).limit(1)
        )
    ) is not None


async def release_due(session: AsyncSession, district: District, *, now: datetime) -> int:
    """In every group whose burst has passed (few of its messages pending), give folded cases
    their own cards, oldest first, as many as its budget takes; digests whose lines are all
    released are drawn a last time. Returns the folds released."""
    limit = fold_limit(session)
    chats = (
        await session.scalars(
            select(col(FoldDigest.chat_id)).where(col(FoldDigest.finished_at).is_(None)).distinct()
        )
    ).all()
    released = 0
    for chat_id in chats:
        pending, sent = (
            await session.execute(select(_pending_in(chat_id), _sent_in(chat_id, now)))
        ).one()
        if limit is not None and pending > limit // QUIET_SHARE:
            continue
        # What the group's minute still takes less a reserve for digests and replies, and
        # half a minute's worth at most a run, so that a digest edit queued after these cards
        # still goes out well within the minute.
        room = None
        if limit is not None:
            per_minute = int(session.info[GROUP_BUDGET])
            room = min(per_minute - RELEASE_RESERVE - sent, limit) - pending
        if room is not None and room <= 0:
            continue
        folds = (
            await session.scalars(
                select(CardFold)
                .where(col(CardFold.chat_id) == chat_id, col(CardFold.released_at).is_(None))
                .order_by(col(CardFold.id))
                .limit(DIGEST_LINES)
            )
        ).all()
        touched: set[int] = set()
        for folded in folds:
            case = await session.get(Case, folded.case_id)
            cost = notify.card_rows(case, folded.purpose) if case is not None else 0
            if room is not None and touched and cost > room:
                break
            if await _release(session, district, folded, case, now) and room is not None:
                room -= cost
            touched.add(folded.digest_id)
            released += 1
        for digest_id in sorted(touched):
            await _draw(
                session, digest_id, chat_id=chat_id, locale=district.default_language, now=now
            )
        await _finish(session, chat_id, now)
    return released


async def _finish(session: AsyncSession, chat_id: int, now: datetime) -> None:
    """Digests of the chat with no line left to release are finished."""
    await session.flush()
    unreleased = (
        select(col(CardFold.id))
        .where(col(CardFold.digest_id) == col(FoldDigest.id), col(CardFold.released_at).is_(None))
        .exists()
    )
    await session.execute(
        update(FoldDigest)
        .where(
            col(FoldDigest.chat_id) == chat_id,
            col(FoldDigest.finished_at).is_(None),
            ~unreleased,
        )
        .values(finished_at=now)
    )


async def moot_edit(session: AsyncSession, *, chat_id: int, target: dict[str, Any]) -> bool:
    """Whether an edit of a message that was never sent is of a folded card (the sender then
    drops it: the card, when it is posted, shows the case as it is)."""
    if target.get("subject_type") != "case":
        return False
    try:
        case_id = int(target["subject_id"])
    except (KeyError, ValueError):
        return False
    found = await session.scalar(
        select(col(CardFold.id))
        .where(
            col(CardFold.chat_id) == chat_id,
            col(CardFold.case_id) == case_id,
            col(CardFold.purpose) == target.get("purpose"),
        )
        .limit(1)
    )
    return found is not None
