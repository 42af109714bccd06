"""Long polling that confirms an update only after its effects are committed.

getUpdates' ``offset`` confirms every earlier update, so the offset moves past an update only
once its transaction has committed (the unit of work does that before ``feed_update``
returns). An update that keeps failing is retried a few times, then recorded as handled with
an apology to the user, so one poisoned update cannot stop the bot; that policy
(:class:`UpdatePolicy`) is shared with the webhook (``bot/web.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods.base import TelegramMethod
from aiogram.types import Update
from aiogram.types.update import UpdateTypeLookupError
from pydantic import ValidationError

from bot.logs import log_event
from bot.metrics import Metrics
from bot.workers import UpdateWorkers, is_urgent, person_of

logger = logging.getLogger(__name__)

MAX_FAILURES_PER_UPDATE = 3
# Failure counts are kept for this many update ids at most (in webhook mode an update that
# failed here may be redelivered to another replica and never come back).
REMEMBERED_FAILURES = 10_000


class Outcome(StrEnum):
    HANDLED = "handled"
    IGNORED = "ignored"  # a redelivery of a committed update, or nothing handles it
    FAILED = "failed"  # nothing committed: the update must be delivered again
    GIVEN_UP = "given_up"  # failed too often: recorded as handled, the user got an apology


class UpdatePolicy:
    """Feeds one update to the dispatcher and applies the poison-update policy shared by
    polling and the webhook: an update that fails is to be delivered again, and after
    ``MAX_FAILURES_PER_UPDATE`` failures it is given up (claimed, with an apology) so it
    cannot hold back the updates behind it for ever."""

    def __init__(
        self,
        *,
        give_up: Callable[[Bot, Update], Awaitable[None]],
        metrics: Metrics | None = None,
        max_failures: int = MAX_FAILURES_PER_UPDATE,
    ) -> None:
        self.give_up = give_up
        self.metrics = metrics
        self.max_failures = max_failures
        self._failures: OrderedDict[int, int] = OrderedDict()

    async def process(self, bot: Bot, dispatcher: Dispatcher, update: Update) -> Outcome:
        """Returns once the update's effects have committed (or nothing was committed)."""
        try:
            result = await dispatcher.feed_update(bot, update)
        except asyncio.CancelledError:
            raise
        except Exception:
            if _being_cancelled():
                # Stopping: a cancellation can surface as another error from the database layer
                # (a transaction cut short); nothing committed, and the stop must go on.
                raise asyncio.CancelledError from None
            count = self._failures.pop(update.update_id, 0) + 1
            logger.exception(
                "update.failed", extra={"update_id": update.update_id, "failures": count}
            )
            if count < self.max_failures:
                self._failures[update.update_id] = count
                while len(self._failures) > REMEMBERED_FAILURES:
                    self._failures.popitem(last=False)
                outcome = Outcome.FAILED
            else:
                await self.give_up(bot, update)
                outcome = Outcome.GIVEN_UP
        else:
            self._failures.pop(update.update_id, None)
            outcome = Outcome.IGNORED if result is UNHANDLED else Outcome.HANDLED
        if self.metrics is not None:
            self.metrics.count_update(update_type(update), outcome.value)
        return outcome

    def failures(self, update_id: int) -> int:
        return self._failures.get(update_id, 0)


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def update_type(update: Update) -> str:
    try:
        return update.event_type
    except UpdateTypeLookupError:  # a type newer than this aiogram
        return "unknown"


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


# While updates are in flight the offset cannot move past them, so getUpdates answers at once
# with them again; the loop then waits for one to commit, or this long for new updates behind a
# slow one, before it asks again.
REPOLL_WHILE_BUSY = 0.2
# ...and asks at most this often while busy (each answer repeats the updates in flight).
MIN_POLL_INTERVAL_WHILE_BUSY = 0.05


async def poll(
    bot: Bot,
    dispatcher: Dispatcher,
    *,
    poll_timeout: int = 25,
    policy: UpdatePolicy,
    workers: UpdateWorkers | None = None,
    limit: int = 100,
) -> None:
    """Run until cancelled. Updates go to ``workers`` (different people at once, one person's
    in order) as they arrive; the getUpdates offset, which confirms every earlier update, stays
    at the lowest update not yet committed, so after a crash Telegram delivers again every
    update that had not committed (those that had stop at their claim)."""
    workers = workers or UpdateWorkers()
    loop = Poller(bot, dispatcher, policy=policy, workers=workers)
    allowed = dispatcher.resolve_used_update_types()
    backoff = 1.0
    try:
        while True:
            await loop.room()
            loop.watch()
            busy = bool(loop.taken)
            polled_at = asyncio.get_running_loop().time()
            try:
                raw = await bot(
                    RawUpdates(
                        offset=loop.offset(),
                        timeout=0 if busy else poll_timeout,
                        limit=limit,
                        allowed_updates=allowed,
                    ),
                    request_timeout=poll_timeout + 10,
                )
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
            # Only updates not seen before are read (the rest are in flight or done).
            if not loop.take(read_updates(bot, loop.unseen(raw))) and loop.taken:
                await loop.advanced(within=REPOLL_WHILE_BUSY)
            if loop.taken:
                since = asyncio.get_running_loop().time() - polled_at
                await asyncio.sleep(max(0.0, MIN_POLL_INTERVAL_WHILE_BUSY - since))
    finally:
        await loop.cancel()


