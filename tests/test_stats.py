"""The three rates and the figures around them, on a fixture whose answers were worked out by
hand (see the comments), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.db import SessionFactory, transaction
from bot.district import District
from bot.services import stats
from models import Case, CaseEvent, CaseKind, CaseStatus, Escalation, EscalationState, Rating

TZ = ZoneInfo("Asia/Shanghai")
DAY = datetime(2026, 3, 10, tzinfo=TZ)  # a Tuesday


def at(hour: float, day: int = 10) -> datetime:
    """A local time on the fixture's day, as UTC."""
    return (datetime(2026, 3, day, tzinfo=TZ) + timedelta(hours=hour)).astimezone(UTC)


def case(number: int, department: str, status: CaseStatus, **fields: Any) -> Case:
    created = fields.get("dispatched_at") or at(8)
    return Case(
        number=f"T-{number:06d}",
        kind=CaseKind.REPORT,
        status=status,
        category="flying_wire",
        department=department,
        resident_id=500 + number,
        resident_language="zh-Hans",
        created_at=created,
        updated_at=created,
        **fields,
    )


async def load_fixture(factory: SessionFactory) -> dict[str, int]:
    """Seven cases; the expected figures are worked out in ``test_rates_on_known_fixture``."""
    rows = {
        # 1. acknowledged in 30 min (in time: the yellow card is at 1 h), answered after 3 h,
        #    rated satisfied.
        "c1": case(
            1,
            "cgzf",
            CaseStatus.CLOSED,
            dispatched_at=at(9),
            acknowledged_at=at(9.5),
            answered_at=at(12),
            rating=Rating.SATISFIED,
            closed_at=at(13),
        ),
        # 2. acknowledged after 90 min (late), answered after 5 h, rated basically satisfied;
        #    filed in Kangle community.
        "c2": case(
            2,
            "cgzf",
            CaseStatus.CLOSED,
            community="kangle",
            dispatched_at=at(10),
            acknowledged_at=at(11.5),
            answered_at=at(15),
            rating=Rating.BASICALLY,
            closed_at=at(16),
        ),
        # 3. acknowledged in 20 min, answered after 1 h, rated unsatisfied and reopened at 13:00.
        "c3": case(
            3,
            "cgzf",
            CaseStatus.REOPENED,
            dispatched_at=at(10),
            acknowledged_at=at(10 + 1 / 3),
            answered_at=at(11),
            rating=Rating.UNSATISFIED,
            reopen_count=1,
        ),
        # 4. never acknowledged: yellow card at 15:00, red at 18:00; overdue at the day's end.
        "c4": case(4, "cgzf", CaseStatus.DISPATCHED, dispatched_at=at(14), card_colour="red"),
        # 5. withdrawn by the resident: not counted anywhere.
        "c5": case(5, "cgzf", CaseStatus.WITHDRAWN, dispatched_at=at(16), closed_at=at(16.5)),
        # 6. Kangle community (street office Xinhua): acknowledged in 10 min, answered after 1 h,
        #    closed unrated.
        "c6": case(
            6,
            "kangle",
            CaseStatus.CLOSED,
            dispatched_at=at(9),
            acknowledged_at=at(9 + 1 / 6),
            answered_at=at(10),
            rating=Rating.UNRATED,
            closed_at=at(20),
        ),
        # 7. dispatched the day before: not in this day's cohort, and acknowledged since.
        "c7": case(
            7,
            "cgzf",
            CaseStatus.ACKNOWLEDGED,
            dispatched_at=at(20, day=9),
            acknowledged_at=at(20.2, day=9),
        ),
    }
    async with transaction(factory) as session:
        for row in rows.values():
            session.add(row)
        await session.flush()
        ids = {name: row.id for name, row in rows.items() if row.id is not None}
        session.add_all(
            [
                Escalation(case_id=ids["c4"], ladder="ack", cycle=1, rung=1, due_at=at(15),
                           state=EscalationState.FIRED, fired_at=at(15)),
                Escalation(case_id=ids["c4"], ladder="ack", cycle=1, rung=2, due_at=at(18),
                           state=EscalationState.FIRED, fired_at=at(18)),
                # Rung 3 is red too: the same red card still showing, not a second one.
                Escalation(case_id=ids["c4"], ladder="ack", cycle=1, rung=3, due_at=at(5, 11),
                           state=EscalationState.PENDING),
                # Case 7's yellow card was shown the day before.
                Escalation(case_id=ids["c7"], ladder="ack", cycle=1, rung=1, due_at=at(21, 9),
                           state=EscalationState.FIRED, fired_at=at(21, 9)),
                CaseEvent(case_id=ids["c3"], at=at(13), kind="rated", actor_role="resident",
                          department="cgzf", from_status=CaseStatus.ANSWERED,
                          to_status=CaseStatus.REOPENED),
                # What the resident then says, and a co-reporter's rating, are recorded while
                # the case stays reopened: not reopenings.
                CaseEvent(case_id=ids["c3"], at=at(13.1), kind="commented",
                          actor_role="resident", department="cgzf",
                          to_status=CaseStatus.REOPENED, note="还是没修好"),
                CaseEvent(case_id=ids["c3"], at=at(13.2), kind="co_rated",
                          actor_role="resident", department="cgzf",
                          from_status=CaseStatus.REOPENED, to_status=CaseStatus.REOPENED),
            ]
        )  # fmt: skip
    return ids


