"""A group's own budget (bot/services/folding.py), on SQLite and PostgreSQL.

Through the services (no sender: what is queued is what is read): a burst of reports to one
department folds the cards that do not fit the group's minute into one digest, a folded case can
be acknowledged from it, edits of a card never posted are moot, and once the group's queue is
short every folded case gets its own card drawn as the case is then.

Through the real sender and the project's Bot API server enforcing Telegram's limits (20
messages a minute in a group, about one a second in a chat): 45 reports filed within a few
seconds are each visible in the department's group (as a card or as a digest line) within 60 s
of filing, by the test's own clock reading what the server holds, with no 429; a member opens
one folded case's card from the digest and acknowledges another there.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlmodel import col

from bot.app import Whistle
from bot.callbacks import CaseAction, OpenFolded
from bot.db import SessionFactory, create_engine, migrate, session_factory, transaction
from bot.district import District
from bot.services import cases, folding
from bot.testserver import BotAPIServer
from models import CardFold, Case, CaseKind, CaseStatus, FoldDigest, OutboxMessage, OutboxStatus
from tests.conftest import AppFactory
from tests.test_pacing import telegram_limits_kept

CGZF = -1001000000021  # 城管执法局's group in config.example.toml
CLERK = 7301
CARDS = 20 // 2  # of a group's 20 a minute, the cards posted before a burst folds
SCRATCH = -1009999999999
CASE_NUMBER = re.compile(r"HB-\d+")
T0 = datetime(2026, 12, 6, 1, 0, tzinfo=UTC)
TELEGRAM_LIMITS: dict[str, Any] = {
    "SEND_GLOBAL_PER_SECOND": 30,
    "SEND_GROUP_PER_MINUTE": 20,
    "SEND_PRIVATE_PER_SECOND": 1,
    "SEND_BURST": 3,
}


@pytest.fixture
async def budgeted(database_url: str) -> AsyncIterator[SessionFactory]:
    """Sessions as the app makes them at Telegram's group budget of 20 a minute."""
    await migrate(database_url)
    engine = create_engine(database_url)
    yield session_factory(engine, info={folding.GROUP_BUDGET: 20})
    await engine.dispose()


async def file_report(
    factory: SessionFactory, district: District, resident: int, now: datetime, photo: str
) -> Case:
    draft = cases.Draft(
        kind=CaseKind.REPORT,
        photos=[photo],
        description=f"楼道飞线充电 {resident}",
        category="flying_wire",
        address=f"康乐小区 {resident} 号楼",
    )
    async with transaction(factory) as session:
        return await cases.submit(
            session,
            district,
            resident=cases.Person(resident, f"居民{resident}", "zh-Hans"),
            draft=draft,
            now=now,
        )


async def group_rows(factory: SessionFactory) -> list[OutboxMessage]:
    async with factory() as session:
        rows = await session.scalars(
            select(OutboxMessage)
            .where(col(OutboxMessage.chat_id) == CGZF)
            .order_by(col(OutboxMessage.id))
        )
        return list(rows.all())


def digest_rows(rows: list[OutboxMessage]) -> list[OutboxMessage]:
    return [
        r for r in rows if r.template == "fold_digest.html" and r.status is OutboxStatus.PENDING
    ]


async def deliver_all(factory: SessionFactory) -> None:
    """What the sender would do: everything queued so far goes out."""
    async with transaction(factory) as session:
        await session.execute(
            update(OutboxMessage)
            .where(col(OutboxMessage.status) == OutboxStatus.PENDING)
            .values(status=OutboxStatus.DELIVERED, delivered_at=T0)
        )


