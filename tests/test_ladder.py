"""The card ladder (亮牌), end to end on a test clock: the exact messages at 0, 1 h, 4 h and
15 h, acknowledgement stopping it, a restart that neither repeats nor skips a rung, two
scanners on one database, and the index that keeps a scan proportional to what is due."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text

from bot.app import Whistle
from bot.clock import ManualClock
from bot.db import create_engine, session_factory, transaction
from bot.district import parse_district
from bot.services import ladder
from bot.testserver import BotAPIServer
from models import Case, CaseEvent, CaseKind, CaseStatus, Escalation, OutboxMessage
from scheduler import jobs
from tests.casework import file_photo_report
from tests.conftest import EXAMPLE_DISTRICT, AppFactory, settled, start_with_residents
from tests.locking import write_lock_held

RESIDENT, CLERK = 7400, 9021
CENTER_HEAD, LEADER = 100000001, 100000003  # people in config.example.toml
CENTER, SUPERVISION, CGZF = -1001000000001, -1001000000002, -1001000000021
SCRATCH = -1005556


@pytest.fixture
async def world(api_server: BotAPIServer, make_app: AppFactory) -> Whistle:
    api_server.create_group(CENTER, "综治中心", members=[CENTER_HEAD])
    api_server.create_group(SUPERVISION, "阳光+监督", members=[])
    api_server.create_group(CGZF, "城管执法局", members=[CLERK])
    api_server.create_group(SCRATCH, "Scratch", members=[RESIDENT])
    people = {RESIDENT: "王晓霞", CENTER_HEAD: "李主任"}
    return await start_with_residents(api_server, make_app, people, center=CENTER)


async def whistle(app: Whistle, api_server: BotAPIServer) -> Case:
    """王晓霞 reports a flying wire with a photo; the ladder starts at its filing."""
    return await file_photo_report(
        app, api_server, resident=RESIDENT, scratch=SCRATCH, description="楼道飞线充电"
    )


async def at(app: Whistle, offset: timedelta, case: Case) -> int:
    """Move the test clock to ``offset`` after the whistle and run the scanner job."""
    clock = app.clock
    assert isinstance(clock, ManualClock) and case.created_at is not None
    clock.set(case.created_at + offset)
    settled_rows = await jobs.escalate_due_cases(
        factory=app.factory, clock=clock, district=app.district, on_commit=app.sender.wake
    )
    await settled(app)
    return settled_rows


def texts(api_server: BotAPIServer, chat_id: int) -> list[str]:
    return [m.text or m.caption or "" for m in api_server.messages(chat_id)]


def shown_time(caption: str, label: str) -> datetime:
    """The clock time after ``label`` on a card ("时间：08:49"), on an arbitrary day: the
    difference between two of them is what a reader sees (all within one day here)."""
    line = next(line for line in caption.splitlines() if line.startswith(label))
    clock = line.removeprefix(label).strip()[-5:]
    return datetime.strptime(f"{clock} +0000", "%H:%M %z")


def card_caption(api_server: BotAPIServer) -> str:
    return api_server.messages(CGZF)[0].caption or ""


class TestNoAcknowledgement:
    async def test_the_four_rungs_at_0_1_4_and_15_hours(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        case = await whistle(world, api_server)
        [card] = await api_server.wait_for_message(CGZF)
        await settled(world)
        # The next escalation a new card shows is the yellow card an hour on, not the
        # whistle's own reminder at the filing time.
        filed = shown_time(card.caption, "时间：")
        assert shown_time(card.caption, "下一级督办：") == filed + timedelta(hours=1)

        await at(world, timedelta(0), case)
        [first] = await api_server.wait_for_message(CGZF)
        assert first.reply_to_message_id == card.message_id
        # The reminder due at the whistle itself reads as the whistle, not as "0 hours late".
        assert first.text == "📣 已吹哨：HB-000001 派到本部门，请尽快应哨。"
        # That reminder changes nothing the card shows: the card is not edited for it.
        assert not api_server.messages(CGZF)[0].edited

        await at(world, timedelta(minutes=59), case)
        assert len(api_server.messages(CGZF)) == 2  # nothing before the hour

        await at(world, timedelta(hours=1), case)
        [second] = await api_server.wait_for_message(CGZF)
        assert (
            second.text == "⏰ 第 2 次提醒：HB-000001 已吹哨 1 小时，请尽快应哨。\n已亮🟨 黄牌。"
        )
        assert "🟨 黄牌" in card_caption(api_server)
        # Now the red card, four hours after the whistle, is the next escalation.
        assert shown_time(card_caption(api_server), "下一级督办：") == filed + timedelta(hours=4)
        [task] = await api_server.wait_for_message(CENTER_HEAD)
        assert task.text.startswith(
            "☎️ 督办任务（黄牌）：HB-000001 已吹哨 1 小时，城市管理综合执法局"
        )
        assert task.button_texts() == ["✅ 已打通", "📵 无人接听"]
        api_server.press_button(CENTER_HEAD, task.message_id, task.callback_data()[1])
        [recorded] = await api_server.wait_for_message(CENTER_HEAD)
        assert "无人接听" in recorded.text
        api_server.send_text(CENTER_HEAD, "办公室电话无人接，已发短信")
        [saved] = await api_server.wait_for_message(CENTER_HEAD)
        assert saved.text == "已为 HB-000001 记录备注。"  # names the case

        await at(world, timedelta(hours=4), case)
        [third] = await api_server.wait_for_message(CGZF)
        assert third.text == "⏰ 第 3 次提醒：HB-000001 已吹哨 4 小时，请尽快应哨。\n已亮🟥 红牌。"
        assert "🟥 红牌" in card_caption(api_server)
        # The leader in charge never started the bot: the center is told, nothing is dropped.
        [undeliverable] = await api_server.wait_for_message(CENTER)
        assert undeliverable.text == (
            "⚠️ 无法私信 赵志刚（尚未启动机器人），HB-000001 的督办通知没有送达，请另行联系。"
        )

        await at(world, timedelta(hours=15), case)
        [pushed] = await api_server.wait_for_message(SUPERVISION)
        assert pushed.text.startswith(
            "⚠️ 监督推送：城市管理综合执法局 对 HB-000001 吹哨 15 小时未应哨。"
        )
        assert "督办提醒" in pushed.text and "电话督办" in pushed.text
        # The supervision platform watches the department, not the resident: no name.
        assert "王晓霞" not in pushed.text and "反映人" not in pushed.text
        [center_notice] = await api_server.wait_for_message(CENTER)
        assert "已推送纪委监委监督" in center_notice.text

        await at(world, timedelta(hours=30), case)  # nothing after the last rung
        assert len(api_server.messages(CGZF)) == 4
        async with world.factory() as session:
            events = (
                await session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id))
            ).all()
        assert [e.data["rung"] for e in events if e.kind == "escalated"] == [0, 1, 2, 3]
        [call] = [e for e in events if e.kind == "chief_called"]
        assert (call.data["outcome"], call.note) == ("no_answer", "办公室电话无人接，已发短信")

    async def test_acknowledgement_at_3h59_prevents_the_red_card(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        case = await whistle(world, api_server)
        [card] = await api_server.wait_for_message(CGZF)
        await settled(world)
        await at(world, timedelta(hours=1), case)
        await api_server.wait_for_message(CGZF, count=2)  # reminders 1 and 2
        clock = world.clock
        assert isinstance(clock, ManualClock)
        clock.set(case.created_at + timedelta(hours=3, minutes=59))
        api_server.press_button(CLERK, card.message_id, card.callback_data()[0], chat_id=CGZF)
        await api_server.wait_for(lambda s: len(s.callback_answers) >= 1)
        await settled(world)
        await at(world, timedelta(hours=4), case)
        await at(world, timedelta(hours=15), case)
        assert not any("红牌" in t for t in texts(api_server, CGZF)[1:])
        assert "🟥" not in card_caption(api_server) and "🟨 黄牌" in card_caption(api_server)
        assert api_server.messages(SUPERVISION) == []
        async with world.factory() as session:
            pending = await session.scalar(
                select(func.count())
                .select_from(Escalation)
                .where(Escalation.case_id == case.id, Escalation.state == "pending")
            )
        assert pending == 0


class TestWording:
    def test_a_wait_under_an_hour_is_said_in_minutes(self) -> None:
        """A district whose ladder reminds after 25 minutes: "已吹哨 25 分钟", not "0.4 小时";
        from the hour on, hours."""
        from bot.i18n import Catalogues
        from bot.rendering import district_globals

        district = parse_district(EXAMPLE_DISTRICT.read_text(encoding="utf-8"))
        catalogues = Catalogues("zh-Hans", template_globals=district_globals(district))
        base = {"ladder": "ack", "number": "HB-000001", "department": "cgzf", "rung": 2}
        early = {**base, "card": "none", "minutes": 25, "hours": "0.4", "at_whistle": False}
        late = {**base, "card": "none", "minutes": 90, "hours": "1.5", "at_whistle": False}
        render = catalogues.render
        assert render("ladder_reminder.html", early, "zh-Hans") == (
            "⏰ 第 2 次提醒：HB-000001 已吹哨 25 分钟，请尽快应哨。"
        )
        assert render("ladder_reminder.html", late, "zh-Hans") == (
            "⏰ 第 2 次提醒：HB-000001 已吹哨 1.5 小时，请尽快应哨。"
        )
        assert "25 min" in render("ladder_reminder.html", early, "en")


class TestDurability:
    async def test_a_restart_at_2h_neither_repeats_nor_skips(
        self, world: Whistle, api_server: BotAPIServer, make_app: AppFactory
    ) -> None:
        case = await whistle(world, api_server)
        await api_server.wait_for_message(CGZF)
        await settled(world)
        await at(world, timedelta(hours=1), case)
        await api_server.wait_for_message(CGZF, count=2)
        await world.stop()

        clock = ManualClock(case.created_at + timedelta(hours=2))
        again = await make_app(clock=clock)
        await at(again, timedelta(hours=2), case)
        assert len(api_server.messages(CGZF)) == 3  # the card and two reminders, no repeat
        await at(again, timedelta(hours=4, minutes=1), case)
        [red] = await api_server.wait_for_message(CGZF)
        assert "第 3 次提醒" in red.text and "红牌" in red.text

    async def test_rungs_due_while_down_fire_once_each_in_order(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        case = await whistle(world, api_server)
        await api_server.wait_for_message(CGZF)
        await settled(world)
        await at(world, timedelta(hours=5), case)  # down from the whistle until 5 h
        reminders = await api_server.wait_for_message(CGZF, count=3)
        assert [m.text.split("：")[0] for m in reminders] == [
            "⏰ 第 1 次提醒",
            "⏰ 第 2 次提醒",
            "⏰ 第 3 次提醒",
        ]
        assert await at(world, timedelta(hours=5), case) == 0


async def make_dispatched_cases(factory: Any, district: Any, count: int, now: Any) -> None:
    async with transaction(factory) as session:
        for _ in range(count):
            case = Case(
                kind=CaseKind.REPORT,
                status=CaseStatus.DISPATCHED,
                department="cgzf",
                category="flying_wire",
                resident_id=RESIDENT,
                resident_language="zh-Hans",
                description="x",
                created_at=now,
                updated_at=now,
                photos=["p"],
            )
            session.add(case)
            await session.flush()
            assert case.id is not None
            case.number = district.case_number(case.id)
            await ladder.start(session, district, case, now=now)


async def test_two_scanners_fire_each_rung_once_over_1000_cases(
    factory: Any, database_url: str, district: Any
) -> None:
    clock = ManualClock()
    await make_dispatched_cases(factory, district, 1000, clock.now())
    clock.advance(timedelta(hours=1))
    engines = [create_engine(database_url) for _ in range(2)]
    try:
        runs = [
            jobs.escalate_due_cases(
                factory=session_factory(engine),
                clock=clock,
                district=district,
                on_commit=lambda: None,
                batch=50,
            )
            for engine in engines
        ]
        if database_url.startswith("sqlite"):
            # SQLite is the single-process default: its scanners take turns.
            settled_counts = [await run for run in runs]
        else:
            settled_counts = await asyncio.gather(*runs)
    finally:
        for engine in engines:
            await engine.dispose()
    assert sum(settled_counts) == 2000  # rungs 0 and 1 of 1,000 cases, between the two
    async with factory() as session:
        fired = (
            await session.execute(
                select(CaseEvent.case_id, func.count())
                .where(CaseEvent.kind == "escalated")
                .group_by(CaseEvent.case_id)
            )
        ).all()
        single = await session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.template == "ladder_reminder.html")
        )
        digests = (
            await session.scalars(
                select(OutboxMessage).where(OutboxMessage.template == "ladder_digest.html")
            )
        ).all()
    assert len(fired) == 1000 and {n for _, n in fired} == {2}
    # One group with many cases due at once: digests, each listing its scan's reminders.
    # Each digest has a line per case (its latest rung).
    # Every case is told at least once and at most once a rung (two rungs), and a digest
    # lists each case once, as many lines as it holds up to its limit.
    told = (single or 0) + sum(d.context["count"] for d in digests)
    assert digests and 1000 <= told <= 2000
    for digest in digests:
        numbers = [item["number"] for item in digest.context["items"]]
        assert (
            len(numbers) == len(set(numbers)) == min(digest.context["count"], ladder.DIGEST_LINES)
        )


async def test_scans_that_find_nothing_take_no_write_lock(
    factory: Any, database_url: str, district: Any
) -> None:
    # Pending rungs that are not due yet: the scans look in a read transaction and never
    # ask for the write lock, so they finish while another connection holds it.
    clock = ManualClock()
    await make_dispatched_cases(factory, district, 3, clock.now())
    run: dict[str, Any] = {
        "factory": factory,
        "clock": clock,
        "district": district,
        "on_commit": lambda: None,
    }
    assert await jobs.escalate_due_cases(**run) == 3  # the first rung is due at once
    async with write_lock_held(database_url), asyncio.timeout(10):  # busy timeout: 15 s
        settled_counts = await asyncio.gather(
            jobs.escalate_due_cases(**run),
            jobs.settle_help_requests(**run),
            jobs.close_unrated_cases(**run),
            jobs.refund_expired_codes(**run),
        )
    assert settled_counts == [0, 0, 0, 0]
    # Once due, the scan writes: the yellow card of each case fires.
    clock.advance(timedelta(hours=1))
    assert await jobs.escalate_due_cases(**run) == 3


async def test_the_scan_reads_due_rows_through_the_index(factory: Any, database_url: str) -> None:
    query = ladder.due_query(ManualClock().now(), 100)
    async with factory() as session:
        connection = await session.connection()
        compiled = query.compile(connection.engine, compile_kwargs={"literal_binds": True})
        if database_url.startswith("sqlite"):
            sql = str(compiled).replace(" FOR UPDATE SKIP LOCKED", "")
            plan = (await session.execute(text(f"EXPLAIN QUERY PLAN {sql}"))).all()
            described = " ".join(str(row[-1]) for row in plan)
        else:
            await session.execute(text("SET LOCAL enable_seqscan = off"))
            plan = (await session.execute(text(f"EXPLAIN {compiled}"))).all()
            described = " ".join(row[0] for row in plan)
    assert "ix_escalations_state_due" in described


class TestConfiguration:
    @pytest.mark.parametrize(
        ("after", "message"),
        [
            ("-4h", "must not be negative"),
            ("30m", "must come later than rung 1"),
            ("4 hours", "is not a duration"),
        ],
    )
    def test_bad_rungs_are_refused_with_the_key(self, after: str, message: str) -> None:
        from bot.district import DistrictError

        source = EXAMPLE_DISTRICT.read_text(encoding="utf-8").replace(
            'after = "4h"', f'after = "{after}"'
        )
        with pytest.raises(DistrictError) as refused:
            parse_district(source, path="config.toml")
        assert "ladder" in str(refused.value) and message in str(refused.value)


def test_replay_prints_what_a_case_receives_and_when(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.__main__ import main

    monkeypatch.setenv("WHISTLE_CONFIG", str(EXAMPLE_DISTRICT))
    assert main(["replay-ladder"]) == 0
    lines = capsys.readouterr().out.splitlines()
    by_time: dict[str, list[str]] = {}
    for line in lines:
        stamp, rest = line.strip().split("  ", 1)
        by_time.setdefault(stamp, []).append(rest)
    assert list(by_time) == ["+0:00", "+1:00", "+4:00", "+15:00"]
    assert any("已吹哨" in line for line in by_time["+0:00"])
    assert any("黄牌" in line and "督办任务" in line for line in by_time["+1:00"])
    assert any("✎" in line and "🟥 红牌" in line for line in by_time["+4:00"])
    assert any("监督推送" in line for line in by_time["+15:00"])


class TestWorkingHours:
    def calendar(self, **changes: Any) -> Any:
        source = EXAMPLE_DISTRICT.read_text(encoding="utf-8").replace(
            "enabled = false", "enabled = true"
        )
        return parse_district(source, path="config.toml").working_hours

    def test_a_rung_over_the_weekend_lands_on_monday(self) -> None:
        from datetime import datetime
        from zoneinfo import ZoneInfo

        tz = ZoneInfo("Asia/Shanghai")
        hours = self.calendar()
        friday_five = datetime(2026, 11, 20, 17, 0, tzinfo=tz)
        assert hours.add(friday_five, timedelta(hours=1), tz) == datetime(
            2026, 11, 23, 9, 0, tzinfo=tz
        )
        assert hours.add(friday_five, timedelta(hours=4), tz) == datetime(
            2026, 11, 23, 12, 0, tzinfo=tz
        )
        # Saturday night counts from Monday's opening.
        assert hours.add(datetime(2026, 11, 21, 22, 0, tzinfo=tz), timedelta(hours=1), tz) == (
            datetime(2026, 11, 23, 9, 30, tzinfo=tz)
        )
        # The National Day holidays are skipped; the make-up Saturday (10-10) is worked.
        assert hours.add(datetime(2026, 9, 30, 17, 0, tzinfo=tz), timedelta(hours=1), tz) == (
            datetime(2026, 10, 8, 9, 0, tzinfo=tz)
        )
        assert hours.add(datetime(2026, 10, 9, 17, 0, tzinfo=tz), timedelta(hours=1), tz) == (
            datetime(2026, 10, 10, 9, 0, tzinfo=tz)
        )

    def test_off_by_default_the_clock_runs_around_the_clock(self, district: Any) -> None:
        from datetime import datetime
        from zoneinfo import ZoneInfo

        tz = ZoneInfo("Asia/Shanghai")
        friday_five = datetime(2026, 11, 20, 17, 0, tzinfo=tz)
        assert district.working_hours.add(friday_five, timedelta(hours=15), tz) == (
            friday_five + timedelta(hours=15)
        )

    async def test_the_ladder_uses_the_calendar(self, factory: Any) -> None:
        from datetime import datetime
        from zoneinfo import ZoneInfo

        source = EXAMPLE_DISTRICT.read_text(encoding="utf-8").replace(
            "enabled = false", "enabled = true"
        )
        district = parse_district(source, path="config.toml")
        friday_five = datetime(2026, 11, 20, 17, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
        await make_dispatched_cases(factory, district, 1, friday_five)
        async with factory() as session:
            due = (
                await session.scalars(select(Escalation.due_at).order_by(Escalation.rung))
            ).all()
        local = [d.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%a %H:%M") for d in due]
        # 15 h of working time: 0.5 h on Friday, 9 h on Monday, 5.5 h on Tuesday.
        assert local == ["Fri 17:00", "Mon 09:00", "Mon 12:00", "Tue 14:00"]

    def test_a_calendar_without_a_sane_day_is_refused(self) -> None:
        from bot.district import DistrictError

        source = EXAMPLE_DISTRICT.read_text(encoding="utf-8").replace(
            'end = "17:30"', 'end = "07:00"'
        )
        with pytest.raises(DistrictError, match="working_hours"):
            parse_district(source, path="config.toml")


async def test_many_cases_due_at_once_get_one_digest_in_the_group(
    world: Whistle, api_server: BotAPIServer
) -> None:
    numbers = []
    for _ in range(4):
        case = await whistle(world, api_server)
        numbers.append(case.number)
        await api_server.wait_for_message(CGZF)
    await settled(world)
    await at(world, timedelta(hours=1), case)  # the yellow rung of all four at once
    [digest] = await api_server.wait_for_message(CGZF)
    assert digest.text.startswith("⏰ 本群有 4 件案件需要尽快处理")
    assert all(number in digest.text for number in numbers)
    assert digest.text.count("🟨") == 4 and digest.reply_to_message_id is None
    assert len(digest.text.splitlines()) == 1 + 4  # the title and one line per case
    await settled(world)
    # The cards themselves still show the yellow card.
    cards = [m for m in api_server.messages(CGZF) if "黄牌" in (m.caption or "")]
    assert len(cards) == 4
