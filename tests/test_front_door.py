"""/start, /lang, /help, the menu and bad input, end to end through the Bot API test server.

The resident is played by the test server's control API; the bot is the real application
talking HTTP to it. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import func, select

from bot.app import Whistle
from bot.testserver import BotAPIServer
from models import ProcessedUpdate, User
from tests.conftest import first_words, say, settled

RESIDENT = 7001


def reply_labels(message: Any) -> list[str]:
    markup = message.reply_markup or {}
    return [button["text"] for row in markup.get("keyboard", []) for button in row]


def inline_buttons(message: Any) -> list[dict[str, Any]]:
    markup = message.reply_markup or {}
    return [button for row in markup.get("inline_keyboard", []) for button in row]


class TestStart:
    async def test_greets_in_chinese_with_the_menu(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        reply = await first_words(api_server, RESIDENT, name="王<晓霞>", language="zh-hans")
        assert "海勃湾区" in reply.text
        assert "王<晓霞>" in reply.text  # shown as sent, because it was escaped in HTML
        assert reply.parse_mode == "HTML"
        # The menu, and for a newcomer a last row with every language in its own name.
        assert reply_labels(reply)[:4] == ["📷 随手拍", "🗣 我有话说", "🤝 邻里互助", "📋 我的案件"]
        assert sorted(reply_labels(reply)[4:]) == sorted(["中文", "English", "ᠮᠣᠩᠭᠣᠯ"])

    async def test_a_name_cannot_turn_the_greeting_around(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        # U+202E (right-to-left override) in a first name, and a left-open U+2067 (right-to-
        # left isolate): each is closed inside its own isolate (U+2068 … U+2069), so the rest
        # of the sentence keeps its direction.
        reply = await first_words(api_server, RESIDENT, name="Eve\u202e", language="en")
        assert "Hello, \u2068Eve\u202e\u2069!" in reply.text
        reply = await first_words(api_server, RESIDENT + 1, name="\u2067Mallory", language="en")
        assert "Hello, \u2068\u2067Mallory\u2069\u2069!" in reply.text
        # An ordinary name is left as it is.
        reply = await first_words(api_server, RESIDENT + 2, name="Alice", language="en")
        assert reply.text.startswith("Hello, Alice!")

    async def test_greets_in_english_when_the_app_is_in_english(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        reply = await first_words(api_server, RESIDENT, name="Alice", language="en-US")
        assert reply.text.startswith("Hello, Alice!")
        assert "📷 Photo report" in reply_labels(reply)

    async def test_commands_are_registered_in_both_languages(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        zh = api_server.commands(scope={"type": "all_private_chats"}, language_code="zh")
        en = api_server.commands(scope={"type": "all_private_chats"}, language_code="en")
        default = api_server.commands(scope={"type": "all_private_chats"}, language_code="")
        assert [c["command"] for c in en][:2] == ["start", "report"]
        assert {c["description"] for c in zh} == {c["description"] for c in default}
        assert "Photo report of a problem" in {c["description"] for c in en}


class TestLanguage:
    async def test_picker_switches_and_is_remembered(
        self, app: Whistle, api_server: BotAPIServer, factory: Any
    ) -> None:
        picker = await first_words(
            api_server, RESIDENT, name="Bao", language="zh-hans", text="/lang"
        )
        buttons = {b["text"]: b["callback_data"] for b in inline_buttons(picker)}
        assert set(buttons) == {"中文", "English", "ᠮᠣᠩᠭᠣᠯ"}

        api_server.press_button(RESIDENT, picker.message_id, buttons["English"])
        await api_server.wait_for(lambda s: len(s.callback_answers) == 1)
        assert api_server.callback_answers[0].text == "Language set to English."
        [menu] = await api_server.wait_for_message(RESIDENT)
        assert "📋 My cases" in reply_labels(menu)
        await api_server.wait_for(
            lambda s: s.messages(RESIDENT)[0].text == "Language set to English."
        )
        assert inline_buttons(api_server.messages(RESIDENT)[0]) == []  # picker is spent

        greeting = await say(api_server, RESIDENT, "/start")
        assert greeting.text.startswith("Hello, Bao!")
        async with factory() as session:
            user = await session.get(User, RESIDENT)
        assert user is not None
        assert user.language == "en"

    async def test_lang_with_an_argument_and_by_name(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        done = await first_words(api_server, RESIDENT, name="Li", language="en", text="/lang zh")
        assert done.text == "请用下方菜单选择："
        api_server.send_text(RESIDENT, "/lang")
        await api_server.wait_for_message(RESIDENT)
        refused = await say(api_server, RESIDENT, "Klingon")
        assert refused.text.startswith("没有找到这种语言")
        switched = await say(api_server, RESIDENT, "English")
        assert switched.text == "Choose from the menu below:"

    async def test_forged_language_button_is_refused(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        picker = await first_words(api_server, RESIDENT, name="Li", language="en", text="/lang")
        api_server.press_button(RESIDENT, picker.message_id, "l1:xx", force=True)
        api_server.press_button(RESIDENT, picker.message_id, "garbage", force=True)
        await api_server.wait_for(lambda s: len(s.callback_answers) == 2)
        for answer in api_server.callback_answers:
            assert answer.text == "This button has expired. Please start again."
            assert answer.show_alert is True
        assert len(api_server.messages(RESIDENT)) == 1


class TestBadInput:
    async def test_unknown_command_sticker_and_menu_button(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        api_server.add_user(RESIDENT, first_name="Li", language_code="en")
        api_server.send_text(RESIDENT, "/frobnicate")
        api_server.send_sticker(RESIDENT)
        api_server.send_text(RESIDENT, "📋 My cases")
        api_server.send_text(RESIDENT, "/help")
        replies = await api_server.wait_for_message(RESIDENT, count=4)
        assert replies[0].text.startswith("There is no such command.")
        assert replies[1].text.startswith("Sorry, I didn't understand.")
        assert replies[2].text.startswith("You have not filed any cases yet.")
        assert "/report — Photo report of a problem" in replies[3].text

    async def test_a_command_that_works_elsewhere_says_where(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        bind = await first_words(
            api_server, RESIDENT, name="王晓霞", language="zh-hans", text="/bind cgzf"
        )
        assert bind.text.startswith("/bind 要在工作群里使用")
        bundle = await say(api_server, RESIDENT, "/bundle HB-000001 HB-000002")
        assert bundle.text.startswith("/bundle 要在街道或综治中心的工作群里使用")
        skip = await say(api_server, RESIDENT, "/skip")
        assert skip.text == "现在没有可以跳过的步骤。"
        # A private chat's command in a work group is told where it works, as a reply.
        cgzf = -1001000000021
        api_server.create_group(cgzf, "城管", members=[RESIDENT])
        sent = api_server.send_text(RESIDENT, "/dashboard", chat_id=cgzf)
        [where] = await api_server.wait_for_message(cgzf)
        assert where.text.startswith("/dashboard 请私聊机器人使用")
        assert where.reply_to_message_id == sent["message_id"]

    async def test_group_messages_get_no_answer(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        api_server.add_user(RESIDENT, first_name="Li", language_code="en")
        api_server.create_group(-100555, "Some group", members=[RESIDENT])
        api_server.send_text(RESIDENT, "hello", chat_id=-100555)
        api_server.send_text(RESIDENT, "/start")  # a private message as a marker
        await api_server.wait_for_message(RESIDENT)
        assert api_server.messages(-100555) == []


class TestFlood:
    async def test_a_flood_gets_one_answer_and_one_notice_and_others_are_answered(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        neighbour = RESIDENT + 1
        api_server.add_user(RESIDENT, first_name="王晓霞", language_code="zh-hans")
        api_server.add_user(neighbour, first_name="李明", language_code="zh-hans")
        async with app.factory() as session:
            before = await session.scalar(select(func.count()).select_from(ProcessedUpdate))
        # Fifty messages at once (faster than anyone types), and a neighbour's /start among
        # them.
        for index in range(50):
            api_server.send_text(RESIDENT, f"在吗{index}")
            if index == 25:
                api_server.send_text(neighbour, "/start")
        [greeting] = await api_server.wait_for_message(neighbour)
        assert "海勃湾区" in greeting.text

        async def handled() -> int:
            async with app.factory() as session:
                count = await session.scalar(select(func.count()).select_from(ProcessedUpdate))
            return int(count or 0) - int(before or 0)

        deadline = asyncio.get_running_loop().time() + 20
        while await handled() < 51:
            assert asyncio.get_running_loop().time() < deadline, "updates not handled"
            await asyncio.sleep(0.05)
        await settled(app)
        # The first messages are handled as usual, yet "not understood" is said once; the
        # rest of the burst is not handled, and one notice says so.
        texts = [m.text for m in api_server.messages(RESIDENT)]
        assert texts == [
            "没看懂您的意思。请用下方菜单选择要做的事，或发送 /help 查看帮助。",
            "您发得太快了，刚才连续发来的消息没有处理。请稍等几秒，再一条一条发送。",
        ]
