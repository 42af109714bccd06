"""Injected faults and Telegram's flood limits as aiogram experiences them."""

from __future__ import annotations

import asyncio

import pytest
from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)

from bot.testserver import BotAPIServer

from .conftest import USER, make_bot


async def test_injected_errors(api_server: BotAPIServer, tg_bot: Bot, user: int) -> None:
    api_server.fail_next(429, retry_after=7, method="sendMessage")
    with pytest.raises(TelegramRetryAfter) as limited:
        await tg_bot.send_message(user, "first")
    assert limited.value.retry_after == 7
    assert limited.value.message.endswith("Original description: Too Many Requests: retry after 7")
    await tg_bot.send_message(user, "retried")
    assert api_server.stats["429"] == 1

    api_server.fail_next(500, count=2)
    for _ in range(2):
        with pytest.raises(TelegramServerError, match="Internal Server Error"):
            await tg_bot.send_message(user, "boom")
    api_server.fail_next(400, description="Bad Request: chat not found", chat_id=user)
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await tg_bot.send_message(user, "x")
    assert [m.text for m in api_server.sent_in(user)] == ["retried"]
    assert api_server.faults == []


async def test_fault_matching_by_method_and_chat(
    api_server: BotAPIServer, tg_bot: Bot, user: int
) -> None:
    api_server.fail_next(502, method="sendPhoto")
    api_server.fail_next(503, chat_id=-1)
    await tg_bot.send_message(user, "unaffected")
    assert len(api_server.faults) == 2
    api_server.clear_faults()
    assert api_server.faults == []


async def test_drop_and_lost_answer(api_server: BotAPIServer, tg_bot: Bot, user: int) -> None:
    api_server.drop_next(method="sendMessage")
    with pytest.raises(TelegramNetworkError):
        await tg_bot.send_message(user, "never sent")
    assert api_server.sent_in(user) == []
    assert api_server.requests[-1].fault == "dropped"

    api_server.lose_answer_next(method="sendMessage")
    with pytest.raises(TelegramNetworkError):
        await tg_bot.send_message(user, "sent but unanswered")
    assert [m.text for m in api_server.sent_in(user)] == ["sent but unanswered"]
    assert api_server.requests[-1].fault == "answer_lost"


async def test_delay(api_server: BotAPIServer, tg_bot: Bot, user: int) -> None:
    api_server.delay_next(0.2, method="sendMessage")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await tg_bot.send_message(user, "slow")
    assert loop.time() - started >= 0.2


async def test_group_flood_limit_with_fake_clock() -> None:
    now = [1000.0]
    async with BotAPIServer(tokens=["7:T"], clock=lambda: now[0]) as server:
        bot = make_bot(server, "7:T")
        try:
            server.create_group(-100777, "Busy", members=[USER])
            server.enforce_limits()
            for index in range(20):
                now[0] += 0.5
                await bot.send_message(-100777, f"m{index}")
            with pytest.raises(TelegramRetryAfter) as raised:
                await bot.send_message(-100777, "one too many")
            # The first message went out at t=1000.5; the window frees at t=1060.5.
            assert raised.value.retry_after == 51
            now[0] += 51
            await bot.send_message(-100777, "after waiting")
            assert server.stats["429"] == 1
        finally:
            await bot.session.close()


async def test_private_and_global_limits() -> None:
    now = [0.0]
    async with BotAPIServer(tokens=["8:T"], clock=lambda: now[0]) as server:
        bot = make_bot(server, "8:T")
        try:
            for user_id in (1, 2, 3):
                server.send_text(user_id, "hi")
            server.enforce_limits(burst=3, global_per_second=5)
            for _ in range(3):
                await bot.send_message(1, "burst")
            with pytest.raises(TelegramRetryAfter) as raised:
                await bot.send_message(1, "too fast")
            assert raised.value.retry_after == 1
            await bot.send_message(2, "other chat")
            await bot.send_message(3, "other chat")
            with pytest.raises(TelegramRetryAfter):
                await bot.send_message(2, "sixth this second")  # over 5/s for all chats
            now[0] += 1.0
            await bot.send_message(1, "a second later")
            server.enforce_limits(False)
            for _ in range(10):
                await bot.send_message(1, "unlimited")
        finally:
            await bot.session.close()


async def test_migrated_group(api_server: BotAPIServer, tg_bot: Bot) -> None:
    api_server.create_group(-4001, "Old group", type="group", creator=USER)
    api_server.migrate_group(-4001, -1004001)
    with pytest.raises(TelegramMigrateToChat) as raised:
        await tg_bot.send_message(-4001, "hello?")
    assert raised.value.migrate_to_chat_id == -1004001
    assert raised.value.message.endswith(
        "Original description: Bad Request: group chat was upgraded to a supergroup chat"
    )
    updates = await tg_bot.get_updates()
    service = [u.message for u in updates if u.message]
    assert service[0].migrate_to_chat_id == -1004001 and service[0].chat.id == -4001
    assert service[1].migrate_from_chat_id == -4001 and service[1].chat.type == "supergroup"
    moved = await tg_bot.send_message(-1004001, "hello")
    assert moved.chat.id == -1004001
