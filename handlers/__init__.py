"""aiogram routers: thin handlers that parse an update, call one service and return.

Routers are built by functions, because aiogram lets a router be attached only once and every
application (and every test) needs its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Slot:
    """One router's place in the order aiogram tries them (the first whose filters match an
    update handles it): what it takes, why it sits where it does, the routers that must come
    before it, and whether it is a catch-all (it takes whatever reaches it in its chats)."""

    name: str
    build: Callable[[Catalogues], Router]
    why: str
    after: tuple[str, ...] = ()
    catch_all: bool = False


# The routers, in order. A command or a dialog step must be tried before anything that would
# take the same message as plain text; each entry says what it must follow and why.
ORDER: tuple[Slot, ...] = (
    Slot("start", start.router,
         "/start, /help, /lang, /cancel and the menu work in any state: before every dialog"),
    Slot("group_language", group_language.router,
         "/lang in a group sets the group's language: before the groups' routers"),
    Slot("dashboard", lambda _c: dashboard.router(), "/dashboard in a private chat"),
    Slot("tasks", lambda _c: tasks.router(),
         "a center head's note on a call task is a dialog step: before the resident's dialogs",
         after=("start",)),
    Slot("volunteers", lambda _c: volunteers.router(),
         "/volunteer and its dialog own the texts typed while it runs",
         after=("start",)),
    Slot("points", lambda _c: points.router(), "/points, /top, /shop, /redeem, /adjust"),
    Slot("privacy", lambda _c: privacy.router(), "/forgetme, /block, /unblock"),
    Slot("reports", lambda _c: reports.router(), "/stats and /export"),
    Slot("resident", resident.router,
         "the resident's dialogs take any text in a private chat while one runs: after every "
         "private command and every other dialog",
         after=("start", "dashboard", "tasks", "volunteers", "points", "privacy", "reports")),
    Slot("early_warning", lambda _c: early_warning.router(), "/reload_keywords in the center"),
    Slot("deadlines", lambda _c: deadlines.router(), "replies to a deadline question"),
    Slot("bundling", lambda _c: bundling.router(), "/bundle and its preview's buttons"),
    Slot("volunteer_groups", lambda _c: volunteers.group_router(),
         "claims by reply in a volunteer group"),
    Slot("department", lambda _c: department.router(),
         "takes any reply in a unit's group as an answer or a note: after every group router",
         after=("group_language", "early_warning", "deadlines", "bundling", "volunteer_groups"),
         catch_all=True),
    Slot("fallback", lambda _c: fallback.router(),
         "answers whatever nobody else took (and says where a command works); its answer to a "
         "stale button would take the department cards' presses",
         after=("department",), catch_all=True),
)  # fmt: skip


def check_order(slots: Sequence[Slot]) -> None:
    """Refuse an order in which a router comes before one it must follow, or a catch-all
    comes before a router that is not one."""
    seen: set[str] = set()
    for index, slot in enumerate(slots):
        missing = [name for name in slot.after if name not in seen]
        if missing:
            raise ValueError(f"router {slot.name!r} must come after {missing}: {slot.why}")
        if slot.catch_all:
            later = [s.name for s in slots[index + 1 :] if not s.catch_all]
            if later:
                raise ValueError(f"catch-all router {slot.name!r} is ahead of {later}")
        seen.add(slot.name)


def build_routers(catalogues: Catalogues, order: Sequence[Slot] = ORDER) -> list[Router]:
    check_order(order)
    routers = [slot.build(catalogues) for slot in order]
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
