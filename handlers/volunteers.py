"""Volunteers: the /volunteer dialog and status, approval by an admin, and claiming help
requests in the volunteer chat (by a reply to the card or its Claim button) and working on them.

Every press is checked again in the service: who presses, and whether it still applies.
"""

from __future__ import annotations

import secrets
from typing import Any

from aiogram import F, Router
from aiogram.filters import Command, Filter, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.callbacks import (
    ClaimHelp,
    HelpConfirm,
    HelpProgress,
    VolunteerDecision,
    VolunteerForm,
    VolunteerPause,
)
from bot.district import District
from bot.i18n import N_
from bot.services import links, volunteers
from bot.services.errors import UserError
from bot.services.outbox import (
    button,
    enqueue,
    inline_keyboard,
    literal_button,
    send_text,
)
from handlers.answers import answer_press, say
from handlers.filters import CallbackOf
from handlers.groups import GROUPS, actor, folding_refusals
from models import Volunteer, VolunteerStatus


class Signup(StatesGroup):
    name = State()
    community = State()
    skills = State()
    availability = State()


def _skills_keyboard(district: District, token: str, chosen: list[str]) -> dict[str, Any]:
    rows = [
        [
            literal_button(
                ("✅ " if skill in chosen else "") + skill,
                VolunteerForm(token, "sk", str(index)).pack(),
            )
        ]
        for index, skill in enumerate(district.volunteers.skills)
    ]
    rows.append(
        [button(N_("volunteer.button.skills-done"), VolunteerForm(token, "ok", "").pack())]
    )
    return inline_keyboard(*rows)


def _status_keyboard(status: VolunteerStatus) -> dict[str, Any] | None:
    if status is VolunteerStatus.APPROVED:
        return inline_keyboard([button(N_("volunteer.button.pause"), VolunteerPause("p").pack())])
    if status is VolunteerStatus.PAUSED:
        return inline_keyboard([button(N_("volunteer.button.resume"), VolunteerPause("r").pack())])
    return None


STATUS_KEYS = {
    VolunteerStatus.PENDING: N_("volunteer.status.pending"),
    VolunteerStatus.APPROVED: N_("volunteer.status.approved"),
    VolunteerStatus.PAUSED: N_("volunteer.status.paused"),
}


def _tell_status(
    session: AsyncSession, chat_id: int, lang: str, now: Any, volunteer: Volunteer
) -> None:
    """A registered volunteer's status, with the button that pauses or resumes them."""
    send_text(
        session,
        chat_id=chat_id,
        locale=lang,
        now=now,
        text_key=STATUS_KEYS[volunteer.status],
        keyboard=_status_keyboard(volunteer.status),
        name=volunteer.display_name,
    )


