"""Several replicas on one PostgreSQL database and one Redis.

The focused tests: the pacing budget in Redis is shared (two replicas' senders together stay
within one group's limit; two budgets hammered at once never exceed a window), two replicas
starting at once both migrate, and the per-user update lock lives in Redis. The long test
(marked slow) runs three real ``python -m bot`` processes behind the test server's webhook
rotation, kills one, and counts every case and every ladder message.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiogram.types import Update
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlmodel import col

from bench.pacing import queue_texts
from bot.app import Whistle
from bot.callbacks import DraftAction
from bot.db import create_engine, migrate, session_factory, transaction
from bot.district import District, load_district
from bot.pacing import Limits
from bot.replicas import build_isolation
from bot.sender import OutboxSender
from bot.services.cases import Draft
from bot.services.users import touch_user
from bot.shared_pacing import RedisBudget
from bot.testserver import BotAPIServer
from handlers.resident import Filing
from models import (
    Case,
    CaseEvent,
    CaseKind,
    CaseStatus,
    DialogState,
    Escalation,
    EscalationState,
    OutboxMessage,
    OutboxStatus,
)
from tests.conftest import (
    BOT_ID,
    EXAMPLE_DISTRICT,
    GENEROUS_LIMITS,
    REQUIRE_POSTGRES,
    TOKEN,
    AppFactory,
    _pg_execute,
    settled,
)
from tests.test_process import run_bot, service_env
from tests.test_webhook import free_port

GROUP = -1009000000001
NUMBERED = "health.unreachable-groups"


class TestSharedPacing:
    async def test_two_replicas_senders_together_keep_one_groups_limit(
        self,
        make_app: AppFactory,
        api_server: BotAPIServer,
        redis_env: dict[str, str],
    ) -> None:
        """25 messages to one group, two replicas' senders each with their own Redis client:
        20 go out within the minute, the other 5 wait, and the server never answers 429 (each
        replica counting alone would have sent more than 20)."""
        api_server.enforce_limits(
            per_chat_per_second=1000, per_group_per_minute=20, global_per_second=1000, burst=1000
        )
        api_server.create_group(GROUP, "g")
        lax = {
            "SEND_GLOBAL_PER_SECOND": 1000,
            "SEND_GROUP_PER_MINUTE": 20,
            "SEND_PRIVATE_PER_SECOND": 1000,
            "SEND_BURST": 1000,
        }
        app = await make_app(polling=False, env={**redis_env, **lax})
        other_redis = Redis.from_url(redis_env["REDIS_URL"])
        other = OutboxSender(
            bot=app.bot,
            factory=app.factory,
            renderer=app.sender.renderer,
            clock=app.clock,
            budget=RedisBudget(
                other_redis,
                app.settings.send_limits(),
                bot_id=BOT_ID,
                prefix=redis_env["REDIS_PREFIX"],
            ),
            owner="the-other-replica",
            idle_interval=0.05,
        )
        running = asyncio.create_task(other.run())
        try:
            await queue_texts(app, [(GROUP, str(n)) for n in range(25)])
            app.sender.wake()
            other.wake()
            await api_server.wait_for_message(GROUP, count=20, timeout=10)
            await asyncio.sleep(2.0)  # both senders keep trying meanwhile
        finally:
            other.request_stop()
            await running
            await other_redis.aclose()
        texts = [(m.text or "").rsplit(" ", 1)[-1] for m in api_server.messages(GROUP)]
        assert texts == [str(n) for n in range(20)]
        assert api_server.stats["429"] == 0

    async def test_budgets_hammered_by_two_replicas_never_exceed_a_window(
        self, redis_env: dict[str, str]
    ) -> None:
        """Two replicas' budgets, four callers each, for about 3 s: in no span of the group
        window (shortened to 1 s here) more than its 5 calls started, and in no second more than
        the overall 12 over the group and 20 private chats."""
        limits = Limits(global_per_second=12, group_per_minute=5, private_per_second=50, burst=5)
        clients = [Redis.from_url(redis_env["REDIS_URL"]) for _ in range(2)]
        budgets = [
            RedisBudget(c, limits, bot_id=BOT_ID, prefix=redis_env["REDIS_PREFIX"], group_span=1.0)
            for c in clients
        ]
        starts: dict[int, list[float]] = {}
        deadline = time.monotonic() + 3.0

        async def caller(budget: RedisBudget, chats: list[int]) -> None:
            n = 0
            while time.monotonic() < deadline:
                chat = chats[n % len(chats)]
                n += 1
                grant = await budget.acquire(chat)
                if grant.ticket is None:
                    await asyncio.sleep(min(grant.wait or 0.01, 0.05))
                    continue
                starts.setdefault(chat, []).append(time.monotonic())
                await asyncio.sleep(0.002)  # the call
                await budget.release(grant.ticket)

        privates = list(range(5000, 5020))
        try:
            await asyncio.gather(
                *(caller(b, [GROUP]) for b in budgets for _ in range(2)),
                *(caller(b, privates) for b in budgets for _ in range(2)),
            )
        finally:
            for client in clients:
                await client.aclose()
        group = sorted(starts[GROUP])
        everything = sorted(t for times in starts.values() for t in times)
        assert len(group) >= 10  # the group's budget was used up several times over
        assert max_in_window(group, 1.0) <= 5
        assert max_in_window(everything, 1.0) <= 12
        assert len(everything) >= 30


def max_in_window(times: list[float], span: float) -> int:
    """The most calls that started within any ``span`` (less a little for clock reading)."""
    most, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= span - 0.01:
            first += 1
        most = max(most, last - first + 1)
    return most


class TestUserLocks:
    async def test_the_lock_is_in_redis_and_held_through_the_unit_of_work(
        self,
        make_app: AppFactory,
        api_server: BotAPIServer,
        redis_env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """While one replica handles a user's update the user's lock is in Redis, so another
        replica's update of the same user waits; afterwards no lock is left."""
        app: Whistle = await make_app(polling=False, env=redis_env)
        isolation = app.dispatcher.fsm.events_isolation
        assert type(isolation).__name__ == "RedisEventIsolation"
        # Signalled when the update asks for the user's lock, before it is granted.
        asked = asyncio.Event()
        taking = isolation.lock

        @contextlib.asynccontextmanager
        async def lock(key: Any) -> AsyncIterator[None]:
            asked.set()
            async with taking(key):
                yield

        monkeypatch.setattr(isolation, "lock", lock)
        client = Redis.from_url(redis_env["REDIS_URL"])
        try:
            api_server.add_user(7700, first_name="Lin", language_code="en")
            other = build_isolation(client, lock_seconds=5, prefix=redis_env["REDIS_PREFIX"])
            key = app.dispatcher.fsm.resolve_context(app.bot, chat_id=7700, user_id=7700)
            assert key is not None
            async with other.lock(key.key):  # another replica is handling Lin's update
                held = f"{redis_env['REDIS_PREFIX']}:lock:*"
                assert len([k async for k in client.scan_iter(match=held)]) == 1
                message = api_server.send_text(7700, "/start")
                update = Update.model_validate({"update_id": 771, "message": message})
                handling = asyncio.create_task(app.dispatcher.feed_update(app.bot, update))
                await asyncio.wait_for(asked.wait(), timeout=5)
                assert not handling.done()  # it asked for the lock, held here: it waits
            await asyncio.wait_for(handling, timeout=5)
            await settled(app)
            [greeting] = api_server.messages(7700)
            assert greeting.text.startswith("Hello, Lin!")
            left = f"{redis_env['REDIS_PREFIX']}:lock:*"
            assert [k async for k in client.scan_iter(match=left)] == []
        finally:
            await client.aclose()


