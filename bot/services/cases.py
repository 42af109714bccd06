"""The closed loop: 出卷 file → 吹哨 dispatch → 应哨 acknowledge → 答卷 answer (评卷, the
resident's rating, and how a case ends: :mod:`bot.services.closure`).

Every function changes a case through its model's transition rules, appends the audit event
and writes what people are told to the outbox, all in the caller's transaction. Guards raise
:class:`UserError` with the message the person acting should see. What the resident is told
about a case's progress, its co-reporters (followers, see :mod:`bot.services.followers`) are
told too.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, bindparam, cast, func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached

from bot.district import CASE_NUMBER_DIGITS, District
from bot.i18n import N_
from bot.services import folding, followers, help_cards, ladder, notify, privacy, triage_card
from bot.services.errors import UserError
from bot.services.outbox import enqueue
from bot.services.routing import CENTER, chat_of
from models import CardFold, Case, CaseEvent, CaseKind, CaseStatus, InvalidTransition
from models.case import SOURCE_TELEGRAM

MAX_PHOTOS = 5
MAX_DESCRIPTION = 1000
MAX_ANSWER = 3000
MAX_COMMENT = 1000
MAX_ADDRESS = 300


@dataclass(frozen=True)
class Person:
    """Someone acting on a case (a resident, a department member, a center admin)."""

    id: int
    name: str
    language: str


@dataclass
class Draft:
    """What a resident has filled in so far (kept in the dialog state as a dict)."""

    kind: CaseKind
    photos: list[str] = field(default_factory=list)
    description: str = ""
    category: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    address: str | None = None
    anonymous: bool = False
    needed_when: str | None = None
    share_contact: bool = False
    contact: str | None = None
    # Help requests: the requester's community, the exact door (for the volunteer who takes
    # it only) and the skills wanted.
    community: str | None = None
    door: str | None = None
    skills: list[str] = field(default_factory=list)
    # Where the case comes from (models.case: a Telegram chat, or an Open311 integration,
    # which may give a link to its media instead of photos).
    source: str = SOURCE_TELEGRAM
    media_url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "kind": self.kind.value}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Draft:
        values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        values["kind"] = CaseKind(values["kind"])
        return cls(**values)


def check_description(text: str) -> str:
    text = text.strip()
    if not text:
        raise UserError(N_("report.description-empty"))
    if len(text) > MAX_DESCRIPTION:
        raise UserError(N_("report.description-too-long"), limit=MAX_DESCRIPTION, length=len(text))
    return text


def _event(
    session: AsyncSession,
    case: Case,
    *,
    kind: str,
    now: datetime,
    actor: Person | None,
    role: str,
    previous: CaseStatus | None = None,
    note: str | None = None,
    to_status: CaseStatus | None = None,
    department: str | None = None,
    **data: Any,
) -> CaseEvent:
    """The case's audit event; ``to_status``/``department`` when the event is recorded after
    the case already moved on (a case written already dispatched was first submitted)."""
    assert case.id is not None
    event = CaseEvent(
        case_id=case.id,
        at=now,
        kind=kind,
        actor_id=actor.id if actor else None,
        actor_role=role,
        department=department if to_status is not None else case.department,
        from_status=previous,
        to_status=to_status or case.status,
        note=note,
        data=data,
    )
    session.add(event)
    return event


def record(
    session: AsyncSession,
    case: Case,
    *,
    kind: str,
    now: datetime,
    actor: Person | None,
    role: str,
    note: str | None = None,
    **data: Any,
) -> CaseEvent:
    """An audit event that is not a status change (a triage decision, a flag)."""
    return _event(
        session,
        case,
        kind=kind,
        now=now,
        actor=actor,
        role=role,
        previous=case.status,
        note=note,
        **data,
    )


def change_status(
    session: AsyncSession,
    case: Case,
    status: CaseStatus,
    *,
    kind: str,
    now: datetime,
    actor: Person | None,
    role: str,
    note: str | None = None,
    **data: Any,
) -> CaseStatus:
    """A move by the rules with its audit event, for services outside the closed loop (a
    case bundled into another); returns the previous status."""
    previous = _move(case, status, now)
    _event(
        session,
        case,
        kind=kind,
        now=now,
        actor=actor,
        role=role,
        previous=previous,
        note=note,
        **data,
    )
    return previous


def _move(case: Case, status: CaseStatus, now: datetime) -> CaseStatus:
    try:
        return case.move_to(status, now=now)
    except InvalidTransition as error:
        raise UserError(N_("case.not-possible-now"), number=case.number) from error


async def reporters_of(session: AsyncSession, case: Case) -> list[notify.Reporter]:
    """Who is told about the case's progress: its resident, then its co-reporters."""
    return notify.reporters(case, await followers.of_case(session, case))


