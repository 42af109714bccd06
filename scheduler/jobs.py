"""Job bodies: each opens its own transaction and calls a service with the clock."""

from __future__ import annotations

import logging
from collections.abc import Callable

from bot.clock import Clock
from bot.db import SessionFactory, transaction
from bot.district import District
from bot.logs import log_event
from bot.services import cases
from bot.services.updates import prune_processed_updates as prune

logger = logging.getLogger(__name__)


async def prune_processed_updates(*, factory: SessionFactory, clock: Clock) -> int:
    async with transaction(factory) as session:
        removed = await prune(session, now=clock.now())
    log_event(logger, "job.prune_processed_updates", removed=removed)
    return removed


async def close_unrated_cases(
    *, factory: SessionFactory, clock: Clock, district: District, on_commit: Callable[[], None]
) -> int:
    """Answered cases past their rating due time close as unrated."""
    async with transaction(factory) as session:
        closed = await cases.close_unrated(session, district, now=clock.now())
    if closed:
        on_commit()
        log_event(logger, "job.close_unrated_cases", closed=closed)
    return closed
