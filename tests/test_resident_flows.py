"""The resident's side end to end: 随手拍, 我有话说, 邻里互助, /my with timelines and
withdrawal, rating, /cancel and bad input, through the Bot API test server.

Every test runs on SQLite and PostgreSQL. The district is config.example.toml; its groups are
created in the test server before the application starts.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col

from bot.app import Whistle
from bot.db import transaction
from bot.district import District
from bot.services import cases
from bot.testserver import BotAPIServer, BotMessage
from models import Case, CaseKind, CaseStatus
from tests.conftest import AppFactory

RESIDENT = 7101
NEIGHBOUR = 7102
STAFF = 7201
CGZF = -1001000000021  # 城市管理综合执法局, where flying-wire reports go
CENTER = -1001000000001
VOLUNTEERS = -1001000000003
PHOTOS = [f"photo-{i}".encode() for i in range(8)]
STALE = "这个按钮已失效，请重新操作。"


@pytest.fixture
async def app(api_server: BotAPIServer, make_app: AppFactory, district: District) -> Whistle:
    """The application with every group of the district in place and two residents."""
    api_server.add_user(RESIDENT, first_name="王晓霞", username="wangxx", language_code="zh-hans")
    api_server.add_user(NEIGHBOUR, first_name="Li", language_code="en")
    api_server.add_user(STAFF, first_name="赵工")
    for chat_id in district.configured_chat_ids():
        api_server.create_group(chat_id, f"group {chat_id}", members=[STAFF])
    return await make_app()


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


async def press_data(
    api_server: BotAPIServer, message: BotMessage, data: str, user: int = RESIDENT
) -> Any:
    """Press (forcing any data) and return the callback answer."""
    answered = len(api_server.callback_answers)
    api_server.press_button(user, message.message_id, data, force=True)
    await api_server.wait_for(lambda s: len(s.callback_answers) > answered)
    return api_server.callback_answers[-1]


async def until(api_server: BotAPIServer, check: Any) -> None:
    await api_server.wait_for(lambda _s: check())


async def case_rows(app: Whistle) -> list[Case]:
    async with transaction(app.factory) as session:
        return list((await session.scalars(select(Case).order_by(col(Case.id)))).all())


async def photo_report_to_summary(api_server: BotAPIServer, description: str) -> BotMessage:
    """📷 随手拍 with an album of two, a description, 飞线充电 and a typed address."""
    await say(api_server, "📷 随手拍")
    api_server.send_media_group(RESIDENT, PHOTOS[:2])
    [received] = await api_server.wait_for_message(RESIDENT)
    assert received.text.startswith("照片已收到")
    category_question = await say(api_server, description)
    assert "飞线充电" in category_question.button_texts()
    await press(api_server, category_question, "飞线充电")
    [location_question] = await api_server.wait_for_message(RESIDENT)
    assert location_question.text.startswith("📍")
    await until(api_server, lambda: category_question.text == "✔️ 飞线充电")
    return await say(api_server, "康乐小区3号楼北侧")


async def file_case(
    app: Whistle, *, kind: CaseKind = CaseKind.REPORT, minutes: int = 0, **values: Any
) -> Case:
    """A case filed through the service layer, as if through the dialog."""
    draft = cases.Draft(kind=kind, **values)
    if kind is CaseKind.REPORT:
        draft.photos = draft.photos or ["file-1"]
        draft.category = draft.category or "flying_wire"
    draft.description = draft.description or "楼道飞线充电"
    async with transaction(app.factory) as session:
        case = await cases.submit(
            session,
            app.district,
            resident=cases.Person(RESIDENT, "王晓霞", "zh-Hans"),
            draft=draft,
            now=app.clock.now() + timedelta(minutes=minutes),
        )
    app.sender.wake()
    return case


STAFF_PERSON = cases.Person(STAFF, "赵工", "zh-Hans")


async def acknowledge(app: Whistle, case: Case) -> None:
    assert case.id is not None and case.department is not None
    async with transaction(app.factory) as session:
        await cases.acknowledge(
            session,
            app.district,
            case_id=case.id,
            department=case.department,
            actor=STAFF_PERSON,
            now=app.clock.now(),
        )
    app.sender.wake()


async def answer(app: Whistle, case: Case) -> None:
    assert case.id is not None and case.department is not None
    async with transaction(app.factory) as session:
        await cases.answer(
            session,
            app.district,
            case_id=case.id,
            department=case.department,
            actor=STAFF_PERSON,
            text="已拆除飞线",
            photos=[],
            now=app.clock.now(),
        )
    app.sender.wake()


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
        await press(api_server, summary, "确认提交")
        [receipt] = await api_server.wait_for_message(RESIDENT)
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
        await press(api_server, summary, "确认提交")
        [receipt] = await api_server.wait_for_message(RESIDENT)
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
        await press(api_server, summary, "修改内容")
        [question] = await api_server.wait_for_message(RESIDENT)
        assert question.text.startswith("✏️")
        await until(api_server, lambda: summary.callback_data() == [])
        again = await say(api_server, "人行道塌陷一米见方")
        assert "内容：人行道塌陷一米见方" in again.text
        await press(api_server, again, "修改分类")
        [categories] = await api_server.wait_for_message(RESIDENT)
        await press(api_server, categories, "道路破损")
        [third] = await api_server.wait_for_message(RESIDENT)
        assert "分类：道路破损" in third.text
        assert "位置：康乐小区3号楼北侧" in third.text
        await press(api_server, third, "确认提交")
        [receipt] = await api_server.wait_for_message(RESIDENT)
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
