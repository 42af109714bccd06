"""Telegram's text, caption, callback data and parse-mode limits, seen through aiogram."""

from __future__ import annotations

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import BufferedInputFile, InlineKeyboardButton, InlineKeyboardMarkup

from bot.testserver import BotAPIServer

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00\x00\x00\x00\xc0rest-of-image"


async def test_text_length_is_counted_after_html_parsing(
    api_server: BotAPIServer, tg_bot: Bot, user: int
) -> None:
    body = "a" * 4094
    # 4094 + "<>" = 4096 characters after parsing although the markup is much longer.
    sent = await tg_bot.send_message(user, f"<b>{body}</b>&lt;&gt;", parse_mode="HTML")
    assert sent.text is not None and len(sent.text) == 4096
    assert sent.entities is not None and sent.entities[0].type == "bold"
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await tg_bot.send_message(user, f"<b>{body}</b>&lt;&gt;!", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await tg_bot.send_message(user, "x" * 4097)
    # Code points are counted, not UTF-16 units: 4096 emoji still fit.
    emoji = await tg_bot.send_message(user, "😀" * 4096)
    assert emoji.text == "😀" * 4096
    assert len(api_server.sent_in(user)) == 2


async def test_empty_and_whitespace_text(tg_bot: Bot, user: int) -> None:
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await tg_bot.send_message(user, "")
    with pytest.raises(TelegramBadRequest, match="text must be non-empty"):
        await tg_bot.send_message(user, "<b> </b>", parse_mode="HTML")
    trimmed = await tg_bot.send_message(user, "\n  padded  \n")
    assert trimmed.text == "padded"


@pytest.mark.parametrize(
    ("markup", "error"),
    [
        ("<b>bold", 'Can\'t find end tag corresponding to start tag "b"'),
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ("<foo>x</foo>", 'Unsupported start tag "foo" at byte offset 0'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<span>s</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
    ],
)
async def test_malformed_html_is_rejected(tg_bot: Bot, user: int, markup: str, error: str) -> None:
    with pytest.raises(TelegramBadRequest) as raised:
        await tg_bot.send_message(user, markup, parse_mode="HTML")
    assert raised.value.message == f"Bad Request: can't parse entities: {error}"


async def test_html_entities_and_links(tg_bot: Bot, user: int) -> None:
    sent = await tg_bot.send_message(
        user,
        '<a href="https://example.com">site</a> <tg-spoiler>s</tg-spoiler> '
        '<pre><code class="language-python">x = 1</code></pre> &quot;q&quot;',
        parse_mode="HTML",
    )
    assert sent.text == 'site s x = 1 "q"'
    assert sent.entities is not None
    found = {(e.type, e.offset, e.length, e.url, e.language) for e in sent.entities}
    assert found == {
        ("text_link", 0, 4, "https://example.com/", None),
        ("spoiler", 5, 1, None, None),
        ("pre", 7, 5, None, "python"),
    }


async def test_markdown_v2_rules(tg_bot: Bot, user: int) -> None:
    sent = await tg_bot.send_message(user, "*bold* and \\.", parse_mode="MarkdownV2")
    assert sent.text == "bold and ."
    with pytest.raises(TelegramBadRequest) as raised:
        await tg_bot.send_message(user, "end.", parse_mode="MarkdownV2")
    assert raised.value.message == (
        "Bad Request: can't parse entities: Character '.' is reserved and must be escaped "
        "with the preceding '\\'"
    )
    with pytest.raises(TelegramBadRequest, match="unsupported parse_mode"):
        await tg_bot.send_message(user, "x", parse_mode="BBCode")


async def test_caption_limit(tg_bot: Bot, user: int) -> None:
    photo = BufferedInputFile(PNG, filename="p.png")
    sent = await tg_bot.send_photo(
        user, photo, caption="<i>" + "c" * 1024 + "</i>", parse_mode="HTML"
    )
    assert sent.caption is not None and len(sent.caption) == 1024
    with pytest.raises(TelegramBadRequest, match="message caption is too long"):
        await tg_bot.send_photo(user, photo, caption="c" * 1025)


async def test_callback_data_is_limited_to_64_bytes(tg_bot: Bot, user: int) -> None:
    def keyboard(data: str) -> InlineKeyboardMarkup:
        return InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="b", callback_data=data)]]
        )

    await tg_bot.send_message(user, "ok", reply_markup=keyboard("x" * 64))
    await tg_bot.send_message(user, "ok", reply_markup=keyboard("举" * 21))  # 63 bytes
    with pytest.raises(TelegramBadRequest) as raised:
        await tg_bot.send_message(user, "no", reply_markup=keyboard("举" * 22))  # 66 bytes
    assert raised.value.message == "Bad Request: BUTTON_DATA_INVALID"
    with pytest.raises(TelegramBadRequest, match="Text buttons are unallowed in the inline"):
        await tg_bot.send_message(
            user,
            "no",
            reply_markup=InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="t")]]),
        )


async def test_callback_answer_text_limit(
    api_server: BotAPIServer, tg_bot: Bot, user: int
) -> None:
    message = await tg_bot.send_message(
        user,
        "q",
        reply_markup=InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="b", callback_data="go")]]
        ),
    )
    query = api_server.press_button(user, message.message_id, "go")
    with pytest.raises(TelegramBadRequest, match="MESSAGE_TOO_LONG"):
        await tg_bot.answer_callback_query(query["id"], text="t" * 201)
    assert await tg_bot.answer_callback_query(query["id"], text="t" * 200)
    assert api_server.callback_answers[0].text == "t" * 200
