"""打包: common complaints (飞线充电, 乱堆乱放 …) raised together and handled once.

Two ways in. A resident confirming a photo report is shown an open case of the same category
filed recently nearby (within the district's distance, or at the same address) and may follow
it instead of filing another. A street office or the governance center bundles cases with
``/bundle HB-000001 HB-000002 …`` and confirms: the first case leads. A bundle is dispatched,
escalated and closed once, through its lead: the other cases leave their departments (their
ladders stop, their cards say where they went), their residents follow the lead, and closing
the lead closes them (:func:`bot.services.closure.rate`, ``close_unrated``).

Residents following a case never learn who filed it: they see its number, category, status,
filing time and a shortened description.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.callbacks import BundleDecision
from bot.district import District
from bot.i18n import N_
from bot.services import cases, followers, ladder, notify, triage_card
from bot.services.errors import UserError
from bot.services.outbox import (
    answer_callback,
    button,
    edit_text,
    enqueue,
    inline_keyboard,
    send_text,
)
from bot.services.routing import CENTER, chat_of
from models import Case, CaseEvent, CaseKind, CaseStatus
from models.case import OPEN, WITH_DEPARTMENT

EARTH_RADIUS_M = 6_371_008.8
# How many recent open cases of a category are compared with a new report, newest first.
CANDIDATES = 200
# What a new report may follow. A case bundled into another matches too, but its lead is
# offered: the bundle is where the problem is handled.
FOLLOWABLE = frozenset(OPEN) - {CaseStatus.BUNDLED, CaseStatus.PUBLISHED}
# Statuses in which a department's card is live (and shows the reporters).
_LIVE_CARD = WITH_DEPARTMENT | {CaseStatus.ANSWERED}
PROPOSED = "bundle_proposed"
# Separators people put between case numbers: spaces, commas, 、 and ; in either width.
_NUMBERS = re.compile(r"[\s,，、;；]+")


# -- similar cases ----------------------------------------------------------------------------


def normalise_address(text: str) -> str:
    """For comparing addresses: full-width forms folded (NFKC), case folded, spaces and
    punctuation dropped — '康乐小区 3号楼，北侧' and '康乐小区3号楼北侧' are one place."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return "".join(
        char
        for char in folded
        if not char.isspace() and unicodedata.category(char)[0] not in "PZC"
    )


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlambda = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


async def find_similar(
    session: AsyncSession,
    district: District,
    *,
    draft: cases.Draft,
    resident_id: int,
    now: datetime,
) -> Case | None:
    """The open case a new photo report most likely repeats: same category, filed within the
    window by someone else, and within the distance (both with coordinates) or at the same
    normalised address; the nearest first, then the newest. A bundled case stands for its
    lead. Cases the resident filed or follows are never offered.

    The database narrows by category, status and filing time (an index covers them); the
    distance is worked out here over that short list."""
    if draft.kind is not CaseKind.REPORT or not draft.category:
        return None
    address = normalise_address(draft.address) if draft.address else ""
    point = (
        (draft.latitude, draft.longitude)
        if draft.latitude is not None and draft.longitude is not None
        else None
    )
    if not address and point is None:
        return None
    rows = await session.scalars(
        select(Case)
        .where(
            col(Case.category) == draft.category,
            col(Case.status).in_(FOLLOWABLE | {CaseStatus.BUNDLED}),
            col(Case.created_at) >= now - timedelta(days=district.bundling.window_days),
        )
        .order_by(col(Case.created_at).desc(), col(Case.id).desc())
        .limit(CANDIDATES)
    )
    matches: list[tuple[float, Case]] = []
    for case in rows.all():
        away: float | None = None
        if point is not None and case.latitude is not None and case.longitude is not None:
            metres = distance_m(*point, case.latitude, case.longitude)
            away = metres if metres <= district.bundling.distance_m else None
        if away is None and address and case.address:
            away = 0.0 if normalise_address(case.address) == address else None
        if away is not None:
            matches.append((away, case))
    matches.sort(key=lambda match: match[0])  # stable: the newest first among equals
    for _, matched in matches:
        offered: Case | None = matched
        if matched.status is CaseStatus.BUNDLED and matched.bundle_id is not None:
            offered = await session.get(Case, matched.bundle_id)
        if offered is None or offered.status not in FOLLOWABLE or offered.id is None:
            continue
        if offered.resident_id != resident_id and not await followers.follows(
            session, offered.id, resident_id
        ):
            return offered
    return None


def similar_context(case: Case) -> dict[str, Any]:
    """What a resident is shown of someone else's case: never who filed it."""
    return {
        **notify.case_facts(case),
        "created_at": case.created_at.isoformat(),
        "description": case.description,
        "reporters": case.reporters,
    }


