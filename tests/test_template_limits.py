"""Telegram's limits: every message template, in every language, with the longest values the
bot accepts, stays within what Telegram takes (4096 characters of text, 1024 of a caption,
counted after HTML parsing), and every button's callback data within 64 bytes.

The contexts are built as the services build them (``notify.card_context`` and friends on a
case filled to the brim), with multi-byte user text that also needs escaping, the longest
names in ``config.example.toml``, lists at the length the services cap them at and large
numbers. A template added without a fixture here fails the test, and so does a callback
factory added to ``bot.callbacks`` without its longest values.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from markupsafe import escape

from bot import callbacks
from bot.district import District, load_district
from bot.i18n import TEMPLATES_DIR, Catalogues, available_languages
from bot.open311 import MAX_CONTACT, MAX_MEDIA_URL
from bot.rendering import district_globals
from bot.services import (
    bundling,
    cases,
    closure,
    deadlines,
    folding,
    ladder,
    menu,
    notify,
    points,
    reports,
    resident,
    stats,
    triage_card,
)
from bot.testserver.formatting import CAPTION_LIMIT, TEXT_LIMIT
from bot.testserver.markup_html import parse_html
from bot.warning import load_library
from bot.warning.library import DEFAULT_KEYWORDS_PATH
from models import (
    CardColour,
    Case,
    CaseEvent,
    CaseKind,
    CaseStatus,
    HelpRequest,
    HelpStage,
    Rating,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_DISTRICT = ROOT / "config.example.toml"
LANGUAGES = available_languages()
TEMPLATES = sorted(
    path.name for path in TEMPLATES_DIR.glob("*.html") if not path.name.startswith("_")
)

# -- the longest values -------------------------------------------------------------------------

TELEGRAM_ID = 2**63 - 1  # chat and user ids fit in a signed 64-bit integer
ROW_ID = 2**31 - 1  # case, event and proposal ids: 32-bit serials
BIG = 9_999_999  # counts: reporters, reopenings, cases in a period
FIRST_NAME = 64  # Telegram's first names
# Multi-byte text (Chinese, traditional Mongolian) with characters HTML must escape; each value
# starts with a tag that must never come out unescaped.
FILLER = "吹哨ᠮᠣᠩᠭᠣᠯ<&>\"'"
MARK = "<script>"


def text(length: int) -> str:
    """User text of exactly ``length`` characters."""
    body = MARK + FILLER * (length // len(FILLER) + 1)
    return body[:length]


NAME = text(FIRST_NAME)
CODE = "x" * 32  # unit and category codes may be 32 characters long
# /bundle takes as many case numbers as a message holds ("HB-1 HB-2 …", five characters and a
# space each).
BUNDLE_NUMBERS = TEXT_LIMIT // 6
MOMENT = datetime(2026, 12, 31, 15, 59, 59, tzinfo=UTC)


def iso(hours: int = 0) -> str:
    return (MOMENT + timedelta(hours=hours)).isoformat()


@functools.cache
def district() -> District:
    return load_district(EXAMPLE_DISTRICT)


@functools.cache
def catalogues() -> Catalogues:
    return Catalogues(district().default_language, template_globals=district_globals(district()))


@functools.cache
def number() -> str:
    return district().case_number(ROW_ID)


def longest_code(units: tuple[Any, ...], lang: str) -> str:
    """The code of the unit (department, category, …) with the longest name in ``lang``."""
    return str(max(units, key=lambda unit: len(unit.names.get(lang))).code)


@functools.cache
def department(lang: str) -> str:
    return longest_code(district().departments, lang)


@functools.cache
def street_office(lang: str) -> str:
    return longest_code(district().street_offices, lang)


@functools.cache
def community(lang: str) -> str:
    return longest_code(district().communities(), lang)


@functools.cache
def category(kind: CaseKind, lang: str) -> str:
    return longest_code(district().categories_of_kind(kind.value), lang)


def longest_message(lang: str, message_ids: list[str]) -> str:
    translator = catalogues().translator(lang)
    return max(message_ids, key=lambda message_id: len(translator(message_id)))


@functools.cache
def rating(lang: str) -> Rating:
    return Rating(longest_message(lang, [f"rating.{r.value}" for r in Rating]).split(".")[1])


def a_case(
    lang: str,
    *,
    kind: CaseKind = CaseKind.REPORT,
    status: CaseStatus = CaseStatus.REOPENED,
    photos: int = 0,
    open311: bool = False,
) -> Case:
    """A case with every field at its longest. Filed in Telegram it names its resident and may
    have photos; filed through Open311 it names the integration and links its media. A help
    request's contact is the resident's @username or first name."""
    help_ = kind is CaseKind.HELP
    integration = district().integrations[0].code
    return Case(
        id=ROW_ID,
        number=number(),
        kind=kind,
        status=status,
        category=category(kind, lang),
        department=department(lang),
        resident_id=TELEGRAM_ID,
        resident_language=lang,
        resident_name=NAME,
        anonymous=False,
        contact=text(FIRST_NAME if help_ else MAX_CONTACT),
        description=text(cases.MAX_DESCRIPTION),
        photos=[f"AgACAgUAAxkBAAI{index}" * 4 for index in range(photos)],
        latitude=-89.123456,
        longitude=-179.123456,
        address=text(resident.MAX_BUILDING if help_ else cases.MAX_ADDRESS),
        created_at=MOMENT,
        updated_at=MOMENT,
        acknowledged_at=MOMENT,
        acknowledged_by=TELEGRAM_ID,
        acknowledged_by_name=NAME,
        answered_at=MOMENT,
        answer_text=text(cases.MAX_ANSWER),
        rating=rating(lang),
        reopen_count=BIG,
        card_colour=CardColour.RED,
        next_rung_at=MOMENT,
        deadline_at=MOMENT,
        reporters=BIG,
        triage_unit=street_office(lang),
        triage_lead=department(lang),
        triage_assist=[d.code for d in district().departments if d.code != department(lang)],
        triage_difficulty="complex",
        community=community(lang) if help_ else None,
        source=f"open311:{integration}" if open311 else "telegram",
        media_url=f"https://example.org/?a=<&b={'m' * MAX_MEDIA_URL}"[:MAX_MEDIA_URL]
        if open311
        else None,
    )


def a_request() -> HelpRequest:
    """A help request's own part, every field at its longest, held by a volunteer."""
    return HelpRequest(
        case_id=ROW_ID,
        needed_when=text(resident.MAX_WHEN),
        door=text(resident.MAX_DOOR),
        skills=list(district().volunteers.skills),
        volunteer_id=TELEGRAM_ID,
        volunteer_name=NAME,
        progress=HelpStage.ON_THE_WAY,
    )


