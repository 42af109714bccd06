"""aiogram routers: thin handlers that parse an update, call one service and return.

Routers are built by functions, because aiogram lets a router be attached only once and every
application (and every test) needs its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import Router

from bot.i18n import Catalogues
from handlers import (
    bundling,
    dashboard,
    deadlines,
    department,
    early_warning,
    fallback,
    group_language,
    points,
    privacy,
    reports,
    resident,
    start,
    tasks,
    volunteers,
)


def build_routers(catalogues: Catalogues) -> list[Router]:
    routers = _routers(catalogues)
    for router in routers:
        inline_sync_filters(router)
    return routers


def inline_sync_filters(router: Router) -> int:
    """Run the router's synchronous filters (magic ``F`` filters, dialog states) in the event
    loop instead of a thread: aiogram hands every synchronous filter to ``asyncio.to_thread``,
    about fifteen thread round trips an update for checks that take microseconds, and under a
    burst those hops (and the GIL they fight for) cost more than the checks. Returns how many
    filters were changed."""
    changed = 0
    for observer in router.observers.values():
        # The observer's own filters (``router.message.filter(...)``) live on its
        # ``_handler``, a HandlerObject aiogram checks before the handlers.
        holders = [*observer.handlers, getattr(observer, "_handler", None)]
        for holder in holders:
            for filter_ in (holder.filters or []) if holder is not None else []:
                if not filter_.awaitable:
                    filter_.callback = _awaitable(filter_.callback)
                    filter_.awaitable = True
                    changed += 1
    for sub in router.sub_routers:
        changed += inline_sync_filters(sub)
    return changed


def _awaitable(check: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    async def inline(*args: Any, **kwargs: Any) -> Any:
        return check(*args, **kwargs)

    return inline


def _routers(catalogues: Catalogues) -> list[Router]:
    # The fallback router goes last: it answers whatever the others left.
    return [
        start.router(catalogues),
        group_language.router(catalogues),
        dashboard.router(),
        tasks.router(),
        # Before the resident router: its dialog owns the texts typed while it runs.
        volunteers.router(),
        points.router(),
        privacy.router(),
        reports.router(),
        resident.router(catalogues),
        # Before the department router, whose reply handler takes any reply in a unit's group.
        early_warning.router(),
        deadlines.router(),
        bundling.router(),
        volunteers.group_router(),
        department.router(),
        fallback.router(),
    ]