async def test_replicas_starting_at_once_both_migrate(
    tmp_path: Path, postgres_url: str | None
) -> None:
    """Two ``python -m bot migrate`` at once on an empty PostgreSQL database: one upgrades,
    the other waits on the advisory lock and finds the schema current; both succeed."""
    if postgres_url is None:
        pytest.skip("PostgreSQL is not available")
    await _pg_execute(postgres_url, "DROP SCHEMA IF EXISTS public CASCADE", "CREATE SCHEMA public")
    env = service_env(
        BOT_TOKEN=TOKEN, DATABASE_URL=postgres_url, WHISTLE_CONFIG=str(EXAMPLE_DISTRICT)
    )
    processes = [await run_bot("migrate", env=env, cwd=tmp_path) for _ in range(3)]
    results = await asyncio.gather(
        *(asyncio.wait_for(p.communicate(), timeout=120) for p in processes)
    )
    for process, (_, stderr) in zip(processes, results, strict=True):
        assert process.returncode == 0, stderr.decode()[-2000:]


# -- three replicas ---------------------------------------------------------------------------

REPLICAS = 3
# The suite runs a smaller round (about a minute on two cores); .ci/run then runs the full one,
# WHISTLE_REPLICA_REPORTS=2000 WHISTLE_REPLICA_LADDER_CASES=2500 (10,000 rungs), which takes
# several minutes there.
REPORTS = int(os.environ.get("WHISTLE_REPLICA_REPORTS", "300"))
LADDER_CASES = int(os.environ.get("WHISTLE_REPLICA_LADDER_CASES", "300"))  # 4 rungs each
IN_FLIGHT = 64  # residents pressing Confirm at once
FIRST_RESIDENT = 30_000_000
SECRET = "replica_secret-1"
LEADER, CENTER_HEAD, STAFF = 100000003, 100000001, 7999
SUPERVISION = -1001000000002
# Every rung of the test's ladder tells exactly one chat, so each rung is one message to count.
# The first rung is at 30 minutes, so the reports filed during the run never reach it.
TEST_LADDER = """[[ladder]]
after = "30m"
notify = ["leader"]

[[ladder]]
after = "1h"
card = "yellow"
notify = ["center_head"]

[[ladder]]
after = "4h"
card = "red"
notify = ["leader"]

[[ladder]]
after = "15h"
card = "red"
notify = ["supervision"]

"""
RUNG_CHATS = (LEADER, CENTER_HEAD, LEADER, SUPERVISION)
# The reports are posts (我有话说) to these departments in turn, so their cards spread over the
# departments' groups (a chat's messages go out one at a time).
DEPARTMENTS = ("cgzf", "scjg", "water", "power", "heating", "kangle")


