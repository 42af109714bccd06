"""The application: wires settings, the district, the database, aiogram, the outbox sender
and the scheduler together, and owns their start and stop.

Tests, ``python -m bot`` and benchmarks all run this same object.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.metadata
import logging
import platform
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from types import TracebackType
from typing import Any, TypeVar

import aiogram
from aiogram import Bot, Dispatcher
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.fsm.middleware import FSMContextMiddleware
from aiogram.fsm.storage.memory import DisabledEventIsolation
from aiogram.types import BotCommand, BotCommandScopeAllPrivateChats, BotCommandScopeChat
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from bot.api_session import BotApiSession
from bot.clock import Clock, SystemClock
from bot.dashboard import Dashboard
from bot.db import (
    SessionFactory,
    create_engine,
    migrate,
    read_transaction,
    session_factory,
    transaction,
)
from bot.district import District
from bot.fsm import DatabaseStorage
from bot.i18n import N_, Catalogues
from bot.logs import log_event
from bot.metrics import Metrics
from bot.middlewares import UnitOfWork, UserIsolation
from bot.open311 import Open311
from bot.pacing import Budget, LocalBudget, Pacer
from bot.polling import UpdatePolicy, poll
from bot.rendering import Renderer, district_globals
from bot.replicas import build_isolation, check_database, check_redis, connect_redis
from bot.sender import OutboxSender
from bot.services import folding, menu, routing
from bot.services.dashboard import access_of
from bot.services.menu import PRIVATE_COMMANDS, commands_for
from bot.services.outbox import report_dead, send_text
from bot.services.users import language_of
from bot.settings import Settings
from bot.shared_pacing import RedisBudget
from bot.telegram_files import TelegramFiles
from bot.warning import EarlyWarning, resolve_keywords_path
from bot.web import WebService
from bot.webapp import MiniApp
from bot.workers import UpdateWorkers
from handlers import build_routers
from models import User
from scheduler import build_scheduler

logger = logging.getLogger(__name__)
T = TypeVar("T")
SENDER_STOP_TIMEOUT = 10.0
POOL_HEADROOM = 5
POOL_OVERFLOW = 10


class Whistle:
    def __init__(
        self,
        *,
        settings: Settings,
        district: District,
        clock: Clock | None = None,
        retry_base: float = 1.0,
    ) -> None:
        if settings.bot_token is None:
            raise ValueError("BOT_TOKEN is not set")
        self.settings = settings
        self.district = district
        self.clock: Clock = clock or SystemClock()
        self.catalogues = Catalogues(
            district.default_language,
            template_globals=district_globals(district),
            zone=district.tzinfo,
        )
        # Loaded before anything starts: a broken library stops the service like a broken
        # district file; later reloads keep the library in use instead.
        self.early_warning = EarlyWarning(resolve_keywords_path(settings.keywords_file))
        self.metrics = Metrics(build=build_info(settings))
        # Updates handled at once; each holds a connection while it runs, and the sender, the
        # scheduler and the web pages need theirs beside them.
        self.workers = UpdateWorkers(settings.update_workers)
        self.engine: AsyncEngine = create_engine(
            settings.database_url,
            synchronous=settings.sqlite_synchronous,
            pool_size=settings.update_workers + POOL_HEADROOM,
            max_overflow=POOL_OVERFLOW,
        )
        # Services fold cards into a digest by the group budget the sender keeps.
        self.factory: SessionFactory = session_factory(
            self.engine,
            info={
                folding.GROUP_BUDGET: settings.send_group_per_minute,
                menu.MINI_APP: settings.resolved_webapp_url() is not None,
            },
        )
        self.bot = Bot(
            settings.bot_token.get_secret_value(),
            session=BotApiSession(api=TelegramAPIServer.from_base(settings.telegram_api_base)),
        )
        # Photos shown on web pages are fetched through the bot.
        self.files = TelegramFiles(self.bot)
        # Several replicas share the pacing budget and the user locks in Redis.
        self.redis = connect_redis(settings.redis_url) if settings.redis_url else None
        budget: Budget = (
            RedisBudget(
                self.redis,
                settings.send_limits(),
                bot_id=self.bot.id,
                prefix=settings.redis_prefix,
            )
            if self.redis is not None
            else LocalBudget(Pacer(settings.send_limits()))
        )
        self.sender = OutboxSender(
            bot=self.bot,
            factory=self.factory,
            renderer=Renderer(self.catalogues, settings.resolved_webapp_url()),
            clock=self.clock,
            limits=settings.send_limits(),
            budget=budget,
            claim_ttl=settings.outbox_claim_seconds,
            # Without Redis this is the only replica: at start, every claim left in the outbox
            # is its dead predecessor's.
            sole_sender=self.redis is None,
            on_dead=functools.partial(
                report_dead,
                center_chat_id=district.governance_center.chat_id,
                locale=district.default_language,
            ),
            retry_base=retry_base,
        )
        self.unit_of_work = UnitOfWork(
            factory=self.factory,
            clock=self.clock,
            catalogues=self.catalogues,
            on_commit=self.sender.wake,
            flood_limit=self.settings.flood_limit,
        )
        self.sender.metrics = self.metrics
        self.policy = UpdatePolicy(give_up=self.unit_of_work.give_up, metrics=self.metrics)
        self.dispatcher = self._build_dispatcher()
        self.web: WebService | None = None
        self.scheduler = build_scheduler(
            factory=self.factory,
            clock=self.clock,
            district=self.district,
            on_commit=self.sender.wake,
            catalogues=self.catalogues,
        )
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopped = False

    def _build_dispatcher(self) -> Dispatcher:
        # One user's updates one at a time (over all replicas with Redis): the lock is taken
        # before the unit of work and held until it has committed. aiogram's FSM middleware
        # comes after the unit of work (without a lock of its own), so dialog state is read
        # and written inside the update's transaction.
        dispatcher = Dispatcher(
            storage=DatabaseStorage(self.factory, self.clock),
            events_isolation=build_isolation(
                self.redis,
                lock_seconds=self.settings.user_lock_seconds,
                prefix=self.settings.redis_prefix,
            ),
            disable_fsm=True,
            district=self.district,
            catalogues=self.catalogues,
            clock=self.clock,
            early_warning=self.early_warning,
            # Where /dashboard's links point: set once the web server listens.
            web_base_url=None,
            dashboard_link_ttl=timedelta(minutes=self.settings.dashboard_link_minutes),
        )
        dispatcher.update.outer_middleware(UserIsolation(dispatcher.fsm))
        dispatcher.update.outer_middleware(self.unit_of_work)
        dispatcher.update.outer_middleware(
            FSMContextMiddleware(
                storage=dispatcher.fsm.storage,
                events_isolation=DisabledEventIsolation(),
                strategy=dispatcher.fsm.strategy,
            )
        )
        dispatcher.include_routers(*build_routers(self.catalogues))
        return dispatcher

    async def start(self, *, receive: bool = True) -> None:
        """Start everything. ``receive=False`` takes no updates from Telegram (tests feed them
        to the dispatcher); otherwise long polling, or the webhook when WEBHOOK_URL is set."""
        webhook = self.settings.webhook_mode
        # Fail fast, saying which, when the database or Redis does not answer.
        await check_database(self.engine, self.settings.database_url)
        if self.redis is not None:
            assert self.settings.redis_url is not None
            await check_redis(self.redis, self.settings.redis_url)
        await migrate(self.settings.database_url)
        me = await self._call_with_retry(self.bot.get_me)
        log_event(
            logger,
            "app.started",
            bot_id=me.id,
            mode="webhook" if webhook else "polling",
            receive=receive,
        )
        await self._register_commands()
        await self._check_groups(me.id)
        # What a killed predecessor had claimed goes out now, not when its claims lapse.
        await self.sender.release_stale_claims()
        self._spawn(self.sender.run(), "sender")
        self.scheduler.start()
        if self.settings.web_enabled:
            self.web = self._build_web(webhook=webhook and receive)
            await self.web.start()
            self.dispatcher["web_base_url"] = self.settings.public_base_url(self.web.bound_port)
        if not receive:
            return
        if webhook:
            await self._set_webhook()
            return
        await self._call_with_retry(lambda: self.bot.delete_webhook(drop_pending_updates=False))
        self._spawn(
            poll(
                self.bot,
                self.dispatcher,
                poll_timeout=self.settings.polling_timeout,
                policy=self.policy,
                workers=self.workers,
            ),
            "polling",
        )

    def _build_web(self, *, webhook: bool) -> WebService:
        settings = self.settings
        secret = settings.webhook_secret
        service = WebService(
            factory=self.factory,
            metrics=self.metrics,
            mode="webhook" if settings.webhook_mode else "polling",
            host=settings.web_host,
            port=settings.web_port,
            bot=self.bot,
            dispatcher=self.dispatcher,
            policy=self.policy,
            workers=self.workers,
            webhook_path=settings.resolved_webhook_path() if webhook else None,
            webhook_secret=secret.get_secret_value() if secret else None,
            max_body=settings.webhook_max_body,
        )
        Open311(
            factory=self.factory,
            district=self.district,
            catalogues=self.catalogues,
            clock=self.clock,
            files=self.files,
            early_warning=self.early_warning,
            on_commit=self.sender.wake,
            public_url=settings.web_public_url,
        ).register(service.app)
        self._build_dashboard().install(service.app)
        MiniApp(
            factory=self.factory,
            district=self.district,
            catalogues=self.catalogues,
            clock=self.clock,
            token=self.bot.token,
            max_age=timedelta(minutes=settings.webapp_max_age_minutes),
            early_warning=self.early_warning,
            on_commit=self.sender.wake,
        ).install(service.app)
        return service

    def _build_dashboard(self) -> Dashboard:
        settings = self.settings
        secret = settings.web_secret
        return Dashboard(
            factory=self.factory,
            district=self.district,
            catalogues=self.catalogues,
            clock=self.clock,
            files=self.files,
            secret=secret.get_secret_value() if secret else None,
            session_lasts=timedelta(hours=settings.dashboard_session_hours),
            secure_cookie=settings.public_base_url().startswith("https://"),
        )

    async def _set_webhook(self) -> None:
        """Telegram keeps queuing updates while the service is down, so the webhook is never
        deleted on stop, and pending updates are never dropped."""
        settings = self.settings
        assert settings.webhook_url is not None and settings.webhook_secret is not None
        url, secret = settings.webhook_url, settings.webhook_secret.get_secret_value()
        allowed = self.dispatcher.resolve_used_update_types()
        await self._call_with_retry(
            lambda: self.bot.set_webhook(
                url,
                secret_token=secret,
                allowed_updates=allowed,
                drop_pending_updates=False,
                max_connections=settings.webhook_max_connections,
            )
        )
        log_event(logger, "webhook.set", allowed_updates=allowed)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks[name] = asyncio.create_task(coro, name=name)

    async def wait(self) -> None:
        """Block until a background task ends; a task that ends on its own is a failure."""
        if not self._tasks:
            return
        done, _ = await asyncio.wait(self._tasks.values(), return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise RuntimeError(f"{task.get_name()} stopped") from task.exception()

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        # Stop taking updates first: the web server stops accepting and lets the requests in
        # flight commit; polling is cancelled (an update cut short rolls back and is fetched
        # again). Then the sender finishes what it has in flight.
        if self.web is not None:
            await self.web.stop()
        for name, task in self._tasks.items():
            if name != "sender":
                task.cancel()
        self.sender.request_stop()
        sender = self._tasks.get("sender")
        if sender is not None:
            # A sender that already failed (the database went away) must not keep the rest
            # from closing; wait() is where its failure is reported.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(sender), timeout=SENDER_STOP_TIMEOUT)
            sender.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        await self.bot.session.close()
        await self.sender.budget.close()
        if self.redis is not None:
            await self.redis.aclose()
        await self.engine.dispose()
        log_event(logger, "app.stopped")

    async def __aenter__(self) -> Whistle:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _check_groups(self, bot_id: int) -> list[str]:
        """Can the bot post in every unit's group? Those it cannot are logged and reported to
        the governance center (when it can post there)."""
        async with transaction(self.factory) as session:
            chats = await routing.bound_chats(session, self.district)
        unreachable: list[str] = []
        for unit, chat_id in chats.items():
            try:
                member = await self.bot.get_chat_member(chat_id, bot_id)
                can_post = member.status in ("creator", "administrator", "member") or (
                    member.status == "restricted" and bool(getattr(member, "can_send_messages", 0))
                )
            except TelegramAPIError:
                can_post = False
            if not can_post:
                unreachable.append(unit)
                log_event(
                    logger, "app.group_unreachable", logging.WARNING, unit=unit, chat_id=chat_id
                )
        center = chats.get(routing.CENTER)
        if unreachable and center is not None and routing.CENTER not in unreachable:
            async with transaction(self.factory) as session:
                lang = self.district.default_language
                names = [self._unit_label(unit, lang) for unit in unreachable]
                send_text(
                    session,
                    chat_id=center,
                    locale=lang,
                    now=self.clock.now(),
                    text_key=N_("health.unreachable-groups"),
                    units=", ".join(names),
                )
        return unreachable

    @property
    def web_port(self) -> int | None:
        """The port of /health, /metrics and the webhook (None when the server is off)."""
        return self.web.bound_port if self.web is not None else None

    def _unit_label(self, unit: str, lang: str) -> str:
        found = self.district.department(unit) or self.district.street_office(unit)
        return f"{found.names.get(lang)} ({unit})" if found else unit

    async def _register_commands(self) -> None:
        """Command menus in every language; Telegram picks one by the user's app language."""
        default = self.catalogues.default_language
        for language in (None, *self.catalogues.languages):
            t = self.catalogues.translator(language or default)
            commands = [BotCommand(command=c, description=t(d)) for c, d in PRIVATE_COMMANDS]
            code = language.split("-", 1)[0].lower() if language else None
            try:
                await self._call_with_retry(
                    functools.partial(
                        self.bot.set_my_commands,
                        commands,
                        scope=BotCommandScopeAllPrivateChats(),
                        language_code=code,
                    )
                )
            except TelegramAPIError as error:
                log_event(logger, "app.commands_failed", logging.WARNING, error=error.message)
        await self._register_staff_commands()

    async def _register_staff_commands(self) -> None:
        """The menu with /dashboard for each person it is for, in their language. Only people
        who have started the bot: Telegram knows no private chat with the others."""
        staff = [
            p.telegram_id for p in self.district.people if access_of(self.district, p.telegram_id)
        ]
        if not staff:
            return
        async with read_transaction(self.factory) as session:
            users = (await session.scalars(select(User).where(col(User.id).in_(staff)))).all()
        for user in users:
            lang = language_of(user, self.catalogues.languages, self.catalogues.default_language)
            t = self.catalogues.translator(lang)
            commands = [BotCommand(command=c, description=t(d)) for c, d in commands_for(True)]
            try:
                await self._call_with_retry(
                    functools.partial(
                        self.bot.set_my_commands,
                        commands,
                        scope=BotCommandScopeChat(chat_id=user.id),
                    )
                )
            except TelegramAPIError as error:
                log_event(
                    logger,
                    "app.commands_failed",
                    logging.WARNING,
                    user_id=user.id,
                    error=error.message,
                )

    @staticmethod
    async def _call_with_retry(call: Callable[[], Awaitable[T]], attempts: int = 5) -> T:
        delay = 0.5
        for attempt in range(attempts):
            try:
                return await call()
            except TelegramRetryAfter as error:  # a 429 at start-up must not stop the service
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(error.retry_after)
            except (TelegramNetworkError, TelegramServerError):
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")


def build_info(settings: Settings) -> dict[str, str]:
    try:
        version = importlib.metadata.version("whistle")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return {
        "version": version,
        "python": platform.python_version(),
        "aiogram": aiogram.__version__,
        "mode": "webhook" if settings.webhook_mode else "polling",
    }
