"""Long polling that confirms an update only after its effects are committed.

getUpdates' ``offset`` confirms every earlier update, so the offset moves past an update only
once its transaction has committed (the unit of work does that before ``feed_update``
returns). An update that keeps failing is retried a few times, then recorded as handled with
an apology to the user, so one poisoned update cannot stop the bot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods.base import TelegramMethod
from aiogram.types import Update
from pydantic import ValidationError

from bot.logs import log_event

logger = logging.getLogger(__name__)

MAX_FAILURES_PER_UPDATE = 3


class RawUpdates(TelegramMethod[list[dict[str, Any]]]):
    """getUpdates answered as plain dicts, read one by one below: an update this version of
    aiogram cannot read (a field Telegram added as required, a malformed one) is skipped and
    logged instead of failing the whole batch forever."""

    __returning__ = list[dict[str, Any]]
    __api_method__ = "getUpdates"

    offset: int | None = None
    limit: int | None = None
    timeout: int | None = None
    allowed_updates: list[str] | None = None


def read_updates(bot: Bot, raw: list[dict[str, Any]]) -> list[tuple[int, Update | None]]:
    """Each update id with its update, or None when it cannot be read."""
    updates: list[tuple[int, Update | None]] = []
    for item in raw:
        update_id = int(item.get("update_id", 0))
        try:
            updates.append((update_id, Update.model_validate(item, context={"bot": bot})))
        except ValidationError as error:
            log_event(
                logger,
                "update.unreadable",
                logging.ERROR,
                update_id=update_id,
                error=f"{error.error_count()} validation errors",
            )
            updates.append((update_id, None))
    return updates


async def poll(
    bot: Bot,
    dispatcher: Dispatcher,
    *,
    poll_timeout: int = 25,
    give_up: Callable[[Bot, Update], Awaitable[None]],
    limit: int = 100,
) -> None:
    """Run until cancelled."""
    offset: int | None = None
    failures: dict[int, int] = {}
    allowed = dispatcher.resolve_used_update_types()
    backoff = 1.0
    while True:
        try:
            raw = await bot(
                RawUpdates(
                    offset=offset, timeout=poll_timeout, limit=limit, allowed_updates=allowed
                ),
                request_timeout=poll_timeout + 10,
            )
            updates = read_updates(bot, raw)
            backoff = 1.0
        except TelegramRetryAfter as error:
            await asyncio.sleep(error.retry_after)
            continue
        except (TelegramNetworkError, TelegramServerError, TelegramAPIError) as error:
            # Network trouble, 5xx, and also 401/409 (a revoked token, another instance
            # polling): logged and retried with backoff, never the end of the loop.
            log_event(logger, "polling.error", logging.WARNING, error=type(error).__name__)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)
            continue
        for update_id, update in updates:
            if update is None:  # unreadable: confirmed by moving past it
                offset = update_id + 1
                continue
            try:
                await dispatcher.feed_update(bot, update)
            except asyncio.CancelledError:
                raise
            except Exception:
                count = failures.get(update.update_id, 0) + 1
                failures[update.update_id] = count
                logger.exception(
                    "update.failed", extra={"update_id": update.update_id, "failures": count}
                )
                if count < MAX_FAILURES_PER_UPDATE:
                    await asyncio.sleep(min(2.0**count / 4, 5.0))
                    break  # fetch again from this update; nothing after it is confirmed
                await give_up(bot, update)
                failures.pop(update.update_id, None)
            offset = update.update_id + 1
