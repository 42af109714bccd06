"""The card ladder (亮牌): whistles that cannot be ignored.

When a case is dispatched, every rung of the district's ladder becomes an ``escalations`` row
with its due time. A scanner claims due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite
serialises writers) and fires each in the same transaction as the messages it causes and the
row's change to ``fired``: a rung that fell due while the service was down fires once after a
restart, nothing repeats, nothing is skipped. Acknowledgement (or anything that takes the case
away from the department) cancels the rungs still pending. The scan reads only due rows,
through the ``(state, due_at)`` index.

Replicas scan at the same time, so two scans may claim different rungs of one case. The scan
therefore also locks its cases (skipping those locked elsewhere: another scan or an update is
changing them) and fires a rung only when no earlier rung of its case is still pending outside
its batch; a rung left so stays pending and fires in a later batch, after its predecessor, on
the case as the other transaction left it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.callbacks import CallOutcome
from bot.district import Audience, CardColour, District, LadderStep, Role, Task
from bot.i18n import N_
from bot.logs import log_event
from bot.services import notify
from bot.services.errors import UserError
from bot.services.outbox import answer_callback, button, enqueue, inline_keyboard, send_text
from bot.services.routing import CENTER, bound_chats
from models import Case, CaseEvent, CaseStatus, Escalation, EscalationState, User

logger = logging.getLogger(__name__)

ACK_LADDER = "ack"
DEADLINE_LADDER = "deadline"
# What the supervision platform sees of a case's history: the resident's timeline plus the
# ladder's own steps.
SUPERVISION_EVENTS = frozenset(
    key.removeprefix("event.")
    for key in (
        N_("event.submitted"), N_("event.dispatched"), N_("event.returned"),
        N_("event.transferred"), N_("event.escalated"), N_("event.chief_called"),
    )
)  # fmt: skip
_COLOUR_ORDER = {CardColour.NONE: 0, CardColour.YELLOW: 1, CardColour.RED: 2}


async def start(session: AsyncSession, district: District, case: Case, *, now: datetime) -> None:
    """A new whistle: a fresh ladder (the rungs of an earlier dispatch were cancelled), its
    rungs written in one INSERT."""
    plan(district, case, now=now)
    await write_rungs(session, district, case)


def plan(district: District, case: Case, *, now: datetime) -> None:
    """The case's side of a new whistle (a new cycle, its first rung's time), set before the
    case is written: a case filed straight to a department is inserted already dispatched."""
    case.dispatch_count += 1
    case.dispatched_at = now
    case.card_colour = CardColour.NONE
    # The first rung that raises the card's colour (the whistle's own reminder at 0 minutes
    # is not an escalation), else the first rung.
    rungs = district.ladder
    first = next((i for i, r in enumerate(rungs) if r.card is not CardColour.NONE), 0)
    case.next_rung_at = district.working_hours.add(now, rungs[first].offset, district.tzinfo)


async def write_rungs(session: AsyncSession, district: District, case: Case) -> None:
    """The rungs of the cycle :func:`plan` began, in one INSERT."""
    assert case.id is not None and case.dispatched_at is not None
    start = case.dispatched_at
    await _add_rungs(
        session,
        case,
        ACK_LADDER,
        [
            (index, district.working_hours.add(start, rung.offset, district.tzinfo))
            for index, rung in enumerate(district.ladder)
        ],
    )


async def start_deadline(
    session: AsyncSession, district: District, case: Case, *, now: datetime
) -> None:
    """Acknowledged with an agreed deadline: the deadline ladder runs until the answer.
    Reminders meant for before the deadline that are already past are left out."""
    if case.deadline_at is None:
        return
    assert case.id is not None
    first: datetime | None = None
    rungs: list[tuple[int, datetime]] = []
    for index, rung in enumerate(district.deadline_ladder):
        due = case.deadline_at + rung.offset
        if rung.offset < timedelta(0) and due <= now:
            continue
        rungs.append((index, due))
        first = due if first is None else min(first, due)
    await _add_rungs(session, case, DEADLINE_LADDER, rungs)
    case.next_rung_at = first


async def _add_rungs(
    session: AsyncSession, case: Case, ladder: str, rungs: list[tuple[int, datetime]]
) -> None:
    """The rungs (index, due time) of one cycle of a case's ladder, in one statement (the
    case's own changes are not flushed for it: they go out in one UPDATE later)."""
    if not rungs:
        return
    values = [
        {
            "case_id": case.id,
            "ladder": ladder,
            "cycle": case.dispatch_count,
            "rung": index,
            "due_at": due,
            "state": EscalationState.PENDING,
        }
        for index, due in rungs
    ]
    with session.no_autoflush:
        await session.execute(insert(Escalation).values(values))


