"""Scheduled work. APScheduler only ticks; what is due is always read from the database, so
nothing depends on in-memory timers surviving a restart (job stores are not used)."""

from __future__ import annotations

from collections.abc import Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.clock import Clock
from bot.db import SessionFactory
from bot.district import District
from scheduler import jobs


def build_scheduler(
    *,
    factory: SessionFactory,
    clock: Clock,
    district: District,
    on_commit: Callable[[], None],
) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_job(
        jobs.escalate_due_cases,
        IntervalTrigger(seconds=30),
        kwargs={"factory": factory, "clock": clock, "district": district, "on_commit": on_commit},
        id="escalate_due_cases",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=3600,
    )
    scheduler.add_job(
        jobs.settle_help_requests,
        IntervalTrigger(seconds=30),
        kwargs={"factory": factory, "clock": clock, "district": district, "on_commit": on_commit},
        id="settle_help_requests",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=3600,
    )
    scheduler.add_job(
        jobs.close_unrated_cases,
        IntervalTrigger(minutes=1),
        kwargs={"factory": factory, "clock": clock, "district": district, "on_commit": on_commit},
        id="close_unrated_cases",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=3600,
    )
    scheduler.add_job(
        jobs.refund_expired_codes,
        IntervalTrigger(minutes=5),
        kwargs={"factory": factory, "clock": clock, "district": district, "on_commit": on_commit},
        id="refund_expired_codes",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=3600,
    )
    scheduler.add_job(
        jobs.apply_retention,
        IntervalTrigger(hours=1),
        kwargs={"factory": factory, "clock": clock, "district": district},
        id="apply_retention",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=3600,
    )
    scheduler.add_job(
        jobs.prune_processed_updates,
        IntervalTrigger(hours=6),
        kwargs={"factory": factory, "clock": clock},
        id="prune_processed_updates",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=3600,
    )
    return scheduler