def router() -> Router:
    private = Router(name="volunteers")
    private.message.filter(F.chat.type == "private")
    private.callback_query.filter(F.message.chat.type == "private")

    @private.message(Command("volunteer"))
    async def start(
        message: Message, state: FSMContext, session: AsyncSession, lang: str, now: Any
    ) -> None:
        assert message.from_user is not None
        volunteer = await volunteers.get(session, message.from_user.id)
        if volunteer is not None and volunteer.status is not VolunteerStatus.DECLINED:
            _tell_status(session, message.chat.id, lang, now, volunteer)
            return
        await state.set_state(Signup.name)
        await state.set_data({"token": secrets.token_hex(4), "skills": []})
        say(session, message, lang, now, N_("volunteer.ask-name"), limit=volunteers.MAX_NAME)

    @private.message(Signup.name, F.text, ~F.text.startswith("/"))
    async def name_given(
        message: Message,
        state: FSMContext,
        session: AsyncSession,
        district: District,
        lang: str,
        now: Any,
    ) -> None:
        name = volunteers.check_name(message.text or "")
        data = await state.get_data()
        await state.set_state(Signup.community)
        await state.update_data(name=name)
        token = data["token"]
        rows = [
            [literal_button(unit.names.get(lang), VolunteerForm(token, "com", unit.code).pack())]
            for unit in volunteers.communities(district)
        ]
        say(
            session,
            message,
            lang,
            now,
            N_("volunteer.ask-community"),
            keyboard=inline_keyboard(*rows),
        )

    @private.message(Signup.availability, F.text, ~F.text.startswith("/"))
    async def availability_given(
        message: Message,
        state: FSMContext,
        session: AsyncSession,
        district: District,
        lang: str,
        now: Any,
    ) -> None:
        assert message.from_user is not None
        data = await state.get_data()
        await volunteers.register(
            session,
            district,
            user=actor(message.from_user, lang),
            display_name=data["name"],
            community=data["community"],
            skills=list(data.get("skills", [])),
            availability=message.text or "",
            contact=f"@{message.from_user.username}" if message.from_user.username else None,
            now=now,
        )
        await state.clear()

    @private.message(StateFilter(Signup.community, Signup.skills), ~F.text.startswith("/"))
    async def use_buttons(message: Message) -> None:
        raise UserError(N_("dialog.use-buttons"))

    @private.message(StateFilter(Signup.name, Signup.availability), ~F.text.startswith("/"))
    async def text_expected(message: Message) -> None:
        raise UserError(N_("dialog.text-expected"))

    @private.callback_query(CallbackOf(VolunteerForm))
    async def form_pressed(
        query: CallbackQuery,
        cb: VolunteerForm,
        state: FSMContext,
        raw_state: str | None,
        session: AsyncSession,
        district: District,
        lang: str,
        now: Any,
    ) -> None:
        data = await state.get_data()
        expected = Signup.community if cb.action == "com" else Signup.skills
        if data.get("token") != cb.token or raw_state != expected.state:
            raise UserError(N_("errors.stale-button"))
        answer_press(session, query, lang, now)
        chat_id = query.from_user.id
        skills = list(district.volunteers.skills)
        if cb.action == "com":
            if cb.value not in {unit.code for unit in volunteers.communities(district)}:
                raise UserError(N_("errors.stale-button"))
            await state.update_data(community=cb.value)
            if skills:
                await state.set_state(Signup.skills)
                send_text(
                    session,
                    chat_id=chat_id,
                    locale=lang,
                    now=now,
                    text_key=N_("volunteer.ask-skills"),
                    keyboard=_skills_keyboard(district, cb.token, []),
                )
                return
        elif cb.action == "sk":
            if not cb.value.isdigit() or int(cb.value) >= len(skills):
                raise UserError(N_("errors.stale-button"))
            skill = skills[int(cb.value)]
            chosen = list(data.get("skills", []))
            chosen = [s for s in chosen if s != skill] if skill in chosen else [*chosen, skill]
            await state.update_data(skills=chosen)
            assert query.message is not None
            enqueue(
                session,
                chat_id=chat_id,
                locale=lang,
                now=now,
                method="editMessageReplyMarkup",
                keyboard=_skills_keyboard(district, cb.token, chosen),
                target=query.message.message_id,
            )
            return
        elif cb.action != "ok":
            raise UserError(N_("errors.stale-button"))
        await state.set_state(Signup.availability)
        send_text(
            session,
            chat_id=chat_id,
            locale=lang,
            now=now,
            text_key=N_("volunteer.ask-availability"),
            limit=volunteers.MAX_AVAILABILITY,
        )

    @private.callback_query(CallbackOf(VolunteerDecision))
    async def decision(
        query: CallbackQuery,
        cb: VolunteerDecision,
        session: AsyncSession,
        district: District,
        lang: str,
        now: Any,
    ) -> None:
        await volunteers.decide(
            session,
            district,
            admin_id=query.from_user.id,
            user_id=cb.user_id,
            approve=cb.decision == "y",
            now=now,
        )
        answer_press(session, query, lang, now)

    @private.callback_query(CallbackOf(VolunteerPause))
    async def pause(
        query: CallbackQuery, cb: VolunteerPause, session: AsyncSession, lang: str, now: Any
    ) -> None:
        volunteer = await volunteers.set_paused(
            session, user_id=query.from_user.id, paused=cb.action == "p"
        )
        answer_press(session, query, lang, now)
        _tell_status(session, query.from_user.id, lang, now, volunteer)

    @private.message(F.photo, RepliesToHelpDetails())
    async def result_photo(
        message: Message, case_id: int, session: AsyncSession, now: Any
    ) -> None:
        assert message.from_user is not None and message.photo
        await volunteers.share_photo(
            session,
            case_id=case_id,
            user_id=message.from_user.id,
            file_id=message.photo[-1].file_id,
            now=now,
        )

    @private.callback_query(CallbackOf(HelpProgress))
    async def progress(
        query: CallbackQuery,
        cb: HelpProgress,
        session: AsyncSession,
        district: District,
        lang: str,
        now: Any,
    ) -> None:
        await volunteers.progress(
            session,
            district,
            case_id=cb.case_id,
            user_id=query.from_user.id,
            action=cb.action,
            now=now,
        )
        answer_press(session, query, lang, now)

    @private.callback_query(CallbackOf(HelpConfirm))
    async def confirmed(
        query: CallbackQuery,
        cb: HelpConfirm,
        session: AsyncSession,
        district: District,
        lang: str,
        now: Any,
    ) -> None:
        await volunteers.confirm(
            session,
            district,
            case_id=cb.case_id,
            resident_id=query.from_user.id,
            answer=cb.answer,
            now=now,
        )
        answer_press(session, query, lang, now)

    return private


