"""Languages end to end: the newcomer's language row at /start, the /lang picker with every
catalogue, a group's own language set by its admins (cards, their edits and reports follow it),
and dates and numbers written the way each language writes them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.app import Whistle
from bot.clock import ManualClock
from bot.db import transaction
from bot.i18n import Catalogues, available_languages, when
from bot.services import cases, reports
from bot.services.users import set_chat_language
from bot.testserver import BotAPIServer
from models import ChatLanguage, User
from tests.casework import file_photo_report
from tests.conftest import AppFactory, first_words, say, settled

RESIDENT, CLERK, GROUP_ADMIN, OUTSIDER = 7400, 9031, 9530, 9999
STAFF = 100000007  # a market regulation clerk with a dashboard in config.example.toml
CENTER = -1001000000001
CGZF = -1001000000021  # 城管执法局 in config.example.toml
MONGOLIAN = "mn-Mong"


def reply_rows(message: Any) -> list[list[str]]:
    markup = message.reply_markup or {}
    return [[button["text"] for button in row] for row in markup.get("keyboard", [])]


def inline_labels(message: Any) -> dict[str, str]:
    markup = message.reply_markup or {}
    return {
        b["text"]: b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row
    }


def self_names() -> list[str]:
    catalogues = Catalogues("zh-Hans")
    return [catalogues.translator(code)("lang.self-name") for code in catalogues.languages]


class TestThreeLanguages:
    def test_mongolian_ships_beside_chinese_and_english(self) -> None:
        assert set(available_languages()) == {"zh-Hans", "en", MONGOLIAN}
        assert sorted(self_names()) == sorted(["中文", "English", "ᠮᠣᠩᠭᠣᠯ"])


class TestNewcomer:
    async def test_the_first_menu_offers_every_language_and_a_tap_switches(
        self, make_app: AppFactory, api_server: BotAPIServer
    ) -> None:
        app = await make_app()
        greeting = await first_words(api_server, RESIDENT, name="Bayar", language="zh-hans")
        rows = reply_rows(greeting)
        assert rows[:2] == [["📷 随手拍", "🗣 我有话说"], ["🤝 邻里互助", "📋 我的案件"]]
        assert sorted(rows[2]) == sorted(self_names())
        assert "菜单最后一行可以切换语言" in greeting.text

        menu = await say(api_server, RESIDENT, "ᠮᠣᠩᠭᠣᠯ")  # the button sends its label
        mongolian = app.catalogues.translator(MONGOLIAN)
        assert menu.text == mongolian("start.menu-hint")
        assert reply_rows(menu) == [
            [mongolian("menu.report"), mongolian("menu.say")],
            [mongolian("menu.ask"), mongolian("menu.my")],
        ]
        async with app.factory() as session:
            user = await session.get(User, RESIDENT)
        assert user is not None and user.language == MONGOLIAN
        # Their Telegram app is in Chinese: their own command menu is now in Mongolian.
        await settled(app)
        own = api_server.commands(scope={"type": "chat", "chat_id": RESIDENT})
        assert [c["command"] for c in own][:2] == ["start", "report"]
        assert own[1]["description"] == mongolian("commands.report")
        assert "dashboard" not in [c["command"] for c in own]

        # Chosen once, the row is gone; the greeting is in the language chosen.
        again = await say(api_server, RESIDENT, "/start")
        assert len(reply_rows(again)) == 2
        assert mongolian("start.intro") in again.text

    async def test_the_command_menu_is_registered_in_mongolian(
        self, make_app: AppFactory, api_server: BotAPIServer
    ) -> None:
        app = await make_app()
        menu = api_server.commands(scope={"type": "all_private_chats"}, language_code="mn")
        mongolian = app.catalogues.translator(MONGOLIAN)
        assert [c["command"] for c in menu][:2] == ["start", "report"]
        assert menu[1]["description"] == mongolian("commands.report")

    async def test_the_lang_picker_lists_every_language_in_its_own_name(
        self, make_app: AppFactory, api_server: BotAPIServer
    ) -> None:
        app = await make_app()
        picker = await first_words(api_server, RESIDENT, name="Bayar", language="en", text="/lang")
        buttons = inline_labels(picker)
        assert sorted(buttons) == sorted(self_names())
        assert all(len(data.encode()) <= 64 for data in buttons.values())
        api_server.press_button(RESIDENT, picker.message_id, buttons["ᠮᠣᠩᠭᠣᠯ"])
        await api_server.wait_for(lambda s: len(s.callback_answers) == 1)
        mongolian = app.catalogues.translator(MONGOLIAN)
        assert api_server.callback_answers[0].text == mongolian("lang.changed")

    async def test_staff_keep_their_staff_commands_in_the_language_they_choose(
        self, make_app: AppFactory, api_server: BotAPIServer
    ) -> None:
        app = await make_app()
        api_server.add_user(STAFF, first_name="Li", language_code="zh-hans")
        api_server.send_text(STAFF, "/start")  # after the service started: the menu comes now
        await api_server.wait_for_message(STAFF)
        await settled(app)
        own = api_server.commands(scope={"type": "chat", "chat_id": STAFF})
        assert {c["command"]: c["description"] for c in own}[
            "dashboard"
        ] == app.catalogues.translator("zh-Hans")("commands.dashboard")
        api_server.send_text(STAFF, "/lang English")
        await api_server.wait_for_message(STAFF)
        await settled(app)
        own = api_server.commands(scope={"type": "chat", "chat_id": STAFF})
        descriptions = {c["command"]: c["description"] for c in own}
        english = app.catalogues.translator("en")
        assert descriptions["dashboard"] == english("commands.dashboard")
        assert descriptions["report"] == english("commands.report")


@pytest.fixture
async def groups(api_server: BotAPIServer, make_app: AppFactory) -> Whistle:
    api_server.create_group(CENTER, "综治中心", members=[OUTSIDER])
    api_server.create_group(CGZF, "城管执法局", members=[CLERK], admins=[GROUP_ADMIN])
    app = await make_app(clock=ManualClock(datetime(2026, 1, 5, 1, 0, tzinfo=UTC)))
    await api_server.wait_for_message(CENTER)  # the start-up check's note
    return app


async def file_report(app: Whistle, api_server: BotAPIServer) -> cases.Case:
    """A new resident, Bayar, reports a flying wire with a photo; it goes to 城管执法局."""
    scratch = -1005556
    api_server.add_user(RESIDENT, first_name="Bayar", language_code="zh-hans")
    api_server.create_group(scratch, "Scratch", members=[RESIDENT])
    return await file_photo_report(
        app, api_server, resident=RESIDENT, scratch=scratch, name="Bayar"
    )


class TestGroupLanguage:
    async def test_only_an_admin_sets_it_and_the_cards_follow(
        self, groups: Whistle, api_server: BotAPIServer
    ) -> None:
        app = groups
        # A member who is not an admin is refused, in the group's current language.
        api_server.send_text(CLERK, "/lang", chat_id=CGZF)
        [refused] = await api_server.wait_for_message(CGZF)
        assert refused.text == "只有本群的管理员可以更改本群的语言。"

        api_server.send_text(GROUP_ADMIN, "/lang", chat_id=CGZF)
        [picker] = await api_server.wait_for_message(CGZF)
        assert picker.text.startswith("请选择本群使用的语言")
        buttons = inline_labels(picker)
        assert sorted(buttons) == sorted(self_names())

        # A member's press on the picker changes nothing.
        answers = len(api_server.callback_answers)
        api_server.press_button(CLERK, picker.message_id, buttons["English"], chat_id=CGZF)
        await api_server.wait_for(lambda s: len(s.callback_answers) > answers)
        assert api_server.callback_answers[-1].text == "只有本群的管理员可以更改本群的语言。"
        async with app.factory() as session:
            assert await session.get(ChatLanguage, CGZF) is None

        api_server.press_button(GROUP_ADMIN, picker.message_id, buttons["English"], chat_id=CGZF)
        await api_server.wait_for(
            lambda s: s.messages(CGZF)[1].text == "This group now gets its messages in English."
        )
        assert inline_labels(api_server.messages(CGZF)[1]) == {}  # the picker is spent

        case = await file_report(app, api_server)
        [card] = await api_server.wait_for_message(CGZF)
        assert card.button_texts() == ["✅ Acknowledge", "📝 Answer", "↪️ Not ours"]
        assert "Details: 楼道里有人飞线充电" in card.caption
        assert case.number in card.caption

        # Switched again by typing, the card's next edit is in the new language.
        api_server.send_text(GROUP_ADMIN, "/lang ᠮᠣᠩᠭᠣᠯ", chat_id=CGZF)
        mongolian = app.catalogues.translator(MONGOLIAN)
        [changed] = await api_server.wait_for_message(CGZF)
        assert changed.text == mongolian("lang.group-changed")
        await settled(app)
        answers = len(api_server.callback_answers)
        api_server.press_button(CLERK, card.message_id, card.callback_data()[0], chat_id=CGZF)
        await api_server.wait_for(lambda s: len(s.callback_answers) > answers)
        await api_server.wait_for(
            lambda s: (
                mongolian("card.button.answer")
                in s.messages(CGZF)[card_index(s, card.message_id)].button_texts()
            )
        )

    async def test_unknown_language_is_refused_and_changes_nothing(
        self, groups: Whistle, api_server: BotAPIServer
    ) -> None:
        api_server.send_text(GROUP_ADMIN, "/lang klingon", chat_id=CGZF)
        [refused] = await api_server.wait_for_message(CGZF)
        assert refused.text.startswith("没有找到这种语言")
        async with groups.factory() as session:
            assert await session.get(ChatLanguage, CGZF) is None

    async def test_reports_go_to_a_group_in_its_language(self, groups: Whistle) -> None:
        app = groups
        async with transaction(app.factory) as session:
            assert await reports.recipients(session, app.district) == [(CENTER, "zh-Hans")]
            await set_chat_language(
                session,
                chat_id=CENTER,
                language=MONGOLIAN,
                supported=app.district.languages,
                by=1,
                now=app.clock.now(),
            )
        async with transaction(app.factory) as session:
            assert await reports.recipients(session, app.district) == [(CENTER, MONGOLIAN)]


def card_index(server: BotAPIServer, message_id: int) -> int:
    messages = server.messages(CGZF)
    return next(i for i, m in enumerate(messages) if m.message_id == message_id)


class TestFormats:
    catalogues = Catalogues("zh-Hans", zone=ZoneInfo("Asia/Shanghai"))
    moment = datetime(2026, 1, 20, 1, 5, tzinfo=UTC)  # 09:05 in the district

    @pytest.mark.parametrize("language", available_languages())
    def test_times_are_in_the_district_zone_in_each_languages_pattern(self, language: str) -> None:
        written = self.catalogues.moment(self.moment.isoformat(), language)
        assert "2026" in written and "09:05" in written and "20" in written
        assert self.catalogues.moment(self.moment.isoformat(), language, date_only=True) in (
            written.replace(" 09:05", ""),
            written.split(" 09:05")[0],
        )

    def test_chinese_and_english_keep_the_numeric_form(self) -> None:
        for language in ("zh-Hans", "en"):
            assert self.catalogues.moment(self.moment.isoformat(), language) == "2026-01-20 09:05"

    def test_mongolian_writes_the_year_month_and_day_in_words(self) -> None:
        written = self.catalogues.moment(self.moment.isoformat(), MONGOLIAN)
        assert any("\u1800" <= ch <= "\u18af" for ch in written), written

    def test_parameters_marked_as_times_are_written_for_the_reader(self) -> None:
        params = {"time": when(self.moment), "n": 3}
        assert self.catalogues.localise(params, "en") == {"time": "2026-01-20 09:05", "n": 3}
        mongolian = self.catalogues.localise(params, MONGOLIAN)["time"]
        assert (
            mongolian
            == self.catalogues.moment(self.moment.isoformat(), MONGOLIAN)
            != ("2026-01-20 09:05")
        )

    def test_rates_and_counts_through_babel(self) -> None:
        env = self.catalogues.env("en")
        assert env.globals["percent"](0.8571) == "85.7%"
        assert env.globals["number"](12345) == "12,345"
