"""Abuse and privacy: intake limits, blocking by an admin, erasing a resident's data on request
(/forgetme) and after the district's retention period.

Erasing keeps what the statistics need (category, units, times, status, rating) and removes
what points at a person: the Telegram id on the case, name, contact, door, description and
photos, comments, and the exact place (coordinates rounded to about a kilometre).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.db import PENDING_DIALOGS
from bot.district import District, Role
from bot.i18n import N_
from bot.services.errors import UserError
from models import (
    Case,
    CaseEvent,
    CaseFollower,
    CaseStatus,
    DialogState,
    HelpRequest,
    MessageLink,
    OutboxFile,
    OutboxMessage,
    OutboxStatus,
    PhotoUpload,
    User,
    Volunteer,
    WebAppDraft,
)
from models.case import OPEN

FORGOTTEN = 0  # the resident id of a case whose resident was erased
NOTICE_EVERY = timedelta(minutes=10)  # a blocked user is told at most this often
OUTBOX_KEPT = timedelta(days=30)  # delivered and dead outbox rows are pruned after this
DRAFT_KEPT = timedelta(days=30)  # a Mini App draft nobody touched, and its photos
MAX_REASON = 200


# -- intake -----------------------------------------------------------------------------------


async def check_intake(
    session: AsyncSession, district: District, *, resident_id: int, now: datetime
) -> None:
    """Refuse a new case when the resident filed ``[intake] per_hour`` in the last hour."""
    limit = district.intake.per_hour
    filed = await session.scalar(
        select(func.count())
        .select_from(Case)
        .where(
            col(Case.resident_id) == resident_id, col(Case.created_at) > now - timedelta(hours=1)
        )
    )
    if (filed or 0) >= limit:
        raise UserError(N_("intake.too-many"), limit=limit)


# -- blocking ---------------------------------------------------------------------------------


def _admin(district: District, user_id: int) -> None:
    person = district.person(user_id)
    if person is None or not person.has_role(Role.ADMIN):
        raise UserError(N_("block.not-admin"))


def parse_target(args: str | None) -> tuple[int, str | None]:
    """``<user id> [reason]`` from a command's arguments."""
    parts = (args or "").strip().split(maxsplit=1)
    if not parts or not parts[0].isdigit() or int(parts[0]) <= 0:
        raise UserError(N_("block.usage"))
    reason = parts[1].strip()[:MAX_REASON] if len(parts) > 1 else None
    return int(parts[0]), reason or None


async def block(
    session: AsyncSession,
    district: District,
    *,
    admin_id: int,
    user_id: int,
    reason: str | None,
    now: datetime,
) -> User:
    _admin(district, admin_id)
    if user_id == admin_id or district.person(user_id) is not None:
        raise UserError(N_("block.staff"))
    user = await session.get(User, user_id)
    if user is None:
        raise UserError(N_("block.unknown-user"), user_id=user_id)
    if user.blocked_at is not None:
        raise UserError(N_("block.already"), user_id=user_id)
    user.blocked_at, user.blocked_by, user.block_reason = now, admin_id, reason
    user.block_notice_at = None
    return user


async def unblock(
    session: AsyncSession, district: District, *, admin_id: int, user_id: int
) -> User:
    _admin(district, admin_id)
    user = await session.get(User, user_id)
    if user is None or user.blocked_at is None:
        raise UserError(N_("block.not-blocked"), user_id=user_id)
    user.blocked_at = user.blocked_by = user.block_reason = user.block_notice_at = None
    return user


def should_tell_blocked(user: User, now: datetime) -> bool:
    """Whether a blocked user's message gets the notice (not every message of a flood)."""
    if user.block_notice_at is not None and now - user.block_notice_at < NOTICE_EVERY:
        return False
    user.block_notice_at = now
    return True


# -- erasing ----------------------------------------------------------------------------------


def anonymise(case: Case, now: datetime) -> None:
    """Remove the resident's personal data from one case, keeping its statistics."""
    case.resident_id = FORGOTTEN
    case.resident_name = ""
    case.anonymous = True
    case.contact = None
    case.description = ""
    case.photos = []
    case.address = None
    case.media_url = None
    case.rating_comment = None
    if case.latitude is not None and case.longitude is not None:
        case.latitude, case.longitude = round(case.latitude, 2), round(case.longitude, 2)
    case.anonymised_at = now


async def _erase_case_traces(session: AsyncSession, case_ids: list[int]) -> None:
    """The resident's steps in the cases' timelines lose who and what they wrote, and their
    help requests the door."""
    if not case_ids:
        return
    await session.execute(
        update(HelpRequest)
        .where(col(HelpRequest.case_id).in_(case_ids))
        .values(door=None)
        .execution_options(synchronize_session=False)
    )
    # The photos filed from the Mini App, as the bot kept them.
    await session.execute(delete(PhotoUpload).where(col(PhotoUpload.case_id).in_(case_ids)))
    await session.execute(
        update(CaseEvent)
        .where(col(CaseEvent.case_id).in_(case_ids), col(CaseEvent.actor_role) == "resident")
        .values(actor_id=None, note=None)
        .execution_options(synchronize_session=False)
    )
    await session.execute(delete(CaseFollower).where(col(CaseFollower.case_id).in_(case_ids)))