class RepliesToHelpDetails(Filter):
    """A message replying to the details of a help request the bot sent this volunteer."""

    async def __call__(self, message: Message, session: AsyncSession) -> bool | dict[str, Any]:
        if message.reply_to_message is None:
            return False
        link = await links.subject_of(
            session, message.chat.id, message.reply_to_message.message_id
        )
        if link is None or link.subject_type != "case" or link.purpose != volunteers.DETAILS:
            return False
        return {"case_id": int(link.subject_id)}


# A volunteer claims by replying to the card or to its re-announcement.
CLAIMABLE = frozenset({volunteers.HELP_CARD, volunteers.HELP_AGAIN})


class InVolunteerChat(Filter):
    """Passes only in the volunteer chat, so replies in unit groups go on to their routers."""

    async def __call__(self, event: Message | CallbackQuery, district: District) -> bool:
        message = event if isinstance(event, Message) else event.message
        return message is not None and message.chat.id in district.volunteer_chat_ids()


def group_router() -> Router:
    """Claims in the volunteer chat: replies to a help card, and its Claim button."""
    r = Router(name="volunteer-chat")
    r.message.filter(F.chat.type.in_(GROUPS), InVolunteerChat())
    r.callback_query.filter(F.message.chat.type.in_(GROUPS), InVolunteerChat())

    @r.message(F.reply_to_message)
    async def reply(
        message: Message, session: AsyncSession, district: District, lang: str, now: Any
    ) -> None:
        assert message.reply_to_message is not None and message.from_user is not None
        link = await links.subject_of(
            session, message.chat.id, message.reply_to_message.message_id
        )
        if link is None or link.subject_type != "case" or link.purpose not in CLAIMABLE:
            return  # an ordinary conversation in the group
        case_id = int(link.subject_id)
        # Many can reply at once (all but one too late): refusals must not flood the group.
        async with folding_refusals(
            session, message, district, case_id=case_id, lang=lang, now=now
        ):
            await volunteers.claim(
                session,
                district,
                case_id=case_id,
                user_id=message.from_user.id,
                now=now,
            )

    @r.callback_query(CallbackOf(ClaimHelp))
    async def claim_pressed(
        query: CallbackQuery,
        cb: ClaimHelp,
        session: AsyncSession,
        district: District,
        lang: str,
        now: Any,
    ) -> None:
        assert query.message is not None
        link = await links.subject_of(session, query.message.chat.id, query.message.message_id)
        if link is None or link.purpose not in CLAIMABLE or link.subject_id != str(cb.case_id):
            raise UserError(N_("errors.stale-button"))
        await volunteers.claim(
            session,
            district,
            case_id=cb.case_id,
            user_id=query.from_user.id,
            now=now,
        )
        answer_press(session, query, lang, now)

    return r
