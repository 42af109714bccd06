"""Group chats: /bind, the card buttons, answers and reasons given by reply, center assignment.

Groups that are not bound to a unit are ignored. Any group member can press any button, so
every press is checked again: the press must come from the group of the case's department,
and the presser must be a member of it (center actions: an admin or the center head).
"""

from __future__ import annotations

from typing import Any

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.callbacks import AssignCase, CaseAction, OpenFolded, TriageStep
from bot.district import District, Role
from bot.i18n import N_
from bot.services import cases, department, folding, links, notify, routing, triage
from bot.services.errors import UserError
from handlers.answers import answer_group_press
from handlers.filters import CallbackOf
from handlers.groups import (
    ADMIN_STATUSES,
    GROUPS,
    InUnitGroup,
    actor,
    folding_refusals,
    require_admin,
    require_member,
    require_member_pressing,
    status_in,
)

# Refusals of replies to a card that many people can draw at the same moment (the first
# answer wins, the others are too late); they are folded (handlers.groups.folding_refusals).
# Refusals about the reply itself (too long, empty) still answer the one who sent it.
CONTENDED = frozenset({N_("card.already-answered")})


def router() -> Router:
    r = Router(name="department")
    r.message.filter(F.chat.type.in_(GROUPS))
    r.callback_query.filter(F.message.chat.type.in_(GROUPS))

    @r.message(Command("bind"))
    async def bind(
        message: Message,
        command: CommandObject,
        bot: Bot,
        session: AsyncSession,
        district: District,
        now: Any,
    ) -> None:
        assert message.from_user is not None
        await require_admin(
            bot, message.chat.id, message.from_user.id, district, refusal=N_("bind.not-admin")
        )
        if not command.args:
            raise UserError(N_("bind.usage"))
        await department.bind_group(
            session,
            district,
            code=command.args,
            chat_id=message.chat.id,
            by=message.from_user.id,
            now=now,
        )

    @r.callback_query(CallbackOf(CaseAction), InUnitGroup())
    async def card_button(
        query: CallbackQuery,
        cb: CaseAction,
        unit: str,
        bot: Bot,
        session: AsyncSession,
        district: District,
        now: Any,
        lang: str,
    ) -> None:
        assert query.message is not None
        chat_id = query.message.chat.id
        presser = await require_member_pressing(query, bot, district, unit=unit, lang=lang)
        if cb.action == "ack":
            await cases.acknowledge(
                session, district, case_id=cb.case_id, department=unit, actor=presser, now=now
            )
            answer_group_press(session, query, district, now)
        elif cb.action in department.PROMPTS:
            await department.prompt(
                session,
                district,
                case_id=cb.case_id,
                unit=unit,
                action=cb.action,
                actor=presser,
                chat_id=chat_id,
                callback_query_id=query.id,
                now=now,
            )
        else:
            raise UserError(N_("errors.stale-button"))

    @r.callback_query(CallbackOf(OpenFolded))
    async def open_folded(
        query: CallbackQuery,
        cb: OpenFolded,
        bot: Bot,
        session: AsyncSession,
        district: District,
        now: Any,
    ) -> None:
        """A line of the group's burst digest: that case's own card, now."""
        assert query.message is not None
        chat_id = query.message.chat.id
        await require_member(bot, chat_id, query.from_user, district)
        number = await folding.open_now(
            session, district, fold_id=cb.fold_id, chat_id=chat_id, now=now
        )
        answer_group_press(
            session, query, district, now, text_key=N_("fold.opened"), number=number
        )

    @r.callback_query(CallbackOf(AssignCase), InUnitGroup())
    async def assign(
        query: CallbackQuery,
        cb: AssignCase,
        unit: str,
        bot: Bot,
        session: AsyncSession,
        district: District,
        now: Any,
    ) -> None:
        assert query.message is not None
        if unit != routing.CENTER:
            raise UserError(N_("card.stale"))
        person = district.person(query.from_user.id)
        allowed = person is not None and (
            person.has_role(Role.ADMIN) or person.has_role(Role.CENTER_HEAD)
        )
        if not allowed:
            status = await status_in(bot, query.message.chat.id, query.from_user.id)
            allowed = status in ADMIN_STATUSES
        if not allowed:
            raise UserError(N_("center.not-admin"))
        await cases.assign(
            session,
            district,
            case_id=cb.case_id,
            department=cb.unit,
            actor=actor(query.from_user, district.default_language),
            now=now,
        )
        answer_group_press(session, query, district, now)

    @r.callback_query(CallbackOf(TriageStep), InUnitGroup())
    async def triage_step(
        query: CallbackQuery,
        cb: TriageStep,
        unit: str,
        bot: Bot,
        session: AsyncSession,
        district: District,
        now: Any,
        lang: str,
    ) -> None:
        presser = await require_member_pressing(query, bot, district, unit=unit, lang=lang)
        await triage.step(
            session,
            district,
            case_id=cb.case_id,
            unit=unit,
            action=cb.action,
            value=cb.value,
            actor=presser,
            now=now,
        )
        answer_group_press(session, query, district, now)

    @r.message(F.reply_to_message, InUnitGroup())
    async def reply(
        message: Message,
        unit: str,
        session: AsyncSession,
        district: District,
        lang: str,
        now: Any,
    ) -> None:
        assert message.reply_to_message is not None and message.from_user is not None
        link = await links.subject_of(
            session, message.chat.id, message.reply_to_message.message_id
        )
        if link is None or link.subject_type != "case":
            return  # an ordinary conversation in the group
        if link.purpose not in notify.ANSWER_PURPOSES and link.purpose != notify.RETURN_PROMPT:
            return
        if not (message.text or message.photo or message.caption):
            raise UserError(N_("answer.unsupported"))
        text = message.text or message.caption or ""
        replier = actor(message.from_user, district.default_language)
        case_id = int(link.subject_id)
        if link.purpose == notify.RETURN_PROMPT and message.photo and not text:
            raise UserError(N_("return.reason-needed"))
        # Several staff may reply to one card at once: "already answered" must not flood.
        async with folding_refusals(
            session, message, district, case_id=case_id, lang=lang, now=now, reasons=CONTENDED
        ):
            if link.purpose == notify.RETURN_PROMPT:
                await cases.return_case(
                    session,
                    district,
                    case_id=case_id,
                    department=unit,
                    actor=replier,
                    reason=text,
                    now=now,
                )
                return
            photos = [message.photo[-1].file_id] if message.photo else []
            await cases.answer(
                session,
                district,
                case_id=case_id,
                department=unit,
                actor=replier,
                text=text,
                photos=photos,
                now=now,
                media_group_id=message.media_group_id,
            )

    return r
