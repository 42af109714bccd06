"""``BotAPIServer``: lifecycle, bot registration and the assembled control API.

Owns starting and stopping the aiohttp application on a free port, the shared HTTP client
session (webhook delivery, fetching photo URLs), webhook delivery tasks, the bot tokens and
``reset``.  The control API methods come from the ``UserActions``, ``Inspection`` and
``FaultControls`` mixins.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Self

import aiohttp
from aiohttp import web

from .actors import UserActions
from .control import ControlHttp
from .core import ServerConfig, ServerCore
from .fault_controls import FaultControls
from .http_api import BotApiHttp
from .inspection import Inspection
from .webhook import WebhookDeliverer
from .world import BotState, WebhookBalance, unix_now

_TOKEN = re.compile(r"^\d{1,19}:[A-Za-z0-9_-]+$")
MAX_UPLOAD = 64 * 1024 * 1024


class BotAPIServer(UserActions, Inspection, FaultControls):
    """A Telegram Bot API look-alike on real HTTP, plus a control API to drive it."""

    def __init__(
        self,
        tokens: Iterable[str] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = "whistle_test_bot",
        first_name: str = "Whistle Test Bot",
        privacy_mode: bool = True,
        callback_query_ttl: float = 15.0,
        webhook_retry_delay: float = 0.05,
        webhook_max_retry_delay: float = 1.0,
        webhook_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        dates: Callable[[], int] = unix_now,
    ) -> None:
        """``clock`` paces (monotonic seconds); ``dates`` is what messages are dated with
        (Unix seconds: the wall clock unless a simulation has its own)."""
        config = ServerConfig(
            default_username=username,
            default_first_name=first_name,
            privacy_mode=privacy_mode,
            callback_query_ttl=callback_query_ttl,
            webhook_retry_delay=webhook_retry_delay,
            webhook_max_retry_delay=webhook_max_retry_delay,
            webhook_timeout=webhook_timeout,
        )
        self._core = ServerCore(config, clock, dates)
        self._core.webhook_changed = self._webhook_changed
        self._host = host
        self._port = port
        self._api = BotApiHttp(self._core)
        self._control = ControlHttp(self)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._deliverers: dict[int, WebhookDeliverer] = {}
        # Deliverers being stopped in the background; kept so the tasks are not collected.
        self._stopping: set[asyncio.Task[None]] = set()
        for token in tokens:
            self.add_bot(token)

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        if self._runner is not None:
            return
        self._core.closing.clear()
        app = web.Application(client_max_size=MAX_UPLOAD)
        app.add_routes(self._api.routes())
        app.add_routes(self._control.routes())
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        await site.start()
        self._runner = runner
        address = runner.addresses[0]
        self._port = int(address[1])
        self._session = aiohttp.ClientSession()
        self._api.session = self._session
        for bot in self._core.world.bots.values():
            self._webhook_changed(bot)

    async def stop(self) -> None:
        self._core.closing.set()
        for bot in self._core.world.bots.values():
            bot.queue.wake()
        for deliverer in list(self._deliverers.values()):
            await deliverer.stop()
        self._deliverers.clear()
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)
        self._core.webhooks.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None
            self._api.session = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        """Root URL; pass it to ``TelegramAPIServer.from_base`` in aiogram."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    @property
    def config(self) -> ServerConfig:
        return self._core.config

    # -- bots --------------------------------------------------------------------------------
    def add_bot(
        self, token: str, *, username: str | None = None, first_name: str | None = None
    ) -> dict[str, Any]:
        """Registers a bot token (its id is the number before ':'); returns the bot User."""
        if not _TOKEN.match(token):
            raise ValueError(f"{token!r} does not look like a bot token (<id>:<secret>)")
        world = self._core.world
        bot_id = int(token.split(":", 1)[0])
        if bot_id in world.bots:
            raise ValueError(f"bot {bot_id} is already registered")
        if bot_id in world.users:
            raise ValueError(f"{bot_id} is already the id of a user")
        config = self._core.config
        if username is None:
            username = config.default_username
            if world.bots:
                username = f"{username.removesuffix('_bot')}{len(world.bots) + 1}_bot"
        state = BotState(token, username, first_name or config.default_first_name)
        world.bots[bot_id] = state
        return state.user_dict()

    def bot_user(self, bot: int | str | None = None) -> dict[str, Any]:
        return self._core.resolve_bot(bot).user_dict()

    def reset(self) -> None:
        """Forgets the world and all logs; bot tokens and limit settings stay."""
        self._core.world.reset()
        self._core.reset_logs()
        for deliverer in list(self._deliverers.values()):
            self._stop_later(deliverer)
        self._deliverers.clear()
        self._core.webhooks.clear()
        self._core.notify()

    def balance_webhook(
        self,
        urls: Iterable[str] | None,
        *,
        parallel: int = 8,
        repeat_every: int = 0,
        bot: int | str | None = None,
    ) -> WebhookBalance | None:
        """Stand in for a load balancer in front of several replicas: webhook updates go to
        ``urls`` in turn instead of the URL given to setWebhook (a failing URL is followed by
        the next), up to ``parallel`` at once but one at a time per chat, and every
        ``repeat_every``-th delivered update is posted twice. ``None`` goes back to the
        ordinary delivery. Returns the balance, which counts what it did."""
        state = self._core.resolve_bot(bot)
        targets = list(urls or [])
        state.balance = (
            WebhookBalance(targets, parallel=max(1, parallel), repeat_every=repeat_every)
            if targets
            else None
        )
        if state.webhook is not None:
            self._webhook_changed(state)
        return state.balance

    def webhook_info(self, *, bot: int | str | None = None) -> dict[str, Any]:
        state = self._core.resolve_bot(bot)
        pending = len(state.queue.pending)
        if state.webhook is None:
            return {"url": "", "has_custom_certificate": False, "pending_update_count": pending}
        return state.webhook.info(pending, state.queue.allowed_updates)

    # -- webhook delivery --------------------------------------------------------------------
    def _webhook_changed(self, bot: BotState) -> None:
        current = self._deliverers.pop(bot.id, None)
        self._core.webhooks.pop(bot.id, None)
        if current is not None:
            self._stop_later(current)
        if bot.webhook is None or self._session is None:
            return
        deliverer = WebhookDeliverer(self._core, bot, self._session, self._api.execute_internal)
        self._deliverers[bot.id] = deliverer
        self._core.webhooks[bot.id] = deliverer
        deliverer.kick()

    def _stop_later(self, deliverer: WebhookDeliverer) -> None:
        task = asyncio.ensure_future(deliverer.stop())
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)