async def tell_reporters(
    session: AsyncSession, district: District, case: Case, *, now: datetime, **message: Any
) -> None:
    """Tell the case's resident and every co-reporter (:func:`notify.tell_reporters`)."""
    reporters = await reporters_of(session, case)
    notify.tell_reporters(session, district, case=case, to=reporters, now=now, **message)


async def get_case(session: AsyncSession, case_id: int) -> Case:
    case = await session.get(Case, case_id, with_for_update=True)
    if case is None:
        raise UserError(N_("errors.stale-button"))
    return case


# -- filing -----------------------------------------------------------------------------------


async def submit(
    session: AsyncSession, district: District, *, resident: Person, draft: Draft, now: datetime
) -> Case:
    """Create the case from a finished draft and send it on its way."""
    category = district.category(draft.category) if draft.category else None
    if draft.category and (category is None or category.kind != draft.kind.value):
        raise UserError(N_("report.category-unknown"))
    from_telegram = draft.source == SOURCE_TELEGRAM
    # An integrating system (the 12345 hotline) may have a caller but no photo; its volume is
    # its own, not one resident's, so the intake limit is for residents.
    if draft.kind is CaseKind.REPORT and not draft.photos and from_telegram:
        raise UserError(N_("report.photos-needed"))
    if from_telegram:
        await privacy.check_intake(session, district, resident_id=resident.id, now=now)
    case = Case(
        kind=draft.kind,
        status=CaseStatus.TRIAGE,
        category=draft.category,
        resident_id=resident.id,
        resident_language=resident.language,
        resident_name=resident.name[:128],
        anonymous=draft.anonymous,
        contact=draft.contact if draft.share_contact else None,
        description=check_description(draft.description),
        photos=draft.photos[:MAX_PHOTOS],
        latitude=draft.latitude,
        longitude=draft.longitude,
        address=draft.address,
        community=draft.community,
        source=draft.source,
        media_url=draft.media_url,
        created_at=now,
        updated_at=now,
    )
    if draft.kind is CaseKind.HELP:
        case.status = CaseStatus.PUBLISHED
    # A case whose category names a department with a group goes straight there: it is
    # written already dispatched (one INSERT, no UPDATE after it).
    direct = await _direct_department(session, district, category, draft.kind)
    previous = _plan_dispatch(district, case, direct[0], now) if direct else None
    case = await _insert_numbered(session, district, case)
    _event(
        session,
        case,
        kind="submitted",
        now=now,
        actor=resident,
        role="resident",
        to_status=previous or case.status,
        department=None if direct else case.department,
    )
    if direct and previous is not None:
        department, chat_id = direct
        await _dispatched(
            session, district, case, chat_id, previous, now=now, actor=None, role="system"
        )
        notify.tell_resident(
            session,
            case=case,
            now=now,
            template="receipt.html",
            route="department",
            unit=department,
        )
        return case

    if draft.kind is CaseKind.HELP:
        await help_cards.publish(
            session,
            district,
            case,
            when=draft.needed_when,
            door=draft.door,
            skills=draft.skills,
            now=now,
        )
        notify.tell_resident(
            session,
            case=case,
            now=now,
            template="receipt.html",
            route="volunteers",
            unit=None,
        )
        return case
    if category is not None and category.triage:
        unit = category.triage_by or CENTER
        if await chat_of(session, district, unit) is not None:
            await triage_card.open_triage(session, district, case, unit=unit, now=now)
            notify.tell_resident(
                session,
                case=case,
                now=now,
                template="receipt.html",
                route="center" if unit == CENTER else "triage",
                unit=unit,
            )
            return case
    await _to_triage(session, district, case, now=now, reason=None, returned_by=None)
    notify.tell_resident(
        session, case=case, now=now, template="receipt.html", route="center", unit=None
    )
    return case


async def _direct_department(
    session: AsyncSession, district: District, category: Any, kind: CaseKind
) -> tuple[str, int] | None:
    """The department (and its group) a new case goes to without triage, if any."""
    if kind is CaseKind.HELP or category is None or category.triage:
        return None
    department = category.department
    chat_id = await chat_of(session, district, department) if department else None
    return (department, chat_id) if department and chat_id is not None else None


