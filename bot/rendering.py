"""Turning an outbox row into a Bot API call: text in the recipient's language, keyboards,
and Telegram's limits checked before anything is sent."""

from __future__ import annotations

import html
import re
from typing import Any

from aiogram.methods import (
    AnswerCallbackQuery,
    DeleteMessage,
    EditMessageCaption,
    EditMessageReplyMarkup,
    EditMessageText,
    SendDocument,
    SendLocation,
    SendMediaGroup,
    SendMessage,
    SendPhoto,
    SetChatMenuButton,
    SetMyCommands,
    TelegramMethod,
)
from aiogram.types import (
    BotCommand,
    BotCommandScopeChat,
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaAudio,
    InputMediaDocument,
    InputMediaLivePhoto,
    InputMediaPhoto,
    InputMediaVideo,
    KeyboardButton,
    LinkPreviewOptions,
    MenuButtonCommands,
    MenuButtonWebApp,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    ReplyParameters,
    WebAppInfo,
)

from bot.district import District
from bot.i18n import Catalogues, Translator
from models import OutboxMessage

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64  # bytes
CALLBACK_ANSWER_LIMIT = 200
_TAG = re.compile(r"<[^>]*>")

MediaItem = (
    InputMediaAudio | InputMediaDocument | InputMediaLivePhoto | InputMediaPhoto | InputMediaVideo
)
Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove


def district_globals(district: District) -> dict[str, Any]:
    """Template helpers that know the district: names by code, times in its time zone."""

    def unit_name(code: str | None, lang: str) -> str:
        if not code:
            return ""
        unit = district.department(code) or district.street_office(code)
        return unit.names.get(lang) if unit else code

    def category_name(code: str | None, lang: str) -> str:
        category = district.category(code) if code else None
        return category.names.get(lang) if category else (code or "")

    def integration_name(code: str | None, lang: str) -> str:
        integration = district.integration(code) if code else None
        return integration.names.get(lang) if integration else (code or "")

    def unit_names(codes: list[str], lang: str) -> str:
        return ", ".join(unit_name(code, lang) for code in codes)

    return {
        "unit_name": unit_name,
        "unit_names": unit_names,
        "category_name": category_name,
        "integration_name": integration_name,
    }


class RenderError(Exception):
    """The row can never be sent as it is (a permanent failure)."""


def visible_length(text: str) -> int:
    """Length as Telegram counts it for HTML: after removing tags and resolving entities."""
    return len(html.unescape(_TAG.sub("", text)))