# -- fixtures: what each template is rendered with -----------------------------------------------


@dataclasses.dataclass(frozen=True)
class Variant:
    """One way a template is sent: its context, its limit, and a user value (or a name) that
    must show (escaped) in the message."""

    label: str
    context: dict[str, Any]
    limit: int
    expect: str


Builder = Callable[[str], Iterator[Variant]]
FIXTURES: dict[str, Builder] = {}


def fixture(template: str) -> Callable[[Builder], Builder]:
    def register(builder: Builder) -> Builder:
        FIXTURES[template] = builder
        return builder

    return register


DESCRIPTION = text(cases.MAX_DESCRIPTION)
KINDS = tuple(CaseKind)
STATUSES = tuple(CaseStatus)


@fixture("answer.html")
def _answer(lang: str) -> Iterator[Variant]:
    # notify.send_answer: a caption under a single photo, else a text message.
    context = {"number": number(), "department": department(lang)}
    answer = text(cases.MAX_ANSWER)
    yield Variant("photo", {**context, "text": answer, "caption": True}, CAPTION_LIMIT, answer)
    yield Variant("text", {**context, "text": answer, "caption": False}, TEXT_LIMIT, answer)


@fixture("case_card.html")
def _case_card(lang: str) -> Iterator[Variant]:
    # notify.post_card and refresh_card: a caption when the case has one photo, else a text
    # message (after the photos, or for a case from an integration, after none). What
    # refresh_card adds after a return, a transfer or a bundle, and triage to an assisting
    # department's copy (never under a photo).
    situations: list[tuple[str, CaseStatus, dict[str, Any]]] = [
        (str(status), status, {}) for status in STATUSES
    ]
    situations += [
        ("returned", CaseStatus.TRIAGE, {"returned": True}),
        ("transferred", CaseStatus.DISPATCHED, {"transferred_from": department(lang)}),
        ("bundled", CaseStatus.BUNDLED, {"bundle_number": number()}),
        ("assisting", CaseStatus.DISPATCHED, {"assisting": True, "lead": department(lang)}),
    ]
    for kind in (CaseKind.REPORT, CaseKind.SAY):
        for label, status, extra in situations:
            if label != "assisting":
                one_photo = a_case(lang, kind=kind, status=status, photos=1)
                context = notify.card_context(one_photo, caption=True, **extra)
                yield Variant(f"{kind}/{label}/photo", context, CAPTION_LIMIT, DESCRIPTION)
            for open311 in (False, True):
                case = a_case(
                    lang, kind=kind, status=status, photos=cases.MAX_PHOTOS, open311=open311
                )
                context = notify.card_context(case, **extra)
                yield Variant(
                    f"{kind}/{label}/open311={open311}", context, TEXT_LIMIT, DESCRIPTION
                )
            # Up to three 协办 units are named one per line on a text card.
            case.triage_assist = case.triage_assist[:3]
            case.assist_acks = {case.triage_assist[0]: {"name": NAME, "at": MOMENT.isoformat()}}
            context = notify.card_context(case, **extra)
            yield Variant(f"{kind}/{label}/assist3", context, TEXT_LIMIT, DESCRIPTION)


