"""Job bodies: each opens its own transactions and calls a service with the clock.

The frequent scans (the card ladder, help requests, unrated cases, expired codes, reports)
usually find nothing due. They look in a read transaction first (:func:`bot.db.read_transaction`:
on SQLite no write lock, so intake never waits for a scan that finds nothing) and open a write
transaction only when something is due; that transaction reads and claims the due rows again
(the look was only a hint: another replica may have settled them meanwhile), so each rung
still fires once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.db import SessionFactory, read_transaction, transaction
from bot.district import District
from bot.i18n import Catalogues
from bot.logs import log_event

# triage registers how its folded cards are drawn again (folding.reposts) when imported.
from bot.services import (
    closure,
    dashboard,
    folding,
    ladder,
    points,
    privacy,
    reports,
    triage,  # noqa: F401,
    volunteers,
)
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
    now = clock.now()
    return await _once_if_due(
        factory,
        due=lambda session: closure.any_unrated_due(session, now=now),
        settle=lambda session: closure.close_unrated(session, district, now=clock.now()),
        on_commit=on_commit,
        event="job.close_unrated_cases",
        counted="closed",
    )


async def _anything_due(
    factory: SessionFactory, probe: Callable[[AsyncSession], Awaitable[bool]]
) -> bool:
    """Ask ``probe`` in a read transaction (no write lock) whether there is work."""
    async with read_transaction(factory) as session:
        return await probe(session)


async def _once_if_due(
    factory: SessionFactory,
    *,
    due: Callable[[AsyncSession], Awaitable[bool]],
    settle: Callable[[AsyncSession], Awaitable[int]],
    on_commit: Callable[[], None],
    event: str,
    counted: str,
) -> int:
    """When ``due`` finds work (in a read transaction), run ``settle`` in one write
    transaction; log how many it settled as ``counted``."""
    if not await _anything_due(factory, due):
        return 0
    async with transaction(factory) as session:
        settled = await settle(session)
    if settled:
        on_commit()
        log_event(logger, event, **{counted: settled})
    return settled


async def _in_batches(
    factory: SessionFactory,
    fire: Callable[[AsyncSession, int], Awaitable[int]],
    *,
    due: Callable[[AsyncSession], Awaitable[bool]],
    on_commit: Callable[[], None],
    batch: int,
    event: str,
) -> int:
    """When ``due`` finds work (in a read transaction), run ``fire`` in short write
    transactions of at most ``batch`` rows until fewer come back."""
    if not await _anything_due(factory, due):
        return 0
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
    return await _in_batches(
        factory,
        lambda session, limit: ladder.fire_due(session, district, now=clock.now(), limit=limit),
        due=lambda session: ladder.any_due(session, now=clock.now()),
        on_commit=on_commit,
        batch=batch,
        event="job.escalate_due_cases",
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
    return await _in_batches(
        factory,
        lambda session, limit: volunteers.fire_due(
            session, district, now=clock.now(), limit=limit
        ),
        due=lambda session: volunteers.any_due(session, now=clock.now()),
        on_commit=on_commit,
        batch=batch,
        event="job.settle_help_requests",
    )


async def release_folded_cards(
    *, factory: SessionFactory, clock: Clock, district: District, on_commit: Callable[[], None]
) -> int:
    """Groups whose burst has passed get the cards that were folded into their digest."""
    return await _once_if_due(
        factory,
        due=folding.any_folded,
        settle=lambda session: folding.release_due(session, district, now=clock.now()),
        on_commit=on_commit,
        event="job.release_folded_cards",
        counted="released",
    )


async def refund_expired_codes(
    *, factory: SessionFactory, clock: Clock, district: District, on_commit: Callable[[], None]
) -> int:
    """Redemption codes that expired unused give their points and stock back."""
    now = clock.now()
    return await _once_if_due(
        factory,
        due=lambda session: points.any_expired(session, now=now),
        settle=lambda session: points.refund_expired(session, district, now=clock.now()),
        on_commit=on_commit,
        event="job.refund_expired_codes",
        counted="refunded",
    )


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
    """Queue the daily, weekly and monthly reports that are due and not yet queued: figures
    computed in a read transaction, charts drawn outside any transaction, then each report
    recorded with its outbox rows in a short write transaction (which checks again that it
    is not recorded yet: a report goes out once however many runs race)."""
    from bot.charts import draw_report_chart

    def translate(lang: str, message_id: str) -> str:
        return catalogues.translator(lang)(message_id)

    now = clock.now()
    async with read_transaction(factory) as session:
        prepared = await reports.prepare_due(session, district, now=now, translate=translate)
    posted: list[str] = []
    for report in prepared:
        # Drawing takes a good part of a second: off the event loop, and outside any
        # transaction.
        drawn = {
            lang: await asyncio.to_thread(draw_report_chart, lang, data)
            for lang, data in report.charts.items()
        }
        async with transaction(factory) as session:
            queued = await reports.record(session, district, report, now=now, drawn=drawn)
        if queued:
            posted.append(report.due.kind)
    if posted:
        on_commit()
        log_event(logger, "job.post_reports", reports=",".join(posted))
    return posted