def replica_district(workdir: Path) -> Path:
    text = EXAMPLE_DISTRICT.read_text(encoding="utf-8")
    start = text.index("[[ladder]]")
    end = text.index("# 工作时间 Working hours")
    categories = "".join(
        f'\n[[categories]]\ncode = "say_{code}"\n'
        f'names = {{ "zh-Hans" = "建议{n}", en = "Suggestion {n}" }}\n'
        f'kind = "say"\ndepartment = "{code}"\n'
        for n, code in enumerate(DEPARTMENTS)
    )
    path = workdir / "district.toml"
    path.write_text(text[:start] + TEST_LADDER + text[end:] + categories, encoding="utf-8")
    return path


async def seed(url: str, district: District) -> list[str]:
    """The ladder's cases: dispatched 16 hours ago to a department without a group, so all
    four rungs are due and each rung's one message is all they cause. Returns their numbers."""
    engine = create_engine(url)
    factory = session_factory(engine)
    now = datetime.now(UTC)
    dispatched = now - timedelta(hours=16)
    numbers = [f"LT-{n:06d}" for n in range(LADDER_CASES)]
    try:
        async with transaction(factory) as session:
            for person, name in ((LEADER, "赵志刚"), (CENTER_HEAD, "李建军")):
                await touch_user(
                    session, user_id=person, first_name=name, telegram_language="zh-hans", now=now
                )
        for first in range(0, LADDER_CASES, 500):
            async with transaction(factory) as session:
                batch = [
                    Case(
                        number=number,
                        kind=CaseKind.REPORT,
                        status=CaseStatus.DISPATCHED,
                        category="flying_wire",
                        department="xinhua_community",
                        resident_id=1,
                        resident_language="zh-Hans",
                        description="ladder",
                        created_at=dispatched,
                        updated_at=dispatched,
                        dispatched_at=dispatched,
                        dispatch_count=1,
                    )
                    for number in numbers[first : first + 500]
                ]
                session.add_all(batch)
                await session.flush()
                session.add_all(
                    Escalation(
                        case_id=case.id or 0,
                        ladder="ack",
                        cycle=1,
                        rung=rung,
                        due_at=dispatched + step.offset,
                    )
                    for case in batch
                    for rung, step in enumerate(district.ladder)
                )
        async with transaction(factory) as session:
            for n in range(REPORTS):
                draft = Draft(
                    kind=CaseKind.SAY,
                    description=f"建议加装路灯（R{n}）",
                    category=f"say_{DEPARTMENTS[n % len(DEPARTMENTS)]}",
                    anonymous=False,
                )
                session.add(
                    DialogState(
                        bot_id=BOT_ID,
                        chat_id=FIRST_RESIDENT + n,
                        user_id=FIRST_RESIDENT + n,
                        thread_id="",
                        business_connection_id="",
                        destiny="default",
                        state=Filing.confirm.state,
                        data={"token": f"r{n}", "draft": draft.to_dict()},
                        updated_at=now,
                    )
                )
    finally:
        await engine.dispose()
    return numbers


