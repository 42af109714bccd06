"""Abuse and privacy end to end: the hourly intake limit, /block and /unblock by an admin,
/forgetme, the retention period, and case ids that reveal nothing about other residents."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.app import Whistle
from bot.callbacks import ViewCase
from bot.clock import ManualClock
from bot.db import transaction
from bot.services import cases, privacy
from bot.services.errors import UserError
from bot.testserver import BotAPIServer
from models import (
    Case,
    CaseEvent,
    CaseKind,
    CaseStatus,
    DialogState,
    OutboxMessage,
    Rating,
    User,
)
from scheduler import jobs
from tests.casework import PHOTO, posted_photo, submit
from tests.conftest import AppFactory, say, settled

RESIDENT = 7700
NEIGHBOUR = 7701
ADMIN = 100000002  # 张晓燕, a district admin in config.example.toml
CENTER_HEAD = 100000001  # staff, but not an admin


@pytest.fixture
async def world(api_server: BotAPIServer, make_app: AppFactory) -> Whistle:
    api_server.add_user(RESIDENT, first_name="王晓霞", username="wangxx")
    api_server.add_user(NEIGHBOUR, first_name="李明")
    api_server.add_user(ADMIN, first_name="晓燕")
    api_server.add_user(CENTER_HEAD, first_name="建军")
    app = await make_app(clock=ManualClock())
    for person in (RESIDENT, NEIGHBOUR, ADMIN, CENTER_HEAD):
        api_server.send_text(person, "/start")
        await api_server.wait_for_message(person)
    return app


async def file(
    app: Whistle,
    api_server: BotAPIServer,
    resident: int = RESIDENT,
    description: str = "路灯不亮",
) -> Case:
    """A case filed through the service; its receipt is read from the resident's chat."""
    draft = cases.Draft(
        kind=CaseKind.SAY,
        description=description,
        category="suggestion",
        address="康乐小区5号楼",
    )
    case = await submit(app, draft, resident=resident)
    await api_server.wait_for_message(resident)  # the receipt
    return case


async def load(app: Whistle, case_id: int | None) -> Case:
    async with app.factory() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        return case


async def close(app: Whistle, case_id: int | None, days_ago: int = 0) -> None:
    async with transaction(app.factory) as session:
        case = await session.get(Case, case_id)
        assert case is not None
        case.status, case.rating = CaseStatus.CLOSED, Rating.SATISFIED
        case.rating_comment = "谢谢王晓霞的反映"
        case.closed_at = app.clock.now() - timedelta(days=days_ago)


def advance(app: Whistle, **delta: float) -> None:
    assert isinstance(app.clock, ManualClock)
    app.clock.advance(timedelta(**delta))