class Renderer:
    def __init__(self, catalogues: Catalogues, webapp_url: str | None = None) -> None:
        self.catalogues = catalogues
        # Where a ``web_app`` button opens the Mini App (None: no Mini App; such buttons are
        # left out of the keyboard).
        self.webapp_url = webapp_url

    def text(self, row: OutboxMessage, locale: str | None = None) -> str | None:
        locale = locale or row.locale
        if row.template:
            return self.catalogues.render(row.template, row.context, locale)
        if row.text_key:
            return self.catalogues.render_text(row.text_key, row.context, locale)
        return None

    def keyboard(self, row: OutboxMessage, locale: str | None = None) -> Markup | None:
        spec = row.keyboard
        if not spec:
            return None
        t = self.catalogues.translator(locale or row.locale)
        if spec.get("remove"):
            return ReplyKeyboardRemove()
        if "reply" in spec:
            rows_ = [
                [self._reply_button(b, t) for b in row_ if self.webapp_url or "web_app" not in b]
                for row_ in spec["reply"]
            ]
            return ReplyKeyboardMarkup(
                keyboard=[row_ for row_ in rows_ if row_],
                resize_keyboard=True,
                is_persistent=bool(spec.get("persistent")),
            )
        rows: list[list[InlineKeyboardButton]] = []
        for spec_row in spec["inline"]:
            buttons = []
            for b in spec_row:
                label = self._label(b, t)
                if "url" in b:
                    buttons.append(InlineKeyboardButton(text=label, url=b["url"]))
                    continue
                data = b["data"]
                if not 1 <= len(data.encode()) <= CALLBACK_DATA_LIMIT:
                    raise RenderError(f"callback_data of {len(data.encode())} bytes")
                buttons.append(InlineKeyboardButton(text=label, callback_data=data))
            rows.append(buttons)
        return InlineKeyboardMarkup(inline_keyboard=rows)

    def _reply_button(self, button: dict[str, Any], t: Translator) -> KeyboardButton:
        label = self._label(button, t)
        if "web_app" in button and self.webapp_url:
            return KeyboardButton(text=label, web_app=WebAppInfo(url=self.app_link(t.language)))
        return KeyboardButton(text=label)

    def app_link(self, language: str) -> str:
        """The Mini App's address for a reader of ``language`` (the page speaks it)."""
        assert self.webapp_url is not None
        return f"{self.webapp_url}?lang={language}"

    def _label(self, button: dict[str, Any], t: Translator) -> str:
        if "text" in button:
            return str(button["text"])
        # A button may speak its own language (the language pickers do).
        if "locale" in button:
            t = self.catalogues.translator(button["locale"])
        return t(button["label"], **button.get("params", {}))

    def method(
        self,
        row: OutboxMessage,
        target_message_id: int | None,
        upload: BufferedInputFile | None = None,
        locale: str | None = None,
        photos: dict[str, BufferedInputFile] | None = None,
    ) -> TelegramMethod[Any]:
        """Build the call. ``target_message_id`` is the resolved message of ``row.target``;
        ``upload`` is the file a row with ``params["upload"]`` sends (a chart, an export);
        ``locale`` overrides the row's language (a group chat's own, chosen with /lang);
        ``photos`` holds the bytes of photos the row names ``upload:<key>`` (a case filed in
        the Mini App, whose photos Telegram does not have yet)."""
        uploaded = photos or {}
        text = self.text(row, locale)
        markup = self.keyboard(row, locale)
        p = row.params
        chat_id = row.chat_id
        reply = (
            ReplyParameters(message_id=target_message_id, allow_sending_without_reply=True)
            if target_message_id is not None
            else None
        )
        match row.method:
            case "sendMessage":
                return SendMessage(
                    chat_id=chat_id,
                    text=_required(text, TEXT_LIMIT),
                    parse_mode="HTML",
                    reply_markup=markup,
                    reply_parameters=reply,
                    link_preview_options=LinkPreviewOptions(is_disabled=True),
                )
            case "sendPhoto":
                return SendPhoto(
                    chat_id=chat_id,
                    photo=upload or uploaded.get(p["photo"], p["photo"]),
                    caption=_checked(text, CAPTION_LIMIT),
                    parse_mode="HTML",
                    reply_markup=markup,
                    reply_parameters=reply,
                )
            case "sendMediaGroup":
                caption = _checked(text, CAPTION_LIMIT)
                media: list[MediaItem] = [
                    InputMediaPhoto(
                        media=uploaded.get(file_id, file_id),
                        caption=caption if i == 0 else None,
                        parse_mode="HTML" if i == 0 and caption else None,
                    )
                    for i, file_id in enumerate(p["photos"])
                ]
                return SendMediaGroup(chat_id=chat_id, media=media, reply_parameters=reply)
            case "sendDocument":
                return SendDocument(
                    chat_id=chat_id,
                    document=upload or p["document"],
                    caption=_checked(text, CAPTION_LIMIT),
                    parse_mode="HTML",
                    reply_parameters=reply,
                )
            case "sendLocation":
                return SendLocation(
                    chat_id=chat_id,
                    latitude=p["latitude"],
                    longitude=p["longitude"],
                    reply_parameters=reply,
                )
            case "editMessageText":
                return EditMessageText(
                    chat_id=chat_id,
                    message_id=_required_target(row, target_message_id),
                    text=_required(text, TEXT_LIMIT),
                    parse_mode="HTML",
                    reply_markup=_inline_only(markup),
                    link_preview_options=LinkPreviewOptions(is_disabled=True),
                )
            case "editMessageCaption":
                return EditMessageCaption(
                    chat_id=chat_id,
                    message_id=_required_target(row, target_message_id),
                    caption=_checked(text, CAPTION_LIMIT),
                    parse_mode="HTML",
                    reply_markup=_inline_only(markup),
                )
            case "editMessageReplyMarkup":
                return EditMessageReplyMarkup(
                    chat_id=chat_id,
                    message_id=_required_target(row, target_message_id),
                    reply_markup=_inline_only(markup),
                )
            case "deleteMessage":
                return DeleteMessage(
                    chat_id=chat_id, message_id=_required_target(row, target_message_id)
                )
            case "answerCallbackQuery":
                answer = None
                if row.text_key:
                    params = self.catalogues.localise(row.context, row.locale)
                    answer = self.catalogues.translator(row.locale)(row.text_key, **params)
                    answer = answer[:CALLBACK_ANSWER_LIMIT]
                return AnswerCallbackQuery(
                    callback_query_id=p["callback_query_id"],
                    text=answer,
                    show_alert=bool(p.get("show_alert")),
                )
            case "setChatMenuButton":
                # The chat's menu button opens the Mini App, labelled in the person's language.
                t = self.catalogues.translator(locale or row.locale)
                button = (
                    MenuButtonWebApp(
                        text=t(p["label"]), web_app=WebAppInfo(url=self.app_link(t.language))
                    )
                    if self.webapp_url
                    else MenuButtonCommands()
                )
                return SetChatMenuButton(chat_id=chat_id, menu_button=button)
            case "setMyCommands":
                # A person's own command menu, in the language they chose.
                t = self.catalogues.translator(locale or row.locale)
                return SetMyCommands(
                    commands=[
                        BotCommand(command=command, description=t(description))
                        for command, description in p["commands"]
                    ],
                    scope=BotCommandScopeChat(chat_id=chat_id),
                )
        raise RenderError(f"unknown method {row.method!r}")


def _required(text: str | None, limit: int) -> str:
    checked = _checked(text, limit)
    if checked is None:
        raise RenderError("empty text")
    return checked


def _checked(text: str | None, limit: int) -> str | None:
    if text is None or not text.strip():
        return None
    length = visible_length(text)
    if length > limit:
        raise RenderError(f"text of {length} characters exceeds {limit}")
    return text


def _required_target(row: OutboxMessage, message_id: int | None) -> int:
    if message_id is None:
        raise RenderError(f"{row.method} without a message to act on")
    return message_id


def _inline_only(markup: Markup | None) -> InlineKeyboardMarkup | None:
    if markup is None or isinstance(markup, InlineKeyboardMarkup):
        return markup
    raise RenderError("edits accept only inline keyboards")
