"""The three rates (三率) and the figures around them, per department, street office, community
and district-wide, for a period.

Every figure has one definition, written here and shown beside the figure wherever it appears
(the message ids in :data:`DEFINITIONS`):

- **dispatched**: cases whose current dispatch (吹哨) to a department happened in the period,
  leaving out cases the resident withdrew and cases handled as part of another's bundle. The
  rates below are shares of these cases ("the period's cohort"); a case counts for the
  department that holds it.
- **response rate** (响应率): cohort cases acknowledged (应哨) before the first card of the
  ladder (the yellow card, by the district's working-hours clock) ÷ dispatched.
- **resolution rate** (解决率): cohort cases answered (答卷) and never reopened ÷ dispatched.
- **satisfaction rate** (满意率): cohort cases rated satisfied or basically satisfied ÷ cohort
  cases rated by the resident (cases closed unrated are not in the denominator).
- **yellow / red cards**: cards shown during the period (a case's first yellow rung, its first
  red rung, on either ladder).
- **median time to acknowledge / to answer**: from the dispatch, over the cohort cases
  acknowledged / answered.
- **reopened**: reopenings (rated unsatisfied) during the period.
- **overdue**: at the end of the period, open cases with a department that are past their
  response window without acknowledgement, or past their agreed deadline without an answer.

Nothing here talks to Telegram; reports, ``/stats``, the dashboard and exports read these.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.district import CardColour, District, LadderStep
from bot.i18n import N_
from models import Case, CaseEvent, CaseStatus, Escalation, EscalationState

PERIODS = ("today", "yesterday", "week", "month")
# Cases left out of the cohort: withdrawn, bundled into another, or back in triage (returned
# by the department, waiting for a new dispatch).
NOT_COUNTED = (CaseStatus.WITHDRAWN, CaseStatus.BUNDLED, CaseStatus.TRIAGE)
WITH_DEPARTMENT = (CaseStatus.DISPATCHED, CaseStatus.ACKNOWLEDGED, CaseStatus.REOPENED)
ANSWERED = frozenset({CaseStatus.ANSWERED, CaseStatus.CLOSED})
SATISFIED = frozenset({"satisfied", "basically"})

DEFINITIONS: dict[str, str] = {
    "dispatched": N_("stats.def.dispatched"),
    "response_rate": N_("stats.def.response_rate"),
    "resolution_rate": N_("stats.def.resolution_rate"),
    "satisfaction_rate": N_("stats.def.satisfaction_rate"),
    "cards": N_("stats.def.cards"),
    "medians": N_("stats.def.medians"),
    "overdue": N_("stats.def.overdue"),
}


@dataclass(frozen=True)
class Figures:
    """One unit's figures for a period (see the module's definitions)."""

    dispatched: int = 0
    responded: int = 0
    resolved: int = 0
    rated: int = 0
    satisfied: int = 0
    yellow: int = 0
    red: int = 0
    overdue: int = 0
    reopened: int = 0
    median_ack: timedelta | None = None
    median_answer: timedelta | None = None

    @property
    def response_rate(self) -> float | None:
        return _share(self.responded, self.dispatched)

    @property
    def resolution_rate(self) -> float | None:
        return _share(self.resolved, self.dispatched)

    @property
    def satisfaction_rate(self) -> float | None:
        return _share(self.satisfied, self.rated)

    @property
    def score(self) -> float:
        """The league table's order: the mean of the rates a unit has (0 without any)."""
        rates = [
            r
            for r in (self.response_rate, self.resolution_rate, self.satisfaction_rate)
            if r is not None
        ]
        return sum(rates) / len(rates) if rates else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Plain values (JSON-ready: durations in seconds) for messages and exports."""
        return {
            "dispatched": self.dispatched,
            "responded": self.responded,
            "resolved": self.resolved,
            "rated": self.rated,
            "satisfied": self.satisfied,
            "yellow": self.yellow,
            "red": self.red,
            "overdue": self.overdue,
            "reopened": self.reopened,
            "median_ack": _seconds(self.median_ack),
            "median_answer": _seconds(self.median_answer),
            "response_rate": self.response_rate,
            "resolution_rate": self.resolution_rate,
            "satisfaction_rate": self.satisfaction_rate,
        }


@dataclass(frozen=True)
class Report:
    start: datetime
    end: datetime
    district: Figures
    departments: dict[str, Figures] = field(default_factory=dict)
    street_offices: dict[str, Figures] = field(default_factory=dict)
    communities: dict[str, Figures] = field(default_factory=dict)

    def league(self) -> list[tuple[str, Figures]]:
        """Departments with cases in the period, best first (ties: more cases first)."""
        ranked = [(code, f) for code, f in self.departments.items() if f.dispatched]
        return sorted(ranked, key=lambda item: (-item[1].score, -item[1].dispatched, item[0]))


def period(name: str, now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """A named period in the district's time zone, as UTC ``[start, end)``. ``today``, ``week``
    and ``month`` run from their start to now; ``yesterday`` is the whole previous day."""
    local = now.astimezone(tz)
    today = local.date()
    if name == "today":
        return _midnight(today, tz), now
    if name == "yesterday":
        return _midnight(today - timedelta(days=1), tz), _midnight(today, tz)
    if name == "week":
        return _midnight(today - timedelta(days=today.weekday()), tz), now
    if name == "month":
        return _midnight(today.replace(day=1), tz), now
    raise ValueError(f"unknown period {name!r}")


def previous_week(now: datetime, tz: ZoneInfo, weeks_back: int = 1) -> tuple[datetime, datetime]:
    """The whole Monday-to-Monday week ``weeks_back`` weeks before the current one."""
    today = now.astimezone(tz).date()
    monday = today - timedelta(days=today.weekday()) - timedelta(weeks=weeks_back)
    return _midnight(monday, tz), _midnight(monday + timedelta(weeks=1), tz)


def previous_month(now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The whole calendar month before the current one."""
    first = now.astimezone(tz).date().replace(day=1)
    start = (first - timedelta(days=1)).replace(day=1)
    return _midnight(start, tz), _midnight(first, tz)


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(ZoneInfo("UTC"))


