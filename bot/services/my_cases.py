"""What a resident reads of their cases: the list (their own and those they follow) and one
case's timeline."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.i18n import N_
from bot.services import followers
from bot.services.errors import UserError
from models import Case, CaseEvent


async def cases_of(
    session: AsyncSession, resident_id: int, *, page: int, page_size: int = 5
) -> tuple[list[Case], int]:
    """The resident's cases and those they follow, newest first, and how many there are."""
    mine = followers.mine(resident_id)
    total = await session.scalar(select(func.count()).select_from(Case).where(mine))
    rows = await session.scalars(
        select(Case)
        .where(mine)
        .order_by(col(Case.created_at).desc(), col(Case.id).desc())
        .offset(max(page, 0) * page_size)
        .limit(page_size)
    )
    return list(rows.all()), int(total or 0)


async def timeline(
    session: AsyncSession, *, case_id: int, resident_id: int
) -> tuple[Case, list[CaseEvent]]:
    """A case's audit events, for its resident or a co-reporter."""
    case = await session.get(Case, case_id)
    if case is None or (
        case.resident_id != resident_id
        and not await followers.follows(session, case_id, resident_id)
    ):
        raise UserError(N_("case.not-found"))  # another's case is indistinguishable
    events = await session.scalars(
        select(CaseEvent)
        .where(col(CaseEvent.case_id) == case_id)
        .order_by(col(CaseEvent.at), col(CaseEvent.id))
    )
    return case, list(events.all())
