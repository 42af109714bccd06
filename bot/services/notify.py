"""What the people around a case are told, written to the outbox.

The department card is one living message per group: posted once, then edited in place as
the case moves. Texts are rendered at send time in the recipient's language; the context
holds codes and ISO times only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.callbacks import AssignCase, CaseAction, ProposeDeadline, RateCase
from bot.district import District
from bot.i18n import N_
from bot.services.outbox import Link, button, enqueue, inline_keyboard
from models import Case, CaseStatus

CARD = "card"
CARD_PHOTO = "card-photo"
ANSWER_PROMPT = "answer-prompt"
RETURN_PROMPT = "return-prompt"
CENTER_CARD = "center-card"
# Message ids that templates build from a value (``"kind." ~ kind``), listed so that the
# catalogue check sees them.
DYNAMIC_MESSAGE_IDS = (
    N_("kind.report"), N_("kind.say"), N_("kind.help"),
    N_("rating.satisfied"), N_("rating.basically"), N_("rating.unsatisfied"),
    N_("rating.unrated"),
    N_("status.triage"), N_("status.dispatched"), N_("status.acknowledged"),
    N_("status.answered"), N_("status.reopened"), N_("status.closed"), N_("status.published"),
    N_("status.withdrawn"),
)  # fmt: skip

# Replies to messages with these purposes are answers to the case.
ANSWER_PURPOSES = frozenset({CARD, CARD_PHOTO, ANSWER_PROMPT})


def case_link(case: Case, purpose: str) -> Link:
    assert case.id is not None
    return Link("case", str(case.id), purpose)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def card_context(case: Case, *, caption: bool = False, **extra: Any) -> dict[str, Any]:
    """What a card shows. The resident's name only when not anonymous; never contact."""
    return {
        "number": case.number,
        "kind": case.kind.value,
        "status": case.status.value,
        "category": case.category,
        "department": case.department,
        "description": case.description,
        "photo_count": len(case.photos),
        "latitude": case.latitude,
        "longitude": case.longitude,
        "address": case.address,
        "needed_when": case.needed_when,
        "resident_name": None if case.anonymous else case.resident_name,
        "created_at": _iso(case.created_at),
        "acknowledged_by": case.acknowledged_by_name,
        "acknowledged_at": _iso(case.acknowledged_at),
        "answered_at": _iso(case.answered_at),
        "answer_text": case.answer_text,
        "rating": case.rating.value if case.rating else None,
        "reopen_count": case.reopen_count,
        "closed_at": _iso(case.closed_at),
        "card_colour": case.card_colour,
        "next_rung_at": _iso(case.next_rung_at),
        "deadline_at": _iso(case.deadline_at),
        "caption": caption,
        **extra,
    }


def card_keyboard(case: Case) -> dict[str, Any] | None:
    assert case.id is not None
    if case.status not in (CaseStatus.DISPATCHED, CaseStatus.ACKNOWLEDGED, CaseStatus.REOPENED):
        return None
    row = []
    if case.status is CaseStatus.DISPATCHED:
        row.append(button(N_("card.button.acknowledge"), CaseAction("ack", case.id).pack()))
    row.append(button(N_("card.button.answer"), CaseAction("ans", case.id).pack()))
    row.append(button(N_("card.button.return"), CaseAction("ret", case.id).pack()))
    if case.status is CaseStatus.ACKNOWLEDGED and case.deadline_at is None:
        # Long-running work: the department proposes a completion date (三审时效).
        propose = button(N_("card.button.propose-deadline"), ProposeDeadline(case.id, 0).pack())
        return inline_keyboard(row, [propose])
    return inline_keyboard(row)


def post_card(
    session: AsyncSession, *, case: Case, chat_id: int, lang: str, now: datetime
) -> None:
    """The case's card in a department group: its photos, then the card with the buttons."""
    link = case_link(case, CARD)
    keyboard = card_keyboard(case)
    if len(case.photos) == 1:
        enqueue(
            session,
            chat_id=chat_id,
            locale=lang,
            now=now,
            method="sendPhoto",
            template="case_card.html",
            context=card_context(case, caption=True),
            params={"photo": case.photos[0]},
            keyboard=keyboard,
            link=link,
        )
    else:
        _post_text_card(session, case=case, chat_id=chat_id, lang=lang, now=now)
    if case.latitude is not None and case.longitude is not None:
        enqueue(
            session,
            chat_id=chat_id,
            locale=lang,
            now=now,
            method="sendLocation",
            params={"latitude": case.latitude, "longitude": case.longitude},
            target=link,
            link=case_link(case, "card-location"),
        )


def _post_text_card(
    session: AsyncSession, *, case: Case, chat_id: int, lang: str, now: datetime
) -> None:
    post_with_photos(
        session,
        case=case,
        chat_id=chat_id,
        lang=lang,
        now=now,
        template="case_card.html",
        context=card_context(case),
        keyboard=card_keyboard(case),
        purpose=CARD,
    )


