"""Lanes in the outbox, seen by the people on the other end: a pressed button is answered at
once however much is queued, a reply someone waits for overtakes bulk notices, and no chat's
messages change order. And a restarted service sends what its dead predecessor had claimed
without waiting for the claims to lapse.

Times are the test server's own (when it pushed the press, when the answer reached it), never
the sender's pacer."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col

from bench.pacing import queue_texts
from bot.app import Whistle
from bot.db import SessionFactory, transaction
from bot.services.outbox import send_text
from bot.testserver import BotAPIServer
from models import Lane, OutboxMessage, OutboxStatus
from tests.conftest import AppFactory

TELEGRAM_LIMITS: dict[str, Any] = {
    "SEND_GLOBAL_PER_SECOND": 30,
    "SEND_GROUP_PER_MINUTE": 20,
    "SEND_PRIVATE_PER_SECOND": 1,
    "SEND_BURST": 3,
}
NUMBERED = "health.unreachable-groups"  # a catalogue text with one parameter
PERSON, OTHER = 8301, 8302
FIRST_GROUP = -1003000000000


@pytest.fixture
async def paced_app(make_app: AppFactory, api_server: BotAPIServer) -> Whistle:
    """The real app (polling) at Telegram's limits, against a server enforcing them."""
    api_server.enforce_limits(
        per_chat_per_second=1.0, per_group_per_minute=20, global_per_second=30.0, burst=3
    )
    return await make_app(env=TELEGRAM_LIMITS)


def groups(api_server: BotAPIServer, count: int) -> list[int]:
    chats = [FIRST_GROUP - n for n in range(count)]
    for chat_id in chats:
        api_server.create_group(chat_id, f"g{chat_id}")  # the bot joins silently
    return chats


async def queue(app: Whistle, messages: list[tuple[int, str, bool]]) -> None:
    """(chat, number, bulk) rows, in this order, in one transaction; the sender is woken."""
    await queue_texts(app, messages)
    app.sender.wake()


def numbered(api_server: BotAPIServer, chat_id: int) -> list[str]:
    return [(m.text or "").rsplit(" ", 1)[-1] for m in api_server.messages(chat_id)]


def event_time(api_server: BotAPIServer, kind: str, query_id: str) -> float | None:
    """When the server pushed the press (``update``) or received its answer (``answer``)."""
    for event in api_server.events:
        if kind == "update" and event["kind"] == "update":
            found = (event["update"].get("callback_query") or {}).get("id")
        elif kind == "answer" and event["kind"] == "callback_answer":
            found = event["answer"]["callback_query_id"]
        else:
            continue
        if found == query_id:
            return float(event["time"])
    return None


class TestCallbackAnswers:
    async def test_a_press_is_answered_ahead_of_a_paced_queue(
        self, paced_app: Whistle, api_server: BotAPIServer
    ) -> None:
        """A person with a dozen messages queued to their own chat (one a second) presses a
        button five times while 90 bulk notices fill the overall budget: every press is
        answered while those messages are still coming (not behind them), and the messages
        still arrive in their order. (The time itself is a benchmark figure, ``bench.load``;
        here it is only printed.)"""
        api_server.add_user(PERSON, first_name="p", language_code="en")
        api_server.send_text(PERSON, "/lang")
        [picker] = await api_server.wait_for_message(PERSON, timeout=5)
        choices = dict(zip(picker.button_texts(), picker.callback_data(), strict=True))
        english = choices.get("English", picker.callback_data()[0])
        flood = [(chat_id, "bulk", True) for chat_id in groups(api_server, 90)]
        await queue(paced_app, [(PERSON, str(n), False) for n in range(12)] + flood)
        await api_server.wait_for_message(PERSON, count=3, timeout=5)  # its burst is spent

        latencies: list[float] = []
        for _ in range(5):
            query = api_server.press_button(PERSON, picker.message_id, english)
            await api_server.wait_for(
                lambda server, q=query["id"]: event_time(server, "answer", q),
                timeout=10,
                description="the answer to the press",
            )
            # The chat's queue is still going out: the answer did not wait behind it.
            assert len(api_server.messages(PERSON)) < 1 + 12
            pressed = event_time(api_server, "update", query["id"])
            answered = event_time(api_server, "answer", query["id"])
            assert pressed is not None and answered is not None
            latencies.append(answered - pressed)
        print(f"press to answer: {', '.join(f'{t * 1000:.0f} ms' for t in latencies)}")
        # The queue was still waiting its turn (one a second), so the answers overtook it...
        assert len(api_server.messages(PERSON)) < 1 + 12
        # ...and what arrived of it arrived in order.
        delivered = numbered(api_server, PERSON)[1:]
        assert delivered == [str(n) for n in range(len(delivered))]
        assert api_server.stats["429"] == 0