async def _insert_numbered(session: AsyncSession, district: District, case: Case) -> Case:
    """Insert the case with its number (``District.case_number`` of its id) in one statement:
    the id is drawn inside the INSERT (the next value of the id sequence on PostgreSQL; on
    SQLite, whose single writer holds the lock, one past the largest id) and the number is
    made from it there. Returns the case as the session now holds it."""
    dialect = session.get_bind().dialect.name
    statement, names = _numbered_insert(dialect, district.case_prefix)
    values = {name: getattr(case, name) for name in names}
    row = (await session.execute(statement, values)).one()
    # The row as stored joins the session as a loaded case, without being read again.
    inserted = Case(**row._mapping)
    make_transient_to_detached(inserted)
    session.add(inserted)
    return inserted


@functools.cache
def _numbered_insert(dialect: str, prefix: str) -> tuple[Any, tuple[str, ...]]:
    """The INSERT of :func:`_insert_numbered`, built once (every filing runs it) with the
    case's columns as bound values; returns it with the names of those columns."""
    table = Case.__table__  # type: ignore[attr-defined]
    if dialect == "postgresql":
        drawn = select(func.nextval("cases_id_seq").label("n")).subquery()
        digits = cast(drawn.c.n, String)
        padded = func.lpad(digits, func.greatest(CASE_NUMBER_DIGITS, func.length(digits)), "0")
    else:
        drawn = select((func.coalesce(func.max(table.c.id), 0) + 1).label("n")).subquery()
        padded = func.printf(f"%0{CASE_NUMBER_DIGITS}d", drawn.c.n)
    names = tuple(c.name for c in table.columns if c.name not in ("id", "number"))
    row = select(
        drawn.c.n,
        literal(f"{prefix}-") + padded,
        *(bindparam(name, type_=table.c[name].type) for name in names),
    )
    statement = insert(table).from_select(["id", "number", *names], row).returning(*table.columns)
    return statement, names


async def dispatch(
    session: AsyncSession,
    district: District,
    case: Case,
    department: str,
    *,
    now: datetime,
    actor: Person | None,
    role: str,
) -> None:
    chat_id = await chat_of(session, district, department)
    if chat_id is None:
        raise UserError(N_("assign.no-group"), department=department)
    previous = _plan_dispatch(district, case, department, now)
    await _dispatched(session, district, case, chat_id, previous, now=now, actor=actor, role=role)


def _plan_dispatch(district: District, case: Case, department: str, now: datetime) -> CaseStatus:
    """The case's own side of a dispatch; returns the status it leaves."""
    case.department = department
    previous = _move(case, CaseStatus.DISPATCHED, now)
    ladder.plan(district, case, now=now)
    return previous


async def _dispatched(
    session: AsyncSession,
    district: District,
    case: Case,
    chat_id: int,
    previous: CaseStatus,
    *,
    now: datetime,
    actor: Person | None,
    role: str,
) -> None:
    """What follows a planned dispatch: the ladder's rungs, the event, the card."""
    await ladder.write_rungs(session, district, case)
    _event(session, case, kind="dispatched", now=now, actor=actor, role=role, previous=previous)
    lang = district.default_language
    if not await folding.fold(
        session,
        case=case,
        chat_id=chat_id,
        purpose=notify.CARD,
        rows=notify.card_rows(case),
        locale=lang,
        now=now,
    ):
        notify.post_card(session, case=case, chat_id=chat_id, lang=lang, now=now)


# While a case is in one of these, its department's group holds its card.
LIVE_CARD = frozenset(
    {
        CaseStatus.DISPATCHED,
        CaseStatus.ACKNOWLEDGED,
        CaseStatus.ANSWERED,
        CaseStatus.REOPENED,
        CaseStatus.CLOSED,
    }
)


@folding.reposts(notify.CARD)
async def _repost_card(
    session: AsyncSession, district: District, case: Case, folded: CardFold, now: datetime
) -> bool:
    """A folded department card, once the burst has passed: while the case is still the
    department's in that group."""
    if case.status not in LIVE_CARD or case.department is None:
        return False
    if await chat_of(session, district, case.department) != folded.chat_id:
        return False
    notify.post_card(
        session, case=case, chat_id=folded.chat_id, lang=district.default_language, now=now
    )
    return True


