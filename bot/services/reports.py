"""Scheduled reports (日通报、周分析、月调度), ``/stats`` and ``/export``.

A report is due at its local time from the district file (``[reports]``): the daily one every
day with yesterday's figures and today's overdue list, the weekly one on Mondays with last
week's figures, the departments' league table and a chart (three rates per department, the
district's trend over eight weeks), the monthly one on the 1st with last month's, plus cards
and reopenings per department. What is due is computed from the clock, and each report and
period is recorded in ``report_runs`` in the same transaction as its outbox rows, so however
often (and on however many replicas) the job runs, a report goes out once; one that was due
while the service was down goes out when it comes back, within :data:`CATCH_UP`. The figures
are computed and the charts drawn before that transaction (:func:`prepare_due` reads in a
read transaction), so intake does not wait for them; :func:`record` checks again that the
report is not recorded yet.

Nothing here talks to Telegram: the report is written to the outbox (text rendered at send time
in the recipient's language; the chart rendered here, per language, and uploaded with it).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.district import District, Role
from bot.i18n import N_, babel_locale
from bot.logs import log_event
from bot.services import stats
from bot.services.dashboard import access_of
from bot.services.errors import UserError
from bot.services.outbox import attach, enqueue
from bot.services.routing import CENTER, unit_of
from bot.services.users import chat_language, language_of
from models import Case, ReportRun, User

logger = logging.getLogger(__name__)

KINDS = ("daily", "weekly", "monthly")
TITLES = {
    "daily": N_("report.daily.title"),
    "weekly": N_("report.weekly.title"),
    "monthly": N_("report.monthly.title"),
    "today": N_("stats.title.today"),
    "week": N_("stats.title.week"),
    "month": N_("stats.title.month"),
}
RATE_NAMES = (
    N_("stats.response-rate"),
    N_("stats.resolution-rate"),
    N_("stats.satisfaction-rate"),
)
# How late a missed report is still sent (after that, the next one is awaited).
CATCH_UP = {
    "daily": timedelta(hours=12),
    "weekly": timedelta(days=1),
    "monthly": timedelta(days=1),
}
TREND_WEEKS = 8
# What a report's message lists (then "and N more"): with the figures and their definitions
# it stays within Telegram's 4096 characters. The chart shows more departments.
OVERDUE_LISTED = 8
LEAGUE_LISTED = 8
LEAGUE_CHARTED = 20
EXPORT_PERIODS = ("week", "month")
STATS_PERIODS = ("today", "week", "month")
EXPORT_COLUMNS = (
    "number", "kind", "category", "department", "community", "status", "created_at",
    "dispatched_at", "acknowledged_at", "answered_at", "closed_at", "rating", "reopen_count",
    "card", "deadline_at", "department_name", "category_name", "source",
)  # fmt: skip


@dataclass(frozen=True)
class Due:
    kind: str
    scheduled_at: datetime
    start: datetime
    end: datetime


@dataclass(frozen=True)
class ChartData:
    """What the weekly and monthly chart shows, with names already in the chart's language."""

    title: str
    rate_names: tuple[str, str, str]
    departments: tuple[tuple[str, tuple[float | None, float | None, float | None]], ...]
    trend: tuple[tuple[str, tuple[float | None, float | None, float | None]], ...]
    by_department: str
    trend_title: str
    empty: str


def due_reports(district: District, now: datetime) -> list[Due]:
    """The latest occurrence of each report at or before ``now``, with its period, when it
    is still within its catch-up window."""
    tz = district.tzinfo
    local = now.astimezone(tz)
    settings = district.reports
    result: list[Due] = []
    for kind in KINDS:
        at: str | None = getattr(settings, kind)
        if at is None:
            continue
        clock = time.fromisoformat(at)
        day = local.date()
        if kind == "weekly":
            day -= timedelta(days=day.weekday())
        elif kind == "monthly":
            day = day.replace(day=1)
        scheduled = datetime.combine(day, clock, tzinfo=tz)
        if scheduled > local:
            # Not yet today (this week, this month): the previous occurrence.
            if kind == "daily":
                scheduled -= timedelta(days=1)
            elif kind == "weekly":
                scheduled -= timedelta(weeks=1)
            else:
                previous = (day - timedelta(days=1)).replace(day=1)
                scheduled = datetime.combine(previous, clock, tzinfo=tz)
        if local - scheduled > CATCH_UP[kind]:
            continue
        if kind == "daily":
            start, end = stats.period("yesterday", scheduled, tz)
        elif kind == "weekly":
            start, end = stats.previous_week(scheduled, tz)
        else:
            start, end = stats.previous_month(scheduled, tz)
        result.append(Due(kind, scheduled.astimezone(now.tzinfo), start, end))
    return result