def post_with_photos(
    session: AsyncSession,
    *,
    case: Case,
    chat_id: int,
    lang: str,
    now: datetime,
    template: str,
    context: dict[str, Any],
    keyboard: dict[str, Any] | None,
    purpose: str,
) -> None:
    """The case's photos (an album cannot carry buttons), then a text card replying to them."""
    target = None
    if case.photos:
        photo_link = case_link(case, f"{purpose}-photo")
        if len(case.photos) == 1:
            enqueue(
                session,
                chat_id=chat_id,
                locale=lang,
                now=now,
                method="sendPhoto",
                params={"photo": case.photos[0]},
                link=photo_link,
            )
        else:
            enqueue(
                session,
                chat_id=chat_id,
                locale=lang,
                now=now,
                method="sendMediaGroup",
                params={"photos": case.photos},
                link=photo_link,
            )
        target = photo_link
    enqueue(
        session,
        chat_id=chat_id,
        locale=lang,
        now=now,
        template=template,
        context=context,
        keyboard=keyboard,
        link=case_link(case, purpose),
        target=target,
    )


def refresh_card(
    session: AsyncSession, *, case: Case, chat_id: int, lang: str, now: datetime, **extra: Any
) -> None:
    """Edit the living card to the case's current state (buttons follow the status)."""
    caption = len(case.photos) == 1
    enqueue(
        session,
        chat_id=chat_id,
        locale=lang,
        now=now,
        method="editMessageCaption" if caption else "editMessageText",
        template="case_card.html",
        context=card_context(case, caption=caption, **extra),
        keyboard=card_keyboard(case),
        target=case_link(case, CARD),
    )


def reply_to_card(
    session: AsyncSession,
    *,
    case: Case,
    chat_id: int,
    lang: str,
    now: datetime,
    text_key: str,
    purpose: str = "card-note",
    **context: Any,
) -> None:
    enqueue(
        session,
        chat_id=chat_id,
        locale=lang,
        now=now,
        text_key=text_key,
        context={"number": case.number, **context},
        target=case_link(case, CARD),
        link=case_link(case, purpose),
    )


def post_center_card(
    session: AsyncSession,
    *,
    case: Case,
    district: District,
    chat_id: int,
    lang: str,
    now: datetime,
    reason: str | None,
    returned_by: str | None,
) -> None:
    """A case waiting for assignment, in the governance center, with a button per department."""
    assert case.id is not None
    buttons = [
        {"text": d.names.get(lang), "data": AssignCase(case.id, d.code).pack()}
        for d in district.departments
        if d.code != returned_by
    ]
    rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
    post_with_photos(
        session,
        case=case,
        chat_id=chat_id,
        lang=lang,
        now=now,
        template="center_card.html",
        context=card_context(case, reason=reason, returned_by=returned_by),
        keyboard={"inline": rows},
        purpose=CENTER_CARD,
    )


def mark_withdrawn(
    session: AsyncSession,
    *,
    case: Case,
    chat_id: int,
    lang: str,
    now: datetime,
    template: str,
    purpose: str,
) -> None:
    """A center or volunteer card whose case the resident withdrew: no more buttons."""
    enqueue(
        session,
        chat_id=chat_id,
        locale=lang,
        now=now,
        method="editMessageText",
        template=template,
        context=card_context(case),
        target=case_link(case, purpose),
    )


def tell_resident(
    session: AsyncSession,
    *,
    case: Case,
    now: datetime,
    text_key: str | None = None,
    template: str | None = None,
    keyboard: dict[str, Any] | None = None,
    **context: Any,
) -> None:
    enqueue(
        session,
        chat_id=case.resident_id,
        locale=case.resident_language,
        now=now,
        text_key=text_key,
        template=template,
        keyboard=keyboard,
        context={"number": case.number, **context},
    )


def send_answer_to_resident(session: AsyncSession, *, case: Case, now: datetime) -> None:
    """The department's answer (with its photos), then the rating question."""
    assert case.id is not None
    lang = case.resident_language
    context = {"number": case.number, "department": case.department, "text": case.answer_text}
    photos = case.answer_photos
    if len(photos) == 1:
        enqueue(
            session,
            chat_id=case.resident_id,
            locale=lang,
            now=now,
            method="sendPhoto",
            template="answer.html",
            context={**context, "caption": True},
            params={"photo": photos[0]},
        )
    else:
        if photos:
            enqueue(
                session,
                chat_id=case.resident_id,
                locale=lang,
                now=now,
                method="sendMediaGroup",
                params={"photos": photos[:10]},
            )
        enqueue(
            session,
            chat_id=case.resident_id,
            locale=lang,
            now=now,
            template="answer.html",
            context={**context, "caption": False},
        )
    rate = inline_keyboard(
        [button(N_("rate.satisfied"), RateCase(case.id, "s").pack())],
        [button(N_("rate.basically"), RateCase(case.id, "b").pack())],
        [button(N_("rate.unsatisfied"), RateCase(case.id, "u").pack())],
    )
    enqueue(
        session,
        chat_id=case.resident_id,
        locale=lang,
        now=now,
        text_key=N_("rate.question"),
        context={"number": case.number},
        keyboard=rate,
        link=case_link(case, "rating"),
    )
