"""Volunteers (热心人): registration and approval, and claiming help requests (邻里互助).

A help request is claimed by conditional UPDATEs, never read-then-write: one of its case
(``WHERE status = published``, which also waits for a withdrawal in progress) and one of its
:class:`~models.HelpRequest` (``WHERE volunteer_id IS NULL``), so exactly one of many
simultaneous claims wins; the others are told who was first. Guards raise :class:`UserError`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.callbacks import HelpConfirm, HelpProgress, VolunteerDecision
from bot.district import Department, DepartmentKind, District, Role
from bot.i18n import N_
from bot.services import cases, notify, points, routing
from bot.services.errors import UserError
from bot.services.outbox import button, enqueue, inline_keyboard, send_text
from models import (
    Case,
    CaseKind,
    CaseStatus,
    HelpClaim,
    HelpRequest,
    HelpStage,
    Volunteer,
    VolunteerStatus,
)

HELP_CARD = notify.HELP_CARD
DETAILS = "help-details"  # the winner's private copy, with the door and contact
MAX_NAME = 64
MAX_AVAILABILITY = 200


# -- registration -----------------------------------------------------------------------------


def communities(district: District) -> tuple[Department, ...]:
    return district.communities()


def check_name(text: str) -> str:
    text = text.strip()
    if not text or len(text) > MAX_NAME:
        raise UserError(N_("volunteer.name-invalid"), limit=MAX_NAME)
    return text


def check_availability(text: str) -> str:
    text = text.strip()
    if not text or len(text) > MAX_AVAILABILITY:
        raise UserError(N_("volunteer.availability-invalid"), limit=MAX_AVAILABILITY)
    return text


def approvers(district: District, community: str) -> list[int]:
    """Who decides on a volunteer of ``community``: its own admins (people with the admin
    role attached to it), else the district's admins (attached to no unit)."""
    admins = district.people_with_role(Role.ADMIN)
    own = [p.telegram_id for p in admins if community in p.departments]
    return own or [p.telegram_id for p in admins if not p.departments]


def may_decide(district: District, admin_id: int, community: str) -> bool:
    district_wide = approvers(district, "")
    return admin_id in approvers(district, community) or admin_id in district_wide


def _tell(
    session: AsyncSession, volunteer: Volunteer, now: datetime, text_key: str, **context: Any
) -> None:
    """One catalogue message to a volunteer, in their language."""
    chat_id, locale = volunteer.user_id, volunteer.language
    send_text(session, chat_id=chat_id, locale=locale, now=now, text_key=text_key, **context)


async def get(session: AsyncSession, user_id: int) -> Volunteer | None:
    return await session.get(Volunteer, user_id, populate_existing=True)


async def register(
    session: AsyncSession,
    district: District,
    *,
    user: cases.Person,
    display_name: str,
    community: str,
    skills: list[str],
    availability: str,
    contact: str | None = None,
    now: datetime,
) -> Volunteer:
    """A new (or declined) volunteer's application, sent to the admins to decide."""
    unit = district.department(community)
    if unit is None or unit.kind != DepartmentKind.COMMUNITY:
        raise UserError(N_("errors.stale-button"))
    known = set(district.volunteers.skills)
    volunteer = await get(session, user.id)
    if volunteer is not None and volunteer.status is not VolunteerStatus.DECLINED:
        raise UserError(N_("volunteer.already-registered"))
    if volunteer is None:
        volunteer = Volunteer(
            user_id=user.id,
            display_name="",
            language=user.language,
            community=community,
            status=VolunteerStatus.PENDING,
            registered_at=now,
        )
        session.add(volunteer)
    volunteer.display_name = check_name(display_name)
    volunteer.first_name = user.name[:128]
    volunteer.language = user.language
    volunteer.community = community
    volunteer.skills = [s for s in skills if s in known]
    volunteer.availability = check_availability(availability)
    volunteer.contact = contact[:128] if contact else None
    volunteer.status = VolunteerStatus.PENDING
    volunteer.registered_at = now
    volunteer.decided_at = volunteer.decided_by = None
    await session.flush()
    keyboard = inline_keyboard(
        [
            button(N_("volunteer.button.approve"), VolunteerDecision(user.id, "y").pack()),
            button(N_("volunteer.button.decline"), VolunteerDecision(user.id, "n").pack()),
        ]
    )
    for admin in approvers(district, community):
        send_text(
            session,
            chat_id=admin,
            locale=district.default_language,
            now=now,
            text_key=N_("volunteer.application"),
            keyboard=keyboard,
            name=volunteer.name,
            community=unit.names.get(district.default_language),
            skills="、".join(volunteer.skills) or "—",
            availability=volunteer.availability,
        )
    send_text(
        session, chat_id=user.id, locale=user.language, now=now, text_key=N_("volunteer.applied")
    )
    return volunteer


