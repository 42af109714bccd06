"""Which group chat belongs to which unit: bindings made with /bind, else the district file."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.district import District
from bot.i18n import N_
from bot.services import snapshots
from bot.services.errors import UserError
from models import GroupBinding

CENTER = "center"  # the governance center's pseudo unit code


async def chat_of(session: AsyncSession, district: District, unit: str) -> int | None:
    """The group chat of a department, a street office, or the center."""
    if unit == CENTER:
        return district.governance_center.chat_id
    bound = (await snapshots.bindings(session)).get(unit)
    if bound is not None:
        return bound
    department = district.department(unit)
    if department is not None:
        return department.chat_id
    office = district.street_office(unit)
    return office.chat_id if office is not None else None


async def unit_of(session: AsyncSession, district: District, chat_id: int) -> str | None:
    """The unit whose group this is; None for a group the bot does not work in."""
    if chat_id == district.governance_center.chat_id:
        return CENTER
    bindings = await snapshots.bindings(session)
    for bound, bound_chat in bindings.items():
        if bound_chat == chat_id:
            return bound
    unit = district.unit_by_chat(chat_id)
    if unit is None or not hasattr(unit, "code"):
        return None
    code = str(unit.code)
    # A file chat id no longer counts once the unit has been bound to another group.
    return code if code not in bindings else None


async def bind(
    session: AsyncSession, district: District, *, unit: str, chat_id: int, by: int, now: datetime
) -> str:
    """Bind a group to a department or street office; returns the unit code."""
    unit = unit.strip().lower()
    if district.department(unit) is None and district.street_office(unit) is None:
        raise UserError(N_("bind.unknown-unit"), code=unit)
    # One group serves one unit: drop whatever this chat was bound to before.
    previous = await session.scalar(
        select(GroupBinding).where(col(GroupBinding.chat_id) == chat_id)
    )
    if previous is not None and previous.unit != unit:
        await session.delete(previous)
        await session.flush()
    binding = await session.get(GroupBinding, unit)
    if binding is None:
        session.add(GroupBinding(unit=unit, chat_id=chat_id, bound_by=by, bound_at=now))
    else:
        binding.chat_id, binding.bound_by, binding.bound_at = chat_id, by, now
    await session.flush()
    snapshots.invalidate(session, snapshots.BINDINGS)
    return unit


async def bound_chats(session: AsyncSession, district: District) -> dict[str, int]:
    """Every unit with a group, file and bindings merged (bindings win)."""
    chats: dict[str, int] = {}
    if district.governance_center.chat_id:
        chats[CENTER] = district.governance_center.chat_id
    for department in district.departments:
        if department.chat_id:
            chats[department.code] = department.chat_id
    for office in district.street_offices:
        if office.chat_id:
            chats[office.code] = office.chat_id
    chats.update(await snapshots.bindings(session))
    return chats