async def put_summaries(api_server: BotAPIServer) -> dict[int, tuple[int, str]]:
    """Each resident has started the bot and holds a dialog at its summary: the bot's summary
    message with Confirm (the dialog state is seeded in the database). The starts are not
    handled by the service (dropped before it runs): the run is about the Confirm presses."""
    summaries: dict[int, tuple[int, str]] = {}
    async with aiohttp.ClientSession() as http:
        api = f"{api_server.base_url}/bot{TOKEN}"
        for n in range(REPORTS):
            user = FIRST_RESIDENT + n
            api_server.add_user(user, first_name=f"居民{n}", language_code="zh-hans")
            api_server.send_text(user, "/start")
        await http.post(f"{api}/deleteWebhook", json={"drop_pending_updates": True})
        for n in range(REPORTS):
            user = FIRST_RESIDENT + n
            data = DraftAction(token=f"r{n}", action="ok", value="").pack()
            answer = await http.post(
                f"{api}/sendMessage",
                json={
                    "chat_id": user,
                    "text": "确认提交？",
                    "reply_markup": {
                        "inline_keyboard": [[{"text": "✅ 提交", "callback_data": data}]]
                    },
                },
            )
            summaries[user] = ((await answer.json())["result"]["message_id"], data)
    return summaries


def replica_env(
    database_url: str, redis_env: dict[str, str], api_server: BotAPIServer, district: Path
) -> dict[str, str]:
    return service_env(
        BOT_TOKEN=TOKEN,
        TELEGRAM_API_BASE=api_server.base_url,
        DATABASE_URL=database_url,
        WHISTLE_CONFIG=str(district),
        WEBHOOK_SECRET=SECRET,
        WEBHOOK_PATH="/hook",
        WEB_HOST="127.0.0.1",
        LOG_LEVEL="WARNING",
        OUTBOX_CLAIM_SECONDS="3",
        USER_LOCK_SECONDS="5",
        WEBHOOK_MAX_CONNECTIONS="40",
        **{key: str(value) for key, value in GENEROUS_LIMITS.items()},
        **redis_env,
    )


