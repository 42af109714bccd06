"""Co-reporters (打包): residents who reported a problem someone had already reported and
follow that case instead of filing their own, or whose case was bundled into it.

A case's ``reporters`` counts its resident and its followers; it changes only here, with the
rows, so cards show it and fan-outs skip the query when nobody follows.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from models import Case, CaseFollower


async def of_case(session: AsyncSession, case: Case) -> list[CaseFollower]:
    if case.reporters <= 1:
        return []
    rows = await session.scalars(
        select(CaseFollower)
        .where(col(CaseFollower.case_id) == case.id)
        .order_by(col(CaseFollower.id))
    )
    return list(rows.all())


async def get(session: AsyncSession, case_id: int, user_id: int) -> CaseFollower | None:
    found: CaseFollower | None = await session.scalar(
        select(CaseFollower).where(
            col(CaseFollower.case_id) == case_id, col(CaseFollower.user_id) == user_id
        )
    )
    return found


async def follows(session: AsyncSession, case_id: int, user_id: int) -> bool:
    return await get(session, case_id, user_id) is not None


async def add(
    session: AsyncSession, case: Case, *, user_id: int, language: str, now: datetime
) -> bool:
    """The resident follows the case; False when they already do or it is their own."""
    assert case.id is not None
    if user_id == case.resident_id or await follows(session, case.id, user_id):
        return False
    session.add(CaseFollower(case_id=case.id, user_id=user_id, language=language, joined_at=now))
    case.reporters += 1
    return True


async def move(
    session: AsyncSession, source: Case, target: Case, *, now: datetime
) -> list[tuple[int, str]]:
    """Bundling: the source case's resident and followers follow the target from now on.
    Returns them (user id, language), to be told so."""
    people = [(source.resident_id, source.resident_language)] if source.from_telegram else []
    people += [(f.user_id, f.language) for f in await of_case(session, source)]
    await session.execute(delete(CaseFollower).where(col(CaseFollower.case_id) == source.id))
    source.reporters = 1
    for user_id, language in people:
        await add(session, target, user_id=user_id, language=language, now=now)
    return people


def mine(user_id: int) -> ColumnElement[bool]:
    """Cases a resident sees in /my: filed by them or followed."""
    followed = select(col(CaseFollower.case_id)).where(col(CaseFollower.user_id) == user_id)
    return or_(col(Case.resident_id) == user_id, col(Case.id).in_(followed))