@fixture("center_card.html")
def _center_card(lang: str) -> Iterator[Variant]:
    # notify.post_center_card after a return (the reason is cut to 500 characters),
    # cases.assign, closure.withdraw, bundling._retire_cards.
    for status in STATUSES:
        for open311 in (False, True):
            case = a_case(lang, status=status, photos=cases.MAX_PHOTOS, open311=open311)
            returned: dict[str, Any] = {"reason": text(500), "returned_by": department(lang)}
            assigned: dict[str, Any] = {"assigned_to": department(lang), "assigned_by": NAME}
            for label, extra in (("returned", returned), ("assigned", assigned)):
                yield Variant(
                    f"{status}/{label}/open311={open311}",
                    notify.card_context(case, bundle_number=number(), **extra),
                    TEXT_LIMIT,
                    DESCRIPTION,
                )


@fixture("triage_card.html")
def _triage_card(lang: str) -> Iterator[Variant]:
    for step in (*triage_card.STEPS, None):
        for status in (CaseStatus.TRIAGE, CaseStatus.DISPATCHED, CaseStatus.BUNDLED):
            for open311 in (False, True):
                case = a_case(lang, status=status, photos=cases.MAX_PHOTOS, open311=open311)
                case.triage_step = step
                yield Variant(
                    f"{status}/{step}/open311={open311}",
                    triage_card.context(case, district(), bundle_number=number()),
                    TEXT_LIMIT,
                    DESCRIPTION,
                )


@fixture("triage_leader.html")
def _triage_leader(lang: str) -> Iterator[Variant]:
    case = a_case(lang)
    context = {"number": number(), "lead": case.triage_lead, "assist": case.triage_assist}
    yield Variant("hard", context, TEXT_LIMIT, number())


@fixture("triaged.html")
def _triaged(lang: str) -> Iterator[Variant]:
    context = {"number": number(), "department": department(lang), "expected": "2026-12-31"}
    yield Variant("with a deadline", context, TEXT_LIMIT, number())


@fixture("receipt.html")
def _receipt(lang: str) -> Iterator[Variant]:
    units = {
        "department": department(lang),
        "triage": street_office(lang),
        "volunteers": None,
        "center": None,
    }
    for route, unit in units.items():
        context = {"number": number(), "route": route, "unit": unit}
        yield Variant(route, context, TEXT_LIMIT, number())


@fixture("help_card.html")
def _help_card(lang: str) -> Iterator[Variant]:
    # cases._publish_help and volunteers.refresh_help_card, as the request moves.
    for status in (CaseStatus.PUBLISHED, CaseStatus.CLOSED, CaseStatus.WITHDRAWN):
        case = a_case(lang, kind=CaseKind.HELP, status=status)
        context = notify.help_context(case, a_request(), thanked=True)
        yield Variant(str(status), context, TEXT_LIMIT, DESCRIPTION)


@fixture("help_details.html")
def _help_details(lang: str) -> Iterator[Variant]:
    # volunteers.claim: the winner's private copy.
    case, request = a_case(lang, kind=CaseKind.HELP, status=CaseStatus.PUBLISHED), a_request()
    context = notify.help_context(case, request, contact=case.contact, door=request.door)
    yield Variant("claimed", context, TEXT_LIMIT, DESCRIPTION)


@fixture("help_office.html")
def _help_office(lang: str) -> Iterator[Variant]:
    # volunteers._tell_office: nobody took the request.
    case, request = a_case(lang, kind=CaseKind.HELP, status=CaseStatus.PUBLISHED), a_request()
    context = notify.help_context(
        case, request, minutes=BIG, contact=case.contact, door=request.door, resident_name=NAME
    )
    yield Variant("unclaimed", context, TEXT_LIMIT, DESCRIPTION)


# Refusals of replies in groups (bot/services/refusals.py): every reason that is folded, with
# its longest parameters and the value that must show.
def _refusals() -> Iterator[tuple[str, dict[str, Any], str]]:
    yield "help.already-taken", {"name": NAME}, NAME
    for reason in ("help.not-volunteer", "help.paused", "help.claim-closed", "help.own-request"):
        yield reason, {}, ""
    yield "card.already-answered", {"number": number()}, number()


@fixture("group_refusal.html")
def _group_refusal(lang: str) -> Iterator[Variant]:
    # refusals.fold: the first refused reply, then the edits counting the others.
    for reason, params, expect in _refusals():
        for others in (0, BIG):
            context = {"reason": reason, "params": params, "others": others}
            shown = expect or (str(others) if others else "")
            yield Variant(f"{reason}/{others}", context, TEXT_LIMIT, shown)


