"""What the dashboard's pages show, read from the database within a viewer's scope.

Every query of cases goes through :func:`scoped`, so a department login never counts, lists
or opens another department's case. Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, TypeVar

from sqlalchemy import Select, and_, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.district import CardColour, District
from bot.services.dashboard import Access
from bot.services.ladder import ACK_LADDER, DEADLINE_LADDER
from models import (
    Case,
    CaseEvent,
    CaseKind,
    CaseStatus,
    EntryKind,
    Escalation,
    EscalationState,
    GroupBinding,
    HelpRequest,
    MessageLink,
    OutboxMessage,
    OutboxStatus,
    PointEntry,
    Volunteer,
    VolunteerStatus,
)
from models.case import OPEN

PAGE_SIZE = 25
NEAR_RUNGS = 15
MAP_POINTS = 2000
TOP_VOLUNTEERS = 10
OPEN_STATUSES = tuple(status for status in CaseStatus if status in OPEN)


S = TypeVar("S", bound="Select[*tuple[Any, ...]]")


def scoped(statement: S, access: Access) -> S:
    if access.district_wide:
        return statement
    return statement.where(
        or_(
            col(Case.department).in_(access.departments),
            and_(col(Case.kind) == CaseKind.HELP, col(Case.community).in_(access.departments)),
        )
    )


def local_midnight(district: District, day: date) -> datetime:
    return datetime.combine(day, time(0), district.tzinfo)


# -- the overview -----------------------------------------------------------------------------


@dataclass(frozen=True)
class NearRung:
    case_id: int
    number: str
    department: str | None
    card: str  # yellow | red
    current: str  # the case's card now
    after: str  # the rung's offset as written in the district file
    ladder: str  # ack | deadline
    due_at: datetime


@dataclass(frozen=True)
class MapCase:
    case_id: int
    number: str
    latitude: float
    longitude: float
    status: str
    card: str
    category: str | None


@dataclass
class Overview:
    open_total: int = 0
    by_status: list[tuple[str, int]] = field(default_factory=list)
    by_category: list[tuple[str | None, int]] = field(default_factory=list)
    cards: dict[str, int] = field(default_factory=dict)  # open cases showing each card
    near: list[NearRung] = field(default_factory=list)
    today: list[tuple[str, int]] = field(default_factory=list)
    today_total: int = 0
    located: list[MapCase] = field(default_factory=list)
    unlocated: int = 0


async def overview(
    session: AsyncSession, district: District, access: Access, *, now: datetime
) -> Overview:
    result = Overview()
    is_open = col(Case.status).in_(OPEN_STATUSES)
    rows = await session.execute(
        scoped(select(col(Case.status), func.count()).where(is_open), access).group_by(
            col(Case.status)
        )
    )
    counts = {CaseStatus(status): int(count) for status, count in rows}
    result.by_status = [(s.value, counts[s]) for s in OPEN_STATUSES if counts.get(s)]
    result.open_total = sum(counts.values())
    rows = await session.execute(
        scoped(select(col(Case.category), func.count()).where(is_open), access)
        .group_by(col(Case.category))
        .order_by(func.count().desc(), col(Case.category))
    )
    result.by_category = [(category, int(count)) for category, count in rows]
    rows = await session.execute(
        scoped(select(col(Case.card_colour), func.count()).where(is_open), access).group_by(
            col(Case.card_colour)
        )
    )
    result.cards = {str(colour): int(count) for colour, count in rows}
    result.near = await near_rungs(session, district, access)

    start = local_midnight(district, now.astimezone(district.tzinfo).date())
    rows = await session.execute(
        scoped(
            select(col(Case.kind), func.count()).where(col(Case.created_at) >= start), access
        ).group_by(col(Case.kind))
    )
    today = {CaseKind(kind): int(count) for kind, count in rows}
    result.today = [(kind.value, today.get(kind, 0)) for kind in CaseKind]
    result.today_total = sum(today.values())

    located = await session.execute(
        scoped(
            select(
                col(Case.id),
                col(Case.number),
                col(Case.latitude),
                col(Case.longitude),
                col(Case.status),
                col(Case.card_colour),
                col(Case.category),
            ).where(is_open, col(Case.latitude).is_not(None), col(Case.longitude).is_not(None)),
            access,
        )
        .order_by(col(Case.id).desc())
        .limit(MAP_POINTS)
    )
    result.located = [
        MapCase(int(i or 0), n, float(lat or 0), float(lon or 0), str(s), c or "none", cat)
        for i, n, lat, lon, s, c, cat in located
    ]
    result.unlocated = max(result.open_total - len(result.located), 0)
    return result


async def near_rungs(
    session: AsyncSession, district: District, access: Access, *, limit: int = NEAR_RUNGS
) -> list[NearRung]:
    """Open cases whose next yellow or red card is still to come, soonest first."""
    coloured = {
        ACK_LADDER: {i for i, r in enumerate(district.ladder) if r.card is not CardColour.NONE},
        DEADLINE_LADDER: {
            i for i, r in enumerate(district.deadline_ladder) if r.card is not CardColour.NONE
        },
    }
    rows = await session.execute(
        scoped(
            select(Escalation, Case)
            .join(Case, col(Case.id) == col(Escalation.case_id))
            .where(
                col(Escalation.state) == EscalationState.PENDING,
                col(Escalation.cycle) == col(Case.dispatch_count),
                col(Case.status).in_(OPEN_STATUSES),
                or_(
                    *(
                        and_(col(Escalation.ladder) == name, col(Escalation.rung).in_(rungs))
                        for name, rungs in coloured.items()
                        if rungs
                    ),
                    false(),
                ),
            ),
            access,
        )
        .order_by(col(Escalation.due_at), col(Escalation.id))
        .limit(limit * 4)
    )
    near: list[NearRung] = []
    seen: set[int] = set()
    for escalation, case in rows:
        if escalation.rung not in coloured.get(escalation.ladder, set()) or case.id in seen:
            continue
        assert case.id is not None
        seen.add(case.id)
        rungs = district.ladder if escalation.ladder == ACK_LADDER else district.deadline_ladder
        rung = rungs[escalation.rung]
        after = getattr(rung, "after", None) or getattr(rung, "at", "")
        near.append(
            NearRung(
                case.id,
                case.number,
                case.department,
                rung.card.value,
                case.card_colour,
                str(after),
                escalation.ladder,
                escalation.due_at,
            )
        )
        if len(near) >= limit:
            break
    return near


# -- the case list ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    status: str = ""
    category: str = ""
    department: str = ""
    kind: str = ""
    since: date | None = None
    until: date | None = None
    number: str = ""
    page: int = 1

    def query(self, **changes: Any) -> dict[str, str]:
        """The filters as URL parameters (empty ones left out)."""
        values: dict[str, Any] = {
            "status": self.status,
            "category": self.category,
            "department": self.department,
            "kind": self.kind,
            "since": self.since.isoformat() if self.since else "",
            "until": self.until.isoformat() if self.until else "",
            "q": self.number,
            "page": str(self.page) if self.page > 1 else "",
        }
        values.update(changes)
        return {key: str(value) for key, value in values.items() if value}


def parse_filters(params: Any) -> Filters:
    def text(name: str, limit: int = 32) -> str:
        return str(params.get(name, "")).strip()[:limit]

    def day(name: str) -> date | None:
        try:
            return date.fromisoformat(text(name, 10))
        except ValueError:
            return None

    try:
        page = max(1, min(int(text("page", 6) or 1), 100_000))
    except ValueError:
        page = 1
    return Filters(
        status=text("status") if text("status") in {s.value for s in CaseStatus} else "",
        category=text("category"),
        department=text("department"),
        kind=text("kind") if text("kind") in {k.value for k in CaseKind} else "",
        since=day("since"),
        until=day("until"),
        number=text("q", 20).upper(),
        page=page,
    )


async def case_list(
    session: AsyncSession, district: District, access: Access, filters: Filters
) -> tuple[list[Case], int]:
    conditions: list[Any] = []
    if filters.status:
        conditions.append(col(Case.status) == filters.status)
    if filters.category:
        conditions.append(col(Case.category) == filters.category)
    if filters.department:
        conditions.append(col(Case.department) == filters.department)
    if filters.kind:
        conditions.append(col(Case.kind) == filters.kind)
    if filters.since:
        conditions.append(col(Case.created_at) >= local_midnight(district, filters.since))
    if filters.until:
        end = local_midnight(district, filters.until + timedelta(days=1))
        conditions.append(col(Case.created_at) < end)
    if filters.number:
        conditions.append(col(Case.number).contains(filters.number, autoescape=True))
    total = await session.scalar(
        scoped(select(func.count()).select_from(Case), access).where(*conditions)
    )
    rows = await session.scalars(
        scoped(select(Case), access)
        .where(*conditions)
        .order_by(col(Case.created_at).desc(), col(Case.id).desc())
        .offset((filters.page - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE)
    )
    return list(rows.all()), int(total or 0)


# -- one case ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    """A message about the case: delivered (its link) or still pending / dead (its row)."""

    at: datetime
    chat_id: int
    purpose: str
    status: str
    error: str | None = None


@dataclass
class CaseDetail:
    case: Case
    events: list[CaseEvent]
    sent: list[Sent]
    rungs: list[Escalation]
    bound_units: dict[int, str]
    help: HelpRequest | None = None  # a help request's own part


async def case_detail(session: AsyncSession, case_id: int) -> CaseDetail | None:
    case = await session.get(Case, case_id)
    if case is None:
        return None
    events = await session.scalars(
        select(CaseEvent)
        .where(col(CaseEvent.case_id) == case_id)
        .order_by(col(CaseEvent.at), col(CaseEvent.id))
    )
    links = await session.scalars(
        select(MessageLink).where(
            col(MessageLink.subject_type) == "case", col(MessageLink.subject_id) == str(case_id)
        )
    )
    sent = [Sent(link.created_at, link.chat_id, link.purpose, "delivered") for link in links]
    undelivered = await session.scalars(
        select(OutboxMessage).where(
            col(OutboxMessage.status).in_([OutboxStatus.PENDING, OutboxStatus.DEAD]),
            col(OutboxMessage.link_subject_type) == "case",
            col(OutboxMessage.link_subject_id) == str(case_id),
        )
    )
    sent += [
        Sent(row.created_at, row.chat_id, row.link_purpose or "message", row.status.value)
        for row in undelivered
    ]
    sent.sort(key=lambda item: (item.at, item.chat_id))
    rungs = await session.scalars(
        select(Escalation)
        .where(col(Escalation.case_id) == case_id)
        .order_by(col(Escalation.due_at), col(Escalation.id))
    )
    bindings = await session.execute(select(col(GroupBinding.chat_id), col(GroupBinding.unit)))
    return CaseDetail(
        case,
        list(events.all()),
        sent,
        list(rungs.all()),
        {int(chat): str(unit) for chat, unit in bindings},
        await session.get(HelpRequest, case_id) if case.kind is CaseKind.HELP else None,
    )


# -- volunteers and points --------------------------------------------------------------------


@dataclass(frozen=True)
class TopVolunteer:
    name: str
    community: str
    points: int


@dataclass
class VolunteerSummary:
    by_community: list[tuple[str, dict[str, int]]] = field(default_factory=list)
    open_requests: list[tuple[Case, HelpRequest]] = field(default_factory=list)
    month_points: int = 0
    month_helped: int = 0
    top: list[TopVolunteer] = field(default_factory=list)

    @property
    def registered(self) -> int:
        return sum(sum(counts.values()) for _, counts in self.by_community)


def _communities(access: Access) -> Sequence[str] | None:
    return None if access.district_wide else access.departments


async def volunteers(
    session: AsyncSession, district: District, access: Access, *, now: datetime
) -> VolunteerSummary:
    summary = VolunteerSummary()
    only = _communities(access)
    statement = select(col(Volunteer.community), col(Volunteer.status), func.count()).group_by(
        col(Volunteer.community), col(Volunteer.status)
    )
    if only is not None:
        statement = statement.where(col(Volunteer.community).in_(only))
    table: dict[str, dict[str, int]] = {}
    for community, status, count in await session.execute(statement):
        table.setdefault(str(community), {})[VolunteerStatus(status).value] = int(count)
    summary.by_community = sorted(table.items())

    requests = (
        select(Case, HelpRequest)
        .join(HelpRequest, col(HelpRequest.case_id) == col(Case.id))
        .where(col(Case.status) == CaseStatus.PUBLISHED)
    )
    if only is not None:
        requests = requests.where(col(Case.community).in_(only))
    found = await session.execute(requests.order_by(col(Case.created_at)).limit(100))
    summary.open_requests = [(case, request) for case, request in found]

    today = now.astimezone(district.tzinfo).date()
    month_start = local_midnight(district, today.replace(day=1))
    earned = (
        select(
            col(PointEntry.user_id),
            func.sum(PointEntry.points).label("total"),
            func.count().label("entries"),
        )
        .join(Volunteer, col(Volunteer.user_id) == col(PointEntry.user_id))
        .where(col(PointEntry.kind) == EntryKind.EARN, col(PointEntry.at) >= month_start)
        .group_by(col(PointEntry.user_id))
    )
    if only is not None:
        earned = earned.where(col(Volunteer.community).in_(only))
    totals = {
        int(user): (int(total), int(entries))
        for user, total, entries in await session.execute(earned)
    }
    summary.month_points = sum(total for total, _ in totals.values())
    summary.month_helped = sum(entries for _, entries in totals.values())
    best = sorted(totals.items(), key=lambda item: (-item[1][0], item[0]))[:TOP_VOLUNTEERS]
    if best:
        people = {
            v.user_id: v
            for v in await session.scalars(
                select(Volunteer).where(col(Volunteer.user_id).in_([user for user, _ in best]))
            )
        }
        summary.top = [
            TopVolunteer(
                people[user].name,
                people[user].community,
                total,
            )
            for user, (total, _) in best
            if user in people
        ]
    return summary
