"""A real aiogram Dispatcher polling the test server end to end."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.filters import CommandStart
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.testserver import BotAPIServer

from .conftest import USER


def build_router() -> Router:
    router = Router()

    @router.message(CommandStart())
    async def start(message: Message) -> None:
        markup = InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="Report", callback_data="report")]]
        )
        await message.answer("<b>Welcome</b>", parse_mode="HTML", reply_markup=markup)

    @router.callback_query(F.data == "report")
    async def report(query: CallbackQuery) -> None:
        await query.answer("Noted")
        if isinstance(query.message, Message):
            await query.message.edit_text("Report started")

    @router.message(F.photo)
    async def photo(message: Message, bot: Bot) -> None:
        assert message.photo is not None
        data = await bot.download(message.photo[-1].file_id)
        assert data is not None
        await message.answer(f"Got {len(data.read())} bytes")

    return router


@pytest.fixture
async def polling(tg_bot: Bot) -> AsyncIterator[asyncio.Task[None]]:
    dispatcher = Dispatcher()
    dispatcher.include_router(build_router())
    task = asyncio.create_task(
        dispatcher.start_polling(tg_bot, handle_signals=False, polling_timeout=1)
    )
    yield task
    with contextlib.suppress(RuntimeError):
        await dispatcher.stop_polling()
    await asyncio.wait_for(task, 3)


async def test_conversation_through_the_dispatcher(
    api_server: BotAPIServer, polling: asyncio.Task[None]
) -> None:
    api_server.send_text(USER, "/start")
    [welcome] = await api_server.wait_for_message(USER)
    assert welcome.text == "Welcome" and welcome.parse_mode == "HTML"
    assert welcome.callback_data() == ["report"]

    api_server.press_button(USER, welcome.message_id, "report")
    await api_server.wait_for(lambda s: s.callback_answers and welcome.edited)
    assert api_server.callback_answers[0].text == "Noted"
    assert welcome.text == "Report started"
    assert welcome.reply_markup is None

    api_server.send_photo(USER, b"\xff\xd8 not really a jpeg")
    [reply] = await api_server.wait_for_message(USER)
    assert reply.text == "Got 20 bytes"


async def test_wait_for_reports_what_happened(api_server: BotAPIServer) -> None:
    api_server.send_text(USER, "nobody is polling")
    with pytest.raises(TimeoutError) as raised:
        await api_server.wait_for_message(USER, timeout=0.05)
    report = str(raised.value)
    assert "1 new bot message(s) in chat 42" in report
    assert "no Bot API calls were made" in report
    assert "1 undelivered update(s)" in report
