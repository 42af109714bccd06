"""Webhook mode, /health and /metrics, through the Bot API test server delivering updates over
HTTP like Telegram (with the secret token header, retrying whatever is not a 2xx).

Telegram's deliveries go through a small proxy standing at the public URL (as a reverse proxy
would): it passes each update to the bot and, when the bot answers 200, looks at the database
in a fresh session before passing the answer on — so the tests see what Telegram may rely on
at the moment it is told "done".
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import signal
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bot.app import Whistle
from bot.db import create_engine, session_factory, transaction
from bot.district import District
from bot.services import menu
from bot.settings import Settings
from bot.testserver import BotAPIServer
from models import Case, CaseStatus, OutboxMessage, ProcessedUpdate
from tests.conftest import (
    BOT_ID,
    EXAMPLE_DISTRICT,
    POSTGRES_ADMIN_URL,
    TOKEN,
    AppFactory,
    _pg_execute,
    settled,
)
from tests.locking import write_lock_held
from tests.test_process import run_bot, service_env
from tests.test_resident_flows import (
    CGZF,
    RESIDENT,
    STAFF,
    case_rows,
    photo_report_to_summary,
    press,
    say,
)

SECRET = "s3cret_Token-42"
PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
STRANGER = 7401


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Delivery:
    update: dict[str, Any]
    status: int
    cases_visible: int | None = None  # cases in the database when the bot answered 200
    claimed_visible: bool | None = None  # the update id recorded as processed by then


class PublicUrl:
    """The webhook's public URL: forwards to the bot and checks the database on each 200."""

    def __init__(self, bot_url: str, database_url: str) -> None:
        self.bot_url = bot_url
        self.engine = create_engine(database_url)
        self.deliveries: list[Delivery] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}{PATH}"
        app = web.Application()
        app.router.add_post(PATH, self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
        await self.engine.dispose()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        headers = {SECRET_HEADER: request.headers.get(SECRET_HEADER, "")}
        async with self._session.post(self.bot_url, data=body, headers=headers) as response:
            status = response.status
        delivery = Delivery(json.loads(body), status)
        if status == 200:
            async with session_factory(self.engine)() as session:
                delivery.cases_visible = await session.scalar(
                    select(func.count()).select_from(Case)
                )
                claimed = await session.get(
                    ProcessedUpdate, (BOT_ID, delivery.update["update_id"])
                )
                delivery.claimed_visible = claimed is not None
        self.deliveries.append(delivery)
        return web.Response(status=status)

    def statuses(self, update_id: int) -> list[int]:
        return [d.status for d in self.deliveries if d.update["update_id"] == update_id]


@pytest.fixture
async def public(database_url: str) -> AsyncIterator[PublicUrl]:
    bot_port = free_port()
    proxy = PublicUrl(f"http://127.0.0.1:{bot_port}{PATH}", database_url)
    await proxy.start()
    yield proxy
    await proxy.stop()


def webhook_env(public: PublicUrl, **extra: Any) -> dict[str, Any]:
    return {
        "WEB_ENABLED": True,
        "WEBHOOK_URL": public.url,
        "WEBHOOK_SECRET": SECRET,
        "WEB_PORT": make_url(public.bot_url).port,
        **extra,
    }


@pytest.fixture
async def app(
    api_server: BotAPIServer, make_app: AppFactory, district: District, public: PublicUrl
) -> Whistle:
    api_server.add_user(RESIDENT, first_name="王晓霞", username="wangxx", language_code="zh-hans")
    api_server.add_user(STAFF, first_name="赵工")
    api_server.add_user(STRANGER, first_name="Li", language_code="en")
    for chat_id in district.configured_chat_ids():
        api_server.create_group(chat_id, f"group {chat_id}", members=[STAFF])
    return await make_app(env=webhook_env(public))


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def local(app: Whistle, path: str) -> str:
    return f"http://127.0.0.1:{app.web_port}{path}"


def start_update(update_id: int, user: int = STRANGER) -> dict[str, Any]:
    sender = {"id": user, "is_bot": False, "first_name": "Li", "language_code": "en"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": 1,
            "date": 1_700_000_000,
            "chat": {"id": user, "type": "private", "first_name": "Li"},
            "from": sender,
            "text": "/start",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }


async def all_delivered(api_server: BotAPIServer) -> None:
    """Until Telegram's queue is empty (the proxy has recorded every answer by then)."""
    await api_server.wait_for(lambda s: not s.pending_updates(), description="all delivered")


async def processed(app: Whistle, update_id: int) -> bool:
    async with transaction(app.factory) as session:
        return await session.get(ProcessedUpdate, (BOT_ID, update_id)) is not None


async def outbox_rows(app: Whistle) -> list[OutboxMessage]:
    async with transaction(app.factory) as session:
        return list((await session.scalars(select(OutboxMessage))).all())


# -- the webhook -----------------------------------------------------------------------------


class TestWebhookDelivery:
    async def test_start_and_a_photo_report_end_to_end(
        self, app: Whistle, api_server: BotAPIServer, public: PublicUrl
    ) -> None:
        info = api_server.webhook_info()
        assert info["url"] == public.url
        assert info["allowed_updates"] == app.dispatcher.resolve_used_update_types()
        assert "callback_query" in info["allowed_updates"]

        greeting = await say(api_server, "/start")
        assert "王晓霞" in greeting.text
        summary = await photo_report_to_summary(api_server, "楼道飞线充电")
        await press(api_server, summary, "确认提交")
        [receipt] = await api_server.wait_for_message(RESIDENT)
        assert "HB-000001" in receipt.text
        *_photos, card = await api_server.wait_for_message(CGZF, count=3)
        assert "HB-000001" in card.text
        [case] = await case_rows(app)
        assert case.status is CaseStatus.DISPATCHED

        await all_delivered(api_server)
        assert not api_server.calls("getUpdates")  # every update came through the webhook
        assert {d.status for d in public.deliveries} == {200}
        # Acknowledged only after commit: at each 200 the update was already recorded, and
        # when the confirmation was acknowledged its case was already in the database.
        assert all(d.claimed_visible for d in public.deliveries)
        [confirm] = [
            d
            for d in public.deliveries
            if d.update.get("callback_query", {}).get("message", {}).get("message_id")
            == summary.message_id
        ]
        assert confirm.cases_visible == 1

    async def test_a_failing_update_is_answered_500_and_its_redelivery_has_one_effect(
        self,
        app: Whistle,
        api_server: BotAPIServer,
        public: PublicUrl,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        greet = menu.greet
        calls = 0

        def flaky(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("simulated crash before commit")
            return greet(*args, **kwargs)

        monkeypatch.setattr(menu, "greet", flaky)
        message = api_server.send_text(STRANGER, "/start")
        [reply] = await api_server.wait_for_message(STRANGER, timeout=10)
        assert "Li" in reply.text
        [update_id] = {
            d.update["update_id"]
            for d in public.deliveries
            if d.update.get("message", {}).get("message_id") == message["message_id"]
        }
        await all_delivered(api_server)
        assert public.statuses(update_id) == [500, 200]
        assert api_server.stats["webhook_errors"] >= 1
        await settled(app)  # the sender has nothing left to send
        assert len(api_server.messages(STRANGER)) == 1
        assert [r.chat_id for r in await outbox_rows(app)] == [STRANGER]

    async def test_an_update_that_keeps_failing_is_given_up_with_an_apology(
        self,
        app: Whistle,
        api_server: BotAPIServer,
        public: PublicUrl,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        def broken(*args: Any, **kwargs: Any) -> None:
            raise RuntimeError("simulated bug")

        monkeypatch.setattr(menu, "greet", broken)
        api_server.send_text(STRANGER, "/start")
        api_server.send_text(STRANGER, "/help")  # held back behind the failing update
        apology, help_text = await api_server.wait_for_message(STRANGER, count=2, timeout=15)
        assert apology.text.startswith("Sorry, something went wrong.")
        assert help_text.text.startswith("Commands:")
        await all_delivered(api_server)
        first = public.deliveries[0].update["update_id"]
        assert public.statuses(first) == [500, 500, 200]

    async def test_a_duplicate_delivery_changes_nothing(
        self,
        app: Whistle,
        api_server: BotAPIServer,
        public: PublicUrl,
        http: aiohttp.ClientSession,
    ) -> None:
        await say(api_server, "/start")
        await all_delivered(api_server)
        delivered = public.deliveries[-1].update
        before = len(await outbox_rows(app))
        async with http.post(
            local(app, PATH), json=delivered, headers={SECRET_HEADER: SECRET}
        ) as response:
            assert response.status == 200
        assert len(await outbox_rows(app)) == before
        await settled(app)  # the sender has nothing left to send
        assert len(api_server.messages(RESIDENT)) == 1

    async def test_the_server_posts_updates_of_different_chats_at_once(
        self, app: Whistle, api_server: BotAPIServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The test server, like Telegram, posts up to max_connections updates at once (one at
        a time per chat): while one person's update is held in the bot, another person's is
        delivered and answered, and the held person's next update waits its turn."""
        held, release = asyncio.Event(), asyncio.Event()
        process = app.policy.process

        async def slow_stranger(bot: Any, dispatcher: Any, update: Any) -> Any:
            message = update.message
            if message is not None and message.text == "/start" and message.chat.id == STRANGER:
                held.set()
                await release.wait()
            return await process(bot, dispatcher, update)

        monkeypatch.setattr(app.policy, "process", slow_stranger)
        api_server.send_text(STRANGER, "/start")
        await asyncio.wait_for(held.wait(), timeout=10)
        api_server.send_text(STRANGER, "/help")  # the same chat: after the held one
        api_server.send_text(RESIDENT, "/start")  # another chat: posted at once
        [greeting] = await api_server.wait_for_message(RESIDENT, timeout=10)
        assert "王晓霞" in greeting.text
        assert api_server.messages(STRANGER) == []  # both of the held chat's updates wait
        release.set()
        first, second = await api_server.wait_for_message(STRANGER, count=2, timeout=10)
        assert first.text.startswith("Hello, Li!") and second.text.startswith("Commands:")

    async def test_different_people_are_handled_at_once_one_person_in_order(
        self,
        app: Whistle,
        http: aiohttp.ClientSession,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Telegram posts up to max_connections updates at once: one person's update that is
        still running holds back only that person's next one."""
        held, release = asyncio.Event(), asyncio.Event()
        process = app.policy.process

        async def slow_first(bot: Any, dispatcher: Any, update: Any) -> Any:
            if update.update_id == 90101:
                held.set()
                await release.wait()
            return await process(bot, dispatcher, update)

        monkeypatch.setattr(app.policy, "process", slow_first)

        async def post(update: dict[str, Any]) -> int:
            headers = {SECRET_HEADER: SECRET}
            async with http.post(local(app, PATH), json=update, headers=headers) as response:
                return response.status

        first = asyncio.create_task(post(start_update(90101, user=STRANGER)))
        await held.wait()
        same_person = asyncio.create_task(post(start_update(90103, user=STRANGER)))
        assert await post(start_update(90102, user=RESIDENT)) == 200  # another person: at once
        assert await processed(app, 90102)
        assert not first.done() and not same_person.done()
        assert not await processed(app, 90103)  # waits for the person's update before it
        release.set()
        assert await first == 200 and await same_person == 200
        assert await processed(app, 90101) and await processed(app, 90103)

    @pytest.mark.parametrize("headers", [{}, {SECRET_HEADER: "wrong"}, {SECRET_HEADER: ""}])
    async def test_a_wrong_or_missing_secret_is_refused_and_nothing_is_processed(
        self,
        app: Whistle,
        api_server: BotAPIServer,
        http: aiohttp.ClientSession,
        headers: dict[str, str],
    ) -> None:
        async with http.post(local(app, PATH), json=start_update(90001), headers=headers) as r:
            assert r.status == 401
        assert not await processed(app, 90001)
        assert await outbox_rows(app) == []
        assert app.metrics.updates == {}

    async def test_oversized_and_malformed_bodies_are_refused(
        self, app: Whistle, http: aiohttp.ClientSession
    ) -> None:
        update = start_update(90002)
        update["message"]["text"] = "/start " + "x" * app.settings.webhook_max_body
        headers = {SECRET_HEADER: SECRET}
        async with http.post(local(app, PATH), json=update, headers=headers) as response:
            assert response.status == 413
        async with http.post(local(app, PATH), data=b"{not json", headers=headers) as response:
            assert response.status == 400
        async with http.post(local(app, PATH), json={"hello": 1}, headers=headers) as response:
            assert response.status == 400
        # An update this aiogram cannot read is accepted (and logged), or Telegram would hold
        # back every update behind it.
        unreadable = {"update_id": 90003, "message": {"message_id": 1, "text": "/start"}}
        async with http.post(local(app, PATH), json=unreadable, headers=headers) as response:
            assert response.status == 200
        assert not await processed(app, 90002)
        assert await outbox_rows(app) == []

    async def test_stopping_keeps_the_webhook_and_polling_mode_deletes_it(
        self, app: Whistle, api_server: BotAPIServer, make_app: AppFactory, public: PublicUrl
    ) -> None:
        await app.stop()
        assert api_server.webhook_info()["url"] == public.url  # Telegram keeps queuing
        assert not api_server.calls("deleteWebhook")
        polling = await make_app(env={"WEB_ENABLED": True})
        assert api_server.webhook_info()["url"] == ""
        api_server.send_text(STRANGER, "/start")
        await api_server.wait_for_message(STRANGER)
        async with (
            aiohttp.ClientSession() as http,
            http.get(local(polling, "/health")) as response,
        ):
            body = await response.json()
        assert response.status == 200
        assert body["mode"] == "polling"


# -- /health and /metrics --------------------------------------------------------------------


async def insert_dead_message(app: Whistle, reason: str) -> None:
    now = app.clock.now()
    async with transaction(app.factory) as session:
        row = OutboxMessage(
            chat_id=STRANGER,
            method="sendMessage",
            locale="en",
            text_key="help.text",
            created_at=now,
            next_attempt_at=now,
        )
        row.mark_dead(reason=reason, now=now)
        session.add(row)


class TestHealth:
    async def test_healthy_then_degraded_by_a_dead_message_without_its_text(
        self, app: Whistle, http: aiohttp.ClientSession
    ) -> None:
        async with http.get(local(app, "/health")) as response:
            assert response.status == 200
            body = await response.json()
        assert body["status"] == "ok"
        assert body["mode"] == "webhook"
        assert body["database"]["ok"] is True
        assert body["outbox"] == {"pending": 0, "dead": 0, "recent_dead": []}

        await insert_dead_message(
            app, "TelegramBadRequest: Bad Request: can't parse entities: \"王晓霞's secret\""
        )
        async with http.get(local(app, "/health")) as response:
            assert response.status == 200  # degraded, still serving
            body = await response.json()
        assert body["status"] == "degraded"
        assert body["outbox"]["dead"] == 1
        [dead] = body["outbox"]["recent_dead"]
        assert dead["method"] == "sendMessage"
        assert dead["reason"].startswith("TelegramBadRequest: Bad Request: can't parse entities")
        assert "王晓霞" not in json.dumps(body, ensure_ascii=False)

    async def test_answers_at_once_while_another_connection_holds_the_write_lock(
        self, app: Whistle, http: aiohttp.ClientSession, database_url: str
    ) -> None:
        # /health and /metrics read in read-only transactions: on SQLite no BEGIN IMMEDIATE,
        # so they do not queue behind a writer (for up to the 15 s busy timeout, which made
        # /health answer 503 after its own 2 s).
        # /health gives the database 2 s before it answers 503: a 200 says it did not wait.
        async with write_lock_held(database_url):
            async with asyncio.timeout(10):  # well below the busy timeout it would wait out
                async with http.get(local(app, "/health")) as response:
                    status, body = response.status, await response.json()
                async with http.get(local(app, "/metrics")) as response:
                    metrics = await response.text()
        assert status == 200, body
        assert body["database"]["ok"] is True and body["status"] == "ok"
        assert "whistle_database_up 1" in metrics.splitlines()

    async def test_an_unreachable_database_is_503(
        self,
        app: Whistle,
        http: aiohttp.ClientSession,
        database_url: str,
        tmp_path: Path,
    ) -> None:
        if make_url(database_url).get_backend_name() == "postgresql":
            # A real outage: the database refuses new connections and loses the open ones.
            name = make_url(database_url).database
            await _pg_execute(
                POSTGRES_ADMIN_URL,
                f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false',
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{name}' AND pid <> pg_backend_pid()",
            )
            try:
                app.sender.wake()  # the rest of the service meets the outage too
                async with http.get(local(app, "/health")) as response:
                    status, body = response.status, await response.json()
                await asyncio.sleep(0.2)
            finally:
                await _pg_execute(
                    POSTGRES_ADMIN_URL, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'
                )
        else:
            # The disk holding the database went away.
            assert app.web is not None
            gone = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'gone' / 'x.db'}")
            healthy, app.web.factory = app.web.factory, session_factory(gone)
            try:
                async with http.get(local(app, "/health")) as response:
                    status, body = response.status, await response.json()
            finally:
                app.web.factory = healthy
                await gone.dispose()
        assert status == 503
        assert body["status"] == "unavailable"
        assert body["database"]["ok"] is False
        async with http.get(local(app, "/health")) as response:
            assert response.status == 200  # back once the database is
        await app.stop()  # and the service still stops cleanly


SAMPLE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)"
    r"(?:\{(?P<labels>(?:[a-zA-Z_][a-zA-Z0-9_]*=\"(?:[^\"\\]|\\.)*\",?)*)\})?"
    r" (?P<value>[^ ]+)$"
)
LABEL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)=\"((?:[^\"\\]|\\.)*)\"")


def parse_prometheus(page: str) -> dict[str, dict[frozenset[tuple[str, str]], float]]:
    """A strict reader of the text exposition format: every sample belongs to a family
    declared by # TYPE before it; returns samples by name and label set."""
    types: dict[str, str] = {}
    samples: dict[str, dict[frozenset[tuple[str, str]], float]] = {}
    assert page.endswith("\n")
    for line in page.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped")
            assert name not in types, f"{name} declared twice"
            types[name] = kind
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name = match["name"]
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in types or types.get(family) == "histogram", f"{name} has no # TYPE"
        labels = frozenset(LABEL.findall(match["labels"] or ""))
        value = float(match["value"])
        assert not math.isnan(value)
        samples.setdefault(name, {})[labels] = value
    return samples


class TestMetrics:
    async def test_metrics_parse_and_count_updates_cases_and_sends(
        self, app: Whistle, api_server: BotAPIServer, http: aiohttp.ClientSession
    ) -> None:
        await say(api_server, "/start")
        summary = await photo_report_to_summary(api_server, "楼道飞线充电")
        await press(api_server, summary, "确认提交")
        await api_server.wait_for_message(RESIDENT)
        await api_server.wait_for_message(CGZF, count=3)
        await insert_dead_message(app, "TelegramForbiddenError: Forbidden: bot was blocked")
        await settled(app)

        async with http.get(local(app, "/metrics")) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            metrics = parse_prometheus(await response.text())

        def value(name: str, **labels: str) -> float:
            return metrics[name][frozenset(labels.items())]

        assert value("whistle_cases", status="dispatched") == 1
        assert value("whistle_outbox_dead") == 1
        assert value("whistle_outbox_pending") == 0  # every message went out
        assert value("whistle_database_up") == 1
        assert value("whistle_updates_total", type="message", outcome="handled") >= 3
        assert value("whistle_updates_total", type="callback_query", outcome="handled") >= 2
        [build] = metrics["whistle_build_info"]
        assert ("mode", "webhook") in build
        sent = value("whistle_send_latency_seconds_count", outcome="ok")
        assert sent >= 5
        assert value("whistle_send_latency_seconds_bucket", outcome="ok", le="+Inf") == sent
        by_bound = sorted(
            (float(dict(labels)["le"]), v)
            for labels, v in metrics["whistle_send_latency_seconds_bucket"].items()
            if ("outcome", "ok") in labels
        )
        counts = [v for _, v in by_bound]
        assert counts == sorted(counts)  # cumulative buckets
        assert by_bound[-1] == (math.inf, sent)


# -- settings --------------------------------------------------------------------------------


class TestWebhookSettings:
    def settings(self, **values: Any) -> Settings:
        return Settings(_env_file=None, BOT_TOKEN=TOKEN, **values)  # type: ignore[call-arg]

    def test_webhook_mode_needs_a_secret(self) -> None:
        with pytest.raises(ValidationError, match="WEBHOOK_SECRET is required"):
            self.settings(WEBHOOK_URL="https://bot.example.org/tg/hook")

    @pytest.mark.parametrize("secret", ["has space", "ünïcode", "x" * 257, "semi;colon"])
    def test_the_secret_must_fit_telegrams_rule(self, secret: str) -> None:
        with pytest.raises(ValidationError, match="1-256 characters"):
            self.settings(WEBHOOK_URL="https://bot.example.org/hook", WEBHOOK_SECRET=secret)

    def test_the_path_comes_from_the_url_unless_given(self) -> None:
        settings = self.settings(
            WEBHOOK_URL="https://bot.example.org/tg/hook?x=1", WEBHOOK_SECRET="a-B_9"
        )
        assert settings.webhook_mode
        assert settings.resolved_webhook_path() == "/tg/hook"
        assert (settings.web_host, settings.web_port) == ("127.0.0.1", 0)  # tests: port 0
        other = self.settings(
            WEBHOOK_URL="https://bot.example.org/", WEBHOOK_SECRET="s", WEBHOOK_PATH="/in"
        )
        assert other.resolved_webhook_path() == "/in"
        assert not self.settings().webhook_mode


# -- the real process ------------------------------------------------------------------------


@pytest.mark.slow
async def test_the_service_in_webhook_mode_answers_start_and_serves_health(
    tmp_path: Path, database_url: str, api_server: BotAPIServer
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    env = service_env(
        BOT_TOKEN=TOKEN,
        TELEGRAM_API_BASE=api_server.base_url,
        DATABASE_URL=database_url,
        WHISTLE_CONFIG=str(EXAMPLE_DISTRICT),
        WEBHOOK_URL=url,
        WEBHOOK_SECRET=SECRET,
        WEB_PORT=str(port),
    )
    process = await run_bot(env=env, cwd=tmp_path)
    try:
        api_server.add_user(STRANGER, first_name="Li", language_code="en")
        await api_server.wait_for(lambda s: s.webhook_info()["url"] == url, timeout=60)
        api_server.send_text(STRANGER, "/start")
        [reply] = await api_server.wait_for_message(STRANGER, timeout=30)
        assert "Li" in reply.text
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/health") as response,
        ):
            body = await response.json()
        assert response.status == 200
        assert (body["status"], body["mode"]) == ("ok", "webhook")
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, stderr.decode()[-2000:]
    assert not api_server.calls("getUpdates")
    assert api_server.webhook_info()["url"] == url  # kept: Telegram queues while it is down
    events = [json.loads(line) for line in stderr.decode().splitlines() if line.strip()]
    assert {"webhook.set", "web.started", "app.stopped"} <= {e["event"] for e in events}
    assert SECRET not in stderr.decode()
    assert os.environ.get("WEB_PORT") == "0"  # the suite never uses the default port


class TestLoadBalancedDelivery:
    """The test server standing in for a load balancer in front of several replicas."""

    async def test_updates_rotate_over_receivers_in_order_per_chat_and_some_come_twice(
        self, api_server: BotAPIServer
    ) -> None:
        received: list[tuple[int, int, int]] = []  # (receiver, update id, chat)
        runners: list[web.AppRunner] = []

        def receiver(number: int) -> web.Application:
            async def take(request: web.Request) -> web.Response:
                assert request.headers[SECRET_HEADER] == SECRET
                update = await request.json()
                await asyncio.sleep(0.01)  # a receiver handling it
                received.append((number, update["update_id"], update["message"]["chat"]["id"]))
                return web.Response()

            app = web.Application()
            app.router.add_post(PATH, take)
            return app

        urls = []
        for number in range(2):
            runner = web.AppRunner(receiver(number))
            await runner.setup()
            port = free_port()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            runners.append(runner)
            urls.append(f"http://127.0.0.1:{port}{PATH}")
        dead = f"http://127.0.0.1:{free_port()}{PATH}"  # a replica that is down
        try:
            users = [7600 + n for n in range(4)]
            for user in users:
                api_server.add_user(user, first_name="x", language_code="en")
            balance = api_server.balance_webhook([urls[0], dead, urls[1]], parallel=4)
            assert balance is not None
            balance.repeat_every = 5
            async with aiohttp.ClientSession() as http:
                answer = await http.post(
                    f"{api_server.base_url}/bot{TOKEN}/setWebhook",
                    json={"url": urls[0], "secret_token": SECRET},
                )
                assert (await answer.json())["ok"]
            for n in range(10):
                for user in users:
                    api_server.send_text(user, f"{n}")
            for _ in range(400):  # all 40 and the repeats of every fifth
                if len(received) >= 48:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.1)  # nothing more comes
        finally:
            api_server.balance_webhook(None)
            for runner in runners:
                await runner.cleanup()
        assert api_server.webhook_info()["pending_update_count"] == 0
        ids = [update_id for _, update_id, _ in received]
        assert set(ids) == set(range(min(ids), min(ids) + 40))  # every update arrived
        assert len(ids) == 40 + balance.repeated and balance.repeated == 8
        assert {number for number, _, _ in received} == {0, 1}  # both receivers had work
        for user in users:
            firsts: list[int] = []
            for _, update_id, chat in received:
                if chat == user and update_id not in firsts:
                    firsts.append(update_id)
            assert firsts == sorted(firsts)  # each chat's updates arrived in order
        assert api_server.stats["webhook_errors"] > 0  # the dead one was tried and skipped
