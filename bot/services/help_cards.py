"""A help request (邻里互助) put before the volunteers: its own part (``help_requests``) written
with the case, and its card in the community's volunteer group, folded into a digest while the
group is over its budget and posted once the burst has passed. What happens to it afterwards
(claims, progress, due times) is :mod:`bot.services.volunteers`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.district import District
from bot.services import folding, notify
from bot.services.outbox import enqueue
from models import CardFold, Case, CaseStatus, HelpRequest


async def publish(
    session: AsyncSession,
    district: District,
    case: Case,
    *,
    when: str | None,
    door: str | None,
    skills: Sequence[str],
    now: datetime,
) -> HelpRequest:
    """Write the request's own part and announce it in its community's volunteer group."""
    assert case.id is not None
    request = HelpRequest(case_id=case.id, needed_when=when, door=door, skills=list(skills))
    session.add(request)
    chat_id = district.volunteer_chat_for(case.community)
    if chat_id is None:
        return request
    # Announced again if nobody takes it (bot.services.volunteers.fire_due).
    request.due_at, request.stage = now + district.volunteers.reannounce_delay, 0
    lang = district.default_language
    if not await folding.fold(
        session, case=case, chat_id=chat_id, purpose=notify.HELP_CARD, rows=1, locale=lang, now=now
    ):
        _post(session, case, request, chat_id, lang, now)
    return request


def _post(
    session: AsyncSession,
    case: Case,
    request: HelpRequest,
    chat_id: int,
    lang: str,
    now: datetime,
) -> None:
    enqueue(
        session,
        chat_id=chat_id,
        locale=lang,
        now=now,
        template="help_card.html",
        context=notify.help_context(case, request),
        keyboard=notify.help_keyboard(case, request),
        link=notify.case_link(case, notify.HELP_CARD),
    )


@folding.reposts(notify.HELP_CARD)
async def _repost(
    session: AsyncSession, district: District, case: Case, folded: CardFold, now: datetime
) -> bool:
    """A folded help card, once the burst has passed: while the request is still open."""
    request = await session.get(HelpRequest, case.id)
    if case.status is not CaseStatus.PUBLISHED or request is None:
        return False
    _post(session, case, request, folded.chat_id, district.default_language, now)
    return True
