"""Envelope, routing, getMe, sending text and Telegram's private-chat rules."""

from __future__ import annotations

import aiohttp
import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyParameters,
)

from bot.testserver import BotAPIServer

from .conftest import TOKEN, USER


async def test_get_me_describes_the_bot(tg_bot: Bot) -> None:
    me = await tg_bot.get_me()
    assert me.id == 123456
    assert me.is_bot
    assert me.username == "whistle_test_bot"
    assert me.can_join_groups is True
    assert me.can_read_all_group_messages is False
    assert me.supports_inline_queries is False


async def test_envelope_errors_and_encodings(api_server: BotAPIServer, user: int) -> None:
    base = api_server.base_url
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/bot999:nope/getMe") as resp:
            assert resp.status == 401
            assert await resp.json() == {
                "ok": False,
                "error_code": 401,
                "description": "Unauthorized",
            }
        async with http.post(f"{base}/bot{TOKEN}/noSuchMethod") as resp:
            assert resp.status == 404
            assert (await resp.json())["description"] == "Not Found"
        # Method names are case-insensitive; GET query strings work.
        async with http.get(f"{base}/bot{TOKEN}/GETME") as resp:
            assert (await resp.json())["result"]["id"] == 123456
        async with http.get(
            f"{base}/bot{TOKEN}/sendMessage", params={"chat_id": str(user), "text": "q"}
        ) as resp:
            assert (await resp.json())["result"]["text"] == "q"
        async with http.post(
            f"{base}/bot{TOKEN}/sendMessage", json={"chat_id": user, "text": "json"}
        ) as resp:
            assert (await resp.json())["result"]["text"] == "json"
        async with http.post(
            f"{base}/bot{TOKEN}/sendmessage", data={"chat_id": str(user), "text": "form"}
        ) as resp:
            body = await resp.json()
            assert body["ok"] is True
            assert body["result"]["chat"] == {
                "id": user,
                "type": "private",
                "first_name": "Alice",
                "username": "alice",
            }
    assert [m.text for m in api_server.sent_in(user)] == ["q", "json", "form"]
    assert [r.method for r in api_server.calls("sendMessage")] == ["sendMessage"] * 3


async def test_send_text_is_recorded(api_server: BotAPIServer, tg_bot: Bot, user: int) -> None:
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Yes", callback_data="vote:yes")]]
    )
    first = await tg_bot.send_message(user, "Hello", reply_markup=keyboard)
    second = await tg_bot.send_message(
        user, "Again", reply_parameters=ReplyParameters(message_id=first.message_id)
    )
    assert second.message_id == first.message_id + 1
    assert second.reply_to_message is not None
    assert second.reply_to_message.text == "Hello"
    assert first.from_user is not None and first.from_user.id == 123456
    assert first.reply_markup is not None
    assert first.reply_markup.model_dump(exclude_none=True) == keyboard.model_dump(
        exclude_none=True
    )

    record = api_server.last_message(user)
    assert record is not None
    assert record.text == "Again"
    assert record.reply_to_message_id == first.message_id
    assert record.method == "sendMessage"
    earlier = api_server.sent_in(user)[0]
    assert earlier.callback_data() == ["vote:yes"]
    assert earlier.button_texts() == ["Yes"]


async def test_reply_keyboard_is_recorded_but_not_echoed(
    api_server: BotAPIServer, tg_bot: Bot, user: int
) -> None:
    markup = ReplyKeyboardMarkup(keyboard=[[KeyboardButton(text="Report")]], resize_keyboard=True)
    message = await tg_bot.send_message(user, "Pick", reply_markup=markup)
    assert message.reply_markup is None  # Telegram only echoes inline keyboards
    record = api_server.last_message(user)
    assert record is not None
    assert record.reply_markup == {"keyboard": [[{"text": "Report"}]], "resize_keyboard": True}


async def test_private_chat_rules(api_server: BotAPIServer, tg_bot: Bot) -> None:
    api_server.add_user(USER, "Alice")
    with pytest.raises(TelegramForbiddenError, match="bot can't initiate conversation"):
        await tg_bot.send_message(USER, "hi")
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await tg_bot.send_message(777, "hi")
    api_server.send_text(USER, "hello")
    await tg_bot.send_message(USER, "hi")
    api_server.block_bot(USER)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await tg_bot.send_message(USER, "still there?")
    api_server.send_text(USER, "/start")  # writing again unblocks, like "Restart bot"
    await tg_bot.send_message(USER, "welcome back")
    api_server.deactivate_user(USER)
    with pytest.raises(TelegramForbiddenError, match="user is deactivated"):
        await tg_bot.send_message(USER, "gone")


async def test_reply_to_missing_message(tg_bot: Bot, user: int) -> None:
    with pytest.raises(TelegramBadRequest, match="message to be replied not found"):
        await tg_bot.send_message(user, "x", reply_parameters=ReplyParameters(message_id=999))
    sent = await tg_bot.send_message(
        user,
        "x",
        reply_parameters=ReplyParameters(message_id=999, allow_sending_without_reply=True),
    )
    assert sent.reply_to_message is None


async def test_message_ids_and_user_entities(api_server: BotAPIServer, tg_bot: Bot) -> None:
    sent = api_server.send_text(USER, "/report@whistle_test_bot ask @bob see https://x.org")
    types = [(e["type"], e["offset"], e["length"]) for e in sent["entities"]]
    assert types == [("bot_command", 0, 24), ("mention", 29, 4), ("url", 38, 13)]
    updates = await tg_bot.get_updates()
    assert updates[0].message is not None
    assert updates[0].message.from_user is not None
    assert updates[0].message.from_user.language_code == "zh-hans"
    reply = await tg_bot.send_message(USER, "ok")
    assert reply.message_id == sent["message_id"] + 1
    assert [m["message_id"] for m in api_server.history(USER)] == [1, 2]