class TestFoldingThroughTheServices:
    async def test_a_burst_folds_then_every_case_gets_its_own_card(
        self, budgeted: SessionFactory, district: District
    ) -> None:
        filed = [
            await file_report(budgeted, district, 8000 + n, T0 + timedelta(seconds=n), "ph")
            for n in range(30)
        ]
        numbers = [case.number for case in filed]
        rows = await group_rows(budgeted)
        cards = [r for r in rows if r.link_purpose == "card"]
        # Half of 20 a minute for cards, then the digest.
        assert [r.context["number"] for r in cards] == numbers[:CARDS]
        digests = digest_rows(rows)
        assert digests[0].method == "sendMessage" and len(digests) == 30 - CARDS
        assert all(r.method == "editMessageText" for r in digests[1:])
        last = digests[-1]
        assert [item["number"] for item in last.context["items"]] == numbers[CARDS:]
        assert last.context["finished"] is False
        # Each line can be opened; a department card's line can be acknowledged there.
        assert last.keyboard is not None
        buttons = [b["data"] for row in last.keyboard["inline"] for b in row]
        for case in filed[CARDS:]:
            assert case.id is not None
            assert CaseAction("ack", case.id).pack() in buttons
        async with budgeted() as session:
            assert await session.scalar(select(func.count()).select_from(FoldDigest)) == 1
            assert await session.scalar(select(func.count()).select_from(CardFold)) == 30 - CARDS

        # A clerk acknowledges a folded case from the digest: the case moves, its line says
        # so and loses its acknowledge button, and the edit of its (never posted) card is moot.
        acked = filed[20]
        assert acked.id is not None
        async with transaction(budgeted) as session:
            await cases.acknowledge(
                session,
                district,
                case_id=acked.id,
                department="cgzf",
                actor=cases.Person(CLERK, "王科长", "zh-Hans"),
                now=T0 + timedelta(minutes=1),
            )
        rows = await group_rows(budgeted)
        last = digest_rows(rows)[-1]
        line = next(i for i in last.context["items"] if i["number"] == acked.number)
        assert line["status"] == "acknowledged"
        assert last.keyboard is not None
        buttons = [b["data"] for row in last.keyboard["inline"] for b in row]
        assert CaseAction("ack", acked.id).pack() not in buttons
        [card_edit] = [
            r
            for r in rows
            if r.method == "editMessageCaption"
            and r.target is not None
            and r.target.get("subject_id") == str(acked.id)
        ]
        async with budgeted() as session:
            assert card_edit.target is not None
            assert await folding.moot_edit(session, chat_id=CGZF, target=card_edit.target)
            posted = filed[0]
            assert not await folding.moot_edit(
                session,
                chat_id=CGZF,
                target={"subject_type": "case", "subject_id": str(posted.id), "purpose": "card"},
            )

        # While the group's queue is long, nothing is released.
        async with transaction(budgeted) as session:
            assert await folding.release_due(session, district, now=T0) == 0

        # The queue went out: the folded cases get their own cards, oldest first, at most half
        # a minute's budget per run, drawn as each case is now.
        await deliver_all(budgeted)
        released: list[str] = []
        for _run in range(4):
            async with transaction(budgeted) as session:
                count = await folding.release_due(session, district, now=T0 + timedelta(minutes=2))
            new_cards = [
                r.context["number"]
                for r in await group_rows(budgeted)
                if r.link_purpose == "card" and r.status is OutboxStatus.PENDING
            ]
            assert len(new_cards) == count <= 20 // 2
            released += new_cards
            await deliver_all(budgeted)
            if len(released) == 30 - CARDS:
                break
        assert released == numbers[CARDS:]
        rows = await group_rows(budgeted)
        [acked_card] = [
            r for r in rows if r.link_purpose == "card" and r.context["number"] == acked.number
        ]
        assert acked_card.context["status"] == "acknowledged"
        final = [r for r in rows if r.template == "fold_digest.html"][-1]
        assert final.context["finished"] is True and final.keyboard is None
        assert all(i["outcome"] == "posted" for i in final.context["items"])
        async with budgeted() as session:
            digest = (await session.scalars(select(FoldDigest))).one()
            assert digest.finished_at is not None

        # The burst has passed: the next case's card is posted as usual.
        later = await file_report(budgeted, district, 9000, T0 + timedelta(minutes=3), "ph")
        rows = await group_rows(budgeted)
        assert rows[-1].link_purpose == "card" and rows[-1].context["number"] == later.number

    async def test_a_case_that_left_the_group_gets_no_card(
        self, budgeted: SessionFactory, district: District
    ) -> None:
        """A folded case returned to the center before the burst passed: its line says so, and
        no card of it is posted in the department's group."""
        filed = [
            await file_report(budgeted, district, 8100 + n, T0, "ph") for n in range(CARDS + 2)
        ]
        left = filed[-1]
        assert left.id is not None
        async with transaction(budgeted) as session:
            case = await session.get(Case, left.id)
            assert case is not None
            case.move_to(CaseStatus.TRIAGE, now=T0)
            case.department = None
        await deliver_all(budgeted)
        async with transaction(budgeted) as session:
            later = T0 + timedelta(minutes=2)
            assert await folding.release_due(session, district, now=later) == 2
        rows = await group_rows(budgeted)
        final = [r for r in rows if r.template == "fold_digest.html"][-1]
        outcomes = {i["number"]: i["outcome"] for i in final.context["items"]}
        assert outcomes == {filed[CARDS].number: "posted", left.number: "gone"}
        assert not [
            r for r in rows if r.link_purpose == "card" and r.context["number"] == left.number
        ]


