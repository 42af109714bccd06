"""The department group's side of a card: prompts for an answer or a reason, bindings."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.district import District
from bot.i18n import N_
from bot.services import cases, notify, routing
from bot.services.errors import UserError
from bot.services.outbox import answer_callback, send_text
from models import CaseStatus

PROMPTS = {"ans": (notify.ANSWER_PROMPT, N_("card.answer-prompt")),
           "ret": (notify.RETURN_PROMPT, N_("card.return-prompt"))}  # fmt: skip


async def prompt(
    session: AsyncSession,
    district: District,
    *,
    case_id: int,
    unit: str,
    action: str,
    actor: cases.Person,
    chat_id: int,
    callback_query_id: str,
    now: datetime,
) -> None:
    """Answer / Not ours pressed: ask for a reply to a prompt that maps back to the case."""
    case = await cases.get_case(session, case_id)
    if case.department != unit or case.status not in (
        CaseStatus.DISPATCHED,
        CaseStatus.ACKNOWLEDGED,
        CaseStatus.REOPENED,
    ):
        raise UserError(N_("card.stale"))
    purpose, text_key = PROMPTS[action]
    lang = district.default_language
    notify.reply_to_card(
        session,
        case=case,
        chat_id=chat_id,
        lang=lang,
        now=now,
        text_key=text_key,
        purpose=purpose,
        name=actor.name,
    )
    answer_callback(
        session, chat_id=chat_id, callback_query_id=callback_query_id, locale=lang, now=now
    )


async def bind_group(
    session: AsyncSession,
    district: District,
    *,
    code: str,
    chat_id: int,
    by: int,
    now: datetime,
) -> None:
    unit = await routing.bind(session, district, unit=code, chat_id=chat_id, by=by, now=now)
    lang = district.default_language
    department = district.department(unit)
    office = district.street_office(unit)
    names = department.names if department else office.names if office else None
    send_text(
        session,
        chat_id=chat_id,
        locale=lang,
        now=now,
        text_key=N_("bind.done"),
        unit=names.get(lang) if names else unit,
    )
