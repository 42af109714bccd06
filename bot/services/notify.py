"""What the people around a case are told, written to the outbox.

The department card is one living message per group: posted once, then edited in place as
the case moves. Texts are rendered at send time in the recipient's language; the context
holds codes and ISO times only. What a case's resident is told about its progress goes to its
co-reporters (followers) too, each in their own language.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.callbacks import AssignCase, CaseAction, ClaimHelp, ProposeDeadline, RateCase
from bot.district import District
from bot.i18n import N_
from bot.services.outbox import Link, button, enqueue, inline_keyboard
from bot.services.routing import chat_of
from models import Case, CaseFollower, CaseKind, CaseStatus, HelpRequest

CARD = "card"
CARD_PHOTO = "card-photo"
ANSWER_PROMPT = "answer-prompt"
RETURN_PROMPT = "return-prompt"
CENTER_CARD = "center-card"
ASSIST_CARD = "assist-card"
SUPERVISION = "supervision"  # a case pushed to the supervision chat by the ladder
# A case a department still works on: its card has buttons.
OPEN = (CaseStatus.DISPATCHED, CaseStatus.ACKNOWLEDGED, CaseStatus.REOPENED)
HELP_CARD = "help-card"
# Message ids that templates build from a value (``"kind." ~ kind``), listed so that the
# catalogue check sees them.
DYNAMIC_MESSAGE_IDS = (
    N_("kind.report"), N_("kind.say"), N_("kind.help"),
    N_("rating.satisfied"), N_("rating.basically"), N_("rating.unsatisfied"),
    N_("rating.unrated"),
    N_("status.triage"), N_("status.dispatched"), N_("status.acknowledged"),
    N_("status.answered"), N_("status.reopened"), N_("status.closed"), N_("status.published"),
    N_("status.withdrawn"), N_("status.bundled"),
)  # fmt: skip

# Replies to messages with these purposes are answers to the case.
ANSWER_PURPOSES = frozenset({CARD, CARD_PHOTO, ANSWER_PROMPT})


def case_link(case: Case, purpose: str) -> Link:
    assert case.id is not None
    return Link("case", str(case.id), purpose)


# An outbox context key: the state its case must still be in when the message is sent
# (``{"case": id, "status": ..., "answered_at": ISO}``); otherwise the sender drops it.
WHILE = "while_case"


async def moved_on(session: AsyncSession, condition: dict[str, Any]) -> bool:
    """Whether the case has left the state a queued message was written for."""
    row = (
        await session.execute(
            select(col(Case.status), col(Case.answered_at)).where(
                col(Case.id) == condition.get("case")
            )
        )
    ).first()
    if row is None:
        return True
    status, answered_at = row
    if condition.get("status") and status.value != condition["status"]:
        return True
    expected = condition.get("answered_at")
    return bool(expected) and (answered_at is None or answered_at.isoformat() != expected)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def case_facts(case: Case) -> dict[str, Any]:
    """What names a case wherever it is listed: its number, kind, category and status."""
    return {
        "number": case.number,
        "kind": case.kind.value,
        "category": case.category,
        "status": case.status.value,
    }


def case_details(case: Case) -> dict[str, Any]:
    """A case's facts with what it is about and where: what a card and a timeline show."""
    return {
        **case_facts(case),
        "department": case.department,
        "description": case.description,
        "address": case.address,
        "latitude": case.latitude,
        "longitude": case.longitude,
    }


