"""The resident's front door: greeting, main menu, help and language choice."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.callbacks import LanguageChoice
from bot.i18n import N_
from bot.services.outbox import (
    answer_callback,
    edit_text,
    enqueue,
    inline_keyboard,
    reply_keyboard,
    send_text,
    web_app_button,
)
from bot.services.users import set_chat_language, set_language
from models import User

MENU_REPORT = N_("menu.report")
MENU_SAY = N_("menu.say")
MENU_ASK = N_("menu.ask")
MENU_MY = N_("menu.my")
MENU_FORM = N_("menu.form")
# The Mini App's button opens the one-form filing; the sender leaves it out when the app is
# off (no WEBAPP_URL), and the chat dialog behind the other buttons stays either way.
MAIN_MENU = reply_keyboard(
    [web_app_button(MENU_FORM)], [MENU_REPORT, MENU_SAY], [MENU_ASK, MENU_MY]
)
# ``session.info`` key (set on the app's session factory): whether the Mini App is on.
MINI_APP = "mini_app"

# Commands offered in private chats, in menu order, with their catalogue descriptions.
PRIVATE_COMMANDS: tuple[tuple[str, str], ...] = (
    ("start", N_("commands.start")),
    ("report", N_("commands.report")),
    ("say", N_("commands.say")),
    ("ask", N_("commands.ask")),
    ("my", N_("commands.my")),
    ("volunteer", N_("commands.volunteer")),
    ("points", N_("commands.points")),
    ("top", N_("commands.top")),
    ("shop", N_("commands.shop")),
    ("redeem", N_("commands.redeem")),
    ("lang", N_("commands.lang")),
    ("forgetme", N_("commands.forgetme")),
    ("help", N_("commands.help")),
    ("cancel", N_("commands.cancel")),
)

# Commands added to the menu of people with a dashboard scope (bot/services/dashboard.py).
STAFF_COMMANDS: tuple[tuple[str, str], ...] = (
    ("dashboard", N_("commands.dashboard")),
    ("stats", N_("commands.stats")),
    ("export", N_("commands.export")),
)


def commands_for(staff: bool) -> tuple[tuple[str, str], ...]:
    """A private chat's command menu: the residents' commands, and the staff's for staff."""
    return (
        PRIVATE_COMMANDS[:-2] + STAFF_COMMANDS + PRIVATE_COMMANDS[-2:]
        if staff
        else (PRIVATE_COMMANDS)
    )


# The command and the menu entry behind each of the resident's features.
FEATURES = {"report": MENU_REPORT, "say": MENU_SAY, "ask": MENU_ASK, "my": MENU_MY}


def set_commands(
    session: AsyncSession, *, chat_id: int, lang: str, staff: bool, now: datetime
) -> None:
    """The person's own command menu (the staff's includes theirs), in their language."""
    enqueue(
        session,
        chat_id=chat_id,
        locale=lang,
        now=now,
        method="setMyCommands",
        params={"commands": [list(pair) for pair in commands_for(staff)]},
    )


def set_menu_button(session: AsyncSession, *, chat_id: int, lang: str, now: datetime) -> None:
    """With the Mini App on, the chat's menu button opens it, labelled in the person's
    language."""
    if session.info.get(MINI_APP):
        enqueue(
            session,
            chat_id=chat_id,
            locale=lang,
            now=now,
            method="setChatMenuButton",
            params={"label": MENU_FORM},
        )


def greet(
    session: AsyncSession,
    *,
    chat_id: int,
    lang: str,
    now: datetime,
    name: str,
    district: str,
    languages: tuple[str, ...] = (),
) -> None:
    """The greeting and the main menu; with ``languages``, the menu's last row offers them
    (each labelled in its own language), so a newcomer can switch before anything else."""
    keyboard = MAIN_MENU
    if languages:
        row = [{"label": N_("lang.self-name"), "locale": code} for code in languages]
        keyboard = {**MAIN_MENU, "reply": [*MAIN_MENU["reply"], row]}
    enqueue(
        session,
        chat_id=chat_id,
        locale=lang,
        now=now,
        template="start.html",
        context={"name": name, "district": district, "languages": bool(languages)},
        keyboard=keyboard,
    )
    set_menu_button(session, chat_id=chat_id, lang=lang, now=now)


def show_help(session: AsyncSession, *, chat_id: int, lang: str, now: datetime) -> None:
    enqueue(
        session,
        chat_id=chat_id,
        locale=lang,
        now=now,
        template="help.html",
        context={"commands": [list(pair) for pair in PRIVATE_COMMANDS]},
        keyboard=MAIN_MENU,
    )


def offer_languages(
    session: AsyncSession,
    *,
    chat_id: int,
    lang: str,
    now: datetime,
    languages: tuple[str, ...],
    prompt: str = N_("lang.prompt"),
) -> None:
    """The language picker: one button per language, each labelled in its own language."""
    keyboard = inline_keyboard(
        [
            {"label": N_("lang.self-name"), "locale": code, "data": LanguageChoice(code).pack()}
            for code in languages
        ]
    )
    send_text(
        session,
        chat_id=chat_id,
        locale=lang,
        now=now,
        text_key=prompt,
        keyboard=keyboard,
    )


def choose_language(
    session: AsyncSession,
    *,
    user: User,
    chat_id: int,
    language: str,
    languages: tuple[str, ...],
    now: datetime,
    staff: bool = False,
    pressed: tuple[str, int] | None = None,
) -> None:
    """Switch the user's language; everything from here on, menus included, is in it (the
    command menu Telegram shows by the app's language is replaced by one in this chat)."""
    set_language(user, language, languages)
    set_commands(session, chat_id=chat_id, lang=language, staff=staff, now=now)
    set_menu_button(session, chat_id=chat_id, lang=language, now=now)
    if pressed is not None:
        _confirm_on_picker(
            session,
            chat_id=chat_id,
            presser=chat_id,
            pressed=pressed,
            language=language,
            text_key=N_("lang.changed"),
            now=now,
        )
    send_text(
        session,
        chat_id=chat_id,
        locale=language,
        now=now,
        text_key=N_("start.menu-hint"),
        keyboard=MAIN_MENU,
    )


async def choose_group_language(
    session: AsyncSession,
    *,
    chat_id: int,
    language: str,
    languages: tuple[str, ...],
    by: int,
    now: datetime,
    pressed: tuple[str, int] | None = None,
) -> None:
    """Set a group's language (its admins decide): cards, reminders and reports sent to the
    group from now on, and edits of the cards already there, are in it."""
    await set_chat_language(
        session, chat_id=chat_id, language=language, supported=languages, by=by, now=now
    )
    if pressed is None:
        send_text(
            session, chat_id=chat_id, locale=language, now=now, text_key=N_("lang.group-changed")
        )
        return
    _confirm_on_picker(
        session,
        chat_id=chat_id,
        presser=by,
        pressed=pressed,
        language=language,
        text_key=N_("lang.group-changed"),
        now=now,
    )


def _confirm_on_picker(
    session: AsyncSession,
    *,
    chat_id: int,
    presser: int,
    pressed: tuple[str, int],
    language: str,
    text_key: str,
    now: datetime,
) -> None:
    """Answer the press, and turn the picker into the confirmation (in the language chosen),
    so its buttons cannot be pressed again."""
    callback_query_id, picker_message_id = pressed
    answer_callback(
        session,
        chat_id=presser,
        callback_query_id=callback_query_id,
        locale=language,
        now=now,
        text_key=text_key,
    )
    edit_text(
        session,
        chat_id=chat_id,
        target=picker_message_id,
        locale=language,
        now=now,
        text_key=text_key,
    )
