"""The triage card (三审): the card a case waiting for triage gets in a street office's (or the
center's) group, with the wizard's buttons for its current step, drawn from the case.

Opening a case for triage lives here, apart from the wizard's steps (bot/services/triage.py),
so that filing a case (bot/services/cases.py) can open one without importing the module that
dispatches through it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.callbacks import TriageStep
from bot.district import District
from bot.i18n import N_
from bot.services import folding, notify
from bot.services.outbox import button, edit_text
from bot.services.routing import CENTER, chat_of
from models import CardFold, Case, CaseStatus, Difficulty, TriageStage

TRIAGE_CARD = "triage-card"
DIFFICULTIES = tuple(Difficulty)
DEADLINE_DAYS = ("3", "7", "15", "30")
STEPS = tuple(TriageStage)
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
    case.triage_step = TriageStage.LEAD
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
        keyboard=keyboard(case, district),
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


def keyboard(case: Case, district: District) -> dict[str, Any] | None:
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


async def refresh(
    session: AsyncSession, district: District, case: Case, now: datetime, **extra: Any
) -> None:
    """Edit the triage card to the case's state (buttons for the wizard's current step)."""
    chat_id = await chat_of(session, district, case.triage_unit or CENTER)
    if chat_id is None:
        return
    edit_text(
        session,
        chat_id=chat_id,
        target=notify.case_link(case, TRIAGE_CARD),
        locale=district.default_language,
        now=now,
        template="triage_card.html",
        context=context(case, district, **extra),
        keyboard=keyboard(case, district),
    )
