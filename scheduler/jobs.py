"""Job bodies: each opens its own transaction and calls a service with the clock."""

from __future__ import annotations

import logging

from bot.clock import Clock
from bot.db import SessionFactory, transaction
from bot.logs import log_event
from bot.services.updates import prune_processed_updates as prune

logger = logging.getLogger(__name__)


async def prune_processed_updates(*, factory: SessionFactory, clock: Clock) -> int:
    async with transaction(factory) as session:
        removed = await prune(session, now=clock.now())
    log_event(logger, "job.prune_processed_updates", removed=removed)
    return removed