async def decide(
    session: AsyncSession,
    district: District,
    *,
    admin_id: int,
    user_id: int,
    approve: bool,
    now: datetime,
) -> Volunteer:
    volunteer = await get(session, user_id)
    if volunteer is not None and not may_decide(district, admin_id, volunteer.community):
        raise UserError(N_("volunteer.not-admin"))
    if volunteer is None or volunteer.status is not VolunteerStatus.PENDING:
        raise UserError(N_("volunteer.already-decided"))
    volunteer.status = VolunteerStatus.APPROVED if approve else VolunteerStatus.DECLINED
    volunteer.decided_at, volunteer.decided_by = now, admin_id
    _tell(
        session, volunteer, now, N_("volunteer.approved") if approve else N_("volunteer.declined")
    )
    send_text(
        session,
        chat_id=admin_id,
        locale=district.default_language,
        now=now,
        text_key=N_("volunteer.decision-recorded"),
        name=volunteer.name,
    )
    return volunteer


async def set_paused(session: AsyncSession, *, user_id: int, paused: bool) -> Volunteer:
    volunteer = await get(session, user_id)
    wanted_from = VolunteerStatus.APPROVED if paused else VolunteerStatus.PAUSED
    if volunteer is None or volunteer.status is not wanted_from:
        raise UserError(N_("errors.stale-button"))
    volunteer.status = VolunteerStatus.PAUSED if paused else VolunteerStatus.APPROVED
    return volunteer


# -- the help card ----------------------------------------------------------------------------


async def request_of(session: AsyncSession, case: Case, *, fresh: bool = False) -> HelpRequest:
    """The help part of a help request (from the session's identity map once read)."""
    request = await session.get(HelpRequest, case.id, populate_existing=fresh)
    assert request is not None, "a help request has its help part"
    return request


def refresh_help_card(
    session: AsyncSession,
    district: District,
    case: Case,
    request: HelpRequest,
    now: datetime,
    **extra: Any,
) -> None:
    chat_id = district.volunteer_chat_for(case.community)
    if chat_id is None:
        return
    enqueue(
        session,
        chat_id=chat_id,
        locale=district.default_language,
        now=now,
        method="editMessageText",
        template="help_card.html",
        context=notify.help_context(case, request, **extra),
        keyboard=notify.help_keyboard(case, request),
        target=notify.case_link(case, HELP_CARD),
    )


def progress_keyboard(case: Case, request: HelpRequest) -> dict[str, Any]:
    assert case.id is not None
    row = []
    if request.progress is HelpStage.CLAIMED:
        row.append(button(N_("help.button.on-way"), HelpProgress(case.id, "way").pack()))
    row.append(button(N_("help.button.done"), HelpProgress(case.id, "done").pack()))
    row.append(button(N_("help.button.release"), HelpProgress(case.id, "rel").pack()))
    return inline_keyboard(row)


# -- claiming ---------------------------------------------------------------------------------


async def _approved(session: AsyncSession, user_id: int) -> Volunteer:
    volunteer = await get(session, user_id)
    if volunteer is None or volunteer.status in (
        VolunteerStatus.PENDING,
        VolunteerStatus.DECLINED,
    ):
        raise UserError(N_("help.not-volunteer"))
    if volunteer.status is VolunteerStatus.PAUSED:
        raise UserError(N_("help.paused"))
    return volunteer


