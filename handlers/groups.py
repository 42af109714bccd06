"""What every group-chat router shares: which groups the bot works in, and who may press.

Any group member can press any button, so every press is checked again against the group's
membership (Telegram's getChatMember), never trusted from the message it came from.

A refused press is answered with an alert to the presser (the unit of work does that for a
:class:`UserError`), never with a message in the group. A refused reply in a group goes through
:func:`folding_refusals`: privately to its author, or folded into one message a minute.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Filter
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.district import District, Role
from bot.i18n import N_
from bot.services import cases, refusals, routing
from bot.services.errors import UserError

MEMBER_STATUSES = {"creator", "administrator", "member", "restricted"}
ADMIN_STATUSES = {"creator", "administrator"}
GROUPS = ("group", "supergroup")


class InUnitGroup(Filter):
    """Passes only in a group bound to a unit; the handler receives it as ``unit``."""

    async def __call__(
        self, event: Message | CallbackQuery, session: AsyncSession, district: District
    ) -> bool | dict[str, Any]:
        message = event if isinstance(event, Message) else event.message
        if message is None:
            return False
        unit = await routing.unit_of(session, district, message.chat.id)
        return False if unit is None else {"unit": unit}


async def status_in(bot: Bot, chat_id: int, user_id: int) -> str:
    """The user's status in the group; "left" when Telegram does not know them there (e.g. the
    anonymous-admin account, or a user who never joined)."""
    try:
        member = await bot.get_chat_member(chat_id, user_id)
    except TelegramBadRequest:
        return "left"
    if member.status == "restricted" and not getattr(member, "is_member", True):
        return "left"
    return str(member.status)


def actor(user: Any, lang: str) -> cases.Person:
    return cases.Person(user.id, user.first_name, lang)


async def require_admin(
    bot: Bot, chat_id: int, user_id: int, district: District, *, refusal: str
) -> None:
    """The group's admins decide (binding it, its language), and so do the district's."""
    person = district.person(user_id)
    if person is not None and person.has_role(Role.ADMIN):
        return
    if await status_in(bot, chat_id, user_id) not in ADMIN_STATUSES:
        raise UserError(refusal)


async def require_member(
    bot: Bot,
    chat_id: int,
    user: Any,
    district: District,
    *,
    unit: str | None = None,
    lang: str | None = None,
) -> cases.Person:
    """The presser as an actor, if they are a member of this group; refused otherwise, naming
    the group's unit when it is known (a street office's group is no department's)."""
    if await status_in(bot, chat_id, user.id) not in MEMBER_STATUSES:
        if unit is None:
            raise UserError(N_("card.not-member"))
        raise UserError(
            N_("card.not-member-of"),
            group=unit_title(district, unit, lang or district.default_language),
        )
    return actor(user, district.default_language)


async def require_member_pressing(
    query: CallbackQuery, bot: Bot, district: District, *, unit: str, lang: str
) -> cases.Person:
    """Who pressed a button on a card in ``unit``'s group, if they are a member of it."""
    assert query.message is not None
    return await require_member(
        bot, query.message.chat.id, query.from_user, district, unit=unit, lang=lang
    )


def unit_title(district: District, unit: str, lang: str) -> str:
    """A unit's name in ``lang``: the governance center, a street office or a department."""
    if unit == routing.CENTER:
        return district.governance_center.names.get(lang)
    found = district.department(unit) or district.street_office(unit)
    return found.names.get(lang) if found is not None else unit


@asynccontextmanager
async def folding_refusals(
    session: AsyncSession,
    message: Message,
    district: District,
    *,
    case_id: int,
    lang: str,
    now: Any,
    reasons: Collection[str] | None = None,
) -> AsyncIterator[None]:
    """Around a service call that a reply in a group asks for: a :class:`UserError` it raises
    (one of ``reasons``; any, when None) undoes what the call did and is told to the replier
    privately or folded into the group's refusal message of this minute
    (:func:`bot.services.refusals.refuse_reply`) instead of a message of its own. Other
    refusals go on to the unit of work as before."""
    assert message.from_user is not None
    savepoint = await session.begin_nested()
    try:
        yield
    except UserError as error:
        await savepoint.rollback()
        if reasons is not None and error.message_id not in reasons:
            raise
        await refusals.refuse_reply(
            session,
            chat_id=message.chat.id,
            message_id=message.message_id,
            user_id=message.from_user.id,
            user_locale=lang,
            group_locale=district.default_language,
            subject=refusals.case_subject(case_id),
            number=await refusals.case_number(session, case_id),
            reason=error.message_id,
            params=error.params,
            now=now,
        )
        return
    await savepoint.commit()