@pytest.mark.slow
async def test_three_replicas_file_every_report_once_and_fire_every_rung_once(
    tmp_path: Path,
    postgres_url: str | None,
    redis_env: dict[str, str],
    api_server: BotAPIServer,
) -> None:
    """Three ``python -m bot`` replicas in webhook mode on one PostgreSQL and one Redis, the
    test server delivering to them in turn (some updates twice); one is killed with SIGKILL
    half-way. Every Confirm press is one case, every ladder rung fires once and its message
    reaches its chat, nothing stays pending."""
    if postgres_url is None:
        if REQUIRE_POSTGRES:
            pytest.fail("PostgreSQL is required")
        pytest.skip("PostgreSQL is not available")
    await _pg_execute(postgres_url, "DROP SCHEMA IF EXISTS public CASCADE", "CREATE SCHEMA public")
    await migrate(postgres_url)
    district_file = replica_district(tmp_path)
    district = load_district(district_file)
    started = time.monotonic()
    ladder_numbers = await seed(postgres_url, district)
    api_server.add_user(STAFF, first_name="赵工")
    for chat_id in district.configured_chat_ids():
        api_server.create_group(chat_id, f"group {chat_id}", members=[STAFF])
    for person in (LEADER, CENTER_HEAD):
        api_server.add_user(person, first_name="x", language_code="zh-hans")
    summaries = await put_summaries(api_server)
    for person in (LEADER, CENTER_HEAD):
        api_server.send_text(person, "/start")  # handled by the replicas like any update
    seeded = time.monotonic() - started

    env = replica_env(postgres_url, redis_env, api_server, district_file)
    ports = [free_port() for _ in range(REPLICAS)]
    urls = [f"http://127.0.0.1:{port}/hook" for port in ports]
    balance = api_server.balance_webhook(urls, parallel=24, repeat_every=7)
    assert balance is not None
    logs = [tmp_path / f"replica-{n}.log" for n in range(REPLICAS)]
    processes = []
    for n, port in enumerate(ports):
        with logs[n].open("wb") as log:
            processes.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "bot",
                    env={**env, "WEB_PORT": str(port), "WEBHOOK_URL": urls[n]},
                    cwd=tmp_path,
                    stdout=log,
                    stderr=log,
                )
            )
    confirmed: list[int] = []
    killed = False
    try:
        await api_server.wait_for(
            lambda s: s.webhook_info().get("url"), timeout=60, description="a replica up"
        )
        up = time.monotonic() - started
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def resident(user: int) -> None:
            nonlocal killed
            message_id, data = summaries[user]
            async with gate:
                api_server.press_button(user, message_id, data)
                confirmed.append(user)
                await api_server.wait_for(
                    lambda s: any("HB-" in (m.text or "") for m in s.messages(user, bot=BOT_ID)),
                    timeout=90,
                    description=f"the receipt for {user}",
                )
            if not killed and len(confirmed) >= REPORTS // 2:
                killed = True
                processes[1].kill()  # SIGKILL, mid-run

        await asyncio.gather(*(resident(user) for user in summaries))
        filed = time.monotonic() - started
        engine = create_engine(postgres_url)
        factory = session_factory(engine)
        try:
            for _ in range(600):  # the ladder's first scans come 30 s after each start
                async with factory() as session:
                    pending_rungs = await session.scalar(
                        select(func.count())
                        .select_from(Escalation)
                        .where(col(Escalation.state) == EscalationState.PENDING)
                        .where(col(Escalation.case_id) <= LADDER_CASES)
                    )
                    pending_rows = await session.scalar(
                        select(func.count())
                        .select_from(OutboxMessage)
                        .where(col(OutboxMessage.status) == OutboxStatus.PENDING)
                    )
                if not pending_rungs and not pending_rows:
                    break
                await asyncio.sleep(0.5)
            async with factory() as session:
                cases = (
                    await session.execute(select(col(Case.resident_id), col(Case.number)))
                ).all()
                rungs = (
                    await session.execute(
                        select(col(Escalation.state), func.count())
                        .where(col(Escalation.case_id) <= LADDER_CASES)
                        .group_by(col(Escalation.state))
                    )
                ).all()
                escalated = await session.scalar(
                    select(func.count())
                    .select_from(CaseEvent)
                    .where(col(CaseEvent.kind) == "escalated")
                )
                dead = (
                    await session.execute(
                        select(col(OutboxMessage.method), col(OutboxMessage.last_error)).where(
                            col(OutboxMessage.status) == OutboxStatus.DEAD
                        )
                    )
                ).all()
                pending = await session.scalar(
                    select(func.count())
                    .select_from(OutboxMessage)
                    .where(col(OutboxMessage.status) == OutboxStatus.PENDING)
                )
        finally:
            await engine.dispose()
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        codes = [await asyncio.wait_for(p.wait(), timeout=30) for p in processes]
    total = time.monotonic() - started

    # Every Confirm press is exactly one case.
    filed_by = Counter(resident for resident, _ in cases if resident >= FIRST_RESIDENT)
    assert len(confirmed) == REPORTS
    assert sorted(filed_by) == sorted(summaries)
    assert set(filed_by.values()) == {1}
    # Every rung fired once (its event written once), and its message reached its chat; a
    # message in flight at the kill may have gone twice (at least once, one per chat at most).
    assert dict(rungs) == {EscalationState.FIRED: 4 * LADDER_CASES}
    assert escalated == 4 * LADDER_CASES
    repeats = 0
    for chat in set(RUNG_CHATS):
        seen = Counter(
            number
            for message in api_server.messages(chat, bot=BOT_ID)
            for number in set(re.findall(r"LT-\d{6}", message.text or message.caption or ""))
        )
        expected = RUNG_CHATS.count(chat)
        assert all(seen[number] >= expected for number in ladder_numbers), chat
        repeats += sum(seen[number] - expected for number in ladder_numbers)
    assert repeats <= len(set(RUNG_CHATS))
    assert pending == 0
    for method, error in dead:  # only callback answers given too late for Telegram
        assert method == "answerCallbackQuery" and "query is too old" in (error or ""), error
    assert codes[1] == -signal.SIGKILL
    assert codes[0] == codes[2] == 0, [log.read_text()[-3000:] for log in logs]
    print(
        f"\n{REPORTS} reports and {4 * LADDER_CASES} rungs over {REPLICAS} replicas (one killed): "
        f"seeded in {seeded:.1f} s, a replica up at {up:.1f} s, reports filed by {filed:.1f} s, "
        f"all done in {total:.1f} s; "
        f"{balance.repeated} updates delivered twice, {repeats} messages repeated after the "
        f"kill, {len(dead)} late callback answers"
    )
