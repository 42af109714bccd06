"""Scheduled reports at their times on the test clock, in each recipient's language, with the
weekly chart; /stats and /export in the chats that may use them — through the real bot and the
test Bot API server, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from bot.app import Whistle
from bot.clock import ManualClock
from bot.db import read_transaction, transaction
from bot.district import District
from bot.testserver import BotAPIServer, BotMessage
from models import OutboxFile, ReportRun
from scheduler import jobs
from tests.conftest import AppFactory, settled
from tests.locking import write_lock_held
from tests.test_stats import TZ, at, load_fixture

CENTER = -1001000000001
CGZF = -1001000000021
LEADER = 100000003  # 赵志刚, role leader; reads English
STAFF = 7201
SCJG_STAFF = 100000007  # department staff of 市场监督管理局, no district role
RESIDENT = 7101


@pytest.fixture
async def app(api_server: BotAPIServer, make_app: AppFactory, district: District) -> Whistle:
    api_server.add_user(STAFF, first_name="赵工")
    api_server.add_user(LEADER, first_name="Zhigang", language_code="en")
    api_server.add_user(RESIDENT, first_name="王晓霞", language_code="zh-hans")
    for chat_id in district.configured_chat_ids():
        api_server.create_group(chat_id, f"group {chat_id}", members=[STAFF])
    app = await make_app(clock=ManualClock(at(7)))
    await load_fixture(app.factory)
    # The leader has talked to the bot before (Telegram lets a bot write only to those who
    # have), from an app set to English.
    api_server.send_text(LEADER, "/start")
    await api_server.wait_for_message(LEADER)
    return app


async def run_reports(app: Whistle, when: datetime) -> list[str]:
    clock = app.clock
    assert isinstance(clock, ManualClock)
    clock.set(when)
    return await jobs.post_reports(
        factory=app.factory,
        clock=clock,
        district=app.district,
        on_commit=app.sender.wake,
        catalogues=app.catalogues,
    )


async def new_messages(
    api_server: BotAPIServer, chat_id: int, before: int, count: int
) -> list[BotMessage]:
    await api_server.wait_for(lambda s: len(s.messages(chat_id)) >= before + count)
    return api_server.messages(chat_id)[before:]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


async def test_daily_weekly_and_monthly_reports_at_their_times(
    app: Whistle, api_server: BotAPIServer
) -> None:
    # Wednesday 11 March 07:59 local: the daily report of the 10th is not due yet (and the
    # 10th's own was before any case).
    before = len(api_server.messages(CENTER))
    assert await run_reports(app, at(7 + 59 / 60, day=11)) == []

    # 08:00: yesterday's figures to the center (Chinese) and the leader (English).
    assert await run_reports(app, at(8, day=11)) == ["daily"]
    [daily] = await new_messages(api_server, CENTER, before, 1)
    assert "日通报" in daily.text and "2026-03-10" in daily.text
    assert "派单 5 件" in daily.text
    assert "响应率 60.0%（3/5）" in daily.text
    assert "解决率 60.0%（3/5）" in daily.text
    assert "满意率 66.7%（2/3）" in daily.text
    assert "黄牌 1 · 🟥 红牌 1 · 重办 1 · 超时 1" in daily.text
    assert "应哨用时中位数 25 分钟 · 答卷用时中位数 3.0 小时" in daily.text
    # The overdue list is as of the report's sending (08:00), not as of the period's end:
    # case 4 was dispatched at 14:00 yesterday.
    assert "当前超时 1 件" in daily.text
    assert "T-000004 城市管理综合执法局 — 派单已 18 小时" in daily.text
    # Every rate's definition is beside the figures.
    assert "响应率＝亮黄牌前应哨的件数 ÷ 派单件数" in daily.text
    assert "满意率＝评为满意或基本满意的件数 ÷ 居民评价的件数" in daily.text
    [leader_daily] = await new_messages(api_server, LEADER, 1, 1)
    assert "Daily report" in leader_daily.text
    assert "Response rate 60.0% (3/5)" in leader_daily.text
    assert "Satisfaction rate 66.7% (2/3)" in leader_daily.text
    assert "Response rate = cases acknowledged before the yellow card" in leader_daily.text

    # Running again (a second replica, the catch-up tick) posts nothing more.
    assert await run_reports(app, at(8.2, day=11)) == []
    assert await run_reports(app, at(19, day=11)) == []

    # Monday 16 March 08:30: the daily at 08:00 was missed (the service was down) and is sent
    # now, with the weekly report of 9–15 March: its league table and its chart.
    before = len(api_server.messages(CENTER))
    assert await run_reports(app, at(8.5, day=16)) == ["daily", "weekly"]
    messages = await new_messages(api_server, CENTER, before, 3)
    daily2, weekly, chart = messages
    assert "日通报" in daily2.text and "2026-03-15" in daily2.text
    assert "周分析" in weekly.text and "2026-03-09 至 2026-03-15" in weekly.text
    assert "部门排名" in weekly.text
    league = weekly.text.split("部门排名", 1)[1]
    assert league.index("1. 康乐社区") < league.index("2. 城市管理综合执法局")
    # Case 7 (dispatched Monday evening) is in this week's figures of the bureau.
    assert "2. 城市管理综合执法局 — 5 件 · 响应 60.0% · 解决 40.0% · 满意 66.7%" in league
    assert chart.method.lower() == "sendphoto" and chart.photo
    assert "周分析" in (chart.caption or "")
    width, height = png_size(await app.files.fetch(chart.photo[-1]))
    assert (width, height) == (1000, 760)
    leader_messages = await new_messages(api_server, LEADER, 2, 3)
    assert "Weekly analysis" in leader_messages[1].text
    assert "Weekly analysis" in (leader_messages[2].caption or "")
    # The two languages got their own chart.
    assert leader_messages[2].photo[-1] != chart.photo[-1]
    # Uploaded charts are not kept once delivered.
    await settled(app)
    async with transaction(app.factory) as session:
        assert await session.scalar(select(func.count()).select_from(OutboxFile)) == 0

    # 1 April 09:00: the monthly review of March, with cards and reopenings per department.
    before = len(api_server.messages(CENTER))
    assert await run_reports(app, datetime(2026, 4, 1, 9, tzinfo=TZ).astimezone(UTC)) == [
        "daily",
        "monthly",
    ]
    _daily3, monthly, monthly_chart = await new_messages(api_server, CENTER, before, 3)
    assert "月调度" in monthly.text and "2026-03-01 至 2026-03-31" in monthly.text
    assert "城市管理综合执法局 — 5 件" in monthly.text  # case 7 of the 9th counts in March
    assert "· 🟨2 🟥1 · 重办 1" in monthly.text
    assert monthly_chart.photo
    async with transaction(app.factory) as session:
        runs = (await session.scalars(select(ReportRun).order_by(ReportRun.id))).all()  # type: ignore[arg-type]
    assert [run.kind for run in runs] == ["daily", "daily", "weekly", "daily", "monthly"]


async def test_a_report_goes_out_once_when_its_job_runs_twice_at_once(
    app: Whistle, api_server: BotAPIServer, database_url: str
) -> None:
    # Monday 16 March 08:30: the daily and the weekly report are due. Two runs of the job
    # (two replicas, or the 08:30 tick and the catch-up tick) compute and draw them at the
    # same time; one records each report, the other finds it recorded.
    when = at(8.5, day=16)
    center, leader = len(api_server.messages(CENTER)), len(api_server.messages(LEADER))
    first, second = await asyncio.gather(run_reports(app, when), run_reports(app, when))
    assert sorted(first + second) == ["daily", "weekly"]
    await settled(app)
    # The daily, the weekly and its chart, once each, to the center and to the leader.
    assert len(api_server.messages(CENTER)) - center == 3
    assert len(api_server.messages(LEADER)) - leader == 3
    async with read_transaction(app.factory) as session:
        runs = (await session.scalars(select(ReportRun.kind))).all()  # type: ignore[call-overload]
    assert sorted(runs) == ["daily", "weekly"]
    # A run that finds every due report recorded only reads: it does not wait for a writer.
    async with write_lock_held(database_url), asyncio.timeout(10):  # busy timeout: 15 s
        assert await run_reports(app, at(9, day=16)) == []


async def test_stats_in_the_center_a_department_and_private(
    app: Whistle, api_server: BotAPIServer
) -> None:
    clock = app.clock
    assert isinstance(clock, ManualClock)
    clock.set(at(23))  # the fixture's day, 23:00

    api_server.send_text(STAFF, "/stats", chat_id=CENTER)
    [center] = await api_server.wait_for_message(CENTER)
    assert "今日数据" in center.text
    assert "响应率 60.0%（3/5）" in center.text
    assert "1. 康乐社区" in center.text and "2. 城市管理综合执法局" in center.text
    assert "T-000004" in center.text  # overdue: not acknowledged since 14:00

    # A department sees its own figures only.
    api_server.send_text(STAFF, "/stats today", chat_id=CGZF)
    [own] = await api_server.wait_for_message(CGZF)
    assert "今日数据 · 城市管理综合执法局" in own.text
    assert "响应率 50.0%（2/4）" in own.text
    assert "康乐社区" not in own.text

    api_server.send_text(STAFF, "/stats fortnight", chat_id=CGZF)
    [usage] = await api_server.wait_for_message(CGZF)
    assert "/stats week" in usage.text

    # A leader in private sees the district; a resident is refused.
    api_server.send_text(LEADER, "/stats week")
    [leader] = await api_server.wait_for_message(LEADER)
    assert "This week so far" in leader.text and "Response rate 66.7% (4/6)" in leader.text
    # Department staff in private see their department's.
    api_server.add_user(SCJG_STAFF, first_name="Wei")
    api_server.send_text(SCJG_STAFF, "/stats")
    [staff] = await api_server.wait_for_message(SCJG_STAFF)
    assert "今日数据 · 市场监督管理局" in staff.text and "派单 0 件" in staff.text
    api_server.send_text(RESIDENT, "/stats")
    [refused] = await api_server.wait_for_message(RESIDENT)
    assert "只有综治中心群、部门群" in refused.text


async def test_export_sends_a_csv_spreadsheets_can_open(
    app: Whistle, api_server: BotAPIServer
) -> None:
    clock = app.clock
    assert isinstance(clock, ManualClock)
    clock.set(at(23))

    api_server.send_text(STAFF, "/export week", chat_id=CENTER)
    [sent] = await api_server.wait_for_message(CENTER)
    assert sent.document is not None
    assert "7 件案件" in (sent.caption or "")  # Monday 9 to Tuesday 10 March
    data = await app.files.fetch(sent.document)
    assert data.startswith("\ufeff".encode())  # the BOM spreadsheet programs look for
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert [row["number"] for row in rows] == [f"T-{n:06d}" for n in range(1, 8)]
    first = rows[0]
    assert first["department_name"] == "城市管理综合执法局"
    assert first["dispatched_at"] == "2026-03-10T09:00:00+08:00"
    assert first["acknowledged_at"] == "2026-03-10T09:30:00+08:00"
    assert first["rating"] == "satisfied"
    assert first["source"] == "telegram"
    # Case facts and times only: no resident ids, names or contacts.
    assert not {"resident_id", "resident_name", "contact"} & set(first)

    # A department exports its own cases; the month needs no more than the word.
    api_server.send_text(STAFF, "/export month", chat_id=CGZF)
    [own] = await api_server.wait_for_message(CGZF)
    own_rows = list(
        csv.DictReader(
            io.StringIO((await app.files.fetch(own.document or "")).decode("utf-8-sig"))
        )
    )
    assert {row["department"] for row in own_rows} == {"cgzf"}
    assert len(own_rows) == 6

    api_server.send_text(STAFF, "/export", chat_id=CGZF)
    [usage] = await api_server.wait_for_message(CGZF)
    assert "/export week" in usage.text