def response_window_end(district: District, dispatched_at: datetime) -> datetime:
    """When a dispatched case's response window closes: its ladder's first card."""
    rung = _first_carded(district.ladder) or district.ladder[-1]
    return district.working_hours.add(dispatched_at, rung.offset, district.tzinfo)


def _first_carded(ladder: Sequence[LadderStep]) -> LadderStep | None:
    return next((r for r in ladder if r.card is not CardColour.NONE), None)


def _first_of_colour(ladder: Sequence[LadderStep], colour: CardColour) -> int | None:
    return next((i for i, r in enumerate(ladder) if r.card is colour), None)


@dataclass
class _Tally:
    """A unit's figures while they are counted: the counts by :class:`Figures`' names."""

    counts: Counter[str] = field(default_factory=Counter)
    ack_times: list[timedelta] = field(default_factory=list)
    answer_times: list[timedelta] = field(default_factory=list)

    def add(self, **counts: int) -> None:
        for name, count in counts.items():
            self.counts[name] += count

    def freeze(self) -> Figures:
        return Figures(
            **self.counts,
            median_ack=_median(self.ack_times),
            median_answer=_median(self.answer_times),
        )


class _Units:
    """Which tallies one case counts in: its department, the department's street office, its
    community (where the case is, or the community that handles it) and the district."""

    def __init__(self, district: District) -> None:
        self.district = district
        self.total = _Tally()
        self.departments: dict[str, _Tally] = defaultdict(_Tally)
        self.street_offices: dict[str, _Tally] = defaultdict(_Tally)
        self.communities: dict[str, _Tally] = defaultdict(_Tally)
        self._community_codes = {c.code for c in district.communities()}

    def of(self, department: str | None, community: str | None) -> Iterable[_Tally]:
        yield self.total
        unit = self.district.department(department) if department else None
        if department:
            yield self.departments[department]
        if unit is not None and unit.street_office:
            yield self.street_offices[unit.street_office]
        where = community if community in self._community_codes else None
        if where is None and department in self._community_codes:
            where = department
        if where is not None:
            yield self.communities[where]


async def compute(
    session: AsyncSession,
    district: District,
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    department: str | None = None,
) -> Report:
    """The figures for ``[start, end)``; ``department`` limits them to one department's cases.
    Overdue cases are counted at ``min(end, now)``."""
    units = _Units(district)
    at = min(end, now)
    scoped = _scope(department)
    cohort = await session.execute(
        scoped(
            select(
                col(Case.department),
                col(Case.community),
                col(Case.status),
                col(Case.dispatched_at),
                col(Case.acknowledged_at),
                col(Case.answered_at),
                col(Case.reopen_count),
                col(Case.rating),
            ).where(
                col(Case.dispatched_at) >= start,
                col(Case.dispatched_at) < end,
                col(Case.department).is_not(None),
                col(Case.status).not_in(NOT_COUNTED),
            )
        )
    )
    for dept, community, status, dispatched, acked, answered, reopens, rating in cohort:
        in_time = acked is not None and acked <= response_window_end(district, dispatched)
        resolved = status in ANSWERED and answered is not None and not reopens
        rated = rating is not None and rating.value != "unrated"
        for tally in units.of(dept, community):
            tally.add(dispatched=1, responded=in_time, resolved=resolved)
            if rated:
                tally.add(rated=1, satisfied=rating.value in SATISFIED)
            if acked is not None:
                tally.ack_times.append(acked - dispatched)
            if answered is not None and status in ANSWERED:
                tally.answer_times.append(answered - dispatched)

    await _count_cards(session, district, units, start, end, scoped)
    await _count_reopened(session, units, start, end, scoped)
    await _overdue(session, district, units, at, scoped)
    return Report(
        start=start,
        end=end,
        district=units.total.freeze(),
        departments={k: v.freeze() for k, v in sorted(units.departments.items())},
        street_offices={k: v.freeze() for k, v in sorted(units.street_offices.items())},
        communities={k: v.freeze() for k, v in sorted(units.communities.items())},
    )


