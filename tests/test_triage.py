"""三审 triage in the street office's group: the wizard's outcomes, assisting cards, the leader
for hard cases, an agreed deadline, and presses from outside the street office."""

from __future__ import annotations

from typing import Any

import pytest

from bot.app import Whistle
from bot.clock import ManualClock
from bot.services import cases
from bot.testserver import BotAPIServer
from models import Case, CaseEvent, CaseStatus
from tests.casework import answer, file_photo_report
from tests.conftest import AppFactory, settled, start_with_residents

RESIDENT, OFFICER, CLERK, OUTSIDER, LEADER = 7500, 9011, 9021, 9999, 100000003
XINHUA, CGZF, SCJG, KANGLE = -1001000000011, -1001000000021, -1001000000022, -1001000000031
CENTER, SCRATCH = -1001000000001, -1005557


@pytest.fixture
async def world(api_server: BotAPIServer, make_app: AppFactory) -> Whistle:
    api_server.create_group(XINHUA, "新华街道", members=[OFFICER])
    api_server.create_group(CENTER, "综治中心", members=[])
    for chat, title in ((CGZF, "城管"), (SCJG, "市场监管"), (KANGLE, "康乐社区")):
        api_server.create_group(chat, title, members=[CLERK, OUTSIDER])
    api_server.create_group(SCRATCH, "Scratch", members=[RESIDENT])
    people = {RESIDENT: "王晓霞", LEADER: "赵志刚"}
    return await start_with_residents(api_server, make_app, people, center=CENTER)


async def file_other(app: Whistle, api_server: BotAPIServer) -> tuple[Case, Any]:
    """王晓霞 reports a problem of no department's category (a missing manhole cover): it goes
    to the street office for triage. Returns the case and its triage card."""
    case = await file_photo_report(
        app,
        api_server,
        resident=RESIDENT,
        scratch=SCRATCH,
        description="小区门口井盖丢了",
        category="other",
        address="新华街12号",
    )
    shown, card = await api_server.wait_for_message(XINHUA, count=2)
    assert shown.photo and card.reply_to_message_id == shown.message_id
    [receipt] = await api_server.wait_for_message(RESIDENT)
    assert "新华街道 研判" in receipt.text
    await settled(app)
    return case, card


async def press(app: Whistle, api_server: BotAPIServer, label: str, user: int = OFFICER) -> Any:
    """Press the triage card's button whose label contains ``label``; return the new card."""
    card = [m for m in api_server.messages(XINHUA) if m.button_texts()][-1]
    index = next(i for i, text in enumerate(card.button_texts()) if label in text)
    answers = len(api_server.callback_answers)
    api_server.press_button(user, card.message_id, card.callback_data()[index], chat_id=XINHUA)
    await api_server.wait_for(lambda s: len(s.callback_answers) > answers)
    await settled(app)
    return api_server.messages(XINHUA)[-1]


async def reload(app: Whistle, case: Case) -> Case:
    async with app.factory() as session:
        found = await session.get(Case, case.id)
        assert found is not None
        return found


