"""The department's side of the loop, end to end: living cards in group chats, acknowledge,
answer by reply, rating, reopening, Not ours and reassignment by the center, /bind, and every
press or reply that must change nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from bot.app import Whistle
from bot.clock import ManualClock
from bot.services import cases
from bot.testserver import BotAPIServer
from models import Case, CaseEvent, CaseKind, CaseStatus, Rating
from scheduler import jobs
from tests.casework import PHOTO, ask_for_help, file_photo_report, posted_photo, submit, withdraw
from tests.conftest import AppFactory, settled, start_with_residents

RESIDENT = 7300
CLERK, OTHER_CLERK, OUTSIDER, CENTER_ADMIN, GROUP_ADMIN = 9021, 9022, 9999, 100000002, 9500
CENTER = -1001000000001
CGZF, SCJG = -1001000000021, -1001000000022  # 城管执法局, 市场监管局 in config.example.toml
SCRATCH = -1005555


@pytest.fixture
async def world(api_server: BotAPIServer, make_app: AppFactory) -> Whistle:
    api_server.create_group(CENTER, "综治中心", members=[CENTER_ADMIN, OUTSIDER])
    api_server.create_group(CGZF, "城管执法局", members=[CLERK])
    api_server.create_group(SCJG, "市场监管局", members=[OTHER_CLERK])
    api_server.create_group(SCRATCH, "Scratch", members=[RESIDENT])
    app = await start_with_residents(api_server, make_app, {RESIDENT: "王晓霞"}, center=CENTER)
    # The start-up check reports the groups the bot cannot post in (not created here).
    [health] = api_server.messages(CENTER)
    assert "供水公司 (water)" in health.text and "城管" not in health.text
    return app


async def file_report(app: Whistle, api_server: BotAPIServer, **values: Any) -> Case:
    """王晓霞 reports a flying wire with a photo (``photos``, ``anonymous``, ``description``
    change that); it goes to 城管执法局."""
    return await file_photo_report(app, api_server, resident=RESIDENT, scratch=SCRATCH, **values)


async def reload(app: Whistle, case_id: int | None) -> Case:
    async with app.factory() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        return case


def card_in(api_server: BotAPIServer, chat_id: int) -> Any:
    cards = [m for m in api_server.messages(chat_id) if m.button_texts() or m.edits]
    return cards[-1]


async def until(api_server: BotAPIServer, check: Any) -> Any:
    return await api_server.wait_for(lambda _s: check(), timeout=5.0)


async def resident_told(api_server: BotAPIServer, text: str) -> Any:
    """Wait until the resident has been sent a message containing ``text``; that message."""
    return await until(
        api_server,
        lambda: next((m for m in api_server.messages(RESIDENT) if text in (m.text or "")), None),
    )


def sends_to_group(api_server: BotAPIServer) -> list[Any]:
    """The sendMessage calls to 城管执法局's group so far."""
    return [r for r in api_server.calls("sendMessage") if r.params["chat_id"] == str(CGZF)]


async def card_shows(api_server: BotAPIServer, text: str) -> None:
    """Wait until the case's first card in 城管执法局 has been edited to show ``text``."""
    await until(api_server, lambda: text in (api_server.messages(CGZF)[0].caption or ""))


async def report_and_card(world: Whistle, api_server: BotAPIServer) -> tuple[Case, Any]:
    """王晓霞 reports a flying wire; returns the case and its card in 城管执法局, once the
    card's link is recorded (so that a reply to the card finds the case)."""
    case = await file_report(world, api_server)
    [card] = await api_server.wait_for_message(CGZF)
    await settled(world)
    return case, card


