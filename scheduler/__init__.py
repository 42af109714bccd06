"""Scheduled work. APScheduler only ticks; what is due is always read from the database, so
nothing depends on in-memory timers surviving a restart (job stores are not used)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
    base = {"factory": factory, "clock": clock}
    with_district = {**base, "district": district}
    waking = {**with_district, "on_commit": on_commit}

    def every(job: Callable[..., Any], trigger: IntervalTrigger, kwargs: dict[str, Any]) -> None:
        # One run at a time; a run missed while the process was busy or down runs once.
        scheduler.add_job(
            job,
            trigger,
            kwargs=kwargs,
            id=job.__name__,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=3600,
        )

    every(jobs.escalate_due_cases, IntervalTrigger(seconds=30), waking)
    every(jobs.settle_help_requests, IntervalTrigger(seconds=30), waking)
    every(jobs.close_unrated_cases, IntervalTrigger(minutes=1), waking)
    every(jobs.refund_expired_codes, IntervalTrigger(minutes=5), waking)
    every(jobs.apply_retention, IntervalTrigger(hours=1), with_district)
    every(jobs.prune_processed_updates, IntervalTrigger(hours=6), base)
    return scheduler
