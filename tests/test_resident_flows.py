"""The resident's side end to end: 随手拍, 我有话说, 邻里互助, /my with timelines and
withdrawal, rating, /cancel and bad input, through the Bot API test server.

Every test runs on SQLite and PostgreSQL. The district is config.example.toml; its groups are
created in the test server before the application starts.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col

from bot.app import Whistle
from bot.db import transaction
from bot.district import District
from bot.services import cases, closure
from bot.testserver import BotAPIServer, BotMessage
from models import Case, CaseKind, CaseStatus, HelpRequest
from tests import casework
from tests.casework import posted_photo, submit
from tests.conftest import AppFactory

RESIDENT = 7101
NEIGHBOUR = 7102
STAFF = 7201
CGZF = -1001000000021  # 城市管理综合执法局, where flying-wire reports go
CENTER = -1001000000001
VOLUNTEERS = -1001000000003
PHOTOS = [f"photo-{i}".encode() for i in range(8)]
STALE = "这个按钮已失效，请重新操作。"
SCRATCH = -1009999  # a group the bot does not work in: a source of real photo file ids


@pytest.fixture
async def app(api_server: BotAPIServer, make_app: AppFactory, district: District) -> Whistle:
    """The application with every group of the district in place and two residents."""
    api_server.add_user(RESIDENT, first_name="王晓霞", username="wangxx", language_code="zh-hans")
    api_server.add_user(NEIGHBOUR, first_name="Li", language_code="en")
    api_server.add_user(STAFF, first_name="赵工")
    for chat_id in district.configured_chat_ids():
        api_server.create_group(chat_id, f"group {chat_id}", members=[STAFF])
    api_server.create_group(SCRATCH, "scratch", members=[STAFF])
    # These tests play a resident faster than anyone types (eleven messages in a few seconds);
    # what a flood gets is tested in test_front_door.
    return await make_app(env={"FLOOD_LIMIT": 1000})


# -- helpers ----------------------------------------------------------------------------------


async def say(api_server: BotAPIServer, text: str, user: int = RESIDENT) -> BotMessage:
    """Send a text and return the bot's next message."""
    api_server.send_text(user, text)
    [reply] = await api_server.wait_for_message(user)
    return reply


def data_of(message: BotMessage, label: str) -> str:
    """The callback data of the button whose label contains ``label``."""
    for button in message.buttons():
        if label in str(button.get("text", "")) and "callback_data" in button:
            return str(button["callback_data"])
    raise AssertionError(f"no button {label!r} in {message.button_texts()}")


async def press(
    api_server: BotAPIServer, message: BotMessage, label: str, user: int = RESIDENT
) -> None:
    """Press a button and wait until the press has been answered."""
    answered = len(api_server.callback_answers)
    api_server.press_button(user, message.message_id, data_of(message, label))
    await api_server.wait_for(lambda s: len(s.callback_answers) > answered)


async def choose(api_server: BotAPIServer, message: BotMessage, label: str) -> BotMessage:
    """The resident presses the button labelled ``label`` on ``message``; the bot's next
    message to them."""
    await press(api_server, message, label)
    [reply] = await api_server.wait_for_message(RESIDENT)
    return reply


async def press_data(
    api_server: BotAPIServer, message: BotMessage, data: str, user: int = RESIDENT
) -> Any:
    """Press (forcing any data) and return the callback answer."""
    answered = len(api_server.callback_answers)
    api_server.press_button(user, message.message_id, data, force=True)
    await api_server.wait_for(lambda s: len(s.callback_answers) > answered)
    return api_server.callback_answers[-1]


async def until(api_server: BotAPIServer, check: Any) -> Any:
    return await api_server.wait_for(lambda _s: check())


async def case_rows(app: Whistle) -> list[Case]:
    async with transaction(app.factory) as session:
        return list((await session.scalars(select(Case).order_by(col(Case.id)))).all())


async def help_part(app: Whistle, case: Case) -> HelpRequest:
    async with transaction(app.factory) as session:
        request = await session.get(HelpRequest, case.id)
        assert request is not None
        return request