async def _count_cards(
    session: AsyncSession,
    district: District,
    units: _Units,
    start: datetime,
    end: datetime,
    scoped: Any,
) -> None:
    # The rung that shows each card first, per ladder: a later rung of the same colour is the
    # same card still showing.
    firsts: list[Any] = []
    for ladder, steps in (("ack", district.ladder), ("deadline", district.deadline_ladder)):
        for colour in (CardColour.YELLOW, CardColour.RED):
            index = _first_of_colour(steps, colour)
            if index is not None:
                firsts.append((ladder, index, colour))
    if not firsts:
        return
    colour_of = {(ladder, index): colour for ladder, index, colour in firsts}
    rows = await session.execute(
        scoped(
            select(
                col(Escalation.ladder),
                col(Escalation.rung),
                col(Case.department),
                col(Case.community),
            )
            .join(Case, col(Case.id) == col(Escalation.case_id))
            .where(
                col(Escalation.state) == EscalationState.FIRED,
                col(Escalation.fired_at) >= start,
                col(Escalation.fired_at) < end,
                or_(
                    *(
                        and_(col(Escalation.ladder) == ladder, col(Escalation.rung) == index)
                        for ladder, index, _colour in firsts
                    )
                ),
            )
        )
    )
    for ladder, rung, dept, community in rows:
        colour = colour_of[(ladder, rung)]
        for tally in units.of(dept, community):
            if colour is CardColour.YELLOW:
                tally.add(yellow=1)
            else:
                tally.add(red=1)


async def _count_reopened(
    session: AsyncSession, units: _Units, start: datetime, end: datetime, scoped: Any
) -> None:
    rows = await session.execute(
        scoped(
            select(col(CaseEvent.department), col(Case.department), col(Case.community))
            .join(Case, col(Case.id) == col(CaseEvent.case_id))
            .where(
                # The move into "reopened", once per reopening: later events recorded while
                # the case stays reopened (the resident's comment, a co-reporter's rating)
                # carry the same resulting status and are not reopenings.
                col(CaseEvent.to_status) == CaseStatus.REOPENED,
                col(CaseEvent.from_status).is_not(None),
                col(CaseEvent.from_status) != CaseStatus.REOPENED,
                col(CaseEvent.at) >= start,
                col(CaseEvent.at) < end,
            )
        )
    )
    for event_dept, dept, community in rows:
        for tally in units.of(event_dept or dept, community):
            tally.add(reopened=1)


async def overdue_at(
    session: AsyncSession, district: District, at: datetime, department: str | None = None
) -> tuple[int, ...]:
    """The cases overdue at ``at`` (a report's "当前超时" list, as of when it is sent), oldest
    dispatch first; ``department`` limits them to one department's."""
    return await _overdue(session, district, _Units(district), at, _scope(department))


def _scope(department: str | None) -> Callable[[Any], Any]:
    """A query limited to one department's cases, or left as it is."""

    def scoped(query: Any) -> Any:
        return query.where(col(Case.department) == department) if department else query

    return scoped


async def _overdue(
    session: AsyncSession, district: District, units: _Units, at: datetime, scoped: Any
) -> tuple[int, ...]:
    rows = await session.execute(
        scoped(
            select(
                col(Case.id),
                col(Case.department),
                col(Case.community),
                col(Case.status),
                col(Case.dispatched_at),
                col(Case.deadline_at),
            )
            .where(
                col(Case.status).in_(WITH_DEPARTMENT),
                col(Case.dispatched_at).is_not(None),
                col(Case.dispatched_at) < at,
            )
            .order_by(col(Case.dispatched_at), col(Case.id))
        )
    )
    overdue: list[int] = []
    for case_id, dept, community, status, dispatched, deadline in rows:
        late = (
            status is CaseStatus.DISPATCHED and response_window_end(district, dispatched) <= at
        ) or (status is not CaseStatus.DISPATCHED and deadline is not None and deadline <= at)
        if late:
            overdue.append(case_id)
            for tally in units.of(dept, community):
                tally.add(overdue=1)
    return tuple(overdue)


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _median(values: list[timedelta]) -> timedelta | None:
    if not values:
        return None
    return timedelta(seconds=statistics.median(v.total_seconds() for v in values))


def _seconds(value: timedelta | None) -> float | None:
    return value.total_seconds() if value is not None else None