@fixture("refusal_private.html")
def _refusal_private(lang: str) -> Iterator[Variant]:
    # refusals.refuse_reply: told privately, about a case.
    for reason, params, expect in _refusals():
        context = {"number": number(), "reason": reason, "params": params}
        yield Variant(reason, context, TEXT_LIMIT, expect or number())


@fixture("deadline_proposal.html")
def _deadline_proposal(lang: str) -> Iterator[Variant]:
    # deadlines.propose, then deadlines.decide.
    days = max(deadlines.PROPOSAL_DAYS)
    case = a_case(lang, status=CaseStatus.ACKNOWLEDGED, photos=cases.MAX_PHOTOS, open311=True)
    context = {**notify.card_context(case), "days": days, "proposer": NAME, "until": iso()}
    yield Variant("proposed", context, TEXT_LIMIT, DESCRIPTION)
    for decided in (True, False):
        decision = {"decided": decided, "decided_by": NAME}
        yield Variant(f"decided={decided}", {**context, **decision}, TEXT_LIMIT, NAME)


@fixture("deadline_resident.html")
def _deadline_resident(lang: str) -> Iterator[Variant]:
    context = {"number": number(), "department": department(lang), "expected": "2026-12-31"}
    yield Variant("agreed", context, TEXT_LIMIT, number())


def _rung_context(lang: str, ladder_name: str, phase: str) -> dict[str, Any]:
    """ladder._context for a long-overdue case."""
    context: dict[str, Any] = {
        "ladder": ladder_name,
        "number": number(),
        "department": department(lang),
        "rung": BIG,
        "card": "red",
        "hours": "99999.9",
        "dispatched_at": iso(),
    }
    if ladder_name == ladder.DEADLINE_LADDER:
        context |= {"deadline": iso(), "phase": phase, "overdue_hours": "99999.9"}
    return context


RUNGS = (
    (ladder.ACK_LADDER, ""),
    (ladder.DEADLINE_LADDER, "before"),
    (ladder.DEADLINE_LADDER, "at"),
    (ladder.DEADLINE_LADDER, "after"),
)


def _rungs(lang: str, **extra: Any) -> Iterator[Variant]:
    for ladder_name, phase in RUNGS:
        for card in ("none", "yellow", "red"):
            context = {**_rung_context(lang, ladder_name, phase), "card": card, **extra}
            yield Variant(f"{ladder_name}/{phase}/{card}", context, TEXT_LIMIT, number())


@fixture("ladder_reminder.html")
def _ladder_reminder(lang: str) -> Iterator[Variant]:
    yield from _rungs(lang)


@fixture("ladder_center.html")
def _ladder_center(lang: str) -> Iterator[Variant]:
    yield from _rungs(lang)


@fixture("ladder_leader.html")
def _ladder_leader(lang: str) -> Iterator[Variant]:
    yield from _rungs(lang, task=None)


@fixture("ladder_call_task.html")
def _ladder_call_task(lang: str) -> Iterator[Variant]:
    yield from _rungs(lang, task="call_chief")


@fixture("ladder_digest.html")
def _ladder_digest(lang: str) -> Iterator[Variant]:
    # ladder._Scan.send_reminders: at most DIGEST_LINES lines, then "and N more".
    rungs = (RUNGS * ladder.DIGEST_LINES)[: ladder.DIGEST_LINES]
    items = [_rung_context(lang, ladder_name, phase) for ladder_name, phase in rungs]
    for for_center in (False, True):
        context = {"items": items, "count": BIG, "more": BIG, "for_center": for_center}
        yield Variant(f"for_center={for_center}", context, TEXT_LIMIT, number())


@fixture("fold_digest.html")
def _fold_digest(lang: str) -> Iterator[Variant]:
    # folding._draw: at most DIGEST_LINES lines, each with its longest outcome.
    statuses = [s.value for s in CaseStatus]
    longest_status = max(statuses, key=lambda s: len(catalogues().translator(lang)(f"status.{s}")))
    for outcome in (None, "posted", "gone"):
        items = [
            {
                "number": number(),
                "kind": CaseKind.REPORT.value,
                "category": category(CaseKind.REPORT, lang),
                "summary": text(1000),
                "status": longest_status if outcome == "gone" else "acknowledged",
                "outcome": outcome,
            }
            for _ in range(folding.DIGEST_LINES)
        ]
        finished = outcome is not None
        context = {"items": items, "count": BIG, "released": BIG, "finished": finished}
        yield Variant(f"outcome={outcome}", context, TEXT_LIMIT, number())


# Every kind of event the supervision platform is shown, over and over: a case returned and
# whistled again many times.
SUPERVISION_TIMELINE = 200


