"""三审 triage, as street offices do it: 一审职责 duty (lead and assisting departments),
二审难度 difficulty (simple, complex, multi-department hard), 三审时效 timeliness (standard or an
agreed completion deadline). The wizard lives on the triage card in the street office's group;
its choices are kept on the case, so any member can continue it and a restart loses nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.callbacks import TriageStep
from bot.district import District, Role
from bot.i18n import N_
from bot.services import cases, folding, notify
from bot.services.errors import UserError
from bot.services.outbox import button, enqueue, send_text
from bot.services.routing import CENTER, chat_of
from models import CardFold, Case, CaseStatus, User

TRIAGE_CARD = "triage-card"
DIFFICULTIES = ("simple", "complex", "hard")
DEADLINE_DAYS = ("3", "7", "15", "30")
STEPS = ("lead", "assist", "difficulty", "time")
DIFFICULTY_LABELS = (N_("triage.difficulty.simple"), N_("triage.difficulty.complex"),
                     N_("triage.difficulty.hard"))  # fmt: skip


async def open_triage(
    session: AsyncSession, district: District, case: Case, *, unit: str, now: datetime
) -> None:
    """The case waits in the unit's group; the category's department is proposed as lead."""
    category = district.category(case.category) if case.category else None
    case.triage_unit = unit
    case.triage_lead = category.department if category else None
    case.triage_assist = proposed_assistants(district, case.description, case.triage_lead)
    case.triage_step = "lead"
    chat_id = await chat_of(session, district, unit)
    assert chat_id is not None
    lang = district.default_language
    if await folding.fold(
        session,
        case=case,
        chat_id=chat_id,
        purpose=TRIAGE_CARD,
        rows=notify.card_rows(case, TRIAGE_CARD),
        locale=lang,
        now=now,
    ):
        return
    _post_card(session, district, case, chat_id, now)


def _post_card(
    session: AsyncSession, district: District, case: Case, chat_id: int, now: datetime
) -> None:
    notify.post_with_photos(
        session,
        case=case,
        chat_id=chat_id,
        lang=district.default_language,
        now=now,
        template="triage_card.html",
        context=context(case, district),
        keyboard=_keyboard(case, district),
        purpose=TRIAGE_CARD,
    )


@folding.reposts(TRIAGE_CARD)
async def _repost_card(
    session: AsyncSession, district: District, case: Case, folded: CardFold, now: datetime
) -> bool:
    """A folded triage card, once the burst has passed: while the case still waits for the
    unit's triage in that group."""
    if case.status is not CaseStatus.TRIAGE or case.triage_step is None or not case.triage_unit:
        return False
    if await chat_of(session, district, case.triage_unit) != folded.chat_id:
        return False
    _post_card(session, district, case, folded.chat_id, now)
    return True


def proposed_assistants(district: District, text: str, lead: str | None) -> list[str]:
    """Departments whose keywords appear in the case (the street office can change them)."""
    folded = text.casefold()
    return [
        department.code
        for department in district.departments
        if department.code != lead
        and any(word.casefold() in folded for word in department.keywords)
    ]


def context(case: Case, district: District, **extra: Any) -> dict[str, Any]:
    return notify.card_context(
        case,
        step=case.triage_step,
        lead=case.triage_lead,
        assist=list(case.triage_assist),
        difficulty=case.triage_difficulty,
        **extra,
    )


def _keyboard(case: Case, district: District) -> dict[str, Any] | None:
    assert case.id is not None
    lang = district.default_language

    def data(action: str, value: str = "-") -> str:
        assert case.id is not None
        return TriageStep(case.id, action, value).pack()

    def pairs(buttons: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        return [buttons[i : i + 2] for i in range(0, len(buttons), 2)]

    step = case.triage_step
    if step == "lead":
        rows = pairs([
            {"text": ("✅ " if d.code == case.triage_lead else "") + d.names.get(lang),
             "data": data("lead", d.code)}
            for d in district.departments
        ])  # fmt: skip
        if case.triage_lead:
            rows.append([button(N_("triage.next"), data("next"))])
        return {"inline": rows}
    if step == "assist":
        rows = pairs([
            {"text": ("☑️ " if d.code in case.triage_assist else "➕ ") + d.names.get(lang),
             "data": data("assist", d.code)}
            for d in district.departments
            if d.code != case.triage_lead
        ])  # fmt: skip
        rows.append(
            [button(N_("triage.back"), data("back")), button(N_("triage.next"), data("next"))]
        )
        return {"inline": rows}
    if step == "difficulty":
        return {"inline": [
            [button(label, data("diff", value))]
            for value, label in zip(DIFFICULTIES, DIFFICULTY_LABELS, strict=True)
        ] + [[button(N_("triage.back"), data("back"))]]}  # fmt: skip
    if step == "time":
        days = [button(N_("triage.days"), data("due", d), days=d) for d in DEADLINE_DAYS]
        return {"inline": [
            [button(N_("triage.standard-time"), data("due", "0"))], days[:2], days[2:],
            [button(N_("triage.back"), data("back"))],
        ]}  # fmt: skip
    return None


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
        case.triage_difficulty = value
        case.triage_step = "time"
    elif action == "due" and current == "time" and value in ("0", *DEADLINE_DAYS):
        await _finish(session, district, case, days=int(value), actor=actor, now=now)
        return
    else:
        raise UserError(N_("card.stale"))
    await refresh(session, district, case, now)


async def refresh(
    session: AsyncSession, district: District, case: Case, now: datetime, **extra: Any
) -> None:
    """Edit the triage card to the case's state (buttons for the wizard's current step)."""
    chat_id = await chat_of(session, district, case.triage_unit or CENTER)
    if chat_id is None:
        return
    enqueue(
        session,
        chat_id=chat_id,
        locale=district.default_language,
        now=now,
        method="editMessageText",
        template="triage_card.html",
        context=context(case, district, **extra),
        keyboard=_keyboard(case, district),
        target=notify.case_link(case, TRIAGE_CARD),
    )


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
    await cases.assist_cards(session, district, case, now, post=True)
    expected = case.deadline_at.isoformat() if case.deadline_at else None
    notify.tell_reporters(
        session,
        district,
        case=case,
        to=await cases.reporters_of(session, case),
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
            if center is not None:
                send_text(
                    session,
                    chat_id=center,
                    locale=district.default_language,
                    now=now,
                    text_key=N_("ladder.undeliverable"),
                    name=person.name,
                    number=case.number,
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
