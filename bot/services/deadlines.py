"""三审时效 agreed between a department and the street office: the department proposes a
completion date from its card, the street office (or the center, for cases it assigned)
approves or rejects it. An approved date is the case's deadline: the resident is told when to
expect the result, and the deadline ladder runs until the answer."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.callbacks import DecideDeadline, ProposeDeadline
from bot.district import District
from bot.i18n import N_
from bot.services import cases, ladder, notify
from bot.services.errors import UserError
from bot.services.outbox import answer_callback, button, edit_text, enqueue, inline_keyboard
from bot.services.routing import CENTER, chat_of
from models import Case, CaseEvent, CaseStatus

PROPOSAL_DAYS = (3, 7, 15, 30)
PROPOSAL = "deadline-proposal"


async def _open_for_deadline(session: AsyncSession, case_id: int, unit: str) -> Case:
    case = await cases.get_case(session, case_id)
    if (
        case.department != unit
        or case.status is not CaseStatus.ACKNOWLEDGED
        or case.deadline_at is not None
    ):
        raise UserError(N_("card.stale"))
    return case


async def _pending_proposal(session: AsyncSession, case_id: int) -> int | None:
    """The days of the proposal awaiting a decision, if the latest deadline step is one."""
    latest = await session.scalar(
        select(CaseEvent)
        .where(
            col(CaseEvent.case_id) == case_id,
            col(CaseEvent.kind).in_(("deadline_proposed", "deadline_agreed", "deadline_rejected")),
        )
        .order_by(col(CaseEvent.id).desc())
        .limit(1)
    )
    if latest is None or latest.kind != "deadline_proposed":
        return None
    return int(latest.data.get("days", 0))


async def offer_choices(
    session: AsyncSession,
    district: District,
    *,
    case_id: int,
    unit: str,
    chat_id: int,
    callback_query_id: str,
    now: datetime,
) -> None:
    case = await _open_for_deadline(session, case_id, unit)
    lang = district.default_language
    choices = [
        button(N_("triage.days"), ProposeDeadline(case_id, days).pack(), days=days)
        for days in PROPOSAL_DAYS
    ]
    enqueue(
        session,
        chat_id=chat_id,
        locale=lang,
        now=now,
        text_key=N_("deadline.propose-ask"),
        context={"number": case.number},
        keyboard=inline_keyboard(choices[:2], choices[2:]),
        target=notify.case_link(case, notify.CARD),
        link=notify.case_link(case, "deadline-ask"),
    )
    answer_callback(
        session, chat_id=chat_id, callback_query_id=callback_query_id, locale=lang, now=now
    )


async def propose(
    session: AsyncSession,
    district: District,
    *,
    case_id: int,
    unit: str,
    days: int,
    actor: cases.Person,
    chat_id: int,
    message_id: int,
    callback_query_id: str,
    now: datetime,
) -> None:
    case = await _open_for_deadline(session, case_id, unit)
    if days not in PROPOSAL_DAYS:
        raise UserError(N_("errors.stale-button"))
    approver = await chat_of(session, district, case.triage_unit or CENTER)
    if approver is None:
        raise UserError(N_("deadline.no-approver"))
    cases.record(
        session, case, kind="deadline_proposed", now=now, actor=actor, role="department", days=days
    )
    lang = district.default_language
    context = {
        **notify.card_context(case),
        "days": days,
        "proposer": actor.name,
        "until": (now + timedelta(days=days)).isoformat(),
    }
    enqueue(
        session,
        chat_id=approver,
        locale=lang,
        now=now,
        template="deadline_proposal.html",
        context=context,
        keyboard=inline_keyboard(
            [
                button(N_("deadline.approve"), DecideDeadline(case_id, days, "y").pack()),
                button(N_("deadline.reject"), DecideDeadline(case_id, days, "n").pack()),
            ]
        ),
        link=notify.case_link(case, PROPOSAL),
    )
    edit_text(
        session,
        chat_id=chat_id,
        target=message_id,
        locale=lang,
        now=now,
        text_key=N_("deadline.proposed"),
        context={"number": case.number, "days": days},
    )
    answer_callback(
        session, chat_id=chat_id, callback_query_id=callback_query_id, locale=lang, now=now
    )


async def decide(
    session: AsyncSession,
    district: District,
    *,
    case_id: int,
    unit: str,
    days: int,
    approve: bool,
    actor: cases.Person,
    chat_id: int,
    callback_query_id: str,
    now: datetime,
) -> None:
    case = await cases.get_case(session, case_id)
    if (
        unit != (case.triage_unit or CENTER)
        or case.status is not CaseStatus.ACKNOWLEDGED
        or case.deadline_at is not None
        or await _pending_proposal(session, case_id) != days
    ):
        raise UserError(N_("card.stale"))
    lang = district.default_language
    department_chat = await chat_of(session, district, case.department or "")
    if approve:
        case.deadline_at = now + timedelta(days=days)
        cases.record(
            session, case, kind="deadline_agreed", now=now, actor=actor, role="center", days=days
        )
        await ladder.start_deadline(session, district, case, now=now)
        expected = case.deadline_at.isoformat()
        await cases.tell_reporters(
            session,
            district,
            case,
            now=now,
            template="deadline_resident.html",
            department=case.department,
            expected=expected,
        )
    else:
        cases.record(
            session, case, kind="deadline_rejected", now=now, actor=actor, role="center", days=days
        )
    if department_chat is not None:
        notify.reply_to_card(
            session,
            case=case,
            chat_id=department_chat,
            lang=lang,
            now=now,
            text_key=N_("deadline.approved") if approve else N_("deadline.rejected"),
            days=days,
            name=actor.name,
        )
        if approve:
            notify.refresh_card(session, case=case, chat_id=department_chat, lang=lang, now=now)
    edit_text(
        session,
        chat_id=chat_id,
        target=notify.case_link(case, PROPOSAL),
        locale=lang,
        now=now,
        template="deadline_proposal.html",
        context={
            **notify.card_context(case),
            "days": days,
            "decided": approve,
            "decided_by": actor.name,
            "until": (now + timedelta(days=days)).isoformat(),
        },
    )
    answer_callback(
        session, chat_id=chat_id, callback_query_id=callback_query_id, locale=lang, now=now
    )