def visible_numbers(api_server: BotAPIServer, numbers: set[str]) -> set[str]:
    """The case numbers a member of the group can read there now (cards and digests)."""
    seen: set[str] = set()
    for message in api_server.sent_in(CGZF):
        content = message.content or ""
        seen.update(n for n in numbers if n in content)
    return seen


class TestFoldingAtTelegramsLimits:
    async def test_every_case_of_a_burst_is_visible_within_a_minute(
        self, make_app: AppFactory, api_server: BotAPIServer, district: District
    ) -> None:
        api_server.enforce_limits(
            per_chat_per_second=1.0, per_group_per_minute=20, global_per_second=30.0, burst=3
        )
        api_server.add_user(CLERK, first_name="王科长")
        for chat_id in district.configured_chat_ids():
            api_server.create_group(chat_id, f"group {chat_id}", members=[CLERK])
        api_server.create_group(SCRATCH, "scratch", members=[CLERK])
        for n in range(45):
            api_server.add_user(8200 + n, first_name=f"居民{n}")
        # Posted where the bot does not see it, for a file id it can send.
        photo = api_server.send_photo(CLERK, b"photo", chat_id=SCRATCH)
        app: Whistle = await make_app(env=TELEGRAM_LIMITS)
        file_id = str(photo["photo"][-1]["file_id"])

        filed_at: dict[str, float] = {}
        first_seen: dict[str, float] = {}

        async def watch() -> None:
            while True:
                now = time.monotonic()
                for number in visible_numbers(api_server, set(filed_at)) - set(first_seen):
                    first_seen[number] = now
                await asyncio.sleep(0.05)

        watcher = asyncio.create_task(watch())
        try:
            for n in range(45):  # five a second for nine seconds
                case = await file_report(app.factory, district, 8200 + n, app.clock.now(), file_id)
                filed_at[case.number] = time.monotonic()
                app.sender.wake()
                await asyncio.sleep(0.2)
            await api_server.wait_for(
                lambda _server: len(first_seen) == len(filed_at) or None,
                timeout=70,
                description="every case visible in the group",
            )
        finally:
            watcher.cancel()
        waits = sorted(first_seen[n] - filed_at[n] for n in filed_at)
        print(f"filed → visible: p50 {waits[len(waits) // 2]:.1f} s, max {waits[-1]:.1f} s")
        assert waits[-1] <= 60
        assert api_server.stats["429"] == 0
        assert telegram_limits_kept(api_server) == []  # counted from what the server got
        messages = api_server.sent_in(CGZF)
        # Far fewer messages than cases: the rest are lines of the digest.
        assert len(messages) < 45

        # A member opens one folded case's card from the digest, and acknowledges another.
        digest = next(
            m for m in messages if any(d.startswith(OpenFolded.prefix) for d in m.callback_data())
        )
        # One line per case, as a member reads it.
        lines = [line for line in (digest.content or "").splitlines() if line.startswith("• ")]
        assert lines and all(len(CASE_NUMBER.findall(line)) == 1 for line in lines)
        opens = [d for d in digest.callback_data() if d.startswith(OpenFolded.prefix + ":")]
        acks = [d for d in digest.callback_data() if d.startswith(CaseAction.prefix + ":ack")]
        async with app.factory() as session:
            fold = await session.get(CardFold, OpenFolded.unpack(opens[0]).fold_id)  # type: ignore[union-attr]
            assert fold is not None
            opened = await session.get(Case, fold.case_id)
            assert opened is not None
        before = len(api_server.sent_in(CGZF))
        api_server.press_button(CLERK, digest.message_id, opens[0], chat_id=CGZF)
        api_server.press_button(CLERK, digest.message_id, acks[-1], chat_id=CGZF)
        await api_server.wait_for(
            lambda server: (
                any(opened.number in (m.content or "") for m in server.sent_in(CGZF)[before:])
                or None
            ),
            timeout=30,
            description="the opened case's own card",
        )
        acked_id = CaseAction.unpack(acks[-1]).case_id  # type: ignore[union-attr]

        async def acknowledged() -> bool:
            async with app.factory() as session:
                case = await session.get(Case, acked_id)
                return case is not None and case.status is CaseStatus.ACKNOWLEDGED

        deadline = asyncio.get_running_loop().time() + 10
        while not await acknowledged():
            assert asyncio.get_running_loop().time() < deadline, "not acknowledged"
            await asyncio.sleep(0.05)