class TestOutcomes:
    async def test_simple_goes_to_the_community_alone(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        case, card = await file_other(world, api_server)
        assert "一审职责：请选择主责部门。" in card.text
        assert "✅ 城市管理综合执法局" in card.button_texts()  # proposed from the category
        await press(world, api_server, "康乐社区")
        step = await press(world, api_server, "下一步")
        assert "需要协办部门吗" in step.text
        await press(world, api_server, "市场监督管理局")  # chosen, but simple drops assistants
        await press(world, api_server, "下一步")
        await press(world, api_server, "简单")
        done = await press(world, api_server, "标准时限")
        assert "研判完成" in done.text and done.button_texts() == []
        # Its title follows its state: no longer "waiting for triage".
        assert done.text.startswith(f"【已研判】{case.number}") and "待研判" not in done.text
        [community_card] = await api_server.wait_for_message(KANGLE)
        assert case.number in community_card.caption and "✅ 应哨" in community_card.button_texts()
        assert api_server.messages(SCJG) == []
        found = await reload(world, case)
        assert (found.status, found.department, found.triage_difficulty) == (
            CaseStatus.DISPATCHED,
            "kangle",
            "simple",
        )
        [told] = await api_server.wait_for_message(RESIDENT)
        assert "康乐社区" in told.text and "预计" not in told.text

    async def test_complex_gives_assistants_their_own_cards(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        case, _ = await file_other(world, api_server)
        assist_step = await press(world, api_server, "下一步")  # keep the proposed lead
        # "井盖" in the report: the water company is proposed to assist.
        assert "☑️ 供水公司" in assist_step.button_texts()
        assert "协办部门：供水公司" in assist_step.text
        await press(world, api_server, "供水公司")  # not needed after all
        await press(world, api_server, "市场监督管理局")
        await press(world, api_server, "下一步")
        await press(world, api_server, "复杂")
        await press(world, api_server, "标准时限")
        [lead_card] = await api_server.wait_for_message(CGZF)
        [assist_card] = await api_server.wait_for_message(SCJG)
        assert "✅ 应哨" in lead_card.button_texts()
        assert "🤝 协办单位已报到 0/1" in lead_card.caption  # under its photo: the short form
        # The assisting unit's card says what its part is (report in, work with the lead,
        # who answers), with its one button; no escalation time of the lead's ladder.
        assert assist_card.text.startswith("🤝 协办（主责：城市管理综合执法局）")
        assert "请报到协办：配合主责部门办理，答卷由主责部门作出。" in assist_card.text
        assert "下一级督办" not in assist_card.text and "已吹哨" not in assist_card.text
        assert assist_card.button_texts() == ["✋ 报到协办"]

        # The assisting unit reports in: both cards say so, its button is gone.
        answers = len(api_server.callback_answers)
        data = assist_card.callback_data()[0]
        api_server.press_button(CLERK, assist_card.message_id, data, chat_id=SCJG)
        await api_server.wait_for(lambda s: len(s.callback_answers) > answers)
        await settled(world)
        assist_card = api_server.messages(SCJG)[-1]
        assert "✅ 本单位已报到协办：" in assist_card.text
        assert "请报到协办" not in assist_card.text and assist_card.button_texts() == []
        assert "🤝 协办单位已报到 1/1" in api_server.messages(CGZF)[-1].caption
        # A second press (a stale button on another client) changes nothing and says who did.
        api_server.press_button(OUTSIDER, assist_card.message_id, data, chat_id=SCJG, force=True)
        await api_server.wait_for(lambda s: len(s.callback_answers) > answers + 1)
        assert "已为本单位报到协办" in (api_server.callback_answers[-1].text or "")
        assert (await reload(world, case)).status is CaseStatus.DISPATCHED

        # The lead's progress reaches the assisting card: acknowledged, then answered.
        lead_card = api_server.messages(CGZF)[-1]
        ack = lead_card.callback_data()[lead_card.button_texts().index("✅ 应哨")]
        api_server.press_button(CLERK, lead_card.message_id, ack, chat_id=CGZF)
        await api_server.wait_for(lambda s: "主责部门已应哨" in s.messages(SCJG)[-1].text)
        clerk = cases.Person(CLERK, "李明", "zh-Hans")
        await answer(world, case, by=clerk, text="井盖已补上", department="cgzf")
        await api_server.wait_for(lambda s: "主责部门已答卷" in s.messages(SCJG)[-1].text)
        assert len(api_server.messages(SCJG)) == 1  # one living card, edited in place
        async with world.factory() as session:
            from sqlalchemy import select

            triaged = (
                await session.scalars(
                    select(CaseEvent).where(
                        CaseEvent.case_id == case.id, CaseEvent.kind == "triaged"
                    )
                )
            ).one()
        assert triaged.data == {"lead": "cgzf", "assist": ["scjg"], "difficulty": "complex",
                                "deadline_days": 0}  # fmt: skip

    async def test_hard_tells_the_leader_and_a_deadline_tells_the_resident(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        case, _ = await file_other(world, api_server)
        await press(world, api_server, "下一步")
        await press(world, api_server, "市场监督管理局")
        await press(world, api_server, "下一步")
        await press(world, api_server, "疑难")
        await press(world, api_server, "7 天内办结")
        [leader_note] = await api_server.wait_for_message(LEADER)
        assert case.number in leader_note.text and "市场监督管理局" in leader_note.text
        [told] = await api_server.wait_for_message(RESIDENT)
        assert "预计 2026-01-12 前办结" in told.text
        assert (await reload(world, case)).deadline_at is not None

    async def test_back_goes_one_step_back(self, world: Whistle, api_server: BotAPIServer) -> None:
        await file_other(world, api_server)
        await press(world, api_server, "下一步")
        await press(world, api_server, "下一步")
        step = await press(world, api_server, "上一步")
        assert "需要协办部门吗" in step.text


class TestRefusals:
    async def test_presses_from_outside_the_street_office_change_nothing(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        case, card = await file_other(world, api_server)
        data = card.callback_data()[0]
        api_server.add_member(XINHUA, OUTSIDER)
        api_server.remove_member(XINHUA, OUTSIDER)
        api_server.press_button(OUTSIDER, card.message_id, data, chat_id=XINHUA, force=True)
        other = api_server.send_text(CLERK, "x", chat_id=CGZF)
        api_server.press_button(CLERK, other["message_id"], data, chat_id=CGZF, force=True)
        await api_server.wait_for(lambda s: len(s.callback_answers) == 2)
        # Two chats: their answers may arrive in either order.
        assert sorted(a.text for a in api_server.callback_answers) == sorted(
            ["只有新华街道工作群的成员可以操作。", "这张卡片已失效。"]  # names the office
        )
        found = await reload(world, case)
        assert (found.status, found.triage_step) == (CaseStatus.TRIAGE, "lead")


class TestDeadlineLadder:
    async def test_an_agreed_deadline_reminds_then_escalates_until_the_answer(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        from datetime import timedelta

        from scheduler import jobs

        case, _ = await file_other(world, api_server)
        await press(world, api_server, "下一步")
        await press(world, api_server, "下一步")
        await press(world, api_server, "复杂")
        await press(world, api_server, "3 天内办结")
        [card] = await api_server.wait_for_message(CGZF)
        assert "约定办结期限：2026-01-08 09:00" in card.caption
        await settled(world)
        answered = len(api_server.callback_answers)
        api_server.press_button(CLERK, card.message_id, card.callback_data()[0], chat_id=CGZF)
        await api_server.wait_for(lambda s: len(s.callback_answers) > answered)
        await settled(world)
        clock = world.clock
        assert isinstance(clock, ManualClock)
        deadline = (await reload(world, case)).deadline_at
        assert deadline is not None

        async def run_at(moment: Any) -> None:
            clock.set(moment)
            await jobs.escalate_due_cases(
                factory=world.factory,
                clock=clock,
                district=world.district,
                on_commit=world.sender.wake,
            )
            await settled(world)

        def notices() -> list[str]:
            return [m.text for m in api_server.messages(CGZF) if m.text and "约定" in m.text]

        await run_at(deadline - timedelta(days=1))
        assert notices() == [
            "⏳ HB-000001（城市管理综合执法局）约定 2026-01-08 09:00 前办结，请抓紧答卷。"
        ]
        await run_at(deadline)
        assert notices()[-1].startswith("⌛ HB-000001（城市管理综合执法局）已到约定办结期限")
        assert any("已到约定办结期限" in (m.text or "") for m in api_server.messages(CENTER))
        await run_at(deadline + timedelta(days=1))
        assert notices()[-1].startswith("🚨 HB-000001（城市管理综合执法局）超过约定期限")
        assert "🟨 黄牌" in (api_server.messages(CGZF)[0].caption or "")

        api_server.send_text(CLERK, "井盖已补装", chat_id=CGZF, reply_to=card.message_id)
        await api_server.wait_for(
            lambda s: any(
                "井盖已补装" in (m.text or m.caption or "") for m in s.messages(RESIDENT)
            )
        )
        await settled(world)
        before = len(notices())
        await run_at(deadline + timedelta(days=5))
        assert len(notices()) == before  # the answer stopped the deadline ladder