async def follow(
    session: AsyncSession,
    district: District,
    *,
    case_id: int,
    resident: cases.Person,
    draft: cases.Draft,
    now: datetime,
) -> Case:
    """The resident reports the same problem by following the case: no new case. What they
    wrote and photographed stays on the case's audit trail; its card counts them."""
    case = await cases.get_case(session, case_id)
    if case.status is CaseStatus.BUNDLED and case.bundle_id is not None:
        case = await cases.get_case(session, case.bundle_id)  # bundled since it was offered
    if case.status not in FOLLOWABLE:
        raise UserError(N_("follow.too-late"), number=case.number)
    if case.resident_id == resident.id:
        raise UserError(N_("errors.stale-button"))
    added = await followers.add(
        session, case, user_id=resident.id, language=resident.language, now=now
    )
    if added:
        cases.record(
            session,
            case,
            kind="followed",
            now=now,
            actor=resident,
            role="resident",
            note=draft.description or None,
            photos=draft.photos,
        )
        if case.status in _LIVE_CARD:
            await cases.refresh(session, district, case, now)
    return case


# -- /bundle ----------------------------------------------------------------------------------


def parse_numbers(district: District, text: str | None) -> list[str]:
    """Case numbers as written, made canonical ('hb-12' → 'HB-000012'), in order, once each."""
    pattern = re.compile(rf"{re.escape(district.case_prefix)}-?(\d{{1,9}})", re.IGNORECASE)
    numbers: list[str] = []
    for word in _NUMBERS.split((text or "").strip()):
        if not word:
            continue
        match = pattern.fullmatch(unicodedata.normalize("NFKC", word))
        number = district.case_number(int(match.group(1))) if match else word
        if number not in numbers:
            numbers.append(number)
    return numbers


def _problems(numbers: list[str], found: dict[str, Case]) -> dict[str, list[str]]:
    """Why each case cannot be bundled (by reason, in the order given); empty when all can."""
    problems: dict[str, list[str]] = {}
    for position, number in enumerate(numbers):
        case = found.get(number)
        reason = None
        if case is None:
            reason = "unknown"
        elif case.status in (CaseStatus.CLOSED, CaseStatus.WITHDRAWN):
            reason = "finished"
        elif case.kind is CaseKind.HELP:
            reason = "help"
        elif case.bundle_id is not None and (position > 0 or case.bundle_id != case.id):
            # Only the lead may already lead a bundle: /bundle then adds to it.
            reason = "bundled"
        if reason is not None:
            problems.setdefault(reason, []).append(number)
    return problems


def _refuse(
    session: AsyncSession,
    *,
    chat_id: int,
    lang: str,
    now: datetime,
    problems: dict[str, list[str]],
    reply_to: int | None = None,
) -> None:
    enqueue(
        session,
        chat_id=chat_id,
        locale=lang,
        now=now,
        template="bundle_refused.html",
        context={reason: ", ".join(numbers) for reason, numbers in problems.items()},
        target=reply_to,
    )


def _preview(lead: Case, members: Iterable[Case], **extra: Any) -> dict[str, Any]:
    listed = [lead, *members]
    return {
        "lead": lead.number,
        "cases": [
            {"number": c.number, "category": c.category, "status": c.status.value} for c in listed
        ],
        "members": [c.number for c in listed[1:]],
        **extra,
    }


async def propose(
    session: AsyncSession,
    district: District,
    *,
    text: str | None,
    unit: str,
    chat_id: int,
    message_id: int,
    actor: cases.Person,
    now: datetime,
) -> None:
    """/bundle: check the cases and show what would be bundled, with Confirm and Cancel.
    Nothing changes until someone confirms; a problem is answered naming the cases."""
    if unit != CENTER and district.street_office(unit) is None:
        raise UserError(N_("bundle.where"))
    numbers = parse_numbers(district, text)
    if len(numbers) < 2:
        raise UserError(N_("bundle.usage"))
    rows = await session.scalars(select(Case).where(col(Case.number).in_(numbers)))
    found = {case.number: case for case in rows.all()}
    lang = district.default_language
    problems = _problems(numbers, found)
    if problems:
        _refuse(
            session, chat_id=chat_id, lang=lang, now=now, problems=problems, reply_to=message_id
        )
        return
    lead, *members = (found[number] for number in numbers)
    proposal = cases.record(
        session,
        lead,
        kind=PROPOSED,
        now=now,
        actor=actor,
        role="center",
        members=[member.id for member in members],
        chat_id=chat_id,
    )
    await session.flush()
    assert proposal.id is not None
    enqueue(
        session,
        chat_id=chat_id,
        locale=lang,
        now=now,
        template="bundle_preview.html",
        context=_preview(lead, members),
        keyboard=inline_keyboard(
            [
                button(N_("bundle.confirm"), BundleDecision(proposal.id, "y").pack()),
                button(N_("bundle.cancel"), BundleDecision(proposal.id, "n").pack()),
            ]
        ),
        target=message_id,
    )