async def _to_triage(
    session: AsyncSession,
    district: District,
    case: Case,
    *,
    now: datetime,
    reason: str | None,
    returned_by: str | None,
) -> None:
    chat_id = await chat_of(session, district, CENTER)
    if chat_id is None:
        return
    lang = district.default_language
    extra = {"reason": reason, "returned_by": returned_by}
    if await folding.fold(
        session,
        case=case,
        chat_id=chat_id,
        purpose=notify.CENTER_CARD,
        rows=notify.card_rows(case, notify.CENTER_CARD),
        locale=lang,
        now=now,
        extra=extra,
    ):
        return
    notify.post_center_card(
        session, case=case, district=district, chat_id=chat_id, lang=lang, now=now, **extra
    )


@folding.reposts(notify.CENTER_CARD)
async def _repost_center_card(
    session: AsyncSession, district: District, case: Case, folded: CardFold, now: datetime
) -> bool:
    """A folded center card, once the burst has passed: while the case still waits there."""
    if case.status is not CaseStatus.TRIAGE:
        return False
    notify.post_center_card(
        session,
        case=case,
        district=district,
        chat_id=folded.chat_id,
        lang=district.default_language,
        now=now,
        reason=folded.extra.get("reason"),
        returned_by=folded.extra.get("returned_by"),
    )
    return True


# -- the department's side --------------------------------------------------------------------


async def _case_of_department(session: AsyncSession, case_id: int, department: str) -> Case:
    return _of_department(await get_case(session, case_id), department)


def _of_department(case: Case, department: str) -> Case:
    if case.department != department or case.status not in (
        CaseStatus.DISPATCHED,
        CaseStatus.ACKNOWLEDGED,
        CaseStatus.REOPENED,
        CaseStatus.ANSWERED,
    ):
        raise UserError(N_("card.stale"))
    return case


async def acknowledge(
    session: AsyncSession,
    district: District,
    *,
    case_id: int,
    department: str,
    actor: Person,
    now: datetime,
) -> Case:
    """应哨 on the card; on a 协办 unit's card, that unit reports in (报到) for its part."""
    case = await get_case(session, case_id)
    if department != case.department and department in case.triage_assist:
        await _report_in(session, district, case, department, actor, now)
        return case
    _of_department(case, department)
    if case.status is not CaseStatus.DISPATCHED:
        raise UserError(N_("card.already-acknowledged"), name=case.acknowledged_by_name or "")
    await _acknowledge(session, district, case, actor, now)
    await refresh(session, district, case, now)
    await folding.changed(session, case=case, locale=district.default_language, now=now)
    return case


async def _report_in(
    session: AsyncSession, district: District, case: Case, unit: str, actor: Person, now: datetime
) -> None:
    """A 协办 unit reports in: the lead (主责部门) still answers the case (seed: 由主责部门牵头
    予以解决); the assisting unit's part is to report in and work with it, and both cards show
    who reported in."""
    if case.status not in notify.OPEN:
        raise UserError(N_("card.stale"))
    earlier = case.assist_acks.get(unit)
    if earlier is not None:
        raise UserError(N_("card.assist-already"), name=earlier["name"])
    case.assist_acks = {
        **case.assist_acks,
        unit: {"name": actor.name[:128], "at": now.isoformat()},
    }
    record(
        session, case, kind="assist_reported", now=now, actor=actor, role="department", unit=unit
    )
    await refresh(session, district, case, now)


async def _acknowledge(
    session: AsyncSession, district: District, case: Case, actor: Person, now: datetime
) -> None:
    previous = _move(case, CaseStatus.ACKNOWLEDGED, now)
    await ladder.stop(session, case)
    await ladder.start_deadline(session, district, case, now=now)
    case.acknowledged_at, case.acknowledged_by = now, actor.id
    case.acknowledged_by_name = actor.name[:128]
    _event(
        session,
        case,
        kind="acknowledged",
        now=now,
        actor=actor,
        role="department",
        previous=previous,
    )
    await tell_reporters(
        session,
        district,
        case,
        now=now,
        text_key=N_("resident.acknowledged"),
        unit=case.department,
    )