@fixture("ladder_supervision.html")
def _ladder_supervision(lang: str) -> Iterator[Variant]:
    # ladder._push_to_supervision.
    kinds = sorted(ladder.SUPERVISION_EVENTS)
    timeline = [
        {
            "at": iso(index),
            "kind": kinds[index % len(kinds)],
            "department": department(lang),
            "data": {},
        }
        for index in range(SUPERVISION_TIMELINE)
    ]
    for open311 in (False, True):
        case = a_case(lang, status=CaseStatus.DISPATCHED, photos=cases.MAX_PHOTOS, open311=open311)
        context = {
            **notify.card_context(case),
            **_rung_context(lang, ladder.ACK_LADDER, ""),
            "timeline": timeline,
        }
        yield Variant(f"open311={open311}", context, TEXT_LIMIT, DESCRIPTION)


@fixture("task_recorded.html")
def _task_recorded(lang: str) -> Iterator[Variant]:
    for outcome_key in ladder.OUTCOMES.values():
        context = {"number": number(), "outcome_key": outcome_key}
        yield Variant(outcome_key, context, TEXT_LIMIT, number())


@fixture("risk_alert.html")
def _risk_alert(lang: str) -> Iterator[Variant]:
    # early_warning.screen_case: every category of the library hit at once, with every word
    # of the library (what matched is a subset of it).
    library = load_library(DEFAULT_KEYWORDS_PATH)
    categories = sorted(library.categories, key=lambda c: len(c.name(lang)), reverse=True)
    top, others = categories[0], categories[1:]
    languages = {*top.names, district().default_language, lang}
    words = list(dict.fromkeys(k.word.removesuffix("*") for c in categories for k in c.keywords))
    for level in (1, 2, 3):
        for unit in (department(lang), None):
            context = {
                "number": number(),
                "kind": "say",
                "category": top.code,
                "category_names": {code: top.name(code) for code in languages},
                "level": level,
                "also_names": {code: [o.name(code) for o in others] for code in languages},
                "words": words,
                "department": unit,
            }
            yield Variant(f"level={level}/department={unit}", context, TEXT_LIMIT, number())


@fixture("start.html")
def _start(lang: str) -> Iterator[Variant]:
    # menu.greet with the user's first name; a newcomer's also offers the languages.
    for newcomer in (False, True):
        context = {"name": NAME, "district": district().names.get(lang), "languages": newcomer}
        yield Variant(f"newcomer={newcomer}", context, TEXT_LIMIT, NAME)


@fixture("help.html")
def _help(lang: str) -> Iterator[Variant]:
    # menu.show_help, with the staff's commands too in case they are ever listed.
    commands = [list(pair) for pair in menu.commands_for(staff=True)]
    yield Variant("commands", {"commands": commands}, TEXT_LIMIT, "/start")


@fixture("resident_summary.html")
def _resident_summary(lang: str) -> Iterator[Variant]:
    # resident.show_summary, from a draft filled to the limits the dialogs check.
    for kind in KINDS:
        help_ = kind is CaseKind.HELP
        for flag in (False, True):
            context = {
                "kind": kind.value,
                "photo_count": cases.MAX_PHOTOS,
                "description": DESCRIPTION,
                "category": category(kind, lang),
                "address": text(resident.MAX_BUILDING if help_ else cases.MAX_ADDRESS),
                "latitude": -89.123456,
                "longitude": -179.123456,
                "needed_when": text(resident.MAX_WHEN) if help_ else None,
                "anonymous": flag,
                "share_contact": not flag,
                "contact": text(FIRST_NAME),
                "name": NAME,
                "community": community(lang) if help_ else None,
                "door": text(resident.MAX_DOOR) if help_ else None,
                "skills": list(district().volunteers.skills) if help_ else [],
            }
            yield Variant(f"{kind}/flag={flag}", context, TEXT_LIMIT, DESCRIPTION)


@fixture("resident_cases.html")
def _resident_cases(lang: str) -> Iterator[Variant]:
    # resident.show_cases: a page of PAGE_SIZE cases.
    listed = [
        {
            "number": number(),
            "kind": kind.value,
            "category": category(kind, lang),
            "status": status.value,
            "updated_at": iso(),
            "followed": True,
        }
        for kind, status in zip(
            (KINDS * resident.PAGE_SIZE)[: resident.PAGE_SIZE],
            (STATUSES * resident.PAGE_SIZE)[: resident.PAGE_SIZE],
            strict=True,
        )
    ]
    context = {"cases": listed, "page": BIG, "pages": BIG, "total": BIG}
    yield Variant("a full page", context, TEXT_LIMIT, number())


def _timeline(lang: str, kinds: list[str], *, own: bool) -> list[dict[str, Any]]:
    """resident.show_timeline: the last MAX_TIMELINE_EVENTS of these events, as its resident
    (``own``) or a co-reporter sees them, each with its longest note."""
    members = [number()] * BUNDLE_NUMBERS
    notes = {"commented": text(cases.MAX_COMMENT), "bundled": number(), "transferred": CODE}
    events = [
        CaseEvent(
            case_id=ROW_ID,
            at=MOMENT + timedelta(hours=index),
            kind=kind,
            actor_id=TELEGRAM_ID,
            actor_role="resident",
            department=department(lang),
            note=notes.get(kind),
            data={"rating": rating(lang).value, "members": members},
        )
        for index, kind in enumerate(kinds)
    ]
    lines = [resident._timeline_line(event, own=own, reader=TELEGRAM_ID) for event in events]
    return lines[-resident.MAX_TIMELINE_EVENTS :]