async def recipients(session: AsyncSession, district: District) -> list[tuple[int, str]]:
    """Chats that get the reports, each with its language: the center's group and the
    report chats in theirs (chosen with /lang, else the district's); leaders in theirs (only
    those who have started a chat with the bot: Telegram refuses messages to anyone else)."""
    default = district.default_language
    groups = [district.governance_center.chat_id, *district.reports.chats]
    chats: list[tuple[int, str]] = [
        (chat_id, await chat_language(session, chat_id, district.languages, default))
        for chat_id in groups
        if chat_id is not None
    ]
    if district.reports.leaders:
        for person in district.people_with_role(Role.LEADER):
            user = await session.get(User, person.telegram_id)
            if user is not None:
                chats.append((person.telegram_id, language_of(user, district.languages, default)))
    unique: dict[int, str] = {}
    for chat_id, lang in chats:
        unique.setdefault(chat_id, lang)
    return list(unique.items())


@dataclass(frozen=True)
class Prepared:
    """A report read and computed, not yet recorded: what goes to whom, and the charts to
    draw (language drawn in → what to draw; none for the daily report)."""

    due: Due
    context: dict[str, Any]
    recipients: tuple[tuple[int, str], ...]
    charts: dict[str, ChartData]


async def _recorded(session: AsyncSession, due: Due) -> bool:
    found = await session.scalar(
        select(col(ReportRun.id)).where(
            col(ReportRun.kind) == due.kind, col(ReportRun.period_start) == due.start
        )
    )
    return found is not None


async def prepare_due(
    session: AsyncSession,
    district: District,
    *,
    now: datetime,
    translate: Callable[[str, str], str],
) -> list[Prepared]:
    """Every report that is due and not recorded yet, computed: statistics, the message's
    context, its recipients and what its charts show. Only reads (run it in a read
    transaction: the statistics of a month take a while, and must not hold the write lock);
    :func:`record` then queues it. ``translate(lang, message_id)`` names things on the
    chart."""
    prepared: list[Prepared] = []
    for due in due_reports(district, now):
        if await _recorded(session, due):
            continue
        report = await stats.compute(session, district, start=due.start, end=due.end, now=now)
        context = await report_context(session, district, report, kind=due.kind, now=now)
        chats = tuple(await recipients(session, district))
        charts: dict[str, ChartData] = {}
        if due.kind != "daily":
            trend: list[stats.Report] = []
            for weeks_back in range(TREND_WEEKS, 0, -1):
                start, end = stats.previous_week(due.scheduled_at, district.tzinfo, weeks_back)
                trend.append(await stats.compute(session, district, start=start, end=end, now=now))
            for _chat_id, lang in chats:
                drawn_in = chart_language(lang, district.default_language)
                if drawn_in not in charts:
                    charts[drawn_in] = chart_data(
                        district, report, trend, drawn_in, due.kind, translate
                    )
        prepared.append(Prepared(due, context, chats, charts))
    return prepared


async def record(
    session: AsyncSession,
    district: District,
    prepared: Prepared,
    *,
    now: datetime,
    drawn: dict[str, bytes],
) -> bool:
    """Record the report's run and queue its messages (``drawn``: the PNG of each of its
    charts), in the caller's write transaction; False if it was recorded meanwhile (by
    another run of the job, or another replica), so a report goes out once."""
    due = prepared.due
    if await _recorded(session, due):
        return False
    try:
        async with session.begin_nested():
            session.add(
                ReportRun(kind=due.kind, period_start=due.start, period_end=due.end, queued_at=now)
            )
            await session.flush()
    except IntegrityError:
        return False  # another replica queued it a moment ago
    context = prepared.context
    uploads: dict[str, str] = {}
    for chat_id, lang in prepared.recipients:
        enqueue(session, chat_id=chat_id, locale=lang, now=now, template="report.html",
                context=context, bulk=True)  # fmt: skip
        if not prepared.charts:
            continue
        drawn_in = chart_language(lang, district.default_language)
        if drawn_in not in uploads:
            uploads[drawn_in] = attach(
                session,
                filename=f"{due.kind}-{context['period_start'][:10]}.png",
                content=drawn[drawn_in],
                now=now,
            )
        enqueue(
            session,
            chat_id=chat_id,
            locale=lang,
            now=now,
            method="sendPhoto",
            template="report_chart.html",
            context=context,
            params={"upload": uploads[drawn_in]},
            bulk=True,
        )
    log_event(logger, "report.queued", kind=due.kind, period_start=due.start.isoformat())
    return True