async def photo_report_to_summary(api_server: BotAPIServer, description: str) -> BotMessage:
    """📷 随手拍 with an album of two, a description, 飞线充电 and a typed address."""
    await say(api_server, "📷 随手拍")
    api_server.send_media_group(RESIDENT, PHOTOS[:2])
    [received] = await api_server.wait_for_message(RESIDENT)
    assert received.text.startswith("照片已收到")
    category_question = await say(api_server, description)
    assert "飞线充电" in category_question.button_texts()
    location_question = await choose(api_server, category_question, "飞线充电")
    assert location_question.text.startswith("📍")
    await until(api_server, lambda: category_question.text == "✔️ 飞线充电")
    return await say(api_server, "康乐小区3号楼北侧")


def photo_file_id(api_server: BotAPIServer) -> str:
    return posted_photo(api_server, STAFF, SCRATCH, PHOTOS[7])


async def file_case(
    app: Whistle,
    api_server: BotAPIServer,
    *,
    kind: CaseKind = CaseKind.REPORT,
    **values: Any,
) -> Case:
    """A case of RESIDENT (who has started the bot) filed through the service layer."""
    draft = cases.Draft(kind=kind, **values)
    if kind is CaseKind.REPORT:
        draft.photos = draft.photos or [photo_file_id(api_server)]
        draft.category = draft.category or "flying_wire"
    draft.description = draft.description or "楼道飞线充电"
    return await submit(app, draft, resident=RESIDENT)


STAFF_PERSON = cases.Person(STAFF, "赵工", "zh-Hans")


async def acknowledge(app: Whistle, case: Case) -> None:
    """赵工 of the case's department acknowledges it."""
    await casework.acknowledge(app, case, by=STAFF_PERSON)


async def answer(app: Whistle, case: Case) -> None:
    """赵工 of the case's department answers it: the flying wire is removed."""
    await casework.answer(app, case, by=STAFF_PERSON, text="已拆除飞线")


# -- 随手拍 -----------------------------------------------------------------------------------