async def open_involvement(session: AsyncSession, user_id: int) -> int:
    """Open cases the user filed or follows, and help requests they hold as a volunteer."""
    own = await session.scalar(
        select(func.count())
        .select_from(Case)
        .where(col(Case.resident_id) == user_id, col(Case.status).in_(OPEN))
    )
    followed = await session.scalar(
        select(func.count())
        .select_from(CaseFollower)
        .join(Case, col(Case.id) == col(CaseFollower.case_id))
        .where(col(CaseFollower.user_id) == user_id, col(Case.status).in_(OPEN))
    )
    held = await session.scalar(
        select(func.count())
        .select_from(HelpRequest)
        .join(Case, col(Case.id) == col(HelpRequest.case_id))
        .where(col(HelpRequest.volunteer_id) == user_id, col(Case.status) == CaseStatus.PUBLISHED)
    )
    return int(own or 0) + int(followed or 0) + int(held or 0)


async def forget(session: AsyncSession, *, user_id: int, now: datetime) -> int:
    """Erase what the bot keeps about a person who asked (/forgetme). Refused while they have
    open cases, follow one, or hold a help request: those still need to reach them. Returns
    how many cases were anonymised."""
    open_count = await open_involvement(session, user_id)
    if open_count:
        raise UserError(N_("forget.open-cases"), count=open_count)
    cases = (await session.scalars(select(Case).where(col(Case.resident_id) == user_id))).all()
    for case in cases:
        anonymise(case, now)
    await _erase_case_traces(session, [case.id for case in cases if case.id is not None])
    await session.execute(
        update(CaseEvent)
        .where(col(CaseEvent.actor_id) == user_id)
        .values(actor_id=None)
        .execution_options(synchronize_session=False)
    )
    await session.execute(delete(CaseFollower).where(col(CaseFollower.user_id) == user_id))
    # A Mini App draft and the photos uploaded for it.
    await session.execute(delete(WebAppDraft).where(col(WebAppDraft.user_id) == user_id))
    await session.execute(delete(PhotoUpload).where(col(PhotoUpload.user_id) == user_id))
    # Requests they helped with as a volunteer no longer say who.
    await session.execute(
        update(HelpRequest)
        .where(col(HelpRequest.volunteer_id) == user_id)
        .values(volunteer_id=None, volunteer_name=None)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        delete(DialogState).where(
            or_(col(DialogState.user_id) == user_id, col(DialogState.chat_id) == user_id)
        )
    )
    session.info.pop(PENDING_DIALOGS, None)  # nor may the update write them back
    await session.execute(delete(OutboxMessage).where(col(OutboxMessage.chat_id) == user_id))
    await session.execute(delete(MessageLink).where(col(MessageLink.chat_id) == user_id))
    await session.execute(delete(Volunteer).where(col(Volunteer.user_id) == user_id))
    await session.execute(delete(User).where(col(User.id) == user_id))
    # The user's own rows may be in the session (the update touched them): forget those too.
    session.expunge_all()
    return len(cases)


async def apply_retention(
    session: AsyncSession, district: District, *, now: datetime, limit: int = 500
) -> int:
    """Anonymise cases closed longer ago than ``[privacy] retention_days``, and prune old
    delivered outbox rows (they hold rendered names). Returns how many cases were anonymised."""
    await session.execute(
        delete(OutboxMessage).where(
            col(OutboxMessage.status) != OutboxStatus.PENDING,
            col(OutboxMessage.created_at) < now - OUTBOX_KEPT,
        )
    )
    # Files of messages that never went out (dead): an export holds case data.
    await session.execute(delete(OutboxFile).where(col(OutboxFile.created_at) < now - OUTBOX_KEPT))
    # Mini App drafts left alone, and the photos nobody filed with them.
    await session.execute(
        delete(WebAppDraft).where(col(WebAppDraft.updated_at) < now - DRAFT_KEPT)
    )
    await session.execute(
        delete(PhotoUpload).where(
            col(PhotoUpload.case_id).is_(None), col(PhotoUpload.created_at) < now - DRAFT_KEPT
        )
    )
    days = district.privacy.retention_days
    if days is None:
        return 0
    due = (
        await session.scalars(
            select(Case)
            .where(
                col(Case.status).in_((CaseStatus.CLOSED, CaseStatus.WITHDRAWN)),
                col(Case.closed_at) < now - timedelta(days=days),
                col(Case.anonymised_at).is_(None),
            )
            .order_by(col(Case.closed_at))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    for case in due:
        anonymise(case, now)
    await _erase_case_traces(session, [case.id for case in due if case.id is not None])
    return len(due)