# Scripts whose letters join and change form need text shaping, which matplotlib does not do:
# a chart for their readers is drawn in the district's default language instead.
UNSHAPED_SCRIPTS = frozenset({"Mong"})


def chart_language(lang: str, default: str) -> str:
    script = babel_locale(lang).script
    return default if script in UNSHAPED_SCRIPTS else lang


def chart_data(
    district: District,
    report: stats.Report,
    trend: Sequence[stats.Report],
    lang: str,
    kind: str,
    translate: Callable[[str, str], str],
) -> ChartData:
    tz = district.tzinfo

    def name(code: str) -> str:
        unit = district.department(code)
        return unit.names.get(lang) if unit else code

    def rates(f: stats.Figures) -> tuple[float | None, float | None, float | None]:
        return (f.response_rate, f.resolution_rate, f.satisfaction_rate)

    first = report.start.astimezone(tz).date().isoformat()
    return ChartData(
        title=f"{translate(lang, TITLES[kind])} {first}",
        rate_names=(
            translate(lang, RATE_NAMES[0]),
            translate(lang, RATE_NAMES[1]),
            translate(lang, RATE_NAMES[2]),
        ),
        by_department=translate(lang, N_("stats.chart.by-department")),
        trend_title=translate(lang, N_("stats.chart.trend")),
        departments=tuple((name(code), rates(f)) for code, f in report.league()[:LEAGUE_CHARTED]),
        trend=tuple(
            (week.start.astimezone(tz).strftime("%m-%d"), rates(week.district)) for week in trend
        ),
        empty=translate(lang, N_("stats.no-cases")),
    )


async def report_context(
    session: AsyncSession,
    district: District,
    report: stats.Report,
    *,
    kind: str,
    now: datetime,
    scope: str | None = None,
) -> dict[str, Any]:
    """What ``report.html`` shows (plain JSON values: it waits in the outbox)."""
    tz = district.tzinfo
    start = report.start.astimezone(tz)
    last = (report.end - timedelta(seconds=1)).astimezone(tz)
    overdue: list[dict[str, Any]] = []
    # "当前超时": the list is as of now, when the report is written (a daily report's period is
    # yesterday, its overdue list is this morning's); the period's own figure stays in
    # ``district.overdue``.
    overdue_ids: tuple[int, ...] = ()
    if kind in {"daily", "stats"}:
        overdue_ids = await stats.overdue_at(session, district, now, department=scope)
        listed = overdue_ids[:OVERDUE_LISTED]
        cases = (await session.scalars(select(Case).where(col(Case.id).in_(listed)))).all()
        by_id = {c.id: c for c in cases}
        for case_id in listed:
            case = by_id[case_id]
            assert case.dispatched_at is not None
            overdue.append(
                {
                    "number": case.number,
                    "department": case.department,
                    "hours": int((now - case.dispatched_at) / timedelta(hours=1)),
                    "status": case.status.value,
                }
            )
    league = report.league()
    return {
        "kind": kind,
        "title_key": TITLES.get(kind, TITLES["daily"]),
        "scope": scope,
        "period_start": start.isoformat(),
        "period_last": last.isoformat(),
        "district": report.district.as_dict(),
        "league": [{"code": code, **f.as_dict()} for code, f in league[:LEAGUE_LISTED]],
        "league_more": max(0, len(league) - LEAGUE_LISTED),
        "overdue": overdue,
        "overdue_count": len(overdue_ids),
        "overdue_more": max(0, len(overdue_ids) - OVERDUE_LISTED),
        "with_cards": kind in ("monthly", "stats"),
        "league_table": kind != "daily",
        "definitions": list(stats.DEFINITIONS.values()),
    }