# Event sequences of a case that went round and round.
TIMELINES = {
    # Answered, rated unsatisfied with the longest comment, answered again …
    "reopened": ["submitted", "dispatched", "acknowledged"]
    + ["answered", "reopened", "commented"] * resident.MAX_TIMELINE_EVENTS,
    # Returned and reassigned again and again.
    "transferred": ["submitted"] + ["returned", "transferred", "acknowledged"] * 20,
    # Bundle after bundle joined to it, each as large as one /bundle command can name.
    "bundles": ["submitted", "dispatched"] + ["bundle_joined"] * resident.MAX_TIMELINE_EVENTS,
    # Every kind a resident is shown, in turn.
    "every kind": [key.removeprefix("event.") for key in resident.TIMELINE_EVENTS] * 5,
}


@fixture("resident_timeline.html")
def _resident_timeline(lang: str) -> Iterator[Variant]:
    # resident.show_timeline.
    for kind in KINDS:
        case = a_case(lang, kind=kind, status=CaseStatus.DISPATCHED)
        for (label, events), followed in itertools.product(TIMELINES.items(), (False, True)):
            context = {
                "number": case.number,
                "kind": case.kind.value,
                "status": case.status.value,
                "category": case.category,
                "department": case.department,
                "description": case.description,
                "address": case.address,
                "latitude": case.latitude,
                "longitude": case.longitude,
                "needed_when": a_request().needed_when if kind is CaseKind.HELP else None,
                "rating": None if followed else rating(lang).value,
                "events": _timeline(lang, events, own=not followed),
                "confirm_withdraw": True,
                "followed": followed,
                "reporters": case.reporters,
            }
            yield Variant(f"{kind}/{label}/followed={followed}", context, TEXT_LIMIT, DESCRIPTION)


@fixture("similar_case.html")
def _similar_case(lang: str) -> Iterator[Variant]:
    context = bundling.similar_context(a_case(lang, status=CaseStatus.ACKNOWLEDGED))
    yield Variant("offered", context, TEXT_LIMIT, DESCRIPTION)


@functools.cache
def _bundle_cases(lang: str) -> tuple[Case, list[Case]]:
    statuses = (STATUSES * BUNDLE_NUMBERS)[:BUNDLE_NUMBERS]
    lead, *members = (a_case(lang, status=status) for status in statuses)
    return lead, members


@fixture("bundle_preview.html")
def _bundle_preview(lang: str) -> Iterator[Variant]:
    # bundling.propose, then bundling.decide: as many cases as /bundle takes.
    lead, members = _bundle_cases(lang)
    yield Variant("proposed", bundling._preview(lead, members), TEXT_LIMIT, number())
    cancelled = bundling._preview(lead, members, cancelled_by=NAME)
    yield Variant("cancelled", cancelled, TEXT_LIMIT, NAME)
    bundled = bundling._preview(lead, members, bundled_by=NAME, reporters=BIG)
    yield Variant("bundled", bundled, TEXT_LIMIT, NAME)


@fixture("bundle_refused.html")
def _bundle_refused(lang: str) -> Iterator[Variant]:
    # bundling._refuse: the words of a /bundle command that are not case numbers come back
    # as written, so every reason may list a whole message's worth.
    words = text(TEXT_LIMIT)
    context = dict.fromkeys(("unknown", "finished", "help", "bundled"), words)
    yield Variant("every reason", context, TEXT_LIMIT, words)


@fixture("points_credit.html")
def _points_credit(lang: str) -> Iterator[Variant]:
    # points.credit_help.
    for why in ("self", "daily", "pair", None):
        for credited in (0, BIG):
            for auto in (False, True):
                context = {
                    "number": number(),
                    "auto": auto,
                    "worth": BIG,
                    "why": why,
                    "points": credited,
                    "balance": BIG,
                }
                yield Variant(f"{why}/{credited}/auto={auto}", context, TEXT_LIMIT, number())


@fixture("points_balance.html")
def _points_balance(lang: str) -> Iterator[Variant]:
    # points.show_points: the latest RECENT_ENTRIES entries, an adjustment's reason at its
    # longest.
    reason = text(points.MAX_REASON)
    kinds = ("adjust", "earn", "spend", "refund")
    entries = [
        {
            "at": "2026-12-31 23:59",
            "kind": kinds[index % len(kinds)],
            "points": f"{-points.MAX_ADJUSTMENT:+d}",
            "detail": reason,
            "auto": True,
        }
        for index in range(points.RECENT_ENTRIES)
    ]
    yield Variant("entries", {"balance": BIG, "entries": entries}, TEXT_LIMIT, reason)
    yield Variant("empty", {"balance": 0, "entries": []}, TEXT_LIMIT, "0")