def card_context(case: Case, *, caption: bool = False, **extra: Any) -> dict[str, Any]:
    """What a card shows. The resident's name only when not anonymous; a contact only when the
    resident gave it for the department (the Mini App's form asks). A case
    filed by an integrating system shows the system ("via the 12345 hotline"), never what it
    sent about the caller."""
    shown_name = None if case.anonymous or not case.from_telegram else case.resident_name
    return {
        **case_details(case),
        "photo_count": len(case.photos),
        "resident_name": shown_name,
        # A contact the resident agreed to give the department (the Mini App's form asks).
        "resident_contact": case.contact
        if case.kind is not CaseKind.HELP and case.from_telegram
        else None,
        "via": case.integration,
        "media_url": case.media_url,
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
        "reporters": case.reporters,
        "community": case.community,
        # The resident had their data erased (/forgetme, retention): the card says so.
        "erased": case.anonymised_at is not None,
        # The 协办 units and whether each reported in (shown on the lead's card).
        "assist": [
            {"code": unit, "reported": unit in case.assist_acks}
            for unit in case.triage_assist
            if unit != case.department
        ],
        "caption": caption,
        **extra,
    }


def help_fields(request: HelpRequest) -> dict[str, Any]:
    """What a help request's card shows besides the case's: when help is needed, the skills
    wanted and the volunteer holding it (by their registered name)."""
    return {
        "needed_when": request.needed_when,
        "claimed_by": request.volunteer_name,
        "skills": list(request.skills),
    }


def help_context(case: Case, request: HelpRequest, **extra: Any) -> dict[str, Any]:
    return card_context(case, **help_fields(request), **extra)


def card_keyboard(case: Case) -> dict[str, Any] | None:
    assert case.id is not None
    if case.status not in OPEN:
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


def help_keyboard(case: Case, request: HelpRequest) -> dict[str, Any] | None:
    """The Claim button, while a help request is published and nobody holds it."""
    assert case.id is not None
    if case.status is not CaseStatus.PUBLISHED or request.volunteer_id is not None:
        return None
    return inline_keyboard([button(N_("help.button.claim"), ClaimHelp(case.id).pack())])


