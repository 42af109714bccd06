"""Fixtures for the Bot API test server's own tests: a running server and an aiogram Bot."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from bot.testserver import BotAPIServer

TOKEN = "123456:TEST-TOKEN"
USER = 42


class PlainHttpSession(AiohttpSession):
    """aiogram's session without the 250 ms TLS grace period on close (plain HTTP here)."""

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


def make_bot(server: BotAPIServer, token: str = TOKEN) -> Bot:
    api = TelegramAPIServer.from_base(server.base_url)
    return Bot(token, session=PlainHttpSession(api=api))


@pytest.fixture
async def api_server() -> AsyncIterator[BotAPIServer]:
    server = BotAPIServer(tokens=[TOKEN], webhook_retry_delay=0.02, webhook_max_retry_delay=0.1)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def tg_bot(api_server: BotAPIServer) -> AsyncIterator[Bot]:
    bot = make_bot(api_server)
    try:
        yield bot
    finally:
        await bot.session.close()


@pytest.fixture
def user(api_server: BotAPIServer) -> int:
    """A user who has already written to the bot, so the bot may message them."""
    api_server.add_user(USER, "Alice", username="alice")
    api_server.send_text(USER, "/start")
    return USER
