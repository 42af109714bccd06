"""How a case ends on the resident's side: 评卷 (the rating, and what an unsatisfied one
reopens), a comment on the rating, a co-reporter's rating, withdrawing a case nobody has
acknowledged, and closing answered cases nobody rated in time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.district import District
from bot.i18n import N_
from bot.services import followers, ladder, notify
from bot.services.cases import (
    MAX_COMMENT,
    Person,
    _event,
    _move,
    change_status,
    get_case,
    record,
    refresh,
    tell_reporters,
)
from bot.services.errors import UserError
from bot.services.outbox import enqueue
from bot.services.routing import CENTER, chat_of
from models import Case, CaseEvent, CaseStatus, HelpRequest, Rating


async def _own_case(session: AsyncSession, case_id: int, resident_id: int) -> Case:
    """The resident's own case; another's is "not found", exactly like one that does not
    exist, so case ids and numbers reveal nothing."""
    case = await session.get(Case, case_id, with_for_update=True)
    if case is None or case.resident_id != resident_id:
        raise UserError(N_("case.not-found"))
    return case


RATINGS = {"s": Rating.SATISFIED, "b": Rating.BASICALLY, "u": Rating.UNSATISFIED}


async def rate(
    session: AsyncSession,
    district: District,
    *,
    case_id: int,
    resident_id: int,
    rating: Rating,
    now: datetime,
) -> Case:
    """评卷. Unsatisfied reopens the case with the same department; the others close it.

    The rule for co-reporters: they are asked too and their ratings are recorded (events, shown
    in timelines), but the case's state follows the rating of the resident who filed it, so
    one case never has two outcomes and nobody can close a case for someone else."""
    case = await get_case(session, case_id)
    if case.resident_id != resident_id:
        await _co_rate(session, case, resident_id=resident_id, rating=rating, now=now)
        return case
    if case.status is not CaseStatus.ANSWERED:
        raise UserError(N_("rate.already"), number=case.number)
    case.rating = rating
    case.rating_due_at = None
    resident = Person(resident_id, case.resident_name, case.resident_language)
    if rating is Rating.UNSATISFIED:
        previous = _move(case, CaseStatus.REOPENED, now)
        case.reopen_count += 1
        _event(
            session,
            case,
            kind="reopened",
            now=now,
            actor=resident,
            role="resident",
            previous=previous,
            rating=rating.value,
        )
        await tell_reporters(
            session,
            district,
            case,
            now=now,
            text_key=N_("resident.reopened"),
            follower_key=N_("resident.reopened-followed"),
            unit=case.department,
        )
    else:
        await _close(
            session,
            district,
            case,
            actor=resident,
            role="resident",
            text_key=N_("resident.closed-rated"),
            now=now,
        )
    await refresh(session, district, case, now)
    return case


async def _close(
    session: AsyncSession,
    district: District,
    case: Case,
    *,
    actor: Person | None,
    role: str,
    text_key: str,
    now: datetime,
) -> None:
    """交卷 with the rating set: everyone who reported the case is told, and the cases
    bundled into it close with it."""
    assert case.rating is not None
    change_status(
        session,
        case,
        CaseStatus.CLOSED,
        kind="closed",
        now=now,
        actor=actor,
        role=role,
        rating=case.rating.value,
    )
    await tell_reporters(
        session,
        district,
        case,
        now=now,
        text_key=text_key,
        follower_key=N_("resident.closed-followed"),
    )
    await _close_bundle(session, case, now)


async def _co_rate(
    session: AsyncSession, case: Case, *, resident_id: int, rating: Rating, now: datetime
) -> None:
    """A co-reporter's rating of the latest answer: recorded, once per answer."""
    assert case.id is not None
    follower = await followers.get(session, case.id, resident_id)
    if follower is None or case.answered_at is None:
        raise UserError(N_("errors.stale-button"))
    if case.status is not CaseStatus.ANSWERED:
        # The resident who filed it rated first (or it closed unrated): the question was
        # about an answer that is settled, and a button never acts on a settled case.
        raise UserError(N_("rate.moved-on"), number=case.number)
    earlier = await session.scalar(
        select(col(CaseEvent.id)).where(
            col(CaseEvent.case_id) == case.id,
            col(CaseEvent.kind) == "co_rated",
            col(CaseEvent.actor_id) == resident_id,
            col(CaseEvent.at) >= case.answered_at,
        )
    )
    if earlier is not None:
        raise UserError(N_("rate.already"), number=case.number)
    co_reporter = Person(resident_id, "", follower.language)
    record(
        session,
        case,
        kind="co_rated",
        now=now,
        actor=co_reporter,
        role="resident",
        rating=rating.value,
    )


async def _close_bundle(session: AsyncSession, lead: Case, now: datetime) -> None:
    """Closing a bundle's lead closes the cases bundled into it, with the lead's rating.
    Their residents follow the lead, so they have been told already."""
    if lead.id is None or lead.bundle_id != lead.id:
        return
    members = await session.scalars(
        select(Case)
        .where(col(Case.bundle_id) == lead.id, col(Case.status) == CaseStatus.BUNDLED)
        .order_by(col(Case.id))
        .with_for_update()
    )
    for member in members.all():
        member.rating = lead.rating
        change_status(
            session,
            member,
            CaseStatus.CLOSED,
            kind="closed",
            now=now,
            actor=None,
            role="system",
            rating=lead.rating.value if lead.rating else None,
            bundle=lead.number,
        )