class TestLivingCard:
    async def test_card_acknowledge_answer_rate_reopen_close(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        case = await file_report(world, api_server)
        [receipt] = await api_server.wait_for_message(RESIDENT)
        assert case.number in receipt.text and "城市管理综合执法局" in receipt.text

        [card] = await api_server.wait_for_message(CGZF)

        await settled(world)
        assert card.photo and case.number in card.caption
        assert "飞线充电" in card.caption and "康乐小区3号楼" in card.caption
        assert "王晓霞" in card.caption  # not anonymous: the first name only
        assert card.button_texts() == ["✅ 应哨", "📝 答卷", "↪️ 退回"]

        # 应哨
        api_server.press_button(CLERK, card.message_id, card.callback_data()[0], chat_id=CGZF)
        [told] = await api_server.wait_for_message(RESIDENT)
        assert "已应哨" in told.text and case.number in told.text
        await card_shows(api_server, "已应哨")
        assert api_server.messages(CGZF)[0].button_texts() == [
            "📝 答卷",
            "↪️ 退回",
            "📅 申请办结期限",
        ]

        # 答卷 by replying to the card with a photo
        api_server.send_photo(
            CLERK, PHOTO, caption="已拆除飞线，加装充电桩", chat_id=CGZF, reply_to=card.message_id
        )
        answer, question = await api_server.wait_for_message(RESIDENT, count=2)
        assert answer.photo and "已拆除飞线" in answer.caption
        assert question.button_texts() == ["😊 满意", "🙂 基本满意", "😞 不满意"]

        # 评卷: unsatisfied with a comment → back to the same department
        api_server.press_button(RESIDENT, question.message_id, question.callback_data()[2])
        await resident_told(api_server, "重新办理")
        assert (await reload(world, case.id)).status is CaseStatus.REOPENED
        api_server.send_text(RESIDENT, "充电桩还没通电")
        await until(
            api_server,
            lambda: any("充电桩还没通电" in (m.text or "") for m in api_server.messages(CGZF)),
        )
        await card_shows(api_server, "不满意")

        # second answer, by text reply → satisfied → closed
        api_server.send_text(CLERK, "已通电，请查看", chat_id=CGZF, reply_to=card.message_id)

        def questions() -> list[Any]:
            return [m for m in api_server.messages(RESIDENT) if "请为" in (m.text or "")]

        [second] = await until(
            api_server, lambda: [q for q in questions() if q.message_id != question.message_id]
        )
        api_server.press_button(RESIDENT, second.message_id, second.callback_data()[0])
        await resident_told(api_server, "已办结")
        closed = await reload(world, case.id)
        assert closed.status is CaseStatus.CLOSED and closed.rating is Rating.SATISFIED
        await until(
            api_server,
            lambda: (
                "满意" in (api_server.messages(CGZF)[0].caption or "")
                and not api_server.messages(CGZF)[0].button_texts()
            ),
        )

        async with world.factory() as session:
            from sqlalchemy import select

            kinds = [
                e.kind
                for e in (
                    await session.scalars(
                        select(CaseEvent)
                        .where(CaseEvent.case_id == case.id)
                        .order_by(CaseEvent.id)
                    )
                ).all()
            ]
        assert kinds == [
            "submitted",
            "dispatched",
            "acknowledged",
            "answered",
            "reopened",
            "commented",
            "answered",
            "closed",
        ]

    async def test_album_card_and_anonymous_case(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        case = await file_report(
            world,
            api_server,
            photos=3,
            anonymous=True,
            description="<b>油烟</b> & <script>x</script>",
        )
        album_1, album_2, album_3, card = await api_server.wait_for_message(CGZF, count=4)
        assert all(m.photo for m in (album_1, album_2, album_3))
        assert card.reply_to_message_id == album_3.message_id
        assert "反映人：匿名" in card.text and "王晓霞" not in card.text
        assert "<b>油烟</b> & <script>x</script>" in card.text  # shown literally
        assert case.number in card.text

    async def test_an_unrated_case_closes_after_72_hours(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        case, card = await report_and_card(world, api_server)
        api_server.send_text(CLERK, "已处理", chat_id=CGZF, reply_to=card.message_id)
        await until(
            api_server,
            lambda: any(
                m.button_texts()[:1] == ["😊 满意"] for m in api_server.messages(RESIDENT)
            ),
        )
        clock = world.clock
        assert isinstance(clock, ManualClock)
        run = {
            "factory": world.factory,
            "clock": clock,
            "district": world.district,
            "on_commit": world.sender.wake,
        }
        clock.advance(timedelta(hours=71))
        assert await jobs.close_unrated_cases(**run) == 0
        clock.advance(timedelta(hours=2))
        assert await jobs.close_unrated_cases(**run) == 1
        closed = await reload(world, case.id)
        assert closed.status is CaseStatus.CLOSED and closed.rating is Rating.UNRATED
        await resident_told(api_server, "未评价")


class TestNotOurs:
    async def test_returned_reassigned_new_card_old_card_marked(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        case, card = await report_and_card(world, api_server)
        api_server.press_button(CLERK, card.message_id, card.callback_data()[2], chat_id=CGZF)
        [prompt] = await api_server.wait_for_message(CGZF)
        await settled(world)
        assert "理由" in prompt.text
        api_server.send_text(
            CLERK, "属于餐饮油烟，归市场监管", chat_id=CGZF, reply_to=prompt.message_id
        )
        shown, center_card = await api_server.wait_for_message(CENTER, count=2)
        await settled(world)
        assert shown.photo and center_card.reply_to_message_id == shown.message_id
        assert "属于餐饮油烟，归市场监管" in center_card.text
        assert "市场监督管理局" in center_card.button_texts()
        assert "城市管理综合执法局" not in center_card.button_texts()
        await card_shows(api_server, "退回")

        data = center_card.callback_data()[center_card.button_texts().index("市场监督管理局")]
        api_server.press_button(OUTSIDER, center_card.message_id, data, chat_id=CENTER)
        await until(
            api_server,
            lambda: any(
                a.text == "只有综治中心管理员可以分派案件。" for a in api_server.callback_answers
            ),
        )
        api_server.press_button(CENTER_ADMIN, center_card.message_id, data, chat_id=CENTER)
        [new_card] = await api_server.wait_for_message(SCJG)
        assert case.number in new_card.caption and new_card.button_texts()[0] == "✅ 应哨"
        await card_shows(api_server, "已转交")
        await until(api_server, lambda: "已由" in (api_server.messages(CENTER)[-1].text or ""))
        assert (await reload(world, case.id)).department == "scjg"
        await resident_told(api_server, "已转交")


class TestRefusals:
    async def test_outsider_forged_stale_and_double_presses_change_nothing(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        case, card = await report_and_card(world, api_server)
        ack = card.callback_data()[0]
        api_server.add_member(CGZF, OUTSIDER)
        api_server.remove_member(CGZF, OUTSIDER)
        presses = [
            api_server.press_button(OUTSIDER, card.message_id, ack, chat_id=CGZF, force=True),
            api_server.press_button(
                CLERK, card.message_id, "c1:ack:notanumber", chat_id=CGZF, force=True
            ),
            api_server.press_button(
                CLERK, card.message_id, f"c1:ack:{case.id}:extra", chat_id=CGZF, force=True
            ),
            api_server.press_button(CLERK, card.message_id, ack, chat_id=CGZF),
            api_server.press_button(CLERK, card.message_id, ack, chat_id=CGZF, force=True),
        ]
        await until(api_server, lambda: len(api_server.callback_answers) == 5)
        # Answers travel in the queues of different chats: match them to the presses by id.
        answers = {a.callback_query_id: a.text for a in api_server.callback_answers}
        texts = [answers[press["id"]] for press in presses]
        assert texts[0] == "只有城市管理综合执法局工作群的成员可以操作。"
        assert texts[1] == texts[2] == "这个按钮已失效，请重新操作。"
        # Updates are handled concurrently, so the two real presses race: whichever commits
        # second is told it was already done.
        assert sorted(texts[3:], key=str)[0] is None
        last = [t for t in texts[3:] if t is not None]
        assert len(last) == 1 and last[0].startswith("已由") and last[0].endswith("应哨。")
        # The resident's message travels in its own chat's queue: wait until it is sent.
        await settled(world)
        acknowledged = [m for m in api_server.messages(RESIDENT) if "已应哨" in (m.text or "")]
        assert len(acknowledged) == 1  # the double press told the resident once

    async def test_a_case_button_in_another_departments_group_is_stale(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        case = await file_report(world, api_server)
        await api_server.wait_for_message(CGZF)
        api_server.send_text(OTHER_CLERK, "hi", chat_id=SCJG)
        msg = api_server.send_text(OTHER_CLERK, "x", chat_id=SCJG)
        api_server.press_button(
            OTHER_CLERK, msg["message_id"], f"c1:ack:{case.id}", chat_id=SCJG, force=True
        )
        await until(api_server, lambda: len(api_server.callback_answers) == 1)
        assert api_server.callback_answers[0].text == "这张卡片已失效。"
        assert (await reload(world, case.id)).status is CaseStatus.DISPATCHED

    async def test_replies_that_are_not_answers(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        case, card = await report_and_card(world, api_server)
        chat = api_server.send_text(CLERK, "谁去看看？", chat_id=CGZF)
        api_server.send_text(CLERK, "我去", chat_id=CGZF, reply_to=chat["message_id"])
        api_server.send_sticker(CLERK, chat_id=CGZF, reply_to=card.message_id)
        [refusal] = await api_server.wait_for_message(CGZF)
        assert refusal.text == "答复只能是文字或照片，请重新回复。"
        api_server.send_text(CLERK, "x" * 3500, chat_id=CGZF, reply_to=card.message_id)
        [too_long] = await api_server.wait_for_message(CGZF)
        assert "3500" in too_long.text
        assert (await reload(world, case.id)).status is CaseStatus.DISPATCHED

    async def test_late_answers_to_an_answered_card_are_folded(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        case, card = await report_and_card(world, api_server)
        api_server.send_text(CLERK, "已处理", chat_id=CGZF, reply_to=card.message_id)
        await card_shows(api_server, "已答卷")
        await settled(world)
        sends_before = len(sends_to_group(api_server))
        # Six colleagues who never started the bot answer too, at once: one line in the group.
        late = list(range(9031, 9037))
        for clerk in late:
            api_server.add_member(CGZF, clerk)
        for clerk in late:
            api_server.send_text(clerk, "我也处理了", chat_id=CGZF, reply_to=card.message_id)
        folded = f"{case.number} 已经答卷。 另有 5 人也尝试了。"
        await until(api_server, lambda: any(m.text == folded for m in api_server.messages(CGZF)))
        await settled(world)
        assert len(sends_to_group(api_server)) - sends_before == 1
        # The resident, who started the bot, is told privately instead.
        api_server.add_member(CGZF, RESIDENT)
        api_server.send_text(RESIDENT, "我也答", chat_id=CGZF, reply_to=card.message_id)
        told = await resident_told(api_server, "已经答卷")
        assert case.number in told.text
        await settled(world)
        assert len(sends_to_group(api_server)) - sends_before == 1
        assert (await reload(world, case.id)).status is CaseStatus.ANSWERED

    async def test_unbound_group_is_ignored_and_bind_makes_it_work(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        unbound = -1009999
        api_server.create_group(
            unbound, "新建群", members=[GROUP_ADMIN, CLERK], admins=[GROUP_ADMIN]
        )
        api_server.send_text(CLERK, "/start", chat_id=unbound)
        api_server.send_text(CLERK, "@whistle_test_bot 你好", chat_id=unbound)
        api_server.send_text(CLERK, "/bind water", chat_id=unbound)  # not an admin
        [refused] = await api_server.wait_for_message(unbound)
        assert refused.text == "只有本群管理员可以绑定部门。"
        api_server.send_text(GROUP_ADMIN, "/bind nosuch", chat_id=unbound)
        [unknown] = await api_server.wait_for_message(unbound)
        assert "nosuch" in unknown.text
        api_server.send_text(GROUP_ADMIN, "/bind water", chat_id=unbound)
        [bound] = await api_server.wait_for_message(unbound)
        assert "供水" in bound.text
        assert len(api_server.messages(unbound)) == 3


class TestAnswerButton:
    async def test_answer_button_prompts_and_a_reply_to_the_prompt_answers(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        draft = cases.Draft(kind=CaseKind.SAY, description="建议小区增设充电桩", anonymous=True)
        case = await submit(world, draft, resident=RESIDENT)
        [center_card] = await api_server.wait_for_message(CENTER)  # no category: triage
        assert "建议小区增设充电桩" in center_card.text and "匿名" in center_card.text
        data = center_card.callback_data()[center_card.button_texts().index("城市管理综合执法局")]
        api_server.press_button(CENTER_ADMIN, center_card.message_id, data, chat_id=CENTER)
        [card] = await api_server.wait_for_message(CGZF)
        await settled(world)
        assert card.text and not card.photo  # no photo: a text card
        api_server.press_button(CLERK, card.message_id, card.callback_data()[1], chat_id=CGZF)
        [prompt] = await api_server.wait_for_message(CGZF)
        await settled(world)
        assert prompt.reply_to_message_id == card.message_id and "回复本条消息" in prompt.text
        api_server.send_text(CLERK, "已联系物业整改", chat_id=CGZF, reply_to=prompt.message_id)
        await resident_told(api_server, "已联系物业整改")
        answered = await reload(world, case.id)
        assert answered.status is CaseStatus.ANSWERED
        assert answered.acknowledged_by_name  # answering implied acknowledging
        await until(api_server, lambda: "已答卷" in (api_server.messages(CGZF)[0].text or ""))


class TestWithdrawnCards:
    async def test_center_card_with_photo_and_withdrawn_cards_lose_their_buttons(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        volunteers = world.district.volunteer_chat_for(None)
        assert volunteers is not None
        api_server.create_group(volunteers, "志愿者", members=[CLERK])
        photo = posted_photo(api_server, RESIDENT, SCRATCH)
        say = await submit(
            world,
            cases.Draft(kind=CaseKind.SAY, description="路灯不亮", photos=[photo]),
            resident=RESIDENT,
        )
        help_request = await ask_for_help(
            world,
            resident=RESIDENT,
            description="帮忙买药",
            address="康乐社区",
            needed_when="明天上午",
        )
        shown, center_card = await api_server.wait_for_message(CENTER, count=2)
        assert shown.photo and center_card.reply_to_message_id == shown.message_id
        [help_card] = await api_server.wait_for_message(volunteers)
        assert "帮忙买药" in help_card.text and "王晓霞" not in help_card.text
        await settled(world)

        for case in (say, help_request):
            await withdraw(world, case)
        await until(api_server, lambda: "撤回" in (api_server.messages(CENTER)[-1].text or ""))
        assert api_server.messages(CENTER)[-1].button_texts() == []
        await until(api_server, lambda: "撤回" in (api_server.messages(volunteers)[0].text or ""))