class TestPhotoReport:
    async def test_album_description_category_address_to_case_number(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        await say(api_server, "/start")
        summary = await photo_report_to_summary(api_server, "楼道里 <b>飞线</b> & <script>")
        assert "照片：2 张" in summary.text
        assert "内容：楼道里 <b>飞线</b> & <script>" in summary.text  # shown literally
        assert "分类：飞线充电" in summary.text
        assert "位置：康乐小区3号楼北侧" in summary.text
        assert "处理部门将看到您的名字：王晓霞" in summary.text

        await press(api_server, summary, "改为匿名")
        await until(api_server, lambda: "匿名：处理部门看不到您的名字" in summary.text)
        receipt = await choose(api_server, summary, "确认提交")
        assert "HB-000001" in receipt.text
        assert "城市管理综合执法局" in receipt.text
        assert "/my" in receipt.text
        await until(api_server, lambda: summary.callback_data() == [])

        [case] = await case_rows(app)
        assert (case.kind, case.status, case.category) == (
            CaseKind.REPORT,
            CaseStatus.DISPATCHED,
            "flying_wire",
        )
        assert len(case.photos) == 2
        assert case.address == "康乐小区3号楼北侧"
        assert case.anonymous is True
        assert case.description == "楼道里 <b>飞线</b> & <script>"

        first, second, card = await api_server.wait_for_message(CGZF, count=3)
        assert first.media_group_id is not None
        assert first.media_group_id == second.media_group_id
        assert card.reply_to_message_id in (first.message_id, second.message_id)
        assert "HB-000001" in card.text
        assert "飞线充电" in card.text
        assert "楼道里 <b>飞线</b> & <script>" in card.text
        assert "反映人：匿名" in card.text
        assert "王晓霞" not in card.text

        # The summary's Confirm, pressed again after the case was submitted, is stale.
        answer_ = await press_data(api_server, summary, data_of_last(api_server, summary))
        assert answer_.text == STALE
        assert len(await case_rows(app)) == 1

    async def test_photo_with_caption_starts_prefilled_and_location_is_accepted(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        api_server.send_photo(RESIDENT, PHOTOS[0], caption="小区门口乱堆乱放")
        [category_question] = await api_server.wait_for_message(RESIDENT)
        assert category_question.text.startswith("🏷")
        await press(api_server, category_question, "乱堆乱放")
        await api_server.wait_for_message(RESIDENT)
        api_server.send_location(RESIDENT, 39.6543, 106.7949)
        [summary] = await api_server.wait_for_message(RESIDENT)
        assert "照片：1 张" in summary.text
        assert "内容：小区门口乱堆乱放" in summary.text
        assert "位置：📍 39.65430, 106.79490" in summary.text
        receipt = await choose(api_server, summary, "确认提交")
        assert "HB-000001" in receipt.text

        [case] = await case_rows(app)
        assert (case.latitude, case.longitude, case.address) == (39.6543, 106.7949, None)
        card, location = await api_server.wait_for_message(CGZF, count=2)
        assert card.photo and "乱堆乱放" in (card.caption or "")
        assert "反映人：王晓霞" in (card.caption or "")
        assert location.raw.get("location") is not None

    async def test_summary_edits_go_back_to_the_summary(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        summary = await photo_report_to_summary(api_server, "路面塌陷")
        question = await choose(api_server, summary, "修改内容")
        assert question.text.startswith("✏️")
        await until(api_server, lambda: summary.callback_data() == [])
        again = await say(api_server, "人行道塌陷一米见方")
        assert "内容：人行道塌陷一米见方" in again.text
        categories = await choose(api_server, again, "修改分类")
        third = await choose(api_server, categories, "道路破损")
        assert "分类：道路破损" in third.text
        assert "位置：康乐小区3号楼北侧" in third.text
        receipt = await choose(api_server, third, "确认提交")
        assert "HB-000001" in receipt.text
        [case] = await case_rows(app)
        assert (case.category, case.description) == ("road_damage", "人行道塌陷一米见方")


def data_of_last(api_server: BotAPIServer, message: BotMessage) -> str:
    """The Confirm data a message had before its buttons were removed."""
    for version in message.edits:
        markup = version.reply_markup or {}
        for row in markup.get("inline_keyboard", []):
            for button in row:
                if "确认提交" in button["text"] or "Confirm" in button["text"]:
                    return str(button["callback_data"])
    return data_of(message, "确认提交")


# -- 我有话说 and 邻里互助 ----------------------------------------------------------------------


class TestSay:
    async def test_anonymous_post_with_a_category(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        await say(api_server, "🗣 我有话说")
        categories = await say(api_server, "建议在小区里多装几盏路灯")
        assert categories.button_texts() == ["建议", "表扬", "⏭ 跳过"]
        question = await choose(api_server, categories, "建议")
        summary = await choose(api_server, question, "匿名")
        assert "分类：建议" in summary.text
        assert "匿名：处理部门看不到您的名字" in summary.text
        receipt = await choose(api_server, summary, "确认提交")
        assert "HB-000001" in receipt.text and "综治中心" in receipt.text

        [card] = await api_server.wait_for_message(CENTER)
        assert "建议在小区里多装几盏路灯" in card.text
        assert "反映人：匿名" in card.text and "王晓霞" not in card.text
        [case] = await case_rows(app)
        assert (case.kind, case.category, case.anonymous) == (CaseKind.SAY, "suggestion", True)

    async def test_post_without_category_in_english_with_a_photo_goes_to_the_center(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        await say(api_server, "🗣 Say something", user=NEIGHBOUR)
        api_server.send_photo(NEIGHBOUR, PHOTOS[0])
        [received] = await api_server.wait_for_message(NEIGHBOUR)
        assert received.text.startswith("Photo received. Now please write")
        categories = await say(api_server, "The bus stop needs a bench", user=NEIGHBOUR)
        await press(api_server, categories, "Skip", user=NEIGHBOUR)
        [question] = await api_server.wait_for_message(NEIGHBOUR)
        await press(api_server, question, "Show my name", user=NEIGHBOUR)
        [summary] = await api_server.wait_for_message(NEIGHBOUR)
        assert "Category: none" in summary.text
        assert "Photos: 1" in summary.text
        assert "The department will see your name: Li" in summary.text
        await press(api_server, summary, "Confirm", user=NEIGHBOUR)
        [receipt] = await api_server.wait_for_message(NEIGHBOUR)
        assert receipt.text.startswith("✅ Received! Your case number is HB-000001.")
        assert "governance center" in receipt.text

        photo, card = await api_server.wait_for_message(CENTER, count=2)
        assert photo.photo and card.reply_to_message_id == photo.message_id
        assert "The bus stop needs a bench" in card.text
        [case] = await case_rows(app)
        assert (case.category, case.department, case.status) == (None, None, CaseStatus.TRIAGE)
        assert len(case.photos) == 1


KANGLE_VOLUNTEERS = -1001000000041  # 康乐社区's own volunteer group


class TestAskForHelp:
    async def test_help_request_goes_to_its_communitys_volunteers_coarse_and_private(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        what = await say(api_server, "/ask")
        assert what.text.startswith("🤝")
        community = await say(api_server, "帮忙买一袋米送上楼")
        assert "康乐社区" in community.button_texts()
        where = await choose(api_server, community, "康乐社区")
        assert "不要写门牌号和电话" in where.text
        # What every volunteer in the group sees may not hold a phone number or a flat.
        refused = await say(api_server, "5号楼 电话13912345678")
        assert "电话号码" in refused.text
        refused = await say(api_server, "5号楼2单元501室")
        assert "门牌号" in refused.text
        # Both at once: one refusal names both, rather than one now and the other next time.
        refused = await say(api_server, "5号楼2单元501室 13912345678")
        assert "不要写电话号码和门牌号" in refused.text
        door = await say(api_server, "5号楼")
        assert "只告诉接单的志愿者" in door.text and door.button_texts() == ["⏭ 跳过"]
        when = await say(api_server, "2单元501")
        assert when.text.startswith("🕒")
        skills = await say(api_server, "周六上午")
        assert skills.button_texts()[:2] == ["代购", "陪诊"]
        await press(api_server, skills, "代购")
        await until(api_server, lambda: "✅ 代购" in skills.button_texts())
        await press(api_server, skills, "✔️ 选好了")
        [contact] = await api_server.wait_for_message(RESIDENT, count=1)
        assert contact.button_texts() == ["✅ 同意告诉志愿者", "🚫 不提供联系方式"]
        summary = await choose(api_server, contact, "同意")
        assert "需要：帮忙买一袋米送上楼" in summary.text
        assert "社区：康乐社区" in summary.text and "地点：5号楼" in summary.text
        assert "门牌（只告诉接单志愿者）：2单元501" in summary.text
        assert "时间：周六上午" in summary.text and "帮助类型：代购" in summary.text
        assert "接单的志愿者将看到您的联系方式：@wangxx" in summary.text
        receipt = await choose(api_server, summary, "确认提交")
        assert "HB-000001" in receipt.text and "志愿者" in receipt.text

        [card] = await api_server.wait_for_message(KANGLE_VOLUNTEERS)
        assert "帮忙买一袋米送上楼" in card.text and "周六上午" in card.text
        assert "地点：康乐社区 · 5号楼" in card.text and "所需技能：代购" in card.text
        assert "501" not in card.text
        assert "王晓霞" not in card.text and "wangxx" not in card.text
        assert api_server.messages(VOLUNTEERS) == []  # not the district's group
        [case] = await case_rows(app)
        assert (case.kind, case.status) == (CaseKind.HELP, CaseStatus.PUBLISHED)
        request = await help_part(app, case)
        assert (case.community, case.address, request.door, request.skills) == (
            "kangle",
            "5号楼",
            "2单元501",
            ["代购"],
        )
        assert (request.needed_when, case.contact) == ("周六上午", "@wangxx")

    async def test_contact_can_be_withheld_from_the_summary(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        await say(api_server, "🤝 邻里互助")
        community = await say(api_server, "陪我去医院复查")
        await press(api_server, community, "新华社区")
        await api_server.wait_for_message(RESIDENT)
        door = await say(api_server, "新华西街道")
        await press(api_server, door, "跳过")
        await api_server.wait_for_message(RESIDENT)
        skills = await say(api_server, "下周一")
        contact = await choose(api_server, skills, "✔️ 选好了")
        summary = await choose(api_server, contact, "同意")
        assert "门牌" not in summary.text
        await press(api_server, summary, "改为不提供联系方式")
        await until(api_server, lambda: "不向志愿者提供您的联系方式" in summary.text)
        await press(api_server, summary, "确认提交")
        await api_server.wait_for_message(RESIDENT)
        [case] = await case_rows(app)
        request = await help_part(app, case)
        assert case.contact is None and request.door is None and request.skills == []


# -- /my, timelines, withdrawal -----------------------------------------------------------------


def case_buttons(message: BotMessage) -> list[str]:
    return [text for text in message.button_texts() if text.startswith("HB-")]


class TestMyCases:
    async def test_nothing_filed_yet(self, app: Whistle, api_server: BotAPIServer) -> None:
        reply = await say(api_server, "📋 我的案件")
        assert reply.text.startswith("您还没有提交过案件")

    async def test_pages_timeline_and_withdrawal(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        await say(api_server, "/start")
        filed = [await file_case(app, api_server, description=f"第{i + 1}件") for i in range(6)]
        await api_server.wait_for_message(RESIDENT, count=6)  # the receipts
        page = await say(api_server, "/my")
        assert "共 6 件，第 1/2 页" in page.text
        assert case_buttons(page) == [f"HB-00000{n} · 飞线充电" for n in (6, 5, 4, 3, 2)]
        assert "已吹哨，待应哨" in page.text
        assert page.button_texts()[-1] == "下一页 ▶"

        await press(api_server, page, "下一页")
        await until(api_server, lambda: "第 2/2 页" in page.text)
        assert case_buttons(page) == ["HB-000001 · 飞线充电"]
        assert page.button_texts()[-1] == "◀ 上一页"

        await press(api_server, page, "HB-000001")
        await until(api_server, lambda: "状态：" in page.text)
        assert "内容：第1件" in page.text and "办理过程" in page.text
        events = [line.split(" ", 2)[-1] for line in page.text.splitlines()[-2:]]
        assert events == ["提交", "吹哨派发 · 城市管理综合执法局"]  # one line each, in order
        assert page.button_texts() == ["↩️ 撤回", "« 返回列表"]

        await press(api_server, page, "撤回")
        await until(api_server, lambda: "确定要撤回 HB-000001 吗" in page.text)
        done = await choose(api_server, page, "确认撤回")
        assert done.text == "↩️ HB-000001 已撤回。"
        await until(api_server, lambda: "状态：已撤回" in page.text)
        assert "您撤回了案件" in page.text
        assert page.button_texts() == ["« 返回列表"]
        card = next(m for m in api_server.messages(CGZF) if "HB-000001" in (m.content or ""))
        await until(api_server, lambda: "↩️ 居民已撤回" in (card.content or ""))
        assert card.callback_data() == []

        await press(api_server, page, "返回列表")
        await until(api_server, lambda: "第 2/2 页" in page.text and "已撤回" in page.text)

        # Acknowledged between the two presses: the withdrawal is refused, nothing changes.
        await press(api_server, page, "上一页")
        await until(api_server, lambda: "第 1/2 页" in page.text)
        await press(api_server, page, "HB-000002")
        await until(api_server, lambda: "内容：第2件" in page.text)
        await press(api_server, page, "撤回")
        await until(api_server, lambda: "确定要撤回 HB-000002 吗" in page.text)
        await acknowledge(app, filed[1])
        await press(api_server, page, "确认撤回")
        refusal = api_server.callback_answers[-1]
        assert refusal.text == "HB-000002 已有部门应哨，不能撤回了。"
        assert refusal.show_alert is True
        assert (await case_rows(app))[1].status is CaseStatus.ACKNOWLEDGED

    async def test_in_english(self, app: Whistle, api_server: BotAPIServer) -> None:
        await say(api_server, "/start")
        await file_case(app, api_server, kind=CaseKind.SAY, description="More benches, please")
        await api_server.wait_for_message(RESIDENT)
        await say(api_server, "/lang en")
        page = await say(api_server, "📋 My cases")
        assert "My cases" in page.text and "page 1 of 1" in page.text
        assert "awaiting assignment" in page.text
        assert case_buttons(page) == ["HB-000001 · Post"]
        assert page.button_texts() == ["HB-000001 · Post"]
        await press(api_server, page, "HB-000001")
        await until(api_server, lambda: "Status:" in page.text)
        assert "Progress" in page.text
        assert "Details: More benches, please" in page.text
        assert "submitted" in page.text
        assert page.button_texts() == ["↩️ Withdraw", "« Back to the list"]


# -- rating -----------------------------------------------------------------------------------


async def answered_case(app: Whistle, api_server: BotAPIServer) -> tuple[Case, BotMessage]:
    """A case acknowledged and answered by its department; returns the rating question."""
    await say(api_server, "/start")
    case = await file_case(app, api_server)
    await acknowledge(app, case)
    await answer(app, case)
    *_, question = await api_server.wait_for_message(RESIDENT, count=4)
    assert question.button_texts() == ["😊 满意", "🙂 基本满意", "😞 不满意"]
    return case, question


class TestRating:
    async def test_unsatisfied_reopens_and_the_comment_reaches_the_card(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        case, question = await answered_case(app, api_server)
        await press(api_server, question, "不满意")
        reopened, prompt = await api_server.wait_for_message(RESIDENT, count=2)
        assert "HB-000001 已退回 城市管理综合执法局 重新办理" in reopened.text
        assert prompt.text.startswith("如有意见或补充")
        await until(api_server, lambda: question.text == "您对 HB-000001 的评价：不满意")
        assert question.callback_data() == []
        [row] = await case_rows(app)
        assert row.status is CaseStatus.REOPENED

        # Pressing a rating twice (a forged press: the buttons are gone) is refused.
        again = await press_data(api_server, question, f"r1:{case.id}:s")
        assert (again.text, again.show_alert) == ("HB-000001 已经评价过了。", True)

        thanks = await say(api_server, "充电桩还是没通电")
        assert thanks.text == "已收到您对 HB-000001 的意见，谢谢！"
        # The card gets its buttons back once the reopening's edit is sent.
        card = await until(
            api_server,
            lambda: next((m for m in api_server.messages(CGZF) if m.callback_data()), None),
        )
        await until(
            api_server,
            lambda: any(
                "充电桩还是没通电" in (m.content or "")
                and m.reply_to_message_id == card.message_id
                for m in api_server.messages(CGZF)
            ),
        )
        # While the case is reopened, plain text is a further comment on it.
        more = await say(api_server, "今天还是没电")
        assert more.text == "已收到您对 HB-000001 的意见，谢谢！"
        [row] = await case_rows(app)
        assert row.rating_comment == "今天还是没电"

    async def test_satisfied_closes_and_the_comment_can_be_skipped(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        _case, question = await answered_case(app, api_server)
        await press(api_server, question, "😊 满意")
        closed, _prompt = await api_server.wait_for_message(RESIDENT, count=2)
        assert closed.text == "🏁 HB-000001 已办结，感谢您的评价！"
        skipped = await say(api_server, "/skip")
        assert skipped.text == "好的，谢谢您的评价。"
        [row] = await case_rows(app)
        assert (row.status, row.rating) == (CaseStatus.CLOSED, closure.RATINGS["s"])
        assert row.rating_comment is None
        later = await say(api_server, "你好")  # no dialog and nothing reopened
        assert later.text.startswith("没看懂您的意思")

    async def test_rating_someone_elses_case_is_refused(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        case, _question = await answered_case(app, api_server)
        greeting = await say(api_server, "/start", user=NEIGHBOUR)
        refused = await press_data(api_server, greeting, f"r1:{case.id}:u", user=NEIGHBOUR)
        assert refused.text == "This button has expired. Please start again."
        [row] = await case_rows(app)
        assert row.status is CaseStatus.ANSWERED


# -- /cancel and bad input ----------------------------------------------------------------------


class TestBadInput:
    async def test_every_step_of_a_photo_report_refuses_what_does_not_fit(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        await say(api_server, "/report")
        api_server.send_voice(RESIDENT, b"ogg")
        api_server.send_sticker(RESIDENT)
        api_server.send_document(RESIDENT, b"%PDF", filename="a.pdf", mime_type="application/pdf")
        api_server.send_video(RESIDENT, b"mp4", caption="看视频")
        for refusal in await api_server.wait_for_message(RESIDENT, count=4):
            assert refusal.text.startswith("这一步需要照片")
        assert (await say(api_server, "楼下有垃圾")).text.startswith("请先发送照片")
        assert (await say(api_server, "/frobnicate")).text.startswith("没有这个命令")

        api_server.send_photo(RESIDENT, PHOTOS[0])
        await api_server.wait_for_message(RESIDENT)
        api_server.send_media_group(RESIDENT, PHOTOS[1:7])  # 1 + 6: two too many
        received, too_many = await api_server.wait_for_message(RESIDENT, count=2)
        assert received.text.startswith("照片已收到")
        assert too_many.text == "最多只能发 5 张照片，多出的照片没有收下。"

        too_long = await say(api_server, "长" * 5000)
        assert "1000" in too_long.text and "5000" in too_long.text
        categories = await say(api_server, "垃圾堆了一个星期")
        assert categories.text.startswith("🏷")
        assert (await say(api_server, "乱堆乱放")).text.startswith("请点上面消息里的按钮")
        await press(api_server, categories, "乱堆乱放")
        await api_server.wait_for_message(RESIDENT)
        api_server.send_sticker(RESIDENT)
        [refusal] = await api_server.wait_for_message(RESIDENT)
        assert refusal.text.startswith("这一步需要位置")
        address_too_long = await say(api_server, "址" * 301)
        assert "300" in address_too_long.text and "301" in address_too_long.text
        summary = await say(api_server, "新华西街道<script>&")
        assert "照片：5 张" in summary.text
        assert "内容：垃圾堆了一个星期" in summary.text
        assert "位置：新华西街道<script>&" in summary.text
        assert (await say(api_server, "好的")).text.startswith("请点上面消息里的按钮")

        cancelled = await say(api_server, "/cancel")
        assert cancelled.text == "已取消。"
        assert "📷 随手拍" in cancelled.button_texts()
        stale = await press_data(api_server, summary, data_of(summary, "确认提交"))
        assert (stale.text, stale.show_alert) == (STALE, True)
        assert await case_rows(app) == []

    async def test_text_steps_and_commands_inside_a_dialog(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        await say(api_server, "/ask")
        api_server.send_voice(RESIDENT, b"ogg")
        [refusal] = await api_server.wait_for_message(RESIDENT)
        assert refusal.text.startswith("这一步需要文字")
        assert (await say(api_server, "/help")).text.startswith("可用的命令")
        community = await say(api_server, "帮忙修水龙头")  # the dialog survived /help
        assert "社区" in community.text
        # The community is chosen with a button; typing is refused and changes nothing.
        assert "按钮" in (await say(api_server, "康乐社区")).text
        # A menu button starts afresh; the old dialog's buttons and state are gone.
        photos = await say(api_server, "📷 随手拍")
        assert photos.text.startswith("📷")
        assert (await say(api_server, "/start")).text.startswith("王晓霞，您好")
        assert (await say(api_server, "随便说说")).text.startswith("没看懂您的意思")
        assert (await say(api_server, "/cancel")).text == "当前没有进行中的操作。"
