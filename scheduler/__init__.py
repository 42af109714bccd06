"""Scheduled work. APScheduler only ticks; what is due is always read from the database, so
nothing depends on in-memory timers surviving a restart (job stores are not used)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.clock import Clock
from bot.db import SessionFactory
from bot.district import District
from bot.i18n import Catalogues
from scheduler import jobs


def build_scheduler(
    *,
    factory: SessionFactory,
    clock: Clock,
    district: District,
    on_commit: Callable[[], None],
    catalogues: Catalogues,
) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone="UTC")
    base = {"factory": factory, "clock": clock}
    with_district = {**base, "district": district}
    waking = {**with_district, "on_commit": on_commit}

    def every(
        job: Callable[..., Any],
        trigger: IntervalTrigger | CronTrigger,
        kwargs: dict[str, Any],
        name: str | None = None,
    ) -> None:
        # One run at a time; a run missed while the process was busy or down runs once.
        scheduler.add_job(
            job,
            trigger,
            kwargs=kwargs,
            id=name or job.__name__,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=3600,
        )

    every(jobs.escalate_due_cases, IntervalTrigger(seconds=30), waking)
    every(jobs.settle_help_requests, IntervalTrigger(seconds=30), waking)
    every(jobs.release_folded_cards, IntervalTrigger(seconds=15), waking)
    every(jobs.close_unrated_cases, IntervalTrigger(minutes=1), waking)
    every(jobs.refund_expired_codes, IntervalTrigger(minutes=5), waking)
    every(jobs.apply_retention, IntervalTrigger(hours=1), with_district)
    every(jobs.prune_processed_updates, IntervalTrigger(hours=6), base)
    every(jobs.prune_dashboard, IntervalTrigger(hours=6), base)
    # Reports at their local times (the job reads what is due from the clock and the
    # database, so these triggers only make it prompt), and every 10 minutes to catch up on
    # one missed while the service was down.
    reporting = {**waking, "catalogues": catalogues}
    tz = district.tzinfo
    settings = district.reports
    for kind, at, extra in (
        ("daily", settings.daily, {}),
        ("weekly", settings.weekly, {"day_of_week": "mon"}),
        ("monthly", settings.monthly, {"day": 1}),
    ):
        if at is not None:
            hour, minute = (int(part) for part in at.split(":")[:2])
            trigger = CronTrigger(hour=hour, minute=minute, second=5, timezone=tz, **extra)
            every(jobs.post_reports, trigger, reporting, name=f"post_reports_{kind}")
    every(jobs.post_reports, IntervalTrigger(minutes=10), reporting)
    return scheduler