async def decide(
    session: AsyncSession,
    district: District,
    *,
    proposal_id: int,
    approve: bool,
    chat_id: int,
    message_id: int,
    actor: cases.Person,
    callback_query_id: str,
    now: datetime,
) -> Case | None:
    """Confirm or cancel a proposal, once. The cases are checked again: they may have moved
    since the proposal was shown. Returns the lead when the bundle was made."""
    proposal = await session.get(CaseEvent, proposal_id)
    if (
        proposal is None
        or proposal.kind != PROPOSED
        or proposal.data.get("chat_id") != chat_id
        or proposal.data.get("decided")
    ):
        raise UserError(N_("card.stale"))
    lead = await cases.get_case(session, proposal.case_id)
    await session.refresh(proposal)  # read again under the lead's lock: a double press
    if proposal.data.get("decided"):
        raise UserError(N_("card.stale"))
    proposal.data = {**proposal.data, "decided": "yes" if approve else "no", "by": actor.id}
    lang = district.default_language
    answer_callback(
        session, chat_id=chat_id, callback_query_id=callback_query_id, locale=lang, now=now
    )
    members = [await cases.get_case(session, int(i)) for i in proposal.data["members"]]

    def show(**what: Any) -> None:
        edit_text(session, chat_id=chat_id, target=message_id, locale=lang, now=now, **what)

    if not approve:
        show(
            template="bundle_preview.html",
            context=_preview(lead, members, cancelled_by=actor.name),
        )
        return None
    numbers = [lead.number, *(member.number for member in members)]
    problems = _problems(numbers, {case.number: case for case in (lead, *members)})
    if problems:
        show(text_key=N_("bundle.outdated"))
        _refuse(session, chat_id=chat_id, lang=lang, now=now, problems=problems)
        return None
    await _bundle(session, district, lead, members, actor=actor, now=now)
    show(
        template="bundle_preview.html",
        context=_preview(lead, members, bundled_by=actor.name, reporters=lead.reporters),
    )
    return lead


async def _bundle(
    session: AsyncSession,
    district: District,
    lead: Case,
    members: list[Case],
    *,
    actor: cases.Person,
    now: datetime,
) -> None:
    assert lead.id is not None
    lead.bundle_id = lead.id
    for member in members:
        previous = cases.change_status(
            session,
            member,
            CaseStatus.BUNDLED,
            kind="bundled",
            now=now,
            actor=actor,
            role="center",
            note=lead.number,
        )
        member.bundle_id, member.rating_due_at = lead.id, None
        # One bundle, one ladder: the lead's.
        await ladder.stop(session, member)
        await _retire_cards(session, district, member, previous, lead, now)
        for user_id, language in await followers.move(session, member, lead, now=now):
            send_text(
                session,
                chat_id=user_id,
                locale=language,
                now=now,
                text_key=N_("bundle.resident"),
                number=member.number,
                lead=lead.number,
            )
    cases.record(
        session,
        lead,
        kind="bundle_joined",
        now=now,
        actor=actor,
        role="center",
        members=[member.number for member in members],
    )
    if lead.status in _LIVE_CARD:
        await cases.refresh(session, district, lead, now)


async def _retire_cards(
    session: AsyncSession,
    district: District,
    member: Case,
    previous: CaseStatus,
    lead: Case,
    now: datetime,
) -> None:
    """The card a department, street office or the center holds for a bundled case says
    where it went and loses its buttons."""
    if previous in _LIVE_CARD:
        await cases.refresh(session, district, member, now, bundle_number=lead.number)
        return
    if previous is not CaseStatus.TRIAGE:
        return
    if member.triage_step:  # in a street office's 三审 wizard: it ends here
        member.triage_step = None
        await triage_card.refresh(session, district, member, now, bundle_number=lead.number)
        return
    center = await chat_of(session, district, CENTER)
    if center is not None:
        notify.retire_card(
            session,
            case=member,
            chat_id=center,
            lang=district.default_language,
            now=now,
            template="center_card.html",
            purpose=notify.CENTER_CARD,
            bundle_number=lead.number,
        )