@fixture("points_top.html")
def _points_top(lang: str) -> Iterator[Variant]:
    # points.show_top: LEADERBOARD_SIZE names and the caller's own place.
    board: dict[str, Any] = {
        "top": [{"rank": BIG, "name": NAME, "points": BIG}] * points.LEADERBOARD_SIZE,
        "me": {"rank": BIG, "points": BIG},
    }
    unit = district().department(community(lang))
    assert unit is not None
    name = unit.names.get(lang)
    yield Variant(
        "full boards", {"community": name, "week": board, "month": board}, TEXT_LIMIT, NAME
    )
    empty: dict[str, Any] = {"top": [], "me": None}
    yield Variant("empty", {"community": name, "week": empty, "month": empty}, TEXT_LIMIT, name)


def _offers(lang: str) -> list[dict[str, Any]]:
    return [
        {
            "merchant": merchant.names.get(lang),
            "name": offer.names.get(lang),
            "price": offer.price,
            "description": offer.description.get(lang) if offer.description else None,
            "left": BIG,
            "until": "2027-12-31",
        }
        for merchant in district().merchants
        for offer in merchant.offers
    ]


@fixture("points_shop.html")
def _points_shop(lang: str) -> Iterator[Variant]:
    # points.show_shop: every offer of the district file.
    offers = _offers(lang)
    yield Variant("offers", {"balance": BIG, "offers": offers}, TEXT_LIMIT, offers[0]["name"])
    yield Variant("empty", {"balance": BIG, "offers": []}, TEXT_LIMIT, str(BIG))


@fixture("points_code.html")
def _points_code(lang: str) -> Iterator[Variant]:
    # points.redeem.
    for offer in _offers(lang):
        context = {
            "code": points.show_code("Z" * points.CODE_LENGTH),
            "merchant": offer["merchant"],
            "offer": offer["name"],
            "description": offer["description"],
            "price": offer["price"],
            "expires": "2026-12-31 23:59",
            "balance": BIG,
        }
        yield Variant(offer["name"], context, TEXT_LIMIT, offer["name"])


def _figures() -> dict[str, Any]:
    big = stats.Figures(
        dispatched=BIG,
        responded=BIG - 1,
        resolved=BIG - 2,
        rated=BIG,
        satisfied=BIG - 3,
        yellow=BIG,
        red=BIG,
        overdue=BIG,
        reopened=BIG,
        median_ack=timedelta(days=999),
        median_answer=timedelta(days=999),
    )
    return big.as_dict()


def _report_context(lang: str, kind: str, scope: str | None) -> dict[str, Any]:
    """reports.report_context with LEAGUE_LISTED departments and OVERDUE_LISTED cases."""
    overdue = [
        {"number": number(), "department": department(lang), "hours": BIG, "status": "dispatched"}
    ] * reports.OVERDUE_LISTED
    league = [{"code": department(lang), **_figures()}] * reports.LEAGUE_LISTED
    return {
        "kind": kind,
        "title_key": reports.TITLES.get(kind, reports.TITLES["daily"]),
        "scope": scope,
        "period_start": "2026-12-01T00:00:00+08:00",
        "period_last": "2026-12-31T23:59:59+08:00",
        "district": _figures(),
        "league": league,
        "league_more": BIG,
        "overdue": overdue,
        "overdue_count": BIG,
        "overdue_more": BIG,
        "with_cards": kind in ("monthly", "stats"),
        "league_table": kind != "daily",
        "definitions": list(stats.DEFINITIONS.values()),
    }


@fixture("report.html")
def _report(lang: str) -> Iterator[Variant]:
    # reports._queue_report (the scheduled reports) and reports.show_stats (/stats, for the
    # district or a department).
    for kind in (*reports.KINDS, "stats"):
        for scope in (None, department(lang)):
            context = _report_context(lang, kind, scope)
            if kind == "stats":
                for period in reports.STATS_PERIODS:
                    titled = {**context, "title_key": reports.TITLES[period]}
                    yield Variant(f"stats/{period}/{scope}", titled, TEXT_LIMIT, "2026")
            else:
                yield Variant(f"{kind}/{scope}", context, TEXT_LIMIT, "2026")


@fixture("report_chart.html")
def _report_chart(lang: str) -> Iterator[Variant]:
    # The caption of the chart's photo.
    for kind in reports.KINDS:
        context = _report_context(lang, kind, None)
        yield Variant(kind, context, CAPTION_LIMIT, "2026")


# -- the tests ----------------------------------------------------------------------------------


