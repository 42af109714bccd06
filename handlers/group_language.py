"""/lang in a group: its admins choose the language the bot speaks there."""

from __future__ import annotations

from typing import Any

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.callbacks import LanguageChoice
from bot.district import District
from bot.i18n import N_, Catalogues
from bot.services import menu
from bot.services.errors import UserError
from bot.services.users import chat_language
from handlers.filters import CallbackOf
from handlers.groups import GROUPS, require_admin
from handlers.start import language_by_name


def router(catalogues: Catalogues) -> Router:
    r = Router(name="group-language")
    r.message.filter(F.chat.type.in_(GROUPS))
    r.callback_query.filter(F.message.chat.type.in_(GROUPS))

    @r.message(Command("lang"))
    async def lang_command(
        message: Message,
        command: CommandObject,
        bot: Bot,
        session: AsyncSession,
        district: District,
        now: Any,
    ) -> None:
        assert message.from_user is not None
        chat_id = message.chat.id
        await require_admin(
            bot, chat_id, message.from_user.id, district, refusal=N_("lang.group-not-admin")
        )
        if command.args:
            wanted = language_by_name(catalogues, command.args)
            if wanted is None:
                raise UserError(N_("lang.group-unknown"))
            await menu.choose_group_language(
                session,
                chat_id=chat_id,
                language=wanted,
                languages=catalogues.languages,
                by=message.from_user.id,
                now=now,
            )
            return
        current = await chat_language(
            session, chat_id, catalogues.languages, catalogues.default_language
        )
        menu.offer_languages(
            session,
            chat_id=chat_id,
            lang=current,
            now=now,
            languages=catalogues.languages,
            prompt=N_("lang.group-prompt"),
        )

    @r.callback_query(CallbackOf(LanguageChoice))
    async def lang_pressed(
        query: CallbackQuery,
        cb: LanguageChoice,
        bot: Bot,
        session: AsyncSession,
        district: District,
        now: Any,
    ) -> None:
        if cb.code not in catalogues.languages or query.message is None:
            raise UserError(N_("errors.stale-button"))
        chat_id = query.message.chat.id
        await require_admin(
            bot, chat_id, query.from_user.id, district, refusal=N_("lang.group-not-admin")
        )
        await menu.choose_group_language(
            session,
            chat_id=chat_id,
            language=cb.code,
            languages=catalogues.languages,
            by=query.from_user.id,
            now=now,
            pressed=(query.id, query.message.message_id),
        )

    return r
