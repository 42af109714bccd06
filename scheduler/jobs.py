"""Job bodies: each opens its own transaction and calls a service with the clock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.db import SessionFactory, transaction
from bot.district import District
from bot.i18n import Catalogues
from bot.logs import log_event
from bot.services import cases, dashboard, ladder, points, privacy, reports, volunteers
from bot.services.updates import prune_processed_updates as prune

logger = logging.getLogger(__name__)


async def prune_processed_updates(*, factory: SessionFactory, clock: Clock) -> int:
    async with transaction(factory) as session:
        removed = await prune(session, now=clock.now())
    log_event(logger, "job.prune_processed_updates", removed=removed)
    return removed


async def prune_dashboard(*, factory: SessionFactory, clock: Clock) -> int:
    async with transaction(factory) as session:
        removed = await dashboard.prune(session, now=clock.now())
    log_event(logger, "job.prune_dashboard", removed=removed)
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


async def _in_batches(
    factory: SessionFactory,
    fire: Callable[[AsyncSession, int], Awaitable[int]],
    *,
    on_commit: Callable[[], None],
    batch: int,
    event: str,
) -> int:
    """Run ``fire`` in short transactions of at most ``batch`` rows until fewer come back."""
    total = 0
    while True:
        async with transaction(factory) as session:
            settled = await fire(session, batch)
        total += settled
        if settled:
            on_commit()
        if settled < batch:
            break
    if total:
        log_event(logger, event, settled=total)
    return total


async def escalate_due_cases(
    *,
    factory: SessionFactory,
    clock: Clock,
    district: District,
    on_commit: Callable[[], None],
    batch: int = 200,
) -> int:
    """Settle every rung of the card ladder that is due, in batches of short transactions."""

    async def fire(session: AsyncSession, limit: int) -> int:
        return await ladder.fire_due(session, district, now=clock.now(), limit=limit)

    return await _in_batches(
        factory, fire, on_commit=on_commit, batch=batch, event="job.escalate_due_cases"
    )


async def settle_help_requests(
    *,
    factory: SessionFactory,
    clock: Clock,
    district: District,
    on_commit: Callable[[], None],
    batch: int = 200,
) -> int:
    """Help requests whose due time came: announce again, tell the office, or close as helped."""

    async def fire(session: AsyncSession, limit: int) -> int:
        return await volunteers.fire_due(session, district, now=clock.now(), limit=limit)

    return await _in_batches(
        factory, fire, on_commit=on_commit, batch=batch, event="job.settle_help_requests"
    )


async def refund_expired_codes(
    *, factory: SessionFactory, clock: Clock, district: District, on_commit: Callable[[], None]
) -> int:
    """Redemption codes that expired unused give their points and stock back."""
    async with transaction(factory) as session:
        refunded = await points.refund_expired(session, district, now=clock.now())
    if refunded:
        on_commit()
        log_event(logger, "job.refund_expired_codes", refunded=refunded)
    return refunded


async def apply_retention(*, factory: SessionFactory, clock: Clock, district: District) -> int:
    """Erase resident data of cases closed longer ago than the retention period; prune old
    delivered outbox rows."""
    async with transaction(factory) as session:
        anonymised = await privacy.apply_retention(session, district, now=clock.now())
    log_event(logger, "job.apply_retention", anonymised=anonymised)
    return anonymised


async def post_reports(
    *,
    factory: SessionFactory,
    clock: Clock,
    district: District,
    on_commit: Callable[[], None],
    catalogues: Catalogues,
) -> list[str]:
    """Queue the daily, weekly and monthly reports that are due and not yet queued."""
    from bot.charts import draw_report_chart

    async def chart(lang: str, data: reports.ChartData) -> bytes:
        # Drawing takes a good part of a second: off the event loop.
        return await asyncio.to_thread(draw_report_chart, lang, data)

    def translate(lang: str, message_id: str) -> str:
        return catalogues.translator(lang)(message_id)

    async with transaction(factory) as session:
        posted = await reports.post_due(
            session, district, now=clock.now(), chart=chart, translate=translate
        )
    if posted:
        on_commit()
        log_event(logger, "job.post_reports", reports=",".join(posted))
    return posted
