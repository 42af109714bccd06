"""The HTML / MarkdownV2 / Markdown parsers and text formatting rules, without HTTP."""

from __future__ import annotations

import pytest

from bot.testserver.entities import EntityParseError, checked_link
from bot.testserver.errors import ApiError
from bot.testserver.formatting import format_text
from bot.testserver.markup_html import parse_html
from bot.testserver.markup_md import parse_markdown, parse_markdown_v2


def kinds(text: str, parser: str = "html") -> list[tuple[str, int, int]]:
    parse = {"html": parse_html, "md2": parse_markdown_v2, "md": parse_markdown}[parser]
    _, entities = parse(text)
    return [(e.type, e.offset, e.length) for e in entities]


def test_html_offsets_are_utf16() -> None:
    text, entities = parse_html("😀 <b>粗体</b> <i>x</i>")
    assert text == "😀 粗体 x"
    assert [(e.type, e.offset, e.length) for e in entities] == [
        ("bold", 3, 2),
        ("italic", 6, 1),
    ]


def test_html_nesting_and_character_references() -> None:
    text, entities = parse_html("<b>a <i>b</i></b> &#x41;&#66;&amp;&unknown; 5 &gt 3")
    assert text == "a b AB&&unknown; 5 > 3"
    assert [(e.type, e.offset, e.length) for e in entities] == [
        ("bold", 0, 3),
        ("italic", 2, 1),
    ]


def test_html_byte_offsets_in_errors() -> None:
    with pytest.raises(EntityParseError, match='Unsupported start tag "p" at byte offset 3'):
        parse_html("举<p>")  # the CJK character takes three UTF-8 bytes
    with pytest.raises(EntityParseError, match="Unclosed start tag at byte offset 0"):
        parse_html("<b")
    with pytest.raises(EntityParseError, match="Empty attribute name"):
        parse_html('<a ="x">t</a>')


def test_markdown_v2() -> None:
    assert kinds("*b* _i_ __u__ ~s~ ||p|| `c`", "md2") == [
        ("bold", 0, 1),
        ("italic", 2, 1),
        ("underline", 4, 1),
        ("strikethrough", 6, 1),
        ("spoiler", 8, 1),
        ("code", 10, 1),
    ]
    text, entities = parse_markdown_v2("[link](https://a.example/x\\)y)")
    assert text == "link"
    assert entities[0].url == "https://a.example/x)y"
    with pytest.raises(EntityParseError, match="Can't find end of Bold entity at byte offset 0"):
        parse_markdown_v2("*open")
    with pytest.raises(EntityParseError, match="Character '!' is reserved"):
        parse_markdown_v2("hi!")


def test_legacy_markdown() -> None:
    assert kinds("*b* _i_ `c`", "md") == [("bold", 0, 1), ("italic", 2, 1), ("code", 4, 1)]
    with pytest.raises(EntityParseError, match="Can't find end of the entity starting at byte"):
        parse_markdown("*open")


def test_links_are_normalised_like_telegram() -> None:
    assert checked_link("example.com") == "http://example.com/"
    assert checked_link("https://Example.com/a?b=1") == "https://example.com/a?b=1"
    assert checked_link("localhost") is None
    assert checked_link("ftp://example.com") is None
    assert checked_link("tg://resolve?domain=x") == "tg://resolve?domain=x"


def test_format_text_rules() -> None:
    formatted = format_text("  see <b>/help</b> and #tag  ", "HTML", None)
    assert formatted.text == "see /help and #tag"
    types = [(e["type"], e["offset"], e["length"]) for e in formatted.entities]
    assert types == [("bot_command", 4, 5), ("bold", 4, 5), ("hashtag", 14, 4)]
    explicit = format_text("hello", None, [{"type": "italic", "offset": 0, "length": 5}])
    assert explicit.entities == [{"offset": 0, "length": 5, "type": "italic"}]
    with pytest.raises(ApiError, match="ends after the end of the text"):
        format_text("hi", None, [{"type": "bold", "offset": 0, "length": 5}])
    assert format_text("   ", None, None, caption=True).text == ""
