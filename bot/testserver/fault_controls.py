"""The control API's fault-injection and flood-limit switches.

Owns ``fail_next``, ``delay_next``, ``drop_next``, ``lose_answer_next`` and
``enforce_limits``: thin, validated front-ends over ``FaultPlan`` and ``RateLimiter``.
"""

from __future__ import annotations

from typing import Any

from .core import ServerCore
from .errors import DEFAULT_DESCRIPTIONS
from .faults import DELAY, DROP, FAIL, LOSE_ANSWER, Fault
from .ratelimit import LimitConfig


class FaultControls:
    _core: ServerCore

    def fail_next(
        self,
        status: int = 429,
        *,
        retry_after: int = 3,
        method: str | None = None,
        count: int = 1,
        chat_id: int | str | None = None,
        description: str | None = None,
        migrate_to_chat_id: int | None = None,
        bot: int | str | None = None,
    ) -> Fault:
        """The next ``count`` matching calls fail with ``status`` without being performed.

        ``method=None`` matches any method except getUpdates; ``chat_id`` narrows the match
        to calls addressing that chat.
        """
        parameters: dict[str, Any] = {}
        if status == 429:
            parameters["retry_after"] = retry_after
            default = f"Too Many Requests: retry after {retry_after}"
        else:
            default = DEFAULT_DESCRIPTIONS.get(status, f"Error {status}")
        if migrate_to_chat_id is not None:
            parameters["migrate_to_chat_id"] = migrate_to_chat_id
        return self._arm(
            FAIL,
            method,
            count,
            chat_id,
            bot,
            status=status,
            description=description or default,
            parameters=parameters,
        )

    def delay_next(
        self,
        seconds: float,
        *,
        method: str | None = None,
        count: int = 1,
        chat_id: int | str | None = None,
        bot: int | str | None = None,
    ) -> Fault:
        """The next ``count`` matching calls are held for ``seconds`` before being handled."""
        return self._arm(DELAY, method, count, chat_id, bot, seconds=seconds)

    def drop_next(
        self,
        *,
        method: str | None = None,
        count: int = 1,
        chat_id: int | str | None = None,
        bot: int | str | None = None,
    ) -> Fault:
        """The connection is closed without an answer and the call is NOT performed."""
        return self._arm(DROP, method, count, chat_id, bot)

    def lose_answer_next(
        self,
        *,
        method: str | None = None,
        count: int = 1,
        chat_id: int | str | None = None,
        bot: int | str | None = None,
    ) -> Fault:
        """The call IS performed, then the connection is closed before the answer is sent."""
        return self._arm(LOSE_ANSWER, method, count, chat_id, bot)

    def clear_faults(self) -> None:
        self._core.faults.clear()

    @property
    def faults(self) -> list[Fault]:
        return list(self._core.faults.faults)

    def enforce_limits(
        self,
        enabled: bool = True,
        *,
        per_chat_per_second: float = 1.0,
        per_group_per_minute: int = 20,
        global_per_second: float = 30.0,
        burst: int = 3,
    ) -> None:
        """Switches Telegram's flood limits for send*/edit* calls on or off."""
        self._core.limiter.config = LimitConfig(
            enabled=enabled,
            per_chat_per_second=per_chat_per_second,
            per_group_per_minute=per_group_per_minute,
            global_per_second=global_per_second,
            burst=burst,
        )
        self._core.limiter.reset()

    def _arm(
        self,
        kind: str,
        method: str | None,
        count: int,
        chat_id: int | str | None,
        bot: int | str | None,
        **details: Any,
    ) -> Fault:
        if count < 1:
            raise ValueError("count must be at least 1")
        bot_id = self._core.resolve_bot(bot).id if bot is not None else None
        fault = Fault(
            kind=kind,
            remaining=count,
            method=method,
            chat_id=str(chat_id) if chat_id is not None else None,
            bot_id=bot_id,
            **details,
        )
        self._core.faults.add(fault)
        return fault
