"""HTML parse mode, ported from tdlib's ``parse_html``.

Owns the supported tag set (b, strong, i, em, u, ins, s, strike, del, a href, code, pre,
tg-spoiler, span class="tg-spoiler", tg-emoji, blockquote [expandable]), the HTML character
references Telegram decodes (&lt; &gt; &amp; &quot; and numeric ones) and the exact error
texts, whose offsets are UTF-8 byte offsets into the input.
"""

from __future__ import annotations

from dataclasses import dataclass

from .entities import Entity, EntityParseError, checked_link, link_user_id, sort_entities
from .markup_base import SPACE, ByteOut, ByteText, is_alpha, is_digit, is_hex

_HTML_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "s",
        "strike",
        "del",
        "u",
        "ins",
        "tg-spoiler",
        "tg-emoji",
        "tg-time",
        "span",
        "pre",
        "code",
        "blockquote",
    }
)
_SIMPLE_TAGS = {
    "i": "italic",
    "em": "italic",
    "b": "bold",
    "strong": "bold",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "u": "underline",
    "ins": "underline",
    "tg-spoiler": "spoiler",
}


def _decode_html_entity(t: ByteText, pos: int) -> tuple[int, int]:
    """Returns (code point or 0, new position) for an ``&...`` reference at ``pos``."""
    end = pos + 1
    res = 0
    if t[pos + 1] == ord("#"):
        end += 1
        if t[pos + 2] == ord("x"):
            end += 1
            while is_hex(t[end]):
                res = res * 16 + int(chr(t[end]), 16)
                end += 1
        else:
            while is_digit(t[end]):
                res = res * 10 + t[end] - ord("0")
                end += 1
        if res == 0 or res >= 0x10FFFF or end - pos >= 10:
            return 0, pos
    else:
        while is_alpha(t[end]):
            end += 1
        name = t.data[pos + 1 : end]
        named = {b"lt": "<", b"gt": ">", b"amp": "&", b"quot": '"'}.get(bytes(name))
        if named is None:
            return 0, pos
        res = ord(named)
    if t[end] == ord(";"):
        end += 1
    return res, end


@dataclass
class _Open:
    tag: str
    argument: str
    offset: int
    begin: int


def parse_html(source: str) -> tuple[str, list[Entity]]:
    t = ByteText(source)
    out = ByteOut()
    entities: list[Entity] = []
    stack: list[_Open] = []
    i = 0
    while i < t.size:
        c = t[i]
        if c == ord("&"):
            code, new_i = _decode_html_entity(t, i)
            if code != 0:
                out.push_code(code)
                i = new_i
                continue
        if c != ord("<"):
            out.push_byte(c)
            i += 1
            continue
        begin = i
        i += 1
        if t[i] != ord("/"):
            i = _parse_start_tag(t, begin, i, stack, out)
        else:
            i = _parse_end_tag(t, begin, i, stack, out, entities)
        i += 1
    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1].tag}"')
    for entity in entities:
        if entity.type == "code":
            # Only <pre><code class="language-x"> keeps a language; a lone <code> drops it.
            entity.language = None
    sort_entities(entities)
    return out.text(), entities


def _parse_start_tag(t: ByteText, begin: int, i: int, stack: list[_Open], out: ByteOut) -> int:
    while t[i] not in SPACE and t[i] != ord(">"):
        i += 1
    if i >= t.size:
        raise EntityParseError(f"Unclosed start tag at byte offset {begin}")
    tag = t.data[begin + 1 : i].decode("utf-8", "replace").lower()
    if tag not in _HTML_TAGS:
        raise EntityParseError(f'Unsupported start tag "{tag}" at byte offset {begin}')
    argument = ""
    while t[i] != ord(">"):
        while i < t.size and t[i] in SPACE:
            i += 1
        if t[i] == ord(">"):
            break
        attr_begin = i
        while t[i] not in SPACE and t[i] not in b"=>/\"'":
            i += 1
        attr = t.data[attr_begin:i].decode("utf-8", "replace")
        if not attr:
            raise EntityParseError(
                f'Empty attribute name in the tag "{tag}" at byte offset {begin}'
            )
        while i < t.size and t[i] in SPACE:
            i += 1
        if t[i] != ord("="):
            if i >= t.size:
                raise EntityParseError(f'Unclosed start tag "{tag}" at byte offset {begin}')
            if tag == "blockquote" and attr == "expandable":
                argument = "1"
            continue
        i += 1
        while i < t.size and t[i] in SPACE:
            i += 1
        if i >= t.size:
            raise EntityParseError(f'Unclosed start tag "{tag}" at byte offset {begin}')
        value, i = _attribute_value(t, i)
        if i >= t.size:
            raise EntityParseError(f"Unclosed start tag at byte offset {begin}")
        if tag == "a" and attr == "href":
            argument = value
        elif tag == "code" and attr == "class" and value.startswith("language-"):
            argument = value[9:]
        elif tag == "span" and attr == "class" and value.startswith("tg-"):
            argument = value[3:]
        elif tag == "tg-emoji" and attr == "emoji-id":
            argument = value
        elif tag == "blockquote" and attr == "expandable":
            argument = "1"
    if tag == "span" and argument != "spoiler":
        raise EntityParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {begin}')
    stack.append(_Open(tag, argument, out.utf16, len(out.buf)))
    return i


