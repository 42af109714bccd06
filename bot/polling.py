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

from aiogram import Bot, Dispatcher
from aiogram.exceptions import (
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import Update

from bot.logs import log_event

logger = logging.getLogger(__name__)

MAX_FAILURES_PER_UPDATE = 3


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
            updates = await bot.get_updates(
                offset=offset,
                timeout=poll_timeout,
                limit=limit,
                allowed_updates=allowed,
                request_timeout=poll_timeout + 10,
            )
            backoff = 1.0
        except TelegramRetryAfter as error:
            await asyncio.sleep(error.retry_after)
            continue
        except (TelegramNetworkError, TelegramServerError) as error:
            log_event(logger, "polling.error", logging.WARNING, error=type(error).__name__)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)
            continue
        for update in updates:
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