def test_every_template_has_a_fixture() -> None:
    assert TEMPLATES, f"no templates found in {TEMPLATES_DIR}"
    assert sorted(FIXTURES) == TEMPLATES


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("template", TEMPLATES)
def test_template_fits_telegram_limits(template: str, language: str) -> None:
    builder = FIXTURES.get(template)
    assert builder is not None, f"{template} has no fixture in {__name__}"
    variants = list(builder(language))
    assert variants
    for variant in variants:
        rendered = catalogues().render(template, variant.context, language)
        where = f"{template} [{variant.label}] in {language}"
        # Measured as Telegram does, by the test server's own parser (not the product's).
        text, _entities = parse_html(rendered)
        length = len(text.strip())
        assert length <= variant.limit, f"{where}: {length} characters > {variant.limit}"
        assert "<script>" not in rendered, f"{where}: unescaped user text"
        assert str(escape(variant.expect[:16])) in rendered, f"{where}: the value is missing"


# -- callback data ------------------------------------------------------------------------------


def _all_callbacks() -> set[type[callbacks.Callback]]:
    found: set[type[callbacks.Callback]] = set()
    pending = [callbacks.Callback]
    while pending:
        for sub in pending.pop().__subclasses__():
            found.add(sub)
            pending.append(sub)
    return found


def _longest_unit_code() -> str:
    codes = [d.code for d in district().departments] + [s.code for s in district().street_offices]
    return max(codes, key=len)


def _offer_keys() -> list[str]:
    return [
        points.offer_key(merchant, offer)
        for merchant in district().merchants
        for offer in merchant.offers
    ]


TOKEN = "f" * 8  # secrets.token_hex(4): a filing or sign-up dialog

# The longest value each text field of a callback takes (codes from config.example.toml and
# the longest code the district file allows); integer fields take TELEGRAM_ID.
CALLBACK_VALUES: dict[type[callbacks.Callback], dict[str, list[str]]] = {
    callbacks.LanguageChoice: {"code": ["zh-Hans", "mn-Mong", *LANGUAGES]},
    callbacks.CaseAction: {"action": ["ack", "ans", "ret"]},
    callbacks.AssignCase: {"unit": [_longest_unit_code(), CODE]},
    callbacks.RateCase: {"rating": list(closure.RATINGS)},
    callbacks.MyCasesPage: {},
    callbacks.ViewCase: {},
    callbacks.WithdrawCase: {},
    callbacks.ConfirmWithdraw: {},
    callbacks.DraftAction: {
        "token": [TOKEN],
        "action": ["contact", "toggle", "follow", "skill", "anon"],  # the longest ones
        "value": [CODE, str(ROW_ID), *resident.EDIT_LABELS, "ok", str(BIG)],
    },
    callbacks.CallOutcome: {"outcome": list(ladder.OUTCOMES)},
    callbacks.TriageStep: {
        "action": ["lead", "assist", "next", "back", "diff", "due"],
        "value": [CODE, *triage_card.DIFFICULTIES, *triage_card.DEADLINE_DAYS, "-"],
    },
    callbacks.ProposeDeadline: {},
    callbacks.DecideDeadline: {"decision": ["y", "n"]},
    callbacks.BundleDecision: {"action": ["y", "n"]},
    callbacks.VolunteerForm: {
        "token": [TOKEN],
        "action": ["com", "sk", "ok"],
        "value": [CODE, str(BIG), ""],
    },
    callbacks.VolunteerDecision: {"decision": ["y", "n"]},
    callbacks.VolunteerPause: {"action": ["p", "r"]},
    callbacks.ClaimHelp: {},
    callbacks.HelpProgress: {"action": ["way", "done", "rel"]},
    callbacks.HelpConfirm: {"answer": ["y", "t", "n"]},
    callbacks.RedeemOffer: {"offer": _offer_keys()},
    callbacks.ForgetMe: {"answer": ["y", "n"]},
    callbacks.OpenFolded: {},
}


def test_every_callback_has_values() -> None:
    assert set(CALLBACK_VALUES) == _all_callbacks()


@pytest.mark.parametrize(
    "factory", [pytest.param(factory, id=factory.__name__) for factory in CALLBACK_VALUES]
)
def test_callback_data_fits_in_64_bytes(factory: type[callbacks.Callback]) -> None:
    values = CALLBACK_VALUES[factory]
    arguments: dict[str, Any] = {}
    for field in dataclasses.fields(factory):
        if field.type in (int, "int"):
            arguments[field.name] = TELEGRAM_ID
        else:
            assert field.name in values, f"{factory.__name__}.{field.name} has no values"
            arguments[field.name] = max(values[field.name], key=lambda v: len(v.encode()))
    packed = factory(**arguments).pack()  # pack() raises past 64 bytes
    assert len(packed.encode()) <= callbacks.MAX_BYTES
    assert factory.unpack(packed) == factory(**arguments)
