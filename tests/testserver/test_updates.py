"""getUpdates long polling, offsets, callback queries and webhook delivery."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramConflictError
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiohttp import web

from bot.testserver import BotAPIServer

from .conftest import USER, make_bot


async def test_button_press_round_trip(api_server: BotAPIServer, tg_bot: Bot, user: int) -> None:
    markup = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Accept", callback_data="case:7:accept")]]
    )
    message = await tg_bot.send_message(user, "New case", reply_markup=markup)
    with pytest.raises(ValueError, match="no button with callback_data 'case:7:nope'"):
        api_server.press_button(user, message.message_id, "case:7:nope")
    forged = api_server.press_button(user, message.message_id, "case:7:nope", force=True)
    pressed = api_server.press_button(user, message.message_id, "case:7:accept")

    updates = await tg_bot.get_updates(timeout=1)
    queries = [u.callback_query for u in updates if u.callback_query is not None]
    assert [q.data for q in queries] == ["case:7:nope", "case:7:accept"]
    query = queries[1]
    assert query.id == pressed["id"] != forged["id"]
    assert query.from_user.id == user
    assert query.message is not None and query.message.message_id == message.message_id
    assert query.chat_instance

    assert await tg_bot.answer_callback_query(query.id, text="Accepted", show_alert=True)
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await tg_bot.answer_callback_query(query.id)
    with pytest.raises(TelegramBadRequest, match="query ID is invalid"):
        await tg_bot.answer_callback_query("12345")
    answer = api_server.callback_answers[0]
    assert (answer.callback_query_id, answer.text, answer.show_alert) == (
        query.id,
        "Accepted",
        True,
    )


async def test_callback_queries_expire() -> None:
    now = [100.0]
    async with BotAPIServer(tokens=["1:T"], clock=lambda: now[0]) as server:
        bot = make_bot(server, "1:T")
        try:
            server.send_text(USER, "hi")
            message = await bot.send_message(
                USER,
                "q",
                reply_markup=InlineKeyboardMarkup(
                    inline_keyboard=[[InlineKeyboardButton(text="b", callback_data="b")]]
                ),
            )
            query = server.press_button(USER, message.message_id, "b")
            now[0] += 16
            with pytest.raises(TelegramBadRequest, match="query is too old"):
                await bot.answer_callback_query(query["id"])
        finally:
            await bot.session.close()


async def test_long_poll_wakes_and_offsets_confirm(api_server: BotAPIServer, tg_bot: Bot) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    poll = asyncio.create_task(tg_bot.get_updates(timeout=5))
    await asyncio.sleep(0.05)
    assert not poll.done()
    api_server.send_text(USER, "wake up")
    updates = await asyncio.wait_for(poll, 2)
    assert loop.time() - started < 1.5
    assert [u.message.text for u in updates if u.message] == ["wake up"]

    api_server.send_text(USER, "second")
    api_server.send_text(USER, "third")
    again = await tg_bot.get_updates()
    assert [u.update_id for u in again] == [updates[0].update_id + i for i in range(3)]
    # Confirming with offset = last id + 1 forgets everything before it.
    after = await tg_bot.get_updates(offset=again[1].update_id)
    assert [u.message.text for u in after if u.message] == ["second", "third"]
    assert await tg_bot.get_updates(offset=again[-1].update_id + 1) == []
    assert api_server.pending_updates() == []
    empty = await tg_bot.get_updates(timeout=0)
    assert empty == []


async def test_allowed_updates_filter(api_server: BotAPIServer, tg_bot: Bot, user: int) -> None:
    queued = await tg_bot.get_updates(allowed_updates=["callback_query"])
    assert [u.message.text for u in queued if u.message] == ["/start"]  # queued before
    await tg_bot.get_updates(offset=queued[-1].update_id + 1)
    api_server.send_text(USER, "not wanted")
    assert await tg_bot.get_updates() == []
    message = await tg_bot.send_message(
        user,
        "q",
        reply_markup=InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="b", callback_data="b")]]
        ),
    )
    api_server.press_button(USER, message.message_id, "b")
    wanted = await tg_bot.get_updates()
    assert [u.callback_query.data for u in wanted if u.callback_query] == ["b"]


async def test_newer_poll_terminates_older(api_server: BotAPIServer, tg_bot: Bot) -> None:
    older = asyncio.create_task(tg_bot.get_updates(timeout=5))
    await asyncio.sleep(0.05)
    newer = asyncio.create_task(tg_bot.get_updates(timeout=0))
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates request"):
        await asyncio.wait_for(older, 2)
    assert await newer == []


@dataclass
class Receiver:
    url: str
    statuses: list[int]
    received: list[dict[str, Any]] = field(default_factory=list)
    secrets: list[str | None] = field(default_factory=list)
    reply: dict[str, Any] | None = None


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver(url="", statuses=[])

    async def handle(request: web.Request) -> web.Response:
        state.secrets.append(request.headers.get("X-Telegram-Bot-Api-Secret-Token"))
        body = await request.json()
        status = state.statuses.pop(0) if state.statuses else 200
        if status == 200:
            state.received.append(body)
            if state.reply is not None:
                reply, state.reply = state.reply, None
                return web.json_response(reply)
        return web.Response(status=status, text="{}")

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        yield state
    finally:
        await runner.cleanup()


async def test_webhook_delivery_with_secret_and_retry(
    api_server: BotAPIServer, tg_bot: Bot, receiver: Receiver
) -> None:
    receiver.statuses = [500]
    assert await tg_bot.set_webhook(receiver.url, secret_token="s3cret_-X")
    info = await tg_bot.get_webhook_info()
    assert info.url == receiver.url and info.pending_update_count == 0
    with pytest.raises(TelegramConflictError) as raised:
        await tg_bot.get_updates()
    assert raised.value.message == (
        "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to "
        "delete the webhook first"
    )
    api_server.send_text(USER, "one")
    api_server.send_text(USER, "two")
    await api_server.wait_for(lambda s: len(receiver.received) == 2, timeout=3)
    assert [u["message"]["text"] for u in receiver.received] == ["one", "two"]
    assert receiver.received[0]["update_id"] < receiver.received[1]["update_id"]
    assert set(receiver.secrets) == {"s3cret_-X"}
    assert len(receiver.secrets) == 3  # the first attempt got a 500 and was retried
    info = await tg_bot.get_webhook_info()
    assert info.last_error_message == "Wrong response from the webhook: 500 Internal Server Error"
    assert info.last_error_date is not None
    assert info.pending_update_count == 0

    # A method in the webhook's answer is executed, like telegram-bot-api does.
    receiver.reply = {"method": "sendMessage", "chat_id": USER, "text": "via reply"}
    api_server.send_text(USER, "three")
    await api_server.wait_for(lambda s: s.last_message(USER) is not None, timeout=3)
    last = api_server.last_message(USER)
    assert last is not None and last.text == "via reply"

    assert await tg_bot.delete_webhook()
    assert (await tg_bot.get_webhook_info()).url == ""
    assert await tg_bot.get_updates() == []


async def test_webhook_descriptions_and_validation(api_server: BotAPIServer) -> None:
    async def call(method: str, **params: Any) -> dict[str, Any]:
        import aiohttp

        url = f"{api_server.base_url}/bot123456:TEST-TOKEN/{method}"
        async with aiohttp.ClientSession() as http, http.post(url, data=params) as resp:
            return dict(json.loads(await resp.text()))

    hook = "http://127.0.0.1:9/hook"
    assert (await call("setWebhook", url=hook))["description"] == "Webhook was set"
    assert (await call("setWebhook", url=hook))["description"] == "Webhook is already set"
    assert (await call("deleteWebhook"))["description"] == "Webhook was deleted"
    assert (await call("deleteWebhook"))["description"] == "Webhook is already deleted"
    bad = await call("setWebhook", url=hook, secret_token="no spaces")
    assert bad["description"] == "Bad Request: secret token contains unallowed characters"


async def test_reset_keeps_tokens_and_update_ids(api_server: BotAPIServer, tg_bot: Bot) -> None:
    api_server.send_text(USER, "before")
    before = await tg_bot.get_updates()
    await tg_bot.send_message(USER, "reply")
    api_server.reset()
    assert api_server.messages() == [] and api_server.requests == []
    assert (await tg_bot.get_me()).id == 123456
    api_server.send_text(USER, "after")
    # A poller still using the old offset must not lose the new update.
    after = await tg_bot.get_updates(offset=before[-1].update_id + 1)
    assert [u.message.text for u in after if u.message] == ["after"]
