"""Shared server state and the operations every part of the server needs.

Owns ``ServerConfig``, the world, the logs (requests, bot messages, callback answers, event
feed), statistics, faults, the rate limiter, change notification (what ``wait_for`` sleeps
on) and update emission (queue + webhook wake-up).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import ControlError
from .faults import FaultPlan
from .ratelimit import RateLimiter
from .records import BotMessage, CallbackAnswer, RequestRecord
from .world import BotState, World, unix_now

EVENT_LOG_SIZE = 10_000


@dataclass
class ServerConfig:
    """Behaviour switches of the simulated Telegram."""

    default_username: str = "whistle_test_bot"
    default_first_name: str = "Whistle Test Bot"
    # Bots in groups see only commands, mentions, replies and service messages unless they
    # are administrators, exactly like Telegram's default privacy mode.
    privacy_mode: bool = True
    # How long a callback query can still be answered.
    callback_query_ttl: float = 15.0
    webhook_retry_delay: float = 0.05
    webhook_max_retry_delay: float = 1.0
    webhook_timeout: float = 10.0


class WebhookKicker(Protocol):
    def kick(self) -> None: ...


class ServerCore:
    def __init__(
        self,
        config: ServerConfig,
        clock: Callable[[], float],
        unix_now: Callable[[], int] = unix_now,
    ) -> None:
        self.config = config
        self.clock = clock
        # What messages are dated with (Unix seconds): the wall clock, or a simulated one.
        self.unix_now = unix_now
        self.world = World()
        self.requests: list[RequestRecord] = []
        self.callback_answers: list[CallbackAnswer] = []
        self.bot_messages: list[BotMessage] = []
        # The same records indexed by (bot id, chat id), so per-chat waits stay cheap.
        self.bot_messages_by_chat: dict[tuple[int, int], list[BotMessage]] = {}
        # The event feed keeps only recent events; sequence numbers keep counting.
        self.events: deque[dict[str, Any]] = deque(maxlen=EVENT_LOG_SIZE)
        self.stats: Counter[str] = Counter()
        self.faults = FaultPlan()
        self.limiter = RateLimiter(clock)
        self.closing = asyncio.Event()
        self.webhooks: dict[int, WebhookKicker] = {}
        self.read_cursors: dict[tuple[int, int], int] = {}
        # Set by the server: starts/stops webhook delivery when a bot's webhook changes.
        self.webhook_changed: Callable[[BotState], None] = lambda _bot: None
        self._changed = asyncio.Event()
        self._seq = 0

    # -- change notification -------------------------------------------------------------
    def notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def changed_event(self) -> asyncio.Event:
        return self._changed

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def add_event(self, kind: str, **data: Any) -> None:
        """Appends to the event feed the control API exposes (for playgrounds and logs)."""
        self.events.append({"seq": self.next_seq(), "kind": kind, "time": time.time(), **data})
        self.notify()

    def reset_logs(self) -> None:
        self.requests.clear()
        self.callback_answers.clear()
        self.bot_messages.clear()
        self.bot_messages_by_chat.clear()
        self.events.clear()
        self.stats.clear()
        self.read_cursors.clear()
        self.faults.clear()
        self.limiter.reset()

    # -- bots ------------------------------------------------------------------------------
    def default_bot(self) -> BotState:
        if not self.world.bots:
            raise ControlError("no bot token is registered")
        return next(iter(self.world.bots.values()))

    def resolve_bot(self, bot: int | str | None) -> BotState:
        """A bot by id, token or username; ``None`` means the first registered bot."""
        if bot is None:
            return self.default_bot()
        for state in self.world.bots.values():
            if bot in (state.id, state.token, state.username, f"@{state.username}"):
                return state
            if isinstance(bot, str) and bot.isdigit() and int(bot) == state.id:
                return state
        raise ControlError(f"unknown bot {bot!r}")

    # -- updates ---------------------------------------------------------------------------
    def emit(self, bot: BotState, kind: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        update = bot.queue.push(kind, payload)
        if update is not None:
            self.stats["updates"] += 1
            hook = self.webhooks.get(bot.id)
            if hook is not None:
                hook.kick()
            self.add_event("update", bot_id=bot.id, update=update)
        return update

    def record_bot_message(self, record: BotMessage) -> None:
        self.bot_messages.append(record)
        self.bot_messages_by_chat.setdefault((record.bot_id, record.chat_id), []).append(record)
        self.stats["messages"] += 1
        self.add_event(
            "bot_message", bot_id=record.bot_id, chat_id=record.chat_id, message=record.raw
        )
