"""The HTTP side of the service: Telegram's webhook, ``/health`` and ``/metrics`` on one
aiohttp application (the Open311 API and the dashboard add their routes to it).

The webhook answers only after the update's transaction has committed: the unit of work
commits inside ``feed_update``, which this handler awaits (never ``handle_in_background``).
Anything else than a 2xx makes Telegram deliver the update again, which is safe because the
unit of work records every update id and stops a redelivery before it changes anything. An
update that keeps failing gets the same poison-update policy as polling
(:class:`bot.polling.UpdatePolicy`).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import time
from datetime import datetime
from typing import Any

from aiogram import Bot, Dispatcher
from aiohttp import web
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.db import SessionFactory, read_transaction
from bot.logs import log_event
from bot.metrics import Gauges, Metrics
from bot.polling import Outcome, UpdatePolicy, read_updates
from bot.workers import UpdateWorkers, is_urgent, person_of
from models import Case, OutboxMessage, OutboxStatus

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
DATABASE_TIMEOUT = 2.0
RECENT_DEAD = 5
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_QUOTED = re.compile(r"\"[^\"]*\"")


class WebService:
    """Owns the aiohttp application and its runner (start, graceful stop)."""

    def __init__(
        self,
        *,
        factory: SessionFactory,
        metrics: Metrics,
        mode: str,
        host: str,
        port: int,
        bot: Bot | None = None,
        dispatcher: Dispatcher | None = None,
        policy: UpdatePolicy | None = None,
        workers: UpdateWorkers | None = None,
        webhook_path: str | None = None,
        webhook_secret: str | None = None,
        max_body: int = 1024 * 1024,
        shutdown_timeout: float = 30.0,
    ) -> None:
        self.factory = factory
        self.metrics = metrics
        self.mode = mode
        self.host = host
        self.port = port
        self.bot = bot
        self.dispatcher = dispatcher
        self.policy = policy
        self.workers = workers or UpdateWorkers()
        self.webhook_secret = webhook_secret
        self.max_body = max_body
        self.shutdown_timeout = shutdown_timeout
        self.app = web.Application(client_max_size=max_body)
        self.app.router.add_get("/health", self.health)
        self.app.router.add_get("/metrics", self.metrics_page)
        if webhook_path is not None:
            if bot is None or dispatcher is None or policy is None or not webhook_secret:
                raise ValueError("the webhook needs a bot, a dispatcher, a policy and a secret")
            self.app.router.add_post(webhook_path, self.webhook)
        self._runner: web.AppRunner | None = None

    # -- running -----------------------------------------------------------------------------

    async def start(self) -> None:
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=self.shutdown_timeout)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        log_event(logger, "web.started", host=self.host, port=self.bound_port, mode=self.mode)

    @property
    def bound_port(self) -> int:
        """The port actually listened on (``WEB_PORT=0`` picks a free one)."""
        if self._runner is None:
            return self.port
        for address in self._runner.addresses:
            if isinstance(address, tuple):
                return int(address[1])
        return self.port

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish (their updates commit), close."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            log_event(logger, "web.stopped")

    # -- the webhook -------------------------------------------------------------------------

    async def webhook(self, request: web.Request) -> web.Response:
        assert self.bot is not None and self.dispatcher is not None and self.policy is not None
        assert self.webhook_secret is not None
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.webhook_secret.encode()):
            log_event(logger, "webhook.unauthorized", logging.WARNING)
            return web.Response(status=401, text="unauthorized")
        if request.content_length is not None and request.content_length > self.max_body:
            return web.Response(status=413, text="request body too large")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413, text="request body too large")
        try:
            data = json.loads(body)
            if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
                raise ValueError("no update_id")
        except ValueError:
            log_event(logger, "webhook.bad_request", logging.WARNING)
            return web.Response(status=400, text="not an update")
        [(_update_id, update)] = read_updates(self.bot, [data])
        if update is None:
            # An update this aiogram cannot read (logged): accepted, or Telegram would hold
            # back every update behind it.
            return web.Response(status=200)
        bot, dispatcher, policy = self.bot, self.dispatcher, self.policy
        try:
            # In its person's turn, among a bounded number of updates at once.
            outcome = await self.workers.run(
                person_of(update),
                lambda: policy.process(bot, dispatcher, update),
                urgent=is_urgent(update),
            )
        except Exception:
            # Giving up itself failed (the database is down): Telegram will try again.
            logger.exception("webhook.failed", extra={"update_id": update.update_id})
            return web.Response(status=500, text="failed")
        if outcome is Outcome.FAILED:
            return web.Response(status=500, text="failed")
        return web.Response(status=200)

    # -- operations --------------------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        body: dict[str, Any] = {"mode": self.mode}
        try:
            body["outbox"] = await asyncio.wait_for(self._outbox_health(), DATABASE_TIMEOUT)
        except Exception as error:
            body["status"] = "unavailable"
            body["database"] = {"ok": False, "error": type(error).__name__}
            log_event(logger, "health.database_down", logging.WARNING, error=type(error).__name__)
            return web.json_response(body, status=503)
        elapsed = round((time.perf_counter() - started) * 1000, 1)
        body["database"] = {"ok": True, "latency_ms": elapsed}
        body["status"] = "degraded" if body["outbox"]["dead"] else "ok"
        return web.json_response(body, status=200)

    async def _outbox_health(self) -> dict[str, Any]:
        async with read_transaction(self.factory) as session:
            await session.execute(text("SELECT 1"))
            counts = await _outbox_counts(session)
            recent = (
                await session.execute(
                    select(
                        col(OutboxMessage.id),
                        col(OutboxMessage.method),
                        col(OutboxMessage.next_attempt_at),
                        col(OutboxMessage.last_error),
                    )
                    .where(col(OutboxMessage.status) == OutboxStatus.DEAD)
                    .order_by(col(OutboxMessage.id).desc())
                    .limit(RECENT_DEAD)
                )
            ).all()
        return {
            "pending": counts.get(OutboxStatus.PENDING, 0),
            "dead": counts.get(OutboxStatus.DEAD, 0),
            "recent_dead": [
                {"id": row_id, "method": method, "at": _iso(at), "reason": safe_reason(reason)}
                for row_id, method, at, reason in recent
            ],
        }

    async def metrics_page(self, request: web.Request) -> web.Response:
        try:
            gauges = await asyncio.wait_for(self._gauges(), DATABASE_TIMEOUT)
        except Exception as error:
            log_event(logger, "metrics.database_down", logging.WARNING, error=type(error).__name__)
            gauges = Gauges(database_up=False)
        body = self.metrics.render(gauges).encode()
        return web.Response(body=body, headers={"Content-Type": PROMETHEUS_CONTENT_TYPE})

    async def _gauges(self) -> Gauges:
        async with read_transaction(self.factory) as session:
            rows = await session.execute(
                select(col(Case.status), func.count()).group_by(col(Case.status))
            )
            by_status = {str(status): int(count) for status, count in rows}
            outbox = await _outbox_counts(session)
        return Gauges(
            database_up=True,
            cases_by_status=by_status,
            outbox_pending=outbox.get(OutboxStatus.PENDING, 0),
            outbox_dead=outbox.get(OutboxStatus.DEAD, 0),
        )


async def _outbox_counts(session: AsyncSession) -> dict[str, int]:
    """Pending and dead rows (delivered ones are most of the table and not counted)."""
    rows = await session.execute(
        select(col(OutboxMessage.status), func.count())
        .where(col(OutboxMessage.status) != OutboxStatus.DELIVERED)
        .group_by(col(OutboxMessage.status))
    )
    return {str(status): int(count) for status, count in rows}


def safe_reason(reason: str | None, limit: int = 160) -> str:
    """A dead message's reason without anything a user wrote: Telegram quotes parts of the
    text in double quotes in some errors (entity parsing), so quoted parts are dropped."""
    cleaned = _QUOTED.sub("…", reason or "")
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