async def answer(
    session: AsyncSession,
    district: District,
    *,
    case_id: int,
    department: str,
    actor: Person,
    text: str,
    photos: list[str],
    now: datetime,
    media_group_id: str | None = None,
) -> Case:
    """答卷: the department's answer, by reply to its card. Answering implies acknowledging."""
    case = await _case_of_department(session, case_id, department)
    text = text.strip()
    if len(text) > MAX_ANSWER:
        raise UserError(N_("answer.too-long"), limit=MAX_ANSWER, length=len(text))
    if case.status is CaseStatus.ANSWERED:
        # The rest of an album sent as the answer arrives as separate messages.
        if media_group_id and photos and case.answer_album == media_group_id:
            case.answer_photos = [*case.answer_photos, *photos][:10]
            for reporter in await reporters_of(session, case):
                enqueue(
                    session,
                    chat_id=reporter.chat_id,
                    locale=reporter.lang,
                    now=now,
                    method="sendPhoto",
                    params={"photo": photos[0]},
                )
            return case
        raise UserError(N_("card.already-answered"), number=case.number)
    if not text and not photos:
        raise UserError(N_("answer.empty"))
    if case.status is CaseStatus.DISPATCHED:
        await _acknowledge(session, district, case, actor, now)
    previous = _move(case, CaseStatus.ANSWERED, now)
    await ladder.stop(session, case)
    case.answered_at, case.answer_text, case.answer_photos = now, text or None, photos
    case.answer_album = media_group_id
    case.rating_due_at = now + timedelta(hours=district.district.rating_hours)
    _event(
        session,
        case,
        kind="answered",
        now=now,
        actor=actor,
        role="department",
        previous=previous,
        note=text or None,
        photos=photos,
        media_group_id=media_group_id,
    )
    notify.send_answer(session, case=case, to=await reporters_of(session, case), now=now)
    await refresh(session, district, case, now)
    return case


async def return_case(
    session: AsyncSession,
    district: District,
    *,
    case_id: int,
    department: str,
    actor: Person,
    reason: str,
    now: datetime,
) -> Case:
    """退回 Not ours: the case goes to the center for reassignment, with the reason."""
    case = await _case_of_department(session, case_id, department)
    reason = reason.strip()
    if not reason:
        raise UserError(N_("return.reason-needed"))
    if case.status is CaseStatus.ANSWERED:
        raise UserError(N_("card.already-answered"), number=case.number)
    previous = _move(case, CaseStatus.TRIAGE, now)
    await ladder.stop(session, case)
    _event(
        session,
        case,
        kind="returned",
        now=now,
        actor=actor,
        role="department",
        previous=previous,
        note=reason[:2000],
    )
    old_chat = await chat_of(session, district, department)
    if old_chat is not None:
        notify.refresh_card(
            session,
            case=case,
            chat_id=old_chat,
            lang=district.default_language,
            now=now,
            returned=True,
        )
    await _to_triage(session, district, case, now=now, reason=reason[:500], returned_by=department)
    return case


# -- the governance center --------------------------------------------------------------------


async def assign(
    session: AsyncSession,
    district: District,
    *,
    case_id: int,
    department: str,
    actor: Person,
    now: datetime,
) -> Case:
    case = await get_case(session, case_id)
    if case.status is not CaseStatus.TRIAGE:
        raise UserError(N_("card.stale"))
    if district.department(department) is None:
        raise UserError(N_("errors.stale-button"))
    previous_department = case.department
    await dispatch(session, district, case, department, now=now, actor=actor, role="center")
    transferred = bool(previous_department and previous_department != department)
    if transferred:
        assert previous_department is not None
        _event(
            session,
            case,
            kind="transferred",
            now=now,
            actor=actor,
            role="center",
            note=previous_department,
        )
        old_chat = await chat_of(session, district, previous_department)
        if old_chat is not None:
            notify.refresh_card(
                session,
                case=case,
                chat_id=old_chat,
                lang=district.default_language,
                now=now,
                transferred_from=previous_department,
            )
    await tell_reporters(
        session,
        district,
        case,
        now=now,
        text_key=N_("resident.transferred") if transferred else N_("resident.dispatched"),
        unit=department,
    )
    center_chat = await chat_of(session, district, CENTER)
    if center_chat is not None:
        enqueue(
            session,
            chat_id=center_chat,
            locale=district.default_language,
            now=now,
            method="editMessageText",
            template="center_card.html",
            context=notify.card_context(case, assigned_to=department, assigned_by=actor.name),
            target=notify.case_link(case, notify.CENTER_CARD),
        )
    return case


# -- the cards --------------------------------------------------------------------------------


async def refresh(
    session: AsyncSession, district: District, case: Case, now: datetime, **extra: Any
) -> None:
    """Edit the case's card in its department's group to the case's state, and the 协办
    units' cards with it."""
    if case.kind is CaseKind.HELP or not case.department:
        return
    chat_id = await chat_of(session, district, case.department)
    if chat_id is not None:
        notify.refresh_card(
            session, case=case, chat_id=chat_id, lang=district.default_language, now=now, **extra
        )
    await notify.assist_cards(session, district, case, now, post=False)
