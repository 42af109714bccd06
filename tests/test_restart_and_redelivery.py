"""What must survive: a dialog across a restart, and a redelivered update handled once."""

from __future__ import annotations

import pytest
from aiogram.types import Update
from sqlmodel import select

from bot.services import menu
from bot.testserver import BotAPIServer
from models import OutboxMessage
from tests.conftest import AppFactory

RESIDENT = 7002


async def test_dialog_state_survives_a_restart(
    make_app: AppFactory, api_server: BotAPIServer
) -> None:
    first = await make_app()
    api_server.add_user(RESIDENT, first_name="Li", language_code="en")
    api_server.send_text(RESIDENT, "/lang")
    await api_server.wait_for_message(RESIDENT)
    await first.stop()

    await make_app()
    api_server.send_text(RESIDENT, "中文")  # answers the question asked before the restart
    [reply] = await api_server.wait_for_message(RESIDENT)
    assert reply.text == "请用下方菜单选择："


async def test_a_redelivered_update_has_one_effect(
    make_app: AppFactory, api_server: BotAPIServer
) -> None:
    app = await make_app(polling=False)
    api_server.add_user(RESIDENT, first_name="Li", language_code="en")
    message = api_server.send_text(RESIDENT, "/start")
    update = Update.model_validate({"update_id": 991, "message": message})
    await app.dispatcher.feed_update(app.bot, update)
    await app.dispatcher.feed_update(app.bot, update)  # Telegram sends it again
    await api_server.wait_for_message(RESIDENT)
    async with app.factory() as session:
        rows = (await session.scalars(select(OutboxMessage))).all()
    assert [row.chat_id for row in rows] == [RESIDENT]
    assert len(api_server.messages(RESIDENT)) == 1


async def test_an_update_that_keeps_failing_is_given_up_with_an_apology(
    make_app: AppFactory, api_server: BotAPIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(menu, "greet", broken)
    await make_app()
    api_server.add_user(RESIDENT, first_name="Li", language_code="en")
    api_server.send_text(RESIDENT, "/start")
    api_server.send_text(RESIDENT, "/help")  # queued behind the failing update
    replies = await api_server.wait_for_message(RESIDENT, count=2, timeout=15)
    assert replies[0].text.startswith("Sorry, something went wrong.")
    assert replies[1].text.startswith("Commands:")
    starts = [r for r in api_server.requests if r.method == "getUpdates"]
    assert len(starts) >= 3  # the failing update was fetched again before giving up