class TestIntakeLimit:
    async def test_the_eleventh_case_in_an_hour_is_refused_then_allowed_later(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        assert world.district.intake.per_hour == 10
        for index in range(10):
            await file(world, api_server, description=f"第{index + 1}件")
            advance(world, minutes=1)
        refused = await say(api_server, RESIDENT, "/say")
        assert "上限" in refused.text and "10" in refused.text
        # No dialog was started: plain text now is not a post.
        await settled(world)
        async with world.factory() as session:
            states = await session.scalars(
                select(DialogState).where(DialogState.user_id == RESIDENT)  # type: ignore[arg-type]
            )
            assert all(state.state is None for state in states.all())
        # The service refuses on its own too, whatever the chat did.
        with pytest.raises(UserError):
            await file(world, api_server, description="绕过对话")  # no receipt either
        # A neighbour is not limited by someone else's cases.
        assert (await say(api_server, NEIGHBOUR, "/say")).text.startswith("🗣")
        # An hour after the first case, one more may be filed.
        advance(world, minutes=51)
        assert (await say(api_server, RESIDENT, "/say")).text.startswith("🗣")
        async with world.factory() as session:
            count = await session.scalar(select(func.count()).select_from(Case))
        assert count == 10


class TestBlocking:
    async def test_admin_blocks_and_unblocks_a_resident(
        self, world: Whistle, api_server: BotAPIServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO)
        done = await say(api_server, ADMIN, f"/block {RESIDENT} 反复发送骚扰内容")
        assert str(RESIDENT) in done.text and "封禁" in done.text
        assert any(
            getattr(r, "event", None) == "user.blocked" or "user.blocked" in r.getMessage()
            for r in caplog.records
        )
        notice = await say(api_server, RESIDENT, "/report")
        assert "暂停" in notice.text
        # A flood is not answered message by message.
        for text in ("/say", "你好", "/my"):
            api_server.send_text(RESIDENT, text)
        await settled(world)
        await api_server.wait_for(lambda s: not s.pending_updates(), timeout=5)
        await settled(world)
        assert len(api_server.messages(RESIDENT)) == 2  # the greeting and one notice
        advance(world, minutes=11)
        assert "暂停" in (await say(api_server, RESIDENT, "/report")).text
        async with world.factory() as session:
            assert await session.scalar(select(func.count()).select_from(Case)) == 0

        undone = await say(api_server, ADMIN, f"/unblock {RESIDENT}")
        assert "解除" in undone.text
        assert (await say(api_server, RESIDENT, "/say")).text.startswith("🗣")

    async def test_who_may_block_whom(self, world: Whistle, api_server: BotAPIServer) -> None:
        assert "管理员" in (await say(api_server, NEIGHBOUR, f"/block {RESIDENT}")).text
        assert "管理员" in (await say(api_server, CENTER_HEAD, f"/block {RESIDENT}")).text
        assert "工作人员" in (await say(api_server, ADMIN, f"/block {CENTER_HEAD}")).text
        assert "用法" in (await say(api_server, ADMIN, "/block 张三")).text
        assert "没有找到" in (await say(api_server, ADMIN, "/block 123456")).text
        assert "没有被封禁" in (await say(api_server, ADMIN, f"/unblock {RESIDENT}")).text
        async with world.factory() as session:
            user = await session.get(User, RESIDENT)
            assert user is not None and user.blocked_at is None


class TestForgetMe:
    async def test_erases_personal_data_and_keeps_the_statistics(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        first = await file(world, api_server, description="王晓霞家门口路灯不亮，电话13800000000")
        second = await file(world, api_server, description="小区需要长椅")
        other = await file(world, api_server, resident=NEIGHBOUR, description="邻居的案件")
        for case in (first, second):
            await close(world, case.id)
        await settled(world)
        question = await say(api_server, RESIDENT, "/forgetme")
        assert "不能撤销" in question.text
        await settled(world)
        api_server.press_button(RESIDENT, question.message_id, question.callback_data()[0])
        await api_server.wait_for(lambda _s: "已删除" in (question.text or ""), timeout=5)
        assert "2 件" in question.text
        for case_id in (first.id, second.id):
            case = await load(world, case_id)
            assert case.resident_id == privacy.FORGOTTEN and case.anonymised_at is not None
            assert (case.resident_name, case.description, case.contact) == ("", "", None)
            assert case.address is None and case.rating_comment is None
            # What the statistics need is still there.
            assert case.status is CaseStatus.CLOSED and case.rating is Rating.SATISFIED
            assert case.category == "suggestion" and case.number.startswith("HB-")
        assert (await load(world, other.id)).description == "邻居的案件"
        async with world.factory() as session:
            assert await session.get(User, RESIDENT) is None
            events = await session.scalars(
                select(CaseEvent).where(CaseEvent.actor_id == RESIDENT)  # type: ignore[arg-type]
            )
            assert events.all() == []
            # The conversation the bot kept (rendered messages to them) is gone: only the
            # answer to the press itself is left.
            rows = await session.scalars(
                select(OutboxMessage).where(OutboxMessage.chat_id == RESIDENT)  # type: ignore[arg-type]
            )
            assert sorted((row.method, row.text_key or "") for row in rows.all()) == [
                ("answerCallbackQuery", ""),
                ("editMessageText", "forget.done-retention"),
            ]
        # The resident's list is empty now: the cases are no longer theirs.
        assert (await say(api_server, RESIDENT, "/my")).text.startswith("您还没有提交过案件")

    async def test_the_groups_cards_lose_the_name_and_the_photos(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        cgzf, scratch = -1001000000021, -1005558
        api_server.create_group(cgzf, "城管", members=[CENTER_HEAD])
        api_server.create_group(scratch, "Scratch", members=[RESIDENT])
        photos = [
            posted_photo(api_server, RESIDENT, scratch, PHOTO + bytes([n])) for n in range(3)
        ]
        filed = []
        for shot in (photos[:1], photos[1:]):  # a card under one photo; two and a text card
            draft = cases.Draft(
                kind=CaseKind.REPORT,
                photos=shot,
                description="王晓霞家楼下飞线充电",
                category="flying_wire",
                address="康乐小区5号楼2单元",
            )
            filed.append(await submit(world, draft, resident=RESIDENT))
            await api_server.wait_for_message(RESIDENT)  # the receipt
        await settled(world)
        shown = [m for m in api_server.messages(cgzf) if not m.deleted]
        assert len(shown) == 4  # photo card; two photos and a text card
        assert all("王晓霞" in (m.content or "") for m in (shown[0], shown[3]))
        for case in filed:
            await close(world, case.id)

        question = await say(api_server, RESIDENT, "/forgetme")
        await settled(world)
        api_server.press_button(RESIDENT, question.message_id, question.callback_data()[0])
        await api_server.wait_for(lambda _s: "已删除" in (question.text or ""), timeout=5)
        await settled(world)
        # The closing answer says what went, what the groups were changed to, and what the
        # district keeps and why, with the retention period of the district file.
        assert "2 件案件已匿名" in question.text
        assert "工作群里 4 条显示过这些信息的消息已改为匿名或撤下" in question.text
        assert "海勃湾区仍保留：案件编号、类别、承办单位" in question.text
        assert "“三率”" in question.text and "办结 365 天后删除" in question.text
        # In the department's group: the two photos under the second card are gone, and
        # both cards are edited to the anonymised case.
        messages = api_server.messages(cgzf)
        assert [m.deleted for m in messages] == [False, True, True, False]
        for card in (messages[0], messages[3]):
            text = card.content or ""
            assert "王晓霞" not in text and "飞线充电" in text  # the category stays
            assert "康乐小区" not in text and "2单元" not in text
            assert "居民个人信息已删除" in text
            assert filed[0].number in text or filed[1].number in text

    async def test_refused_while_a_case_is_open_and_keep_changes_nothing(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        case = await file(world, api_server)
        await settled(world)
        question = await say(api_server, RESIDENT, "/forgetme")
        api_server.press_button(RESIDENT, question.message_id, question.callback_data()[0])
        await settled(world)
        await api_server.wait_for(lambda s: len(s.callback_answers) > 0, timeout=5)
        assert "1 件未办结" in (api_server.callback_answers[-1].text or "")
        assert (await load(world, case.id)).resident_name == "王晓霞"
        question = await say(api_server, RESIDENT, "/forgetme")
        api_server.press_button(RESIDENT, question.message_id, question.callback_data()[1])
        await api_server.wait_for(lambda _s: "没有删除" in (question.text or ""), timeout=5)
        loaded = await load(world, case.id)
        assert loaded.resident_id == RESIDENT and loaded.description == "路灯不亮"


class TestRetention:
    async def test_cases_closed_before_the_period_are_anonymised(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        assert world.district.privacy.retention_days == 365
        old = await file(world, api_server, description="一年多以前的事")
        recent = await file(world, api_server, description="最近的事")
        await close(world, old.id, days_ago=366)
        await close(world, recent.id, days_ago=300)
        await settled(world)
        advance(world, days=31)  # the delivered messages are older than a month now
        run = {"factory": world.factory, "clock": world.clock, "district": world.district}
        assert await jobs.apply_retention(**run) == 1
        assert (await load(world, old.id)).resident_id == privacy.FORGOTTEN
        assert (await load(world, recent.id)).description == "最近的事"
        assert await jobs.apply_retention(**run) == 0  # once
        async with world.factory() as session:
            kept = await session.scalar(select(func.count()).select_from(OutboxMessage))
        assert kept == 0  # delivered rows (with names in them) were pruned


class TestNotEnumerable:
    async def test_another_residents_case_is_not_found_like_a_missing_one(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        theirs = await file(world, api_server, resident=NEIGHBOUR, description="邻居的秘密")
        assert theirs.id is not None
        listing = await say(api_server, RESIDENT, "/my")
        answers = []
        for case_id in (theirs.id, theirs.id + 1000):
            await settled(world)
            count = len(api_server.callback_answers)
            api_server.press_button(
                RESIDENT, listing.message_id, ViewCase(case_id).pack(), force=True
            )
            await api_server.wait_for(lambda s, n=count: len(s.callback_answers) > n, timeout=5)
            answers.append(api_server.callback_answers[-1].text)
        assert answers[0] == answers[1] == "没有找到这件案件。"
        assert not any("邻居的秘密" in (m.text or "") for m in api_server.messages(RESIDENT))
