"""三审 triage, as street offices do it: 一审职责 duty (lead and assisting departments),
二审难度 difficulty (simple, complex, multi-department hard), 三审时效 timeliness (standard or an
agreed completion deadline). The wizard lives on the triage card in the street office's group;
its choices are kept on the case, so any member can continue it and a restart loses nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from bot.district import District, Role
from bot.i18n import N_
from bot.services import cases, ladder, notify
from bot.services.errors import UserError
from bot.services.outbox import enqueue
from bot.services.routing import CENTER, chat_of
from bot.services.triage_card import (
    DEADLINE_DAYS,
    DIFFICULTIES,
    STEPS,
    refresh,
)
from models import Case, CaseStatus, Difficulty, TriageStage, User


async def step(
    session: AsyncSession,
    district: District,
    *,
    case_id: int,
    unit: str,
    action: str,
    value: str,
    actor: cases.Person,
    now: datetime,
) -> None:
    case = await cases.get_case(session, case_id)
    if case.status is not CaseStatus.TRIAGE or case.triage_unit != unit or not case.triage_step:
        raise UserError(N_("card.stale"))
    current = case.triage_step
    if action == "lead" and current == "lead" and district.department(value):
        case.triage_lead = value
        case.triage_assist = [code for code in case.triage_assist if code != value]
    elif action == "assist" and current == "assist" and district.department(value):
        chosen = list(case.triage_assist)
        case.triage_assist = (
            [c for c in chosen if c != value] if value in chosen else [*chosen, value]
        )
    elif action == "next" and current in ("lead", "assist") and case.triage_lead:
        case.triage_step = STEPS[STEPS.index(current) + 1]
    elif action == "back" and current != "lead":
        case.triage_step = STEPS[STEPS.index(current) - 1]
    elif action == "diff" and current == "difficulty" and value in DIFFICULTIES:
        case.triage_difficulty = Difficulty(value)
        case.triage_step = TriageStage.TIME
    elif action == "due" and current == "time" and value in ("0", *DEADLINE_DAYS):
        await _finish(session, district, case, days=int(value), actor=actor, now=now)
        return
    else:
        raise UserError(N_("card.stale"))
    await refresh(session, district, case, now)


async def _finish(
    session: AsyncSession,
    district: District,
    case: Case,
    *,
    days: int,
    actor: cases.Person,
    now: datetime,
) -> None:
    """三审 done: dispatch to the lead, assisting cards, the leader told for hard cases."""
    assert case.triage_lead is not None and case.id is not None
    difficulty = case.triage_difficulty or "complex"
    assisting = [] if difficulty == "simple" else list(case.triage_assist)
    case.triage_assist = assisting
    case.triage_step = None
    case.deadline_at = now + timedelta(days=days) if days else None
    cases.record(
        session,
        case,
        kind="triaged",
        now=now,
        actor=actor,
        role="center",
        lead=case.triage_lead,
        assist=assisting,
        difficulty=difficulty,
        deadline_days=days,
    )
    await cases.dispatch(
        session, district, case, case.triage_lead, now=now, actor=actor, role="center"
    )
    if difficulty == "hard":
        await _tell_leaders(session, district, case, assisting, now)
    await refresh(session, district, case, now)
    await notify.assist_cards(session, district, case, now, post=True)
    expected = case.deadline_at.isoformat() if case.deadline_at else None
    await cases.tell_reporters(
        session,
        district,
        case,
        now=now,
        template="triaged.html",
        department=case.triage_lead,
        expected=expected,
    )


async def _tell_leaders(
    session: AsyncSession, district: District, case: Case, assisting: list[str], now: datetime
) -> None:
    for person in district.people_with_role(Role.LEADER):
        user = await session.get(User, person.telegram_id)
        if user is None:
            center = await chat_of(session, district, CENTER)
            ladder.tell_center_unreachable(
                session, district, center, name=person.name, case=case, now=now
            )
            continue
        enqueue(
            session,
            chat_id=person.telegram_id,
            locale=user.language or district.default_language,
            now=now,
            template="triage_leader.html",
            context={"number": case.number, "lead": case.triage_lead, "assist": assisting},
        )