# -- /stats and /export -------------------------------------------------------------------------


@dataclass(frozen=True)
class Viewer:
    """Whose figures a chat may see: the whole district or one department."""

    department: str | None


async def viewer_of(
    session: AsyncSession, district: District, *, chat_id: int, user_id: int, private: bool
) -> Viewer:
    """Who sees what, as on the dashboard (:func:`bot.services.dashboard.access_of`): in a
    private chat, district officials see the district and department staff their department;
    the center's group sees the district, a department's group its own. Anyone else is
    refused."""
    if private:
        access = access_of(district, user_id)
        if access is None:
            raise UserError(N_("stats.not-allowed"))
        # Staff of several departments see the first (as listed, sorted) here; the dashboard
        # shows them all.
        return Viewer(None if access.district_wide else access.departments[0])
    unit = await unit_of(session, district, chat_id)
    if unit == CENTER:
        return Viewer(None)
    if unit is not None and district.department(unit) is not None:
        return Viewer(unit)
    raise UserError(N_("stats.not-allowed"))


async def show_stats(
    session: AsyncSession,
    district: District,
    viewer: Viewer,
    *,
    chat_id: int,
    lang: str,
    period_name: str | None,
    now: datetime,
) -> None:
    name = (period_name or "today").strip().lower()
    if name not in STATS_PERIODS:
        raise UserError(N_("stats.usage"))
    start, end = stats.period(name, now, district.tzinfo)
    report = await stats.compute(
        session, district, start=start, end=end, now=now, department=viewer.department
    )
    context = await report_context(
        session, district, report, kind="stats", now=now, scope=viewer.department
    )
    context["title_key"] = TITLES[name]
    enqueue(session, chat_id=chat_id, locale=lang, now=now, template="report.html",
            context=context)  # fmt: skip


async def export_cases(
    session: AsyncSession,
    district: District,
    viewer: Viewer,
    *,
    chat_id: int,
    lang: str,
    period_name: str | None,
    now: datetime,
) -> int:
    """Send the period's cases as a CSV file (UTF-8 with a BOM, so spreadsheet programs read
    the Chinese right); returns how many rows. No names or contacts: case facts and times."""
    name = (period_name or "").strip().lower()
    if name not in EXPORT_PERIODS:
        raise UserError(N_("export.usage"))
    start, end = stats.period(name, now, district.tzinfo)
    query = (
        select(Case)
        .where(col(Case.created_at) >= start, col(Case.created_at) < end)
        .order_by(col(Case.id))
    )
    if viewer.department is not None:
        query = query.where(col(Case.department) == viewer.department)
    cases = (await session.scalars(query)).all()
    content = export_csv(district, cases)
    day = now.astimezone(district.tzinfo).date().isoformat()
    scope = viewer.department or "district"
    key = attach(session, filename=f"cases-{scope}-{name}-{day}.csv", content=content, now=now)
    enqueue(
        session,
        chat_id=chat_id,
        locale=lang,
        now=now,
        method="sendDocument",
        text_key=N_("export.caption"),
        context={"count": len(cases), "end": day,
                 "start": start.astimezone(district.tzinfo).date().isoformat()},
        params={"upload": key},
    )  # fmt: skip
    return len(cases)


def export_csv(district: District, cases: Sequence[Case]) -> bytes:
    tz = district.tzinfo
    lang = district.default_language

    def department_name(code: str | None) -> str:
        unit = district.department(code) if code else None
        return unit.names.get(lang) if unit else ""

    def category_name(code: str | None) -> str:
        category = district.category(code) if code else None
        return category.names.get(lang) if category else ""

    def when(value: datetime | None) -> str:
        return value.astimezone(tz).isoformat(timespec="seconds") if value else ""

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    for c in cases:
        writer.writerow(
            [
                c.number, c.kind.value, c.category or "", c.department or "", c.community or "",
                c.status.value, when(c.created_at), when(c.dispatched_at),
                when(c.acknowledged_at), when(c.answered_at), when(c.closed_at),
                c.rating.value if c.rating else "", c.reopen_count, c.card_colour,
                when(c.deadline_at), department_name(c.department), category_name(c.category),
                c.source,
            ]
        )  # fmt: skip
    return "\ufeff".encode() + out.getvalue().encode("utf-8")