def card_rows(case: Case, purpose: str = CARD) -> int:
    """Messages a case's card costs its group: photos (an album, or one photo under the
    department card), the card, and the department card's location."""
    under_card = purpose == CARD and len(case.photos) == 1  # the card is the photo's caption
    photos = 1 if case.photos and not under_card else 0
    located = purpose == CARD and case.latitude is not None and case.longitude is not None
    return photos + 1 + (1 if located else 0)


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
        alone = len(case.photos) == 1  # one photo goes alone, more as an album
        enqueue(
            session,
            chat_id=chat_id,
            locale=lang,
            now=now,
            method="sendPhoto" if alone else "sendMediaGroup",
            params={"photo": case.photos[0]} if alone else {"photos": case.photos},
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


def assist_card(
    session: AsyncSession,
    *,
    case: Case,
    unit: str,
    chat_id: int,
    lang: str,
    now: datetime,
    post: bool,
) -> None:
    """A 协办 unit's card: who leads, the unit's report-in button until it reported in, and
    the lead's progress; no escalation times (the ladder is the lead's)."""
    reported = case.assist_acks.get(unit)
    keyboard = None
    if case.status in OPEN and reported is None:
        assert case.id is not None
        report_in = button(N_("card.button.assist-report"), CaseAction("ack", case.id).pack())
        keyboard = inline_keyboard([report_in])
    context = card_context(case, assisting=True, lead=case.department, assist_reported=reported)
    link = case_link(case, ASSIST_CARD)
    where = {"link": link} if post else {"method": "editMessageText", "target": link}
    enqueue(session, chat_id=chat_id, locale=lang, now=now, template="case_card.html",
            context=context, keyboard=keyboard, **where)  # fmt: skip


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


def retire_card(
    session: AsyncSession,
    *,
    case: Case,
    chat_id: int,
    lang: str,
    now: datetime,
    template: str,
    purpose: str,
    **extra: Any,
) -> None:
    """A center, triage or volunteer card whose case left it (withdrawn by the resident,
    bundled into another case): its current state and no more buttons."""
    enqueue(
        session,
        chat_id=chat_id,
        locale=lang,
        now=now,
        method="editMessageText",
        template=template,
        context=card_context(case, **extra),
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
    """A message for the case's own resident only (a receipt, an answer to what they did).
    A case filed by an integrating system has nobody in Telegram to tell."""
    if not case.from_telegram:
        return
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


def unit_name(district: District, code: str | None, lang: str) -> str:
    unit = (district.department(code) or district.street_office(code)) if code else None
    return unit.names.get(lang) if unit else (code or "")


@dataclass(frozen=True)
class Reporter:
    """A resident told about a case's progress: the one who filed it, or a co-reporter."""

    chat_id: int
    lang: str
    owner: bool


def reporters(case: Case, followers: Iterable[CaseFollower] = ()) -> list[Reporter]:
    """Who hears about the case: its resident (unless an integrating system filed it, which
    follows the case through the API instead), then its co-reporters."""
    owner = [Reporter(case.resident_id, case.resident_language, owner=True)]
    return [
        *(owner if case.from_telegram else []),
        *(Reporter(f.user_id, f.language, owner=False) for f in followers),
    ]


def tell_reporters(
    session: AsyncSession,
    district: District,
    *,
    case: Case,
    to: Iterable[Reporter],
    now: datetime,
    text_key: str | None = None,
    follower_key: str | None = None,
    template: str | None = None,
    unit: str | None = None,
    **context: Any,
) -> None:
    """A change in the case, told to its resident and its co-reporters. ``follower_key`` is
    what co-reporters read instead of ``text_key`` when the resident's wording speaks of
    what only the resident did; ``unit`` (a code) becomes ``department``, named in each
    reader's language."""
    for reporter in to:
        named = {"department": unit_name(district, unit, reporter.lang)} if unit else {}
        enqueue(
            session,
            chat_id=reporter.chat_id,
            locale=reporter.lang,
            now=now,
            text_key=text_key if reporter.owner else (follower_key or text_key),
            template=template,
            context={"number": case.number, **context, **named},
        )


def send_answer(
    session: AsyncSession, *, case: Case, to: Iterable[Reporter], now: datetime
) -> None:
    """The department's answer (with its photos), then the rating question, to every reporter.
    Co-reporters rate too; only the resident's rating moves the case (see closure.rate)."""
    assert case.id is not None
    context = {"number": case.number, "department": case.department, "text": case.answer_text}
    photos = case.answer_photos
    rate = inline_keyboard(
        [button(N_("rate.satisfied"), RateCase(case.id, "s").pack())],
        [button(N_("rate.basically"), RateCase(case.id, "b").pack())],
        [button(N_("rate.unsatisfied"), RateCase(case.id, "u").pack())],
    )
    # The question is dropped at send time if the case has moved on by then (its resident
    # rated within seconds, before a co-reporter's paced chat reached it).
    assert case.answered_at is not None
    while_answered = {"case": case.id, "status": CaseStatus.ANSWERED.value,
                      "answered_at": case.answered_at.isoformat()}  # fmt: skip
    for reporter in to:
        chat_id, lang = reporter.chat_id, reporter.lang
        if len(photos) == 1:
            enqueue(
                session,
                chat_id=chat_id,
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
                    chat_id=chat_id,
                    locale=lang,
                    now=now,
                    method="sendMediaGroup",
                    params={"photos": photos[:10]},
                )
            enqueue(
                session,
                chat_id=chat_id,
                locale=lang,
                now=now,
                template="answer.html",
                context={**context, "caption": False},
            )
        enqueue(
            session,
            chat_id=chat_id,
            locale=lang,
            now=now,
            text_key=N_("rate.question"),
            context={"number": case.number, WHILE: while_answered},
            keyboard=rate,
            link=case_link(case, "rating"),
        )


async def assist_cards(
    session: AsyncSession, district: District, case: Case, now: datetime, *, post: bool
) -> None:
    """Post (``post``) or edit the card of each 协办 unit of the case."""
    for unit in case.triage_assist:
        chat_id = await chat_of(session, district, unit) if unit != case.department else None
        if chat_id is not None:
            assist_card(
                session,
                case=case,
                unit=unit,
                chat_id=chat_id,
                lang=district.default_language,
                now=now,
                post=post,
            )