class Poller:
    """What long polling has taken and not yet confirmed."""

    def __init__(
        self, bot: Bot, dispatcher: Dispatcher, *, policy: UpdatePolicy, workers: UpdateWorkers
    ) -> None:
        self.bot = bot
        self.dispatcher = dispatcher
        self.policy = policy
        self.workers = workers
        # At most this many updates taken and not yet committed. (A press among them is let in
        # first, see bot.workers; a press not fetched yet waits on Telegram's side. Taking
        # 256 at once was tried and measured slower under the 1,000-update burst.)
        self.capacity = max(4 * workers.size, 32)
        self.taken: dict[int, asyncio.Task[None]] = {}  # in flight or waiting for their turn
        self.done: set[int] = set()  # committed, but an earlier one has not
        self.highest: int | None = None
        self._finished_one = asyncio.Event()  # an update finished
        self._advanced = asyncio.Event()  # the offset moved on

    def offset(self) -> int | None:
        """The lowest update not yet committed, else one past the highest seen."""
        if self.taken:
            return min(self.taken)
        return None if self.highest is None else self.highest + 1

    def unseen(self, raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The updates of a getUpdates answer not taken before."""
        return [item for item in raw if self._new(int(item.get("update_id", 0)))]

    def _new(self, update_id: int) -> bool:
        if update_id in self.taken or update_id in self.done:
            return False
        # At or below the highest seen and not in flight: confirmed already.
        return self.highest is None or update_id > self.highest

    def take(self, updates: list[tuple[int, Update | None]]) -> int:
        """Start the updates not seen before; returns how many."""
        started = 0
        for update_id, update in updates:
            if not self._new(update_id):
                continue
            self.highest = update_id
            started += 1
            if update is None:  # unreadable: confirmed by moving past it
                self._finished(update_id)
                continue
            task = self.workers.submit(
                person_of(update),
                functools.partial(self._handle, update),
                urgent=is_urgent(update),
            )
            self.taken[update_id] = task
            task.add_done_callback(functools.partial(self._done, update_id))
        return started

    async def _handle(self, update: Update) -> None:
        """Until committed: an update that fails is tried again in its person's turn (the
        policy gives it up, with an apology, after a few failures). Should even giving up
        fail (the database is gone), the update stays unconfirmed and is tried again."""
        while True:
            try:
                outcome = await self.policy.process(self.bot, self.dispatcher, update)
            except asyncio.CancelledError:
                raise
            except Exception:
                if _being_cancelled():
                    raise asyncio.CancelledError from None  # the stop, seen as another error
                logger.exception("update.give_up_failed", extra={"update_id": update.update_id})
                await asyncio.sleep(5.0)
                continue
            if outcome is not Outcome.FAILED:
                return
            count = self.policy.failures(update.update_id)
            await asyncio.sleep(min(2.0**count / 4, 5.0))

    def _done(self, update_id: int, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is not None:
            return  # not committed: never confirmed by this process (stopping)
        self._finished(update_id)

    def _finished(self, update_id: int) -> None:
        lowest = self.offset()
        self.taken.pop(update_id, None)
        self.done.add(update_id)
        low = self.offset()
        if low is not None:
            self.done = {u for u in self.done if u >= low}
        self._finished_one.set()
        if low != lowest:
            self._advanced.set()

    async def room(self) -> None:
        """Wait while as many updates as allowed are taken and not committed."""
        while len(self.taken) >= self.capacity:
            self._finished_one.clear()
            await self._finished_one.wait()

    def watch(self) -> None:
        """From now on, :meth:`advanced` notices the offset moving."""
        self._advanced.clear()

    async def advanced(self, *, within: float) -> None:
        """Wait until the offset moved on since :meth:`watch`, or ``within`` seconds (new
        updates may wait behind a slow one)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._advanced.wait(), within)

    async def cancel(self) -> None:
        """Stopping: what has not committed rolls back and comes again after the restart."""
        tasks = list(self.taken.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