def _attribute_value(t: ByteText, i: int) -> tuple[str, int]:
    if t[i] not in b"'\"":
        # An unquoted name token: letters, digits, periods or hyphens, case-insensitive.
        start = i
        while is_alpha(t[i]) or is_digit(t[i]) or t[i] in b".-":
            i += 1
        if t[i] not in SPACE and t[i] != ord(">"):
            raise EntityParseError(f"Unexpected end of name token at byte offset {start}")
        return t.data[start:i].decode("utf-8", "replace").lower(), i
    quote = t[i]
    i += 1
    value = bytearray()
    while i < t.size and t[i] != quote:
        if t[i] == ord("&"):
            code, new_i = _decode_html_entity(t, i)
            if code != 0:
                value += chr(code).encode("utf-8", "surrogatepass")
                i = new_i
                continue
        value.append(t[i])
        i += 1
    if t[i] == quote and i < t.size:
        i += 1
    return value.decode("utf-8", "replace"), i


def _parse_end_tag(
    t: ByteText, begin: int, i: int, stack: list[_Open], out: ByteOut, entities: list[Entity]
) -> int:
    if not stack:
        raise EntityParseError(f"Unexpected end tag at byte offset {begin}")
    while t[i] not in SPACE and t[i] != ord(">"):
        i += 1
    end_tag = t.data[begin + 2 : i].decode("utf-8", "replace").lower()
    while i < t.size and t[i] in SPACE:
        i += 1
    if t[i] != ord(">"):
        raise EntityParseError(f"Unclosed end tag at byte offset {begin}")
    top = stack[-1]
    if end_tag and end_tag != top.tag:
        raise EntityParseError(
            f'Unmatched end tag at byte offset {begin}, expected "</{top.tag}>", '
            f'found "</{end_tag}>"'
        )
    if out.utf16 > top.offset:
        _close_html_entity(top, out, entities)
    stack.pop()
    return i


def _close_html_entity(top: _Open, out: ByteOut, entities: list[Entity]) -> None:
    offset = top.offset
    length = out.utf16 - offset
    tag = top.tag
    last = entities[-1] if entities else None
    if tag in _SIMPLE_TAGS or (tag == "span" and top.argument == "spoiler"):
        entities.append(Entity(_SIMPLE_TAGS.get(tag, "spoiler"), offset, length))
    elif tag == "tg-emoji":
        if not top.argument.isdigit() or int(top.argument) == 0:
            raise EntityParseError("Invalid custom emoji identifier specified")
        entities.append(Entity("custom_emoji", offset, length, custom_emoji_id=top.argument))
    elif tag == "a":
        url = top.argument or out.buf[top.begin :].decode("utf-8", "replace")
        user_id = link_user_id(url)
        if user_id is not None:
            entities.append(Entity("text_mention", offset, length, user_id=user_id))
        elif (checked := checked_link(url)) is not None:
            entities.append(Entity("text_link", offset, length, url=checked))
    elif tag == "pre":
        same_span = last is not None and last.offset == offset and last.length == length
        if same_span and last is not None and last.type == "code" and last.language:
            last.type = "pre"
        else:
            entities.append(Entity("pre", offset, length))
    elif tag == "code":
        same_span = last is not None and last.offset == offset and last.length == length
        if same_span and last is not None and last.type == "pre" and top.argument:
            last.language = top.argument
        else:
            entities.append(Entity("code", offset, length, language=top.argument or None))
    elif tag == "blockquote":
        kind = "expandable_blockquote" if top.argument else "blockquote"
        entities.append(Entity(kind, offset, length))
    # tg-time produces a date_time entity in Telegram; it is not modelled here.
