"""Editing, deleting, copying and forwarding messages."""

from __future__ import annotations

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import BufferedInputFile, InlineKeyboardButton, InlineKeyboardMarkup

from bot.testserver import BotAPIServer

from .test_media import png


def keyboard(*data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=d, callback_data=d) for d in data]]
    )


async def test_edit_text_and_not_modified(
    api_server: BotAPIServer, tg_bot: Bot, user: int
) -> None:
    sent = await tg_bot.send_message(user, "Status: open", reply_markup=keyboard("close"))
    edited = await tg_bot.edit_message_text(
        "Status: <b>closed</b>",
        chat_id=user,
        message_id=sent.message_id,
        parse_mode="HTML",
        reply_markup=keyboard("reopen"),
    )
    assert not isinstance(edited, bool)
    assert edited.text == "Status: closed"
    assert edited.edit_date is not None
    with pytest.raises(TelegramBadRequest) as raised:
        await tg_bot.edit_message_text(
            "Status: <b>closed</b>",
            chat_id=user,
            message_id=sent.message_id,
            parse_mode="HTML",
            reply_markup=keyboard("reopen"),
        )
    assert raised.value.message == (
        "Bad Request: message is not modified: specified new message content and reply markup "
        "are exactly the same as a current content and reply markup of the message"
    )
    # Same text without reply_markup removes the keyboard, which is a modification.
    plain = await tg_bot.edit_message_text(
        "Status: <b>closed</b>", chat_id=user, message_id=sent.message_id, parse_mode="HTML"
    )
    assert not isinstance(plain, bool) and plain.reply_markup is None

    record = api_server.last_message(user)
    assert record is not None
    assert record.text == "Status: closed"
    assert record.edited
    assert [v.text for v in record.edits] == ["Status: open", "Status: closed"]
    assert record.edits[0].reply_markup == {
        "inline_keyboard": [[{"text": "close", "callback_data": "close"}]]
    }
    assert record.reply_markup is None


async def test_edit_errors(api_server: BotAPIServer, tg_bot: Bot, user: int) -> None:
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await tg_bot.edit_message_text("x", chat_id=user, message_id=999)
    users_message = api_server.history(user)[0]["message_id"]
    with pytest.raises(TelegramBadRequest, match="message can't be edited"):
        await tg_bot.edit_message_text("x", chat_id=user, message_id=users_message)
    photo = await tg_bot.send_photo(user, BufferedInputFile(png(50, 50), filename="p.png"))
    with pytest.raises(TelegramBadRequest, match="there is no text in the message to edit"):
        await tg_bot.edit_message_text("x", chat_id=user, message_id=photo.message_id)
    text = await tg_bot.send_message(user, "t")
    with pytest.raises(TelegramBadRequest, match="there is no caption in the message to edit"):
        await tg_bot.edit_message_caption(chat_id=user, message_id=text.message_id, caption="c")


async def test_edit_caption_and_markup(api_server: BotAPIServer, tg_bot: Bot, user: int) -> None:
    photo = await tg_bot.send_photo(
        user, BufferedInputFile(png(50, 50), filename="p.png"), caption="before"
    )
    edited = await tg_bot.edit_message_caption(
        chat_id=user, message_id=photo.message_id, caption="after", reply_markup=keyboard("a")
    )
    assert not isinstance(edited, bool) and edited.caption == "after"
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await tg_bot.edit_message_reply_markup(
            chat_id=user, message_id=photo.message_id, reply_markup=keyboard("a")
        )
    changed = await tg_bot.edit_message_reply_markup(
        chat_id=user, message_id=photo.message_id, reply_markup=keyboard("b")
    )
    assert not isinstance(changed, bool) and changed.caption == "after"
    record = api_server.last_message(user)
    assert record is not None
    assert record.caption == "after" and record.callback_data() == ["b"]
    assert [v.method for v in record.edits] == ["sendPhoto", "editMessageCaption"]


async def test_delete_copy_forward(api_server: BotAPIServer, tg_bot: Bot, user: int) -> None:
    sent = await tg_bot.send_message(user, "temporary")
    assert await tg_bot.delete_message(user, sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await tg_bot.delete_message(user, sent.message_id)
    assert api_server.messages(user)[-1].deleted
    assert api_server.last_message(user) is None

    api_server.create_group(-100500, "Staff", members=[user], bot_status="administrator")
    original = api_server.history(user)[0]
    copied = await tg_bot.copy_message(-100500, user, original["message_id"])
    forwarded = await tg_bot.forward_message(-100500, user, original["message_id"])
    assert forwarded.forward_origin is not None
    assert forwarded.text == original["text"]
    group_messages = api_server.sent_in(-100500)
    assert [m.message_id for m in group_messages] == [copied.message_id, forwarded.message_id]
    assert group_messages[0].text == "/start"
    with pytest.raises(TelegramBadRequest, match="message to copy not found"):
        await tg_bot.copy_message(-100500, user, 999)