async def test_rates_on_known_fixture(factory: SessionFactory, district: District) -> None:
    ids = await load_fixture(factory)
    start, end = stats.period("yesterday", at(8, day=11), TZ)
    assert (start, end) == (at(0), at(0, day=11))
    async with transaction(factory) as session:
        report = await stats.compute(session, district, start=start, end=end, now=at(8, day=11))

    # District: cases 1, 2, 3, 4, 6 dispatched (5 withdrawn, 7 the day before).
    whole = report.district
    assert whole.dispatched == 5
    assert whole.responded == 3  # 1, 3, 6 within the hour; 2 late; 4 never
    assert whole.response_rate == pytest.approx(0.6)
    assert whole.resolved == 3  # 1, 2, 6 answered; 3 reopened; 4 not answered
    assert whole.resolution_rate == pytest.approx(0.6)
    assert whole.rated == 3  # 1, 2, 3 (6 closed unrated)
    assert whole.satisfied == 2  # satisfied + basically satisfied
    assert whole.satisfaction_rate == pytest.approx(2 / 3)
    assert (whole.yellow, whole.red) == (1, 1)  # case 4 only; case 7's card the day before
    assert whole.reopened == 1
    assert whole.overdue == 1  # case 4 at midnight (case 7 was acknowledged, no deadline)
    # The list "当前超时" is as of a given moment: case 4 is late from its yellow card on.
    async with transaction(factory) as session:
        assert await stats.overdue_at(session, district, at(14.5)) == ()
        assert await stats.overdue_at(session, district, at(15)) == (ids["c4"],)
        assert await stats.overdue_at(session, district, at(15), department="kangle") == ()
    assert whole.median_ack == timedelta(minutes=25)  # 10, 20, 30, 90 min
    assert whole.median_answer == timedelta(hours=3)  # 1 h, 3 h, 5 h (3 was reopened)

    cgzf = report.departments["cgzf"]
    assert (cgzf.dispatched, cgzf.responded, cgzf.resolved) == (4, 2, 2)
    assert (cgzf.response_rate, cgzf.resolution_rate) == (0.5, 0.5)
    assert cgzf.satisfaction_rate == pytest.approx(2 / 3)
    assert cgzf.median_ack == timedelta(minutes=30)  # 20, 30, 90 min
    assert cgzf.median_answer == timedelta(hours=4)  # 3 h, 5 h
    assert (cgzf.yellow, cgzf.red, cgzf.reopened, cgzf.overdue) == (1, 1, 1, 1)

    kangle = report.departments["kangle"]
    assert (kangle.dispatched, kangle.responded, kangle.resolved, kangle.rated) == (1, 1, 1, 0)
    assert kangle.satisfaction_rate is None  # nobody rated: no rate, not 0 %
    # Street office Xinhua holds Kangle; case 2 was filed in Kangle, case 6 handled by it.
    assert report.street_offices["xinhua"].dispatched == 1
    assert report.communities["kangle"].dispatched == 2
    assert report.communities["kangle"].satisfied == 1
    # The league table: Kangle (100 %, 100 %, no rating) above the bureau.
    assert [code for code, _ in report.league()] == ["kangle", "cgzf"]

    # One department's own figures are the same as its line in the district's.
    async with transaction(factory) as session:
        own = await stats.compute(
            session, district, start=start, end=end, now=at(8, day=11), department="cgzf"
        )
    assert own.district == cgzf
    assert set(own.departments) == {"cgzf"}


async def test_periods_in_the_district_time_zone() -> None:
    now = at(8.5, day=12)  # Thursday 12 March, 08:30 in Shanghai
    assert stats.period("today", now, TZ) == (at(0, day=12), now)
    assert stats.period("week", now, TZ) == (at(0, day=9), now)  # since Monday
    assert stats.period("month", now, TZ) == (at(0, day=1), now)
    assert stats.previous_week(now, TZ) == (at(0, day=2), at(0, day=9))
    assert stats.previous_month(now, TZ) == (
        datetime(2026, 2, 1, tzinfo=TZ).astimezone(UTC),
        at(0, day=1),
    )
    with pytest.raises(ValueError, match="unknown period"):
        stats.period("fortnight", now, TZ)
