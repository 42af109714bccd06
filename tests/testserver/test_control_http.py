"""The /control HTTP endpoints that let another process or a web page drive the server."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import aiohttp
from aiogram import Bot
from aiogram.exceptions import TelegramRetryAfter
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.testserver import BotAPIServer

from .test_media import png


async def control(
    server: BotAPIServer, action: str, payload: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{server.base_url}/control/{action}", json=payload or {}) as resp,
    ):
        return resp.status, dict(await resp.json())


async def read(server: BotAPIServer, path: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{server.base_url}{path}") as resp:
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        return dict(await resp.json())


async def test_drive_a_conversation_over_http(api_server: BotAPIServer, tg_bot: Bot) -> None:
    status, body = await control(
        api_server, "add_user", {"user_id": 9, "first_name": "Web", "language_code": "en"}
    )
    assert status == 200 and body["result"]["first_name"] == "Web"
    status, body = await control(api_server, "send_text", {"user_id": 9, "text": "/start"})
    assert body["result"]["entities"][0]["type"] == "bot_command"
    updates = await tg_bot.get_updates()
    assert updates[0].message is not None and updates[0].message.text == "/start"

    markup = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Go", callback_data="go")]]
    )
    sent = await tg_bot.send_message(9, "Choose", reply_markup=markup)
    messages = await read(api_server, "/control/messages?chat_id=9")
    assert [m["text"] for m in messages["result"]] == ["Choose"]
    assert messages["result"][0]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "go"

    status, body = await control(
        api_server,
        "press_button",
        {"user_id": 9, "message_id": sent.message_id, "callback_data": "go"},
    )
    assert status == 200 and body["result"]["data"] == "go"
    status, body = await control(
        api_server,
        "press_button",
        {"user_id": 9, "message_id": sent.message_id, "callback_data": "missing"},
    )
    assert status == 400 and "no button" in body["description"]

    photo = base64.b64encode(png(64, 48)).decode()
    status, body = await control(api_server, "send_photo", {"user_id": 9, "data_base64": photo})
    file_id = body["result"]["photo"][-1]["file_id"]
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{api_server.base_url}/control/file", params={"file_id": file_id}) as resp,
    ):
        assert await resp.read() == png(64, 48)

    history = await read(api_server, "/control/history?chat_id=9")
    assert len(history["result"]) == 3
    requests = await read(api_server, "/control/requests?method=sendMessage")
    assert [r["method"] for r in requests["result"]] == ["sendMessage"]


async def test_faults_limits_and_state_over_http(
    api_server: BotAPIServer, tg_bot: Bot, user: int
) -> None:
    status, _ = await control(
        api_server, "fail_next", {"status": 429, "retry_after": 2, "method": "sendMessage"}
    )
    assert status == 200
    try:
        await tg_bot.send_message(user, "x")
    except TelegramRetryAfter as exc:
        assert exc.retry_after == 2
    else:
        raise AssertionError("the injected 429 did not happen")
    await control(api_server, "enforce_limits", {"per_group_per_minute": 5})
    await control(
        api_server,
        "create_group",
        {"chat_id": -100321, "title": "Board", "members": [user], "bot_status": "administrator"},
    )
    state = await read(api_server, "/control/state")
    result = state["result"]
    assert result["limits"]["enabled"] is True and result["limits"]["per_group_per_minute"] == 5
    assert result["chats"][0]["members"] == {str(user): "member", "123456": "administrator"}
    assert result["bots"][0]["username"] == "whistle_test_bot"
    assert result["stats"]["429"] == 1

    status, body = await control(api_server, "no_such_action")
    assert status == 404
    status, body = await control(api_server, "send_text", {"user_id": 1})
    assert status == 400 and "missing a required argument" in body["description"]
    status, body = await control(api_server, "reset")
    assert status == 200
    assert (await read(api_server, "/control/state"))["result"]["chats"] == []


async def test_event_feed_and_wait_over_http(api_server: BotAPIServer, tg_bot: Bot) -> None:
    await control(api_server, "send_text", {"user_id": 5, "text": "hello"})
    feed = await read(api_server, "/control/events")
    kinds = [event["kind"] for event in feed["result"]]
    assert kinds == ["user_message", "update"]
    last_seq = feed["result"][-1]["seq"]

    async def reply_later() -> None:
        await asyncio.sleep(0.05)
        await tg_bot.send_message(5, "hi there")

    task = asyncio.create_task(reply_later())
    waited = await read(api_server, f"/control/events?after={last_seq}&timeout=2")
    assert waited["result"][0]["kind"] == "bot_message"
    await task
    status, body = await control(
        api_server, "wait_for_message", {"chat_id": 5, "count": 1, "timeout": 1}
    )
    assert status == 200 and body["result"][0]["text"] == "hi there"
    status, body = await control(
        api_server, "wait_for_message", {"chat_id": 5, "count": 1, "timeout": 0.05}
    )
    assert status == 408 and "timed out" in body["description"]