async def comment_on_rating(
    session: AsyncSession,
    district: District,
    *,
    case_id: int,
    resident_id: int,
    text: str,
    now: datetime,
) -> Case:
    """The optional comment after a rating; a reopened case's department sees it on its card."""
    case = await _own_case(session, case_id, resident_id)
    text = text.strip()
    if not text:
        raise UserError(N_("rate.comment-empty"))
    if len(text) > MAX_COMMENT:
        raise UserError(N_("rate.comment-too-long"), limit=MAX_COMMENT, length=len(text))
    case.rating_comment = text
    resident = Person(resident_id, case.resident_name, case.resident_language)
    _event(session, case, kind="commented", now=now, actor=resident, role="resident", note=text)
    chat_id = await chat_of(session, district, case.department) if case.department else None
    if chat_id is not None:
        notify.reply_to_card(
            session,
            case=case,
            chat_id=chat_id,
            lang=district.default_language,
            now=now,
            text_key=N_("card.resident-comment"),
            comment=text,
            rating=case.rating.value if case.rating else "",
        )
    notify.tell_resident(session, case=case, now=now, text_key=N_("rate.comment-thanks"))
    return case


def is_shared(case: Case) -> bool:
    """Other residents follow the case, or cases were bundled into it: its resident cannot
    take it back from them."""
    return case.reporters > 1 or case.bundle_id is not None


async def withdraw(
    session: AsyncSession, district: District, *, case_id: int, resident_id: int, now: datetime
) -> Case:
    """The resident takes back a case that no department has acknowledged."""
    case = await _own_case(session, case_id, resident_id)
    if case.status not in (CaseStatus.TRIAGE, CaseStatus.DISPATCHED, CaseStatus.PUBLISHED):
        raise UserError(N_("withdraw.too-late"), number=case.number)
    if is_shared(case):
        raise UserError(N_("withdraw.shared"), number=case.number)
    previous = _move(case, CaseStatus.WITHDRAWN, now)
    await ladder.stop(session, case)
    resident = Person(resident_id, case.resident_name, case.resident_language)
    _event(
        session,
        case,
        kind="withdrawn",
        now=now,
        actor=resident,
        role="resident",
        previous=previous,
    )
    lang = district.default_language
    if previous is CaseStatus.DISPATCHED:
        await refresh(session, district, case, now)
    elif previous is CaseStatus.TRIAGE and (center := await chat_of(session, district, CENTER)):
        notify.retire_card(
            session,
            case=case,
            chat_id=center,
            lang=lang,
            now=now,
            template="center_card.html",
            purpose=notify.CENTER_CARD,
        )
    elif previous is CaseStatus.PUBLISHED:
        await _withdraw_help(session, district, case, now)
    notify.tell_resident(session, case=case, now=now, text_key=N_("withdraw.done"))
    return case


async def _withdraw_help(
    session: AsyncSession, district: District, case: Case, now: datetime
) -> None:
    request = await session.get(HelpRequest, case.id)
    assert request is not None
    request.due_at = None
    if volunteers := district.volunteer_chat_for(case.community):
        notify.retire_card(
            session,
            case=case,
            chat_id=volunteers,
            lang=district.default_language,
            now=now,
            template="help_card.html",
            purpose=notify.HELP_CARD,
            **notify.help_fields(request),
        )
    if request.volunteer_id is not None:
        # The volunteer who took it need not go any more.
        enqueue(
            session,
            chat_id=request.volunteer_id,
            locale=district.default_language,
            now=now,
            text_key=N_("help.withdrawn"),
            context={"number": case.number},
        )


def _unrated_due(now: datetime) -> tuple[Any, ...]:
    return (col(Case.status) == CaseStatus.ANSWERED, col(Case.rating_due_at) <= now)


async def any_unrated_due(session: AsyncSession, *, now: datetime) -> bool:
    """Whether an answered case's rating time has run out (a plain read, for a read
    transaction; :func:`close_unrated` reads them again)."""
    found = await session.scalar(select(col(Case.id)).where(*_unrated_due(now)).limit(1))
    return found is not None


async def close_unrated(session: AsyncSession, district: District, *, now: datetime) -> int:
    """Answered cases nobody rated in time close as unrated (a durable due time)."""
    due = (
        await session.scalars(
            select(Case)
            .where(*_unrated_due(now))
            .order_by(col(Case.rating_due_at))
            .limit(500)
            .with_for_update(skip_locked=True)
        )
    ).all()
    for case in due:
        case.rating, case.rating_due_at = Rating.UNRATED, None
        await _close(
            session,
            district,
            case,
            actor=None,
            role="system",
            text_key=N_("resident.closed-unrated"),
            now=now,
        )
        await refresh(session, district, case, now)
    return len(due)
