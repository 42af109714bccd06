"""The outbox sender against the test server's faults: every row ends delivered or dead,
in order per chat, without one chat's trouble holding up another."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bench.pacing import queue_texts
from bot.app import Whistle
from bot.db import transaction
from bot.sender import OutboxSender
from bot.services.outbox import Link, enqueue
from bot.testserver import BotAPIServer
from models import OutboxMessage, OutboxStatus
from tests.conftest import AppFactory
from tests.conftest import settled as conftest_settled

ALICE, BOB, STRANGER = 8001, 8002, 8003


@pytest.fixture
async def sender_app(make_app: AppFactory, api_server: BotAPIServer) -> Whistle:
    app = await make_app(polling=False)
    for user in (ALICE, BOB):
        api_server.add_user(user, first_name="x", language_code="en")
        api_server.send_text(user, "hi")  # a user must write first before the bot may
    api_server.add_user(STRANGER, first_name="y", language_code="en")
    return app


async def queue(app: Whistle, chat_id: int, text_key: str = "cancel.done", **kw: Any) -> int:
    async with transaction(app.factory) as session:
        row = enqueue(
            session, chat_id=chat_id, locale="en", now=app.clock.now(), text_key=text_key, **kw
        )
        await session.flush()
        assert row.id is not None
        row_id = row.id
    app.sender.wake()
    return row_id


async def row_of(app: Whistle, row_id: int) -> OutboxMessage:
    async with app.factory() as session:
        row = await session.get(OutboxMessage, row_id)
        assert row is not None
        return row


async def settled(app: Whistle, api_server: BotAPIServer, row_id: int) -> OutboxMessage:
    async def done() -> bool:
        return (await row_of(app, row_id)).status is not OutboxStatus.PENDING

    for _ in range(200):
        if await done():
            break
        await asyncio.sleep(0.05)
    return await row_of(app, row_id)


def sends(api_server: BotAPIServer, method: str = "sendMessage") -> list[Any]:
    return [r for r in api_server.requests if r.method == method]


class TestRetries:
    async def test_after_429_delivered_once_honouring_retry_after(
        self, sender_app: Whistle, api_server: BotAPIServer
    ) -> None:
        api_server.fail_next(429, retry_after=1, method="sendMessage")
        row = await settled(sender_app, api_server, await queue(sender_app, ALICE))
        assert row.status is OutboxStatus.DELIVERED
        assert row.attempts == 2
        assert [m.text for m in api_server.messages(ALICE)] == ["Cancelled."]
        first, second = sends(api_server)
        assert second.time - first.time >= 0.95
        assert row.message_id == api_server.messages(ALICE)[0].message_id

    async def test_after_500_delivered_once(
        self, sender_app: Whistle, api_server: BotAPIServer
    ) -> None:
        api_server.fail_next(500, method="sendMessage")
        row = await settled(sender_app, api_server, await queue(sender_app, ALICE))
        assert row.status is OutboxStatus.DELIVERED
        assert row.attempts == 2
        assert len(api_server.messages(ALICE)) == 1

    @pytest.mark.parametrize(
        ("fault", "received"),
        [
            pytest.param(
                BotAPIServer.drop_next, 1, id="after_a_dropped_connection_delivered_once"
            ),
            # Telegram has no idempotency key: a send whose answer is lost is sent again.
            pytest.param(
                BotAPIServer.lose_answer_next, 2, id="a_lost_answer_is_resent_at_least_once"
            ),
        ],
    )
    async def test_a_send_that_goes_astray(
        self,
        sender_app: Whistle,
        api_server: BotAPIServer,
        fault: Callable[..., object],
        received: int,
    ) -> None:
        fault(api_server, method="sendMessage")
        row = await settled(sender_app, api_server, await queue(sender_app, ALICE))
        assert row.status is OutboxStatus.DELIVERED
        assert len(api_server.messages(ALICE)) == received

    async def test_gives_up_after_bounded_attempts(
        self, sender_app: Whistle, api_server: BotAPIServer
    ) -> None:
        sender_app.sender.max_attempts = 3
        api_server.fail_next(502, method="sendMessage", count=10)
        row = await settled(sender_app, api_server, await queue(sender_app, ALICE))
        assert row.status is OutboxStatus.DEAD
        assert row.attempts == 3
        assert "gave up after 3 attempts" in (row.last_error or "")
        assert api_server.messages(ALICE) == []


class TestOrderAndPermanentErrors:
    async def test_one_chat_waiting_does_not_hold_up_another(
        self, sender_app: Whistle, api_server: BotAPIServer
    ) -> None:
        api_server.fail_next(429, retry_after=2, method="sendMessage", chat_id=ALICE)
        a1 = await queue(sender_app, ALICE, "cancel.done")
        a2 = await queue(sender_app, ALICE, "cancel.nothing")
        b1 = await queue(sender_app, BOB, "cancel.done")
        assert (await settled(sender_app, api_server, b1)).status is OutboxStatus.DELIVERED
        assert api_server.messages(ALICE) == []  # still waiting out its retry_after
        await settled(sender_app, api_server, a2)
        assert (await row_of(sender_app, a1)).delivered_at is not None
        assert [m.text for m in api_server.messages(ALICE)] == [
            "Cancelled.",
            "There is nothing to cancel.",
        ]

    async def test_refused_send_is_dead_with_the_reason(
        self, sender_app: Whistle, api_server: BotAPIServer
    ) -> None:
        row = await settled(sender_app, api_server, await queue(sender_app, STRANGER))
        assert row.status is OutboxStatus.DEAD
        assert "can't initiate conversation" in (row.last_error or "")
        assert row.attempts == 1

    async def test_over_long_text_is_dead_before_sending(
        self, sender_app: Whistle, api_server: BotAPIServer
    ) -> None:
        row_id = await queue(
            sender_app,
            ALICE,
            text_key=None,
            template="help.html",
            context={"commands": [["x", "y" * 5000]]},
        )
        row = await settled(sender_app, api_server, row_id)
        assert row.status is OutboxStatus.DEAD
        assert "exceeds 4096" in (row.last_error or "")
        # Nothing went to Alice (the governance center is told about the dead row).
        assert [r for r in sends(api_server) if r.params["chat_id"] == str(ALICE)] == []

    async def test_edit_finds_the_message_through_its_link(
        self, sender_app: Whistle, api_server: BotAPIServer
    ) -> None:
        card = Link("case", "HB-000001", "card")
        await queue(sender_app, ALICE, "cancel.done", link=card)
        edit = await queue(
            sender_app, ALICE, "cancel.nothing", method="editMessageText", target=card
        )
        row = await settled(sender_app, api_server, edit)
        assert row.status is OutboxStatus.DELIVERED
        [message] = api_server.messages(ALICE)
        assert message.text == "There is nothing to cancel."
        assert [e.text for e in message.edits] == ["Cancelled."]


class TestSeveralSenders:
    """Replicas each run a sender on the one outbox: claims share the work out."""

    @staticmethod
    def another_sender(app: Whistle, owner: str) -> OutboxSender:
        return OutboxSender(
            bot=app.bot,
            factory=app.factory,
            renderer=app.sender.renderer,
            clock=app.clock,
            limits=app.settings.send_limits(),
            owner=owner,
            retry_base=0.05,
        )

    async def test_three_senders_send_every_row_once_in_order_per_chat(
        self, sender_app: Whistle, api_server: BotAPIServer
    ) -> None:
        users = [8100 + i for i in range(12)]
        for user in users:
            api_server.add_user(user, first_name="x", language_code="en")
            api_server.send_text(user, "hi")
        others = [self.another_sender(sender_app, f"replica-{n}") for n in (2, 3)]
        running = [asyncio.create_task(sender.run()) for sender in others]
        try:
            await queue_texts(sender_app, [(user, str(n)) for n in range(15) for user in users])
            for sender in (sender_app.sender, *others):
                sender.wake()
            for user in users:
                await api_server.wait_for_message(user, count=15, timeout=30)
            await conftest_settled(sender_app)
        finally:
            for sender in others:
                sender.request_stop()
            await asyncio.gather(*running)
        for user in users:
            texts = [(m.text or "").rsplit(" ", 1)[-1] for m in api_server.messages(user)]
            assert texts == [str(n) for n in range(15)]
        async with sender_app.factory() as session:
            rows = (await session.scalars(select(OutboxMessage))).all()
        assert {row.status for row in rows} == {OutboxStatus.DELIVERED}
        assert {row.claimed_by for row in rows} == {None}

    async def test_a_lapsed_claim_is_taken_over_and_a_live_one_is_respected(
        self, sender_app: Whistle, api_server: BotAPIServer
    ) -> None:
        now = datetime.now(UTC)
        async with transaction(sender_app.factory) as session:
            dead_replica, busy_replica = (
                enqueue(
                    session,
                    chat_id=chat,
                    locale="en",
                    now=sender_app.clock.now(),
                    text_key="cancel.done",
                )
                for chat in (ALICE, BOB)
            )
            dead_replica.claimed_by, dead_replica.claimed_until = (
                "gone",
                now - timedelta(seconds=1),
            )
            busy_replica.claimed_by, busy_replica.claimed_until = "busy", now + timedelta(hours=1)
            await session.flush()
            lapsed, live = dead_replica.id, busy_replica.id
        sender_app.sender.wake()
        assert lapsed is not None and live is not None
        row = await settled(sender_app, api_server, lapsed)
        assert row.status is OutboxStatus.DELIVERED and row.claimed_by is None
        assert [m.text for m in api_server.messages(ALICE)] == ["Cancelled."]
        # Bob's row is held by a live replica: this sender leaves it alone.
        await asyncio.wait_for(sender_app.sender.until_idle(), timeout=5)
        assert (await row_of(sender_app, live)).status is OutboxStatus.PENDING
        assert api_server.messages(BOB) == []