class TestInteractiveBeforeBulk:
    async def test_a_reply_overtakes_the_bulk_notices_queued_before_it(
        self, paced_app: Whistle, api_server: BotAPIServer
    ) -> None:
        """90 bulk notices to 90 groups need three seconds of the overall budget; a person who
        sends /cancel meanwhile gets the reply before most of them."""
        chats = groups(api_server, 90)
        await queue(paced_app, [(chat_id, "bulk", True) for chat_id in chats])
        await api_server.wait_for(
            lambda server: sum(len(server.messages(c)) for c in chats) >= 5, timeout=5
        )
        api_server.add_user(PERSON, first_name="p", language_code="en")
        api_server.send_text(PERSON, "/cancel")
        [reply] = await api_server.wait_for_message(PERSON, timeout=5)
        assert reply.text == "There is nothing to cancel."
        await api_server.wait_for(
            lambda server: all(server.messages(c) for c in chats), timeout=15
        )
        later = [c for c in chats if api_server.messages(c)[0].seq > reply.seq]
        print(f"bulk notices sent after the reply: {len(later)} of {len(chats)}")
        assert len(later) >= 40
        assert api_server.stats["429"] == 0

    async def test_lanes_never_reorder_a_chats_messages(
        self, paced_app: Whistle, api_server: BotAPIServer
    ) -> None:
        """Bulk and interactive messages alternate in one group and one private chat while
        other chats compete for the budget: each chat gets its messages in queued order."""
        [group, *others] = groups(api_server, 41)
        api_server.add_user(PERSON, first_name="p", language_code="en")
        api_server.send_text(PERSON, "/cancel")
        await api_server.wait_for_message(PERSON, timeout=5)
        rows: list[tuple[int, str, bool]] = []
        for n in range(6):
            rows += [(group, str(n), n % 2 == 0), (PERSON, str(n), n % 2 == 1)]
        rows += [(chat_id, "other", n % 2 == 0) for n, chat_id in enumerate(others)]
        await queue(paced_app, rows)
        await api_server.wait_for(lambda server: len(server.messages(group)) >= 6, timeout=15)
        await api_server.wait_for_message(PERSON, count=6, timeout=15)
        assert numbered(api_server, group) == [str(n) for n in range(6)]
        assert numbered(api_server, PERSON)[1:] == [str(n) for n in range(6)]


class TestBulkNotices:
    async def test_a_dead_message_report_is_a_bulk_notice(
        self, make_app: AppFactory, api_server: BotAPIServer
    ) -> None:
        center = -1001000000001  # the governance center of config.example.toml
        api_server.create_group(center, "center")
        app = await make_app(polling=False)
        [group] = groups(api_server, 1)
        api_server.add_user(9100)
        api_server.kick_bot(group, by=9100)
        await queue(app, [(group, "0", False)])
        await api_server.wait_for(
            lambda server: any(str(group) in (m.text or "") for m in server.messages(center)),
            timeout=5,
            description="the report of the dead message",
        )
        async with app.factory() as session:
            rows = (await session.scalars(select(OutboxMessage))).all()
        [dead] = [row for row in rows if row.chat_id == group]
        assert (dead.status, dead.lane) == (OutboxStatus.DEAD, Lane.INTERACTIVE)
        [reported] = [row for row in rows if row.link_subject_type == "dead_chat"]
        assert (reported.chat_id, reported.lane) == (center, Lane.BULK)


# -- a restart after a kill ----------------------------------------------------------------


async def claimed_rows(
    factory: SessionFactory, claims: list[tuple[int, str, str]], until: datetime
) -> list[int]:
    """Pending rows (chat, text number, owner) claimed by ``owner`` until ``until``, as a
    killed sender leaves them."""
    async with transaction(factory) as session:
        written = []
        for chat_id, units, owner in claims:
            row = send_text(
                session,
                chat_id=chat_id,
                locale="en",
                now=datetime.now(UTC),
                text_key=NUMBERED,
                units=units,
            )
            row.claimed_by, row.claimed_until = owner, until
            written.append(row)
        await session.flush()
        return [row.id for row in written if row.id is not None]


async def a_dead_pid() -> int:
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await process.wait()
    return process.pid


class TestRestart:
    async def test_a_single_replica_sends_its_dead_predecessors_claims_at_once(
        self, factory: SessionFactory, make_app: AppFactory, api_server: BotAPIServer
    ) -> None:
        """Without Redis there is one replica: whatever is claimed when it starts was claimed
        by a process that is gone (here for an hour more, as if just renewed)."""
        api_server.add_user(PERSON, first_name="p", language_code="en")
        api_server.send_text(PERSON, "hi")
        until = datetime.now(UTC) + timedelta(hours=1)
        owner = "killed-host:4242:0123abcd"
        await claimed_rows(factory, [(PERSON, str(n), owner) for n in range(3)], until)
        await make_app(polling=False)
        await api_server.wait_for_message(PERSON, count=3, timeout=5)
        assert numbered(api_server, PERSON) == ["0", "1", "2"]

    async def test_replicas_release_the_claims_of_dead_processes_of_their_host_only(
        self,
        factory: SessionFactory,
        make_app: AppFactory,
        api_server: BotAPIServer,
        redis_env: dict[str, str],
    ) -> None:
        for user in (PERSON, OTHER):
            api_server.add_user(user, first_name="p", language_code="en")
            api_server.send_text(user, "hi")
        until = datetime.now(UTC) + timedelta(hours=1)
        host = socket.gethostname()[:32]
        gone = f"{host}:{await a_dead_pid()}:0123abcd"
        # An earlier process with this pid (a restarted container's): no sender here is it.
        same_pid = f"{host}:{os.getpid()}:0123abcd"
        alive = "another-host:4242:0123abcd"  # another machine's replica: cannot tell
        claims = [(PERSON, "0", gone), (PERSON, "1", same_pid), (OTHER, "0", alive)]
        [*_, live] = await claimed_rows(factory, claims, until)
        app = await make_app(polling=False, env=redis_env)
        await api_server.wait_for_message(PERSON, count=2, timeout=5)
        assert numbered(api_server, PERSON) == ["0", "1"]
        await asyncio.wait_for(app.sender.until_idle(), timeout=5)
        async with app.factory() as session:
            row = await session.get(OutboxMessage, live)
            assert row is not None
            assert (row.status, row.claimed_by) == (OutboxStatus.PENDING, alive)
            lanes = set((await session.scalars(select(col(OutboxMessage.lane)))).all())
        assert lanes == {Lane.INTERACTIVE}
        assert api_server.messages(OTHER) == []
