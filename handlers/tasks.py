"""Private tasks from the card ladder: the center head records the call to a chief."""

from __future__ import annotations

from typing import Any

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.callbacks import CallOutcome
from bot.district import District
from bot.services import ladder
from handlers.filters import CallbackOf


class CallNote(StatesGroup):
    writing = State()


def router() -> Router:
    r = Router(name="tasks")
    r.message.filter(F.chat.type == "private")
    r.callback_query.filter(F.message.chat.type == "private")

    @r.callback_query(CallbackOf(CallOutcome))
    async def call_recorded(
        query: CallbackQuery,
        cb: CallOutcome,
        state: FSMContext,
        session: AsyncSession,
        district: District,
        lang: str,
        now: Any,
    ) -> None:
        assert query.message is not None
        await ladder.record_call(
            session,
            district,
            case_id=cb.case_id,
            outcome=cb.outcome,
            by=query.from_user.id,
            chat_id=query.message.chat.id,
            message_id=query.message.message_id,
            callback_query_id=query.id,
            lang=lang,
            now=now,
        )
        await state.set_state(CallNote.writing)
        await state.update_data(call_case=cb.case_id)

    @r.message(StateFilter(CallNote.writing), Command("skip"))
    async def skip(message: Message, state: FSMContext) -> None:
        await state.clear()

    @r.message(StateFilter(CallNote.writing), F.text, ~F.text.startswith("/"))
    async def note(
        message: Message, state: FSMContext, session: AsyncSession, lang: str, now: Any
    ) -> None:
        assert message.from_user is not None
        data = await state.get_data()
        await state.clear()
        await ladder.add_call_note(
            session,
            case_id=int(data["call_case"]),
            by=message.from_user.id,
            note=message.text or "",
            lang=lang,
            now=now,
        )

    return r
