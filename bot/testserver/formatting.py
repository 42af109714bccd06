"""Turning a method's text/caption parameters into final message text and entities.

Owns the Bot API pipeline for formatted text: ``parse_mode`` or explicit ``entities``,
entity validation, Telegram's whitespace trimming, auto-detected entities and the length
limits (4096 characters for text, 1024 for captions, counted in Unicode code points after
parsing, as tdlib does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .entities import (
    Entity,
    EntityParseError,
    find_entities,
    merge_auto_entities,
    sort_entities,
    utf16_len,
    utf16_offsets,
    utf16_to_index,
)
from .errors import ApiError, bad_request, lower_first
from .markup_html import parse_html
from .markup_md import parse_markdown, parse_markdown_v2

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
RAW_LIMIT = 1 << 15

_EXPLICIT_TYPES = {
    "bold",
    "italic",
    "underline",
    "strikethrough",
    "spoiler",
    "code",
    "pre",
    "text_link",
    "text_mention",
    "custom_emoji",
    "blockquote",
    "expandable_blockquote",
}
_AUTO_TYPES = {
    "mention",
    "hashtag",
    "cashtag",
    "bot_command",
    "url",
    "email",
    "phone_number",
    "bank_card_number",
}

UserResolver = Callable[[int], dict[str, Any] | None]


@dataclass
class FormattedText:
    text: str
    entities: list[dict[str, Any]] = field(default_factory=list)


def format_text(
    raw: str,
    parse_mode: str | None,
    entities: Any,
    *,
    caption: bool = False,
    resolve_user: UserResolver | None = None,
) -> FormattedText:
    """Parse and validate a text or caption exactly like the Bot API does before sending."""
    if len(raw.encode("utf-8")) > RAW_LIMIT:
        raise bad_request("text is too long")
    mode = (parse_mode or "").lower()
    if raw and mode and mode != "none":
        parsers = {"html": parse_html, "markdownv2": parse_markdown_v2, "markdown": parse_markdown}
        parser = parsers.get(mode)
        if parser is None:
            raise bad_request("unsupported parse_mode")
        try:
            text, parsed = parser(raw)
        except EntityParseError as exc:
            raise bad_request(f"can't parse entities: {exc}") from exc
    else:
        text, parsed = raw, _explicit_entities(raw, entities)
    text, parsed = _trim(text, parsed)
    if not text:
        if caption:
            return FormattedText("", [])
        raise bad_request("text must be non-empty")
    parsed = merge_auto_entities(parsed, find_entities(text))
    limit = CAPTION_LIMIT if caption else TEXT_LIMIT
    if len(text) > limit:
        raise bad_request("message caption is too long" if caption else "message is too long")
    resolver = resolve_user or (lambda _uid: None)
    return FormattedText(
        text,
        [e.to_dict(resolver(e.user_id) if e.user_id is not None else None) for e in parsed],
    )


def plain_entities(text: str) -> list[dict[str, Any]]:
    """Entities Telegram attaches to unformatted text a user typed."""
    return [e.to_dict() for e in find_entities(text)]


def _explicit_entities(text: str, value: Any) -> list[Entity]:
    if value is None or value == "":
        return []
    if not isinstance(value, list):
        return []
    total = utf16_len(text)
    out: list[Entity] = []
    for item in value:
        entity = _parse_entity(item)
        if entity is None or entity.length == 0:
            continue
        out.append(entity)
    sort_entities(out)
    for entity in out:
        if entity.offset >= total:
            raise bad_request(
                f"entity begins after the end of the text at UTF-16 offset {entity.offset}"
            )
        if entity.offset + entity.length > total:
            raise bad_request(
                f"entity beginning at UTF-16 offset {entity.offset} ends after the end of the "
                f"text at UTF-16 offset {entity.offset + entity.length}"
            )
    return out


def _parse_entity(item: Any) -> Entity | None:
    def fail(message: str) -> ApiError:
        return bad_request(f"can't parse MessageEntity: {message}")

    if not isinstance(item, dict):
        raise fail("expected an Object")
    offset, length, kind = item.get("offset"), item.get("length"), item.get("type")
    if not isinstance(offset, int) or isinstance(offset, bool):
        raise fail('Field "offset" must be of type Number')
    if not isinstance(length, int) or isinstance(length, bool):
        raise fail('Field "length" must be of type Number')
    if not isinstance(kind, str):
        raise fail('Field "type" must be of type String')
    if not kind:
        raise fail("Type is not specified")
    if kind in _AUTO_TYPES:
        return None
    if kind not in _EXPLICIT_TYPES:
        raise fail("Unsupported type specified")
    if offset < 0 or offset > 1_000_000:
        raise bad_request(lower_first(f"Receive an entity with incorrect offset {offset}"))
    if length < 0 or length > 1_000_000:
        raise bad_request(lower_first(f"Receive an entity with incorrect length {length}"))
    entity = Entity(kind, offset, length)
    if kind == "pre":
        entity.language = str(item.get("language") or "") or None
    elif kind == "text_link":
        url = item.get("url")
        if not isinstance(url, str):
            raise fail('Field "url" must be of type String')
        entity.url = url
    elif kind == "text_mention":
        user = item.get("user")
        if not isinstance(user, dict) or not isinstance(user.get("id"), int):
            raise fail('Field "user" must be of type Object')
        entity.user_id = int(user["id"])
    elif kind == "custom_emoji":
        entity.custom_emoji_id = str(item.get("custom_emoji_id", ""))
    return entity


def _trim(text: str, entities: list[Entity]) -> tuple[str, list[Entity]]:
    """Telegram strips trailing whitespace, and leading spaces/newlines before any entity."""
    stripped = text.rstrip()
    if not stripped:
        return "", []
    offsets = utf16_offsets(text)
    end16 = offsets[len(stripped)]
    kept: list[Entity] = []
    for entity in entities:
        if entity.offset >= end16:
            continue
        entity.length = min(entity.length, end16 - entity.offset)
        kept.append(entity)
    first_entity = min((e.offset for e in kept), default=end16)
    limit = utf16_to_index(stripped, first_entity)
    lead = 0
    while lead < limit and stripped[lead] in " \n":
        lead += 1
    for entity in kept:
        entity.offset -= lead  # leading characters are ASCII, one UTF-16 unit each
    sort_entities(kept)
    return stripped[lead:], kept
