"""Private chat front door: /start, /help, /cancel, /lang and the main menu."""

from __future__ import annotations

from typing import Any

from aiogram import F, Router
from aiogram.filters import Command, CommandObject, CommandStart, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.callbacks import LanguageChoice
from bot.district import District
from bot.i18n import N_, Catalogues, match_language
from bot.services import menu
from bot.services.dashboard import access_of
from bot.services.errors import UserError
from handlers.answers import say
from handlers.filters import CallbackOf, TextIn
from models import User


class LanguageDialog(StatesGroup):
    choosing = State()


def language_by_name(catalogues: Catalogues, text: str) -> str | None:
    """A language typed by name ("English", "中文") or by code ("en", "zh")."""
    wanted = text.strip().casefold()
    for code in catalogues.languages:
        if wanted == catalogues.translator(code)("lang.self-name").casefold():
            return code
    return match_language(wanted, catalogues.languages)


def is_staff(district: District, user_id: int) -> bool:
    """Whether the person's command menu carries the staff's commands (a dashboard scope)."""
    return access_of(district, user_id) is not None


def router(catalogues: Catalogues) -> Router:
    r = Router(name="start")
    # The language row of a newcomer's menu: each language's own name, as their client sends it.
    language_buttons = {
        catalogues.translator(code)("lang.self-name"): code for code in catalogues.languages
    }
    r.message.filter(F.chat.type == "private")
    r.callback_query.filter(F.message.chat.type == "private")

    def choose(
        session: AsyncSession,
        district: District,
        user: User,
        language: str,
        now: Any,
        *,
        chat_id: int,
        pressed: tuple[str, int] | None = None,
    ) -> None:
        """However the language was chosen (a button, a name, a press): switch to it."""
        menu.choose_language(
            session,
            user=user,
            chat_id=chat_id,
            language=language,
            languages=catalogues.languages,
            now=now,
            staff=is_staff(district, user.id),
            pressed=pressed,
        )

    @r.message(CommandStart())
    async def start(
        message: Message,
        state: FSMContext,
        session: AsyncSession,
        user: User,
        lang: str,
        now: Any,
        district: District,
    ) -> None:
        await state.clear()
        assert message.from_user is not None
        menu.greet(
            session,
            chat_id=message.chat.id,
            lang=lang,
            now=now,
            name=message.from_user.first_name,
            district=district.names.get(lang),
            # Until they choose, the language is a guess from their Telegram app: the menu
            # offers every language, each button in its own.
            languages=catalogues.languages if user.language is None else (),
        )
        if is_staff(district, user.id):
            # Staff who start the bot after the service did get their menu now.
            menu.set_commands(session, chat_id=message.chat.id, lang=lang, staff=True, now=now)

    @r.message(StateFilter(None), TextIn(language_buttons))
    async def language_button(
        message: Message,
        session: AsyncSession,
        user: User,
        choice: str,
        now: Any,
        district: District,
    ) -> None:
        choose(session, district, user, choice, now, chat_id=message.chat.id)

    @r.message(Command("help"))
    async def help_(message: Message, session: AsyncSession, lang: str, now: Any) -> None:
        menu.show_help(session, chat_id=message.chat.id, lang=lang, now=now)

    @r.message(Command("cancel"))
    async def cancel(
        message: Message, state: FSMContext, session: AsyncSession, lang: str, now: Any
    ) -> None:
        had_dialog = await state.get_state() is not None
        await state.clear()
        say(
            session,
            message,
            lang,
            now,
            N_("cancel.done") if had_dialog else N_("cancel.nothing"),
            keyboard=menu.MAIN_MENU,
        )

    @r.message(Command("lang"))
    async def lang_command(
        message: Message,
        command: CommandObject,
        state: FSMContext,
        session: AsyncSession,
        user: User,
        lang: str,
        now: Any,
        district: District,
    ) -> None:
        wanted = language_by_name(catalogues, command.args) if command.args else None
        if wanted is not None:
            await state.clear()
            choose(session, district, user, wanted, now, chat_id=message.chat.id)
            return
        await state.set_state(LanguageDialog.choosing)
        menu.offer_languages(
            session, chat_id=message.chat.id, lang=lang, now=now, languages=catalogues.languages
        )

    @r.callback_query(CallbackOf(LanguageChoice))
    async def lang_pressed(
        query: CallbackQuery,
        cb: LanguageChoice,
        state: FSMContext,
        session: AsyncSession,
        user: User,
        now: Any,
        district: District,
    ) -> None:
        if cb.code not in catalogues.languages or query.message is None:
            raise UserError(N_("errors.stale-button"))
        await state.clear()
        pressed = (query.id, query.message.message_id)
        choose(session, district, user, cb.code, now, chat_id=query.from_user.id, pressed=pressed)

    @r.message(StateFilter(LanguageDialog.choosing), F.text, ~F.text.startswith("/"))
    async def lang_typed(
        message: Message,
        state: FSMContext,
        session: AsyncSession,
        user: User,
        now: Any,
        district: District,
    ) -> None:
        wanted = language_by_name(catalogues, message.text or "")
        if wanted is None:
            raise UserError(N_("lang.unknown"))
        await state.clear()
        choose(session, district, user, wanted, now, chat_id=message.chat.id)

    return r