async def claim(
    session: AsyncSession,
    district: District,
    *,
    case_id: int,
    user_id: int,
    now: datetime,
) -> Case:
    """The volunteer takes the request, if nobody was first. The card, the requester and the
    case's timeline show the volunteer's registered name (one name per volunteer)."""
    volunteer = await _approved(session, user_id)
    own = await session.scalar(select(col(Case.resident_id)).where(col(Case.id) == case_id))
    if own == user_id:
        raise UserError(N_("help.own-request"))
    # The case row first: it is locked (a withdrawal in progress is waited for) and still
    # published, or nothing is claimed.
    published = await session.execute(
        update(Case)
        .where(
            col(Case.id) == case_id,
            col(Case.kind) == CaseKind.HELP,
            col(Case.status) == CaseStatus.PUBLISHED,
        )
        .values(updated_at=now)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(published, CursorResult)
    if published.rowcount != 1:
        raise UserError(N_("help.claim-closed"))
    taken = await session.execute(
        update(HelpRequest)
        .where(col(HelpRequest.case_id) == case_id, col(HelpRequest.volunteer_id).is_(None))
        .values(
            volunteer_id=user_id,
            volunteer_name=volunteer.name[:128],
            progress=HelpStage.CLAIMED,
            due_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    assert isinstance(taken, CursorResult)
    case = await session.get(Case, case_id, populate_existing=True)
    assert case is not None and case.id is not None
    request = await request_of(session, case, fresh=True)
    if taken.rowcount != 1:
        raise UserError(N_("help.already-taken"), name=request.volunteer_name or "")
    session.add(HelpClaim(case_id=case.id, volunteer_id=user_id, claimed_at=now))
    actor = cases.Person(user_id, volunteer.name, volunteer.language)
    cases.record(session, case, kind="claimed", now=now, actor=actor, role="volunteer")
    refresh_help_card(session, district, case, request, now)
    enqueue(
        session,
        chat_id=user_id,
        locale=volunteer.language,
        now=now,
        template="help_details.html",
        context=notify.help_context(case, request, contact=case.contact, door=request.door),
        keyboard=progress_keyboard(case, request),
        link=notify.case_link(case, DETAILS),
    )
    notify.tell_resident(
        session,
        case=case,
        now=now,
        text_key=N_("help.volunteer-coming"),
        name=volunteer.name,
    )
    return case


async def _locked(
    session: AsyncSession, case_id: int, status: CaseStatus = CaseStatus.PUBLISHED
) -> tuple[Case, HelpRequest]:
    """A help request in ``status``, its case row locked, with its help part."""
    case = await session.get(Case, case_id, with_for_update=True, populate_existing=True)
    if case is None or case.kind is not CaseKind.HELP or case.status is not status:
        raise UserError(N_("errors.stale-button"))
    return case, await request_of(session, case, fresh=True)


async def _held_case(
    session: AsyncSession, case_id: int, user_id: int
) -> tuple[Case, HelpRequest]:
    case, request = await _locked(session, case_id)
    if request.volunteer_id != user_id:
        raise UserError(N_("errors.stale-button"))
    return case, request


async def _open_claim(session: AsyncSession, request: HelpRequest) -> HelpClaim | None:
    row: HelpClaim | None = await session.scalar(
        select(HelpClaim)
        .where(
            col(HelpClaim.case_id) == request.case_id,
            col(HelpClaim.volunteer_id) == request.volunteer_id,
            col(HelpClaim.ended_at).is_(None),
        )
        .order_by(col(HelpClaim.id).desc())
    )
    return row


async def _reopen(
    session: AsyncSession,
    district: District,
    case: Case,
    request: HelpRequest,
    *,
    now: datetime,
    ended: str,
) -> None:
    claim_row = await _open_claim(session, request)
    if claim_row is not None:
        claim_row.ended_at, claim_row.ended = now, ended
    request.let_go()
    case.updated_at = now
    request.due_at, request.stage = now + district.volunteers.reannounce_delay, 0
    refresh_help_card(session, district, case, request, now)


async def progress(
    session: AsyncSession,
    district: District,
    *,
    case_id: int,
    user_id: int,
    action: str,
    now: datetime,
) -> Case:
    """The claiming volunteer releases the request, is on the way, or is done."""
    case, request = await _held_case(session, case_id, user_id)
    volunteer = await get(session, user_id)
    assert volunteer is not None
    actor = cases.Person(user_id, volunteer.name, volunteer.language)
    assert case.id is not None
    if action == "rel":
        cases.record(session, case, kind="released", now=now, actor=actor, role="volunteer")
        await _reopen(session, district, case, request, now=now, ended="released")
        notify.tell_resident(session, case=case, now=now, text_key=N_("help.released"))
        reply = N_("help.you-released")
    elif action == "way" and request.progress is HelpStage.CLAIMED:
        request.progress = HelpStage.ON_THE_WAY
        claim_row = await _open_claim(session, request)
        if claim_row is not None:
            claim_row.on_way_at = now
        cases.record(session, case, kind="on-way", now=now, actor=actor, role="volunteer")
        notify.tell_resident(
            session, case=case, now=now, text_key=N_("help.on-way"), name=volunteer.name
        )
        reply = N_("help.you-on-way")
    elif action == "done" and request.progress in (HelpStage.CLAIMED, HelpStage.ON_THE_WAY):
        request.progress = HelpStage.DONE
        # A requester who does not answer is taken to have been helped (fire_due).
        request.due_at = now + district.volunteers.confirm_delay
        cases.record(session, case, kind="done", now=now, actor=actor, role="volunteer")
        notify.tell_resident(
            session,
            case=case,
            now=now,
            text_key=N_("help.confirm-question"),
            keyboard=inline_keyboard(
                [
                    button(N_("help.button.helped"), HelpConfirm(case.id, "y").pack()),
                    button(N_("help.button.thanks"), HelpConfirm(case.id, "t").pack()),
                ],
                [button(N_("help.button.not-helped"), HelpConfirm(case.id, "n").pack())],
            ),
            name=volunteer.name,
        )
        reply = N_("help.you-done")
    else:
        raise UserError(N_("errors.stale-button"))
    _tell(session, volunteer, now, reply, number=case.number)
    return case


async def confirm(
    session: AsyncSession,
    district: District,
    *,
    case_id: int,
    resident_id: int,
    answer: str,
    now: datetime,
) -> Case:
    """The requester's answer after Done: ``y`` helped and ``t`` helped with thanks close the
    request; ``n`` not helped reopens it for the other volunteers."""
    if answer not in ("y", "t", "n"):
        raise UserError(N_("errors.stale-button"))
    case, request = await _locked(session, case_id)
    if case.resident_id != resident_id or request.progress is not HelpStage.DONE:
        raise UserError(N_("errors.stale-button"))
    resident = cases.Person(resident_id, case.resident_name, case.resident_language)
    if answer != "n":
        await _helped(
            session, district, case, request, now=now, actor=resident, thanked=answer == "t"
        )
        notify.tell_resident(session, case=case, now=now, text_key=N_("help.thanks-recorded"))
        return case
    volunteer_id = request.volunteer_id
    assert volunteer_id is not None
    cases.record(
        session,
        case,
        kind="help-confirmed",
        now=now,
        actor=resident,
        role="resident",
        helped=False,
    )
    await _reopen(session, district, case, request, now=now, ended="not-helped")
    notify.tell_resident(session, case=case, now=now, text_key=N_("help.reopened"))
    send_text(
        session,
        chat_id=volunteer_id,
        locale=await _language(session, district, volunteer_id),
        now=now,
        text_key=N_("help.requester-not-helped"),
        number=case.number,
    )
    return case


async def _language(session: AsyncSession, district: District, volunteer_id: int) -> str:
    volunteer = await get(session, volunteer_id)
    return volunteer.language if volunteer else district.default_language


async def _helped(
    session: AsyncSession,
    district: District,
    case: Case,
    request: HelpRequest,
    *,
    now: datetime,
    actor: cases.Person | None,
    thanked: bool = False,
) -> None:
    """Close a help request as helped: confirmed by the requester, or (``actor`` None) taken
    as helped when they did not answer in time. The volunteer's points are credited here."""
    volunteer_id = request.volunteer_id
    assert volunteer_id is not None
    request.due_at = None
    claim_row = await _open_claim(session, request)
    if claim_row is not None:
        claim_row.ended_at, claim_row.ended = now, "done"
    cases.change_status(
        session,
        case,
        CaseStatus.CLOSED,
        kind="help-confirmed",
        now=now,
        actor=actor,
        role="resident" if actor else "system",
        helped=True,
        auto=actor is None,
        thanked=thanked,
    )
    refresh_help_card(session, district, case, request, now, thanked=thanked)
    lang = await _language(session, district, volunteer_id)
    if actor is None:
        text_key = N_("help.confirmed-by-timeout")
    elif thanked:
        text_key = N_("help.requester-thanked")
    else:
        text_key = N_("help.requester-helped")
    send_text(
        session, chat_id=volunteer_id, locale=lang, now=now, text_key=text_key, number=case.number
    )
    await points.credit_help(
        session,
        district,
        case=case,
        volunteer_id=volunteer_id,
        now=now,
        auto=actor is None,
    )


# -- durable due times: re-announcing, the community office, the confirmation ------------------

HELP_AGAIN = "help-again"


def _due(now: datetime) -> tuple[Any, ...]:
    return (
        col(HelpRequest.due_at) <= now,
        col(Case.id) == col(HelpRequest.case_id),
        col(Case.status) == CaseStatus.PUBLISHED,
    )


def due_query(now: datetime, limit: int) -> Any:
    return (
        select(Case, HelpRequest)
        .where(*_due(now))
        .order_by(col(HelpRequest.due_at), col(HelpRequest.case_id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


async def any_due(session: AsyncSession, *, now: datetime) -> bool:
    """Whether a help request is due (a plain read, see :func:`bot.services.ladder.any_due`)."""
    query = select(col(HelpRequest.case_id)).where(*_due(now)).limit(1)
    return await session.scalar(query) is not None


async def fire_due(
    session: AsyncSession, district: District, *, now: datetime, limit: int = 200
) -> int:
    """Settle up to ``limit`` help requests whose due time has come: announce an unclaimed one
    again, then tell its community office; close a done one nobody confirmed as helped.
    Returns how many were settled (fewer than ``limit``: none are left due)."""
    due = (await session.execute(due_query(now, limit))).all()
    for case, request in due:
        if request.progress is HelpStage.DONE:
            await _helped(session, district, case, request, now=now, actor=None)
        elif request.volunteer_id is not None:
            request.due_at = None  # someone holds it: nothing is due until they let go
        elif request.stage == 0:
            _announce_again(session, district, case, request, now)
            request.stage = 1
            request.due_at = now + district.volunteers.office_delay
        else:
            await _tell_office(session, district, case, request, now)
            request.stage, request.due_at = 2, None
    return len(due)


def _minutes_waiting(case: Case, now: datetime) -> int:
    """Whole minutes since the request was made (what the re-announcement and the office's
    notice say)."""
    return int((now - case.created_at).total_seconds() // 60)


def _announce_again(
    session: AsyncSession, district: District, case: Case, request: HelpRequest, now: datetime
) -> None:
    chat_id = district.volunteer_chat_for(case.community)
    if chat_id is None:
        return
    enqueue(
        session,
        chat_id=chat_id,
        locale=district.default_language,
        now=now,
        text_key=N_("help.reannounce"),
        context={"number": case.number, "minutes": _minutes_waiting(case, now)},
        keyboard=notify.help_keyboard(case, request),
        target=notify.case_link(case, HELP_CARD),
        link=notify.case_link(case, HELP_AGAIN),
        bulk=True,
    )
    cases.record(session, case, kind="reannounced", now=now, actor=None, role="system")


async def _tell_office(
    session: AsyncSession, district: District, case: Case, request: HelpRequest, now: datetime
) -> None:
    """Nobody took the request: the community office (else the center) arranges help, with
    the requester's name and contact only if they agreed to share it."""
    unit = case.community
    chat_id = await routing.chat_of(session, district, unit) if unit else None
    if chat_id is None:
        unit, chat_id = routing.CENTER, await routing.chat_of(session, district, routing.CENTER)
    if chat_id is None:
        return
    enqueue(
        session,
        chat_id=chat_id,
        locale=district.default_language,
        now=now,
        template="help_office.html",
        context=notify.help_context(
            case,
            request,
            minutes=_minutes_waiting(case, now),
            contact=case.contact,
            door=request.door,
            resident_name=case.resident_name if case.contact else None,
        ),
    )
    cases.record(session, case, kind="office-told", now=now, actor=None, role="system", unit=unit)


# -- a photo of the result ---------------------------------------------------------------------


async def share_photo(
    session: AsyncSession, *, case_id: int, user_id: int, file_id: str, now: datetime
) -> Case:
    """The volunteer who holds a request shows the requester a photo (of the done job)."""
    case, _ = await _held_case(session, case_id, user_id)
    volunteer = await get(session, user_id)
    assert volunteer is not None
    enqueue(
        session,
        chat_id=case.resident_id,
        locale=case.resident_language,
        now=now,
        method="sendPhoto",
        text_key=N_("help.photo-from-volunteer"),
        context={"number": case.number, "name": volunteer.display_name},
        params={"photo": file_id},
    )
    actor = cases.Person(user_id, volunteer.name, volunteer.language)
    cases.record(
        session, case, kind="photo", now=now, actor=actor, role="volunteer", photo=file_id
    )
    _tell(session, volunteer, now, N_("help.photo-sent"), number=case.number)
    return case
