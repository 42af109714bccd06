"""aiogram routers: thin handlers that parse an update, call one service and return.

Routers are built by functions, because aiogram lets a router be attached only once and every
application (and every test) needs its own.
"""

from __future__ import annotations

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