async def stop(session: AsyncSession, case: Case) -> None:
    """Acknowledged, returned, withdrawn: the rungs still pending will not fire."""
    await session.execute(
        update(Escalation)
        .where(
            col(Escalation.case_id) == case.id,
            col(Escalation.state) == EscalationState.PENDING,
        )
        .values(state=EscalationState.CANCELLED)
    )
    case.next_rung_at = None


def _due(now: datetime) -> tuple[Any, ...]:
    return (col(Escalation.state) == EscalationState.PENDING, col(Escalation.due_at) <= now)


def due_query(now: datetime, limit: int) -> Any:
    return (
        select(Escalation)
        .where(*_due(now))
        .order_by(col(Escalation.due_at), col(Escalation.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


async def any_due(session: AsyncSession, *, now: datetime) -> bool:
    """Whether a rung is due: a plain read (no row locks), for a read transaction that decides
    whether the scan needs a write transaction at all. :func:`fire_due` reads them again."""
    found = await session.scalar(select(col(Escalation.id)).where(*_due(now)).limit(1))
    return found is not None


async def fire_due(
    session: AsyncSession, district: District, *, now: datetime, limit: int = 200
) -> int:
    """Settle up to ``limit`` due rungs: fire them, or cancel those that no longer apply.
    Returns how many rows were settled (fewer than ``limit`` means none are left due)."""
    rows = (await session.scalars(due_query(now, limit))).all()
    if not rows:
        return 0
    # One query each for the cases, the groups and the people who can be messaged, however
    # many rungs are due.
    case_ids = {row.case_id for row in rows}
    found = await session.scalars(
        select(Case)
        .where(col(Case.id).in_(case_ids))
        .order_by(col(Case.id))
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    by_id = {case.id: case for case in found.all()}
    # The lowest rung still pending per case, ladder and cycle outside this batch: claimed by
    # another scan (or not yet due); later rungs of the same ladder wait for it.
    mine = {row.id for row in rows}
    pending_elsewhere = await session.execute(
        select(
            col(Escalation.case_id),
            col(Escalation.ladder),
            col(Escalation.cycle),
            func.min(col(Escalation.rung)),
        )
        .where(
            col(Escalation.case_id).in_(case_ids),
            col(Escalation.state) == EscalationState.PENDING,
            col(Escalation.id).not_in(mine),
        )
        .group_by(col(Escalation.case_id), col(Escalation.ladder), col(Escalation.cycle))
    )
    lowest = {(c, ladder, cycle): rung for c, ladder, cycle, rung in pending_elsewhere.all()}
    scan = await _Scan.load(session, district)
    for row in rows:
        if row.case_id not in by_id or lowest.get(_ladder_key(row), row.rung) < row.rung:
            # Its case is being changed by another transaction, or an earlier rung has not
            # fired yet: a later batch fires it.
            await _exists_or_cancel(session, row)
            continue
        case = by_id[row.case_id]
        if not _still_applies(case, row):
            row.state = EscalationState.CANCELLED
            continue
        await _fire(session, district, scan, case, row, now)
        row.state, row.fired_at = EscalationState.FIRED, now
    scan.send_reminders(session, district.default_language, now)
    return len(rows)


# A group that would get reminders about this many cases from one scan gets one digest
# listing them instead: a busy group stays readable, and its 20-a-minute budget goes to
# real messages.
DIGEST_FROM = 3
DIGEST_LINES = 25  # then "and N more"


@dataclass(frozen=True)
class _Reminder:
    template: str
    context: dict[str, Any]
    case: Case | None  # the reminder replies to this case's card; None: a plain message


@dataclass(frozen=True)
class _Scan:
    chats: dict[str, int]
    reachable: frozenset[int]  # people with a role who have started the bot
    # Reminders to group chats, held until the scan ends: chat id → reminders.
    held: dict[int, list[_Reminder]]

    @classmethod
    async def load(cls, session: AsyncSession, district: District) -> _Scan:
        ids = [person.telegram_id for person in district.people]
        known = await session.scalars(select(col(User.id)).where(col(User.id).in_(ids)))
        return cls(await bound_chats(session, district), frozenset(known.all()), {})

    def hold(self, chat_id: int, reminder: _Reminder) -> None:
        self.held.setdefault(chat_id, []).append(reminder)

    def send_reminders(self, session: AsyncSession, lang: str, now: datetime) -> None:
        """Each group's reminders from this scan: one by one (a reply to each card), or one
        digest when they are about ``DIGEST_FROM`` or more cases."""
        for chat_id, reminders in self.held.items():
            if len({r.context["number"] for r in reminders}) < DIGEST_FROM:
                for reminder in reminders:
                    case = reminder.case
                    enqueue(
                        session,
                        chat_id=chat_id,
                        locale=lang,
                        now=now,
                        template=reminder.template,
                        context=reminder.context,
                        target=notify.case_link(case, notify.CARD) if case else None,
                        link=notify.case_link(case, "reminder") if case else None,
                    )
                continue
            # One line per case: its latest rung (rows fire in due order).
            latest = {r.context["number"]: r.context for r in reminders}
            items = list(latest.values())
            shown = items[:DIGEST_LINES]
            enqueue(
                session,
                chat_id=chat_id,
                locale=lang,
                now=now,
                template="ladder_digest.html",
                context={
                    "items": shown,
                    "count": len(items),
                    "more": len(items) - len(shown),
                    "for_center": all(r.case is None for r in reminders),
                },
                bulk=True,
            )
        self.held.clear()


def _ladder_key(row: Escalation) -> tuple[int, str, int]:
    return (row.case_id, row.ladder, row.cycle)


async def _exists_or_cancel(session: AsyncSession, row: Escalation) -> None:
    """A rung whose case is gone is cancelled; otherwise it is left pending."""
    if await session.scalar(select(col(Case.id)).where(col(Case.id) == row.case_id)) is None:
        row.state = EscalationState.CANCELLED


def _still_applies(case: Case, row: Escalation) -> bool:
    if row.cycle != case.dispatch_count:
        return False
    if row.ladder == ACK_LADDER:
        return case.status is CaseStatus.DISPATCHED
    return row.ladder == DEADLINE_LADDER and case.status in (
        CaseStatus.ACKNOWLEDGED,
        CaseStatus.REOPENED,
    )


def _rungs(district: District, ladder: str) -> tuple[LadderStep, ...]:
    return district.ladder if ladder == ACK_LADDER else district.deadline_ladder


def _next_due(district: District, case: Case, row: Escalation) -> datetime | None:
    """When the card next escalates visibly: the first rung after ``row`` that raises the
    card's colour; once no colour is left to raise, simply the next rung (None after the
    last). Rungs that change nothing on the card (the whistle's own reminder) are not shown
    as the next escalation, and firing one leaves the card as it is."""
    rungs = _rungs(district, row.ladder)
    following = range(row.rung + 1, len(rungs))
    if not following:
        return None
    colour = _COLOUR_ORDER[case.card_colour]
    chosen = next((i for i in following if _COLOUR_ORDER[rungs[i].card] > colour), following[0])
    return _rung_due(district, case, row.ladder, chosen)


def _rung_due(district: District, case: Case, ladder: str, index: int) -> datetime:
    rung = _rungs(district, ladder)[index]
    if ladder == DEADLINE_LADDER:
        assert case.deadline_at is not None
        return case.deadline_at + rung.offset
    assert case.dispatched_at is not None
    return district.working_hours.add(case.dispatched_at, rung.offset, district.tzinfo)


async def _fire(
    session: AsyncSession,
    district: District,
    scan: _Scan,
    case: Case,
    row: Escalation,
    now: datetime,
) -> None:
    rung = _rungs(district, row.ladder)[row.rung]
    shown = (case.card_colour, case.next_rung_at)
    if _COLOUR_ORDER[rung.card] > _COLOUR_ORDER[case.card_colour]:
        case.card_colour = rung.card
    case.next_rung_at = _next_due(district, case, row)
    assert case.id is not None
    session.add(
        CaseEvent(
            case_id=case.id,
            at=now,
            kind="escalated",
            actor_role="system",
            department=case.department,
            from_status=case.status,
            to_status=case.status,
            data={
                "ladder": row.ladder,
                "rung": row.rung,
                "card": rung.card.value,
                "due_at": row.due_at.isoformat(),
            },
        )
    )
    lang = district.default_language
    context = _context(case, rung, row, now)
    for audience in rung.notify:
        await _tell(session, district, scan, case, audience, rung, context, now)
    dept_chat = scan.chats.get(case.department or "")
    # The card is edited only when what it shows changed (a group's minute is scarce).
    if dept_chat is not None and (case.card_colour, case.next_rung_at) != shown:
        notify.refresh_card(session, case=case, chat_id=dept_chat, lang=lang, now=now)
    log_event(logger, "ladder.fired", case=case.number, rung=row.rung, card=rung.card.value)


def _hours(delta: timedelta) -> str:
    return f"{abs(delta.total_seconds()) / 3600:.1f}".rstrip("0").rstrip(".")


def _context(case: Case, rung: LadderStep, row: Escalation, now: datetime) -> dict[str, Any]:
    assert case.dispatched_at is not None
    context = {
        "ladder": row.ladder,
        "number": case.number,
        "department": case.department,
        "rung": row.rung + 1,
        "card": rung.card.value,
        "hours": _hours(now - case.dispatched_at),
        # Under an hour the wait is said in minutes; the rung due at the whistle itself reads
        # as the whistle, not as a delay.
        "minutes": (minutes := int(max(0.0, (now - case.dispatched_at).total_seconds()) // 60)),
        # (a whistle rung fired hours late, after the service was down, says how late)
        "at_whistle": row.ladder == ACK_LADDER and rung.offset <= timedelta(0) and minutes < 60,
        "dispatched_at": case.dispatched_at.isoformat(),
    }
    if row.ladder == DEADLINE_LADDER and case.deadline_at is not None:
        context["deadline"] = case.deadline_at.isoformat()
        context["phase"] = (
            "before" if rung.offset < timedelta(0) else "at" if not rung.offset else "after"
        )
        context["overdue_hours"] = _hours(now - case.deadline_at)
    return context


async def _tell(
    session: AsyncSession,
    district: District,
    scan: _Scan,
    case: Case,
    audience: Audience,
    rung: LadderStep,
    context: dict[str, Any],
    now: datetime,
) -> None:
    if audience is Audience.DEPARTMENT:
        chat_id = scan.chats.get(case.department or "")
        if chat_id is not None:
            scan.hold(chat_id, _Reminder("ladder_reminder.html", context, case))
    elif audience is Audience.CENTER:
        center = scan.chats.get(CENTER)
        if center is not None:
            scan.hold(center, _Reminder("ladder_center.html", context, None))
    elif audience is Audience.SUPERVISION:
        await _push_to_supervision(session, district, case, context, now)
    else:
        role = Role.CENTER_HEAD if audience is Audience.CENTER_HEAD else Role.LEADER
        for person in district.people_with_role(role):
            await _tell_person(
                session,
                district,
                scan,
                case,
                person.telegram_id,
                person.name,
                role,
                rung,
                context,
                now,
            )


def tell_center_unreachable(
    session: AsyncSession,
    district: District,
    center: int | None,
    *,
    name: str,
    case: Case,
    now: datetime,
) -> None:
    """Someone who must be told of ``case`` privately never started the bot: the governance
    center's group (``center``, when bound) is told so instead."""
    if center is not None:
        send_text(
            session,
            chat_id=center,
            locale=district.default_language,
            now=now,
            text_key=N_("ladder.undeliverable"),
            name=name,
            number=case.number,
        )


async def _tell_person(
    session: AsyncSession,
    district: District,
    scan: _Scan,
    case: Case,
    user_id: int,
    name: str,
    role: Role,
    rung: LadderStep,
    context: dict[str, Any],
    now: datetime,
) -> None:
    """A private message to a named person; one who never started the bot cannot be reached,
    which is logged and told to the center instead of being dropped silently."""
    user = await session.get(User, user_id) if user_id in scan.reachable else None
    if user is None:
        log_event(
            logger,
            "ladder.undeliverable",
            logging.WARNING,
            case=case.number,
            user_id=user_id,
            role=role.value,
        )
        tell_center_unreachable(
            session, district, scan.chats.get(CENTER), name=name, case=case, now=now
        )
        return
    lang = user.language or district.default_language
    assert case.id is not None
    keyboard = None
    template = "ladder_leader.html"
    if role is Role.CENTER_HEAD:
        template = "ladder_call_task.html"
        if rung.task is Task.CALL_CHIEF:
            keyboard = inline_keyboard(
                [
                    button(N_("task.called"), CallOutcome(case.id, "c").pack()),
                    button(N_("task.no-answer"), CallOutcome(case.id, "n").pack()),
                ]
            )
    enqueue(
        session,
        chat_id=user_id,
        locale=lang,
        now=now,
        template=template,
        context={**context, "task": rung.task.value if rung.task else None},
        keyboard=keyboard,
        link=notify.case_link(case, "task"),
    )


async def _push_to_supervision(
    session: AsyncSession, district: District, case: Case, context: dict[str, Any], now: datetime
) -> None:
    if district.supervision is None or district.supervision.chat_id is None:
        return
    events = (
        await session.scalars(
            select(CaseEvent).where(col(CaseEvent.case_id) == case.id).order_by(col(CaseEvent.id))
        )
    ).all()
    timeline = [
        {"at": e.at.isoformat(), "kind": e.kind, "department": e.department, "data": e.data}
        for e in events
        if e.kind in SUPERVISION_EVENTS
    ]
    enqueue(
        session,
        chat_id=district.supervision.chat_id,
        locale=district.default_language,
        now=now,
        template="ladder_supervision.html",
        # The supervision platform watches the department's response, not the resident: the
        # push never says who reported.
        context={
            **notify.card_context(case),
            **context,
            "timeline": timeline,
            "resident_name": None,
            "reporter_hidden": True,
        },
        link=notify.case_link(case, notify.SUPERVISION),
    )


OUTCOMES = {"c": N_("task.called"), "n": N_("task.no-answer")}


async def record_call(
    session: AsyncSession,
    district: District,
    *,
    case_id: int,
    outcome: str,
    by: int,
    chat_id: int,
    message_id: int,
    callback_query_id: str,
    lang: str,
    now: datetime,
) -> Case:
    """The center head's phone call to the chief, Called or No answer, recorded on the case."""
    person = district.person(by)
    if person is None or not person.has_role(Role.CENTER_HEAD):
        raise UserError(N_("errors.stale-button"))
    case = await session.get(Case, case_id)
    if case is None or outcome not in OUTCOMES:
        raise UserError(N_("errors.stale-button"))
    session.add(
        CaseEvent(
            case_id=case_id,
            at=now,
            kind="chief_called",
            actor_id=by,
            actor_role="center",
            department=case.department,
            from_status=case.status,
            to_status=case.status,
            data={"outcome": "called" if outcome == "c" else "no_answer"},
        )
    )
    answer_callback(
        session, chat_id=chat_id, callback_query_id=callback_query_id, locale=lang, now=now
    )
    enqueue(
        session,
        chat_id=chat_id,
        locale=lang,
        now=now,
        method="editMessageReplyMarkup",
        target=message_id,
    )
    enqueue(
        session,
        chat_id=chat_id,
        locale=lang,
        now=now,
        template="task_recorded.html",
        context={"number": case.number, "outcome_key": OUTCOMES[outcome]},
    )
    return case


async def add_call_note(
    session: AsyncSession, *, case_id: int, by: int, note: str, lang: str, now: datetime
) -> None:
    """The note after a call goes on the call's event."""
    note = note.strip()[:1000]
    event = await session.scalar(
        select(CaseEvent)
        .where(
            col(CaseEvent.case_id) == case_id,
            col(CaseEvent.kind) == "chief_called",
            col(CaseEvent.actor_id) == by,
        )
        .order_by(col(CaseEvent.id).desc())
        .limit(1)
    )
    if event is None or not note:
        raise UserError(N_("errors.stale-button"))
    event.note = note
    number = await session.scalar(select(col(Case.number)).where(col(Case.id) == case_id))
    send_text(
        session,
        chat_id=by,
        locale=lang,
        now=now,
        text_key=N_("task.note-saved"),
        number=number or "",
    )
