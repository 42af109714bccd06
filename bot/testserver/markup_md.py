"""MarkdownV2 and legacy Markdown parse modes, ported from tdlib.

Owns ``parse_markdown_v2`` (reserved characters must be escaped; nested bold, italic,
underline, strikethrough, spoiler, code, pre, links, custom emoji and block quotes) and the
legacy ``parse_markdown``, with Telegram's error texts such as "Character '.' is reserved and
must be escaped with the preceding '\\'".
"""

from __future__ import annotations

from dataclasses import dataclass

from .entities import Entity, EntityParseError, checked_link, link_user_id, sort_entities
from .markup_base import SPACE, ByteOut, ByteText

_MD2_RESERVED = b"_*[]()~`>#+-=|{}.!\n"
_MD2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "code": "Code",
    "pre": "Pre",
    "pre_code": "PreCode",
    "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji",
    "blockquote": "BlockQuote",
}


@dataclass
class _MdOpen:
    kind: str
    argument: str
    offset: int
    byte_offset: int
    begin: int


def _reserved(char: int) -> EntityParseError:
    return EntityParseError(
        f"Character '{chr(char)}' is reserved and must be escaped with the preceding '\\'"
    )


def _cant_find_end(top: _MdOpen) -> EntityParseError:
    return EntityParseError(
        f"Can't find end of {_MD2_NAMES[top.kind]} entity at byte offset {top.byte_offset}"
    )


def parse_markdown_v2(source: str) -> tuple[str, list[Entity]]:
    t = ByteText(source)
    out = ByteOut()
    entities: list[Entity] = []
    stack: list[_MdOpen] = []
    have_quote = False
    can_start_quote = True
    i = 0
    while i < t.size:
        c = t[i]
        if c == ord("\\") and 0 < t[i + 1] <= 126:
            i += 1
            out.push_byte(t[i])
            if t[i] != ord("\r"):
                can_start_quote = t[i] == ord("\n")
            i += 1
            continue
        reserved = _MD2_RESERVED
        if stack and stack[-1].kind in ("code", "pre", "pre_code"):
            reserved = b"`"
        if c not in reserved:
            if (c & 0xC0) != 0x80 and c != ord("\r"):
                can_start_quote = False
            out.push_byte(c)
            i += 1
            continue
        if not _md2_is_end(t, i, stack, have_quote):
            opened, i, have_quote, can_start_quote = _md2_open(
                t, i, out, have_quote, can_start_quote
            )
            if opened is not None:
                stack.append(opened)
            i += 1
            continue
        i, have_quote, can_start_quote = _md2_close(t, i, stack, out, entities, have_quote)
        i += 1
    if have_quote and stack:
        kind = "blockquote"
        if stack[-1].kind == "spoiler" and stack[-1].byte_offset == t.size - 2:
            stack.pop()
            kind = "expandable_blockquote"
        if stack and stack[-1].kind == "blockquote":
            top = stack.pop()
            if out.utf16 != top.offset:
                entities.append(Entity(kind, top.offset, out.utf16 - top.offset))
    if stack:
        raise _cant_find_end(stack[-1])
    sort_entities(entities)
    return out.text(), entities


def _md2_is_end(t: ByteText, i: int, stack: list[_MdOpen], have_quote: bool) -> bool:
    if not stack:
        return False
    c = t[i]
    if have_quote and c == ord("\n") and (i + 1 == t.size or t[i + 1] != ord(">")):
        return True
    kind = stack[-1].kind
    nxt = t[i + 1]
    checks = {
        "bold": c == ord("*"),
        "italic": c == ord("_") and nxt != ord("_"),
        "code": c == ord("`"),
        "pre": c == ord("`") and nxt == ord("`") and t[i + 2] == ord("`"),
        "text_link": c == ord("]"),
        "underline": c == ord("_") and nxt == ord("_"),
        "strikethrough": c == ord("~"),
        "spoiler": c == ord("|") and nxt == ord("|"),
        "custom_emoji": c == ord("]"),
    }
    checks["pre_code"] = checks["pre"]
    return checks.get(kind, False)


# The parser functions below stay long on purpose: they mirror tdlib's loop bodies statement
# by statement, which is what keeps their behaviour and error texts identical.
def _md2_open(
    t: ByteText, i: int, out: ByteOut, have_quote: bool, can_start_quote: bool
) -> tuple[_MdOpen | None, int, bool, bool]:
    c = t[i]
    byte_offset = i
    argument = ""
    kind: str
    if c == ord("_"):
        if t[i + 1] == ord("_"):
            kind = "underline"
            i += 1
        else:
            kind = "italic"
    elif c == ord("*"):
        kind = "bold"
    elif c == ord("~"):
        kind = "strikethrough"
    elif c == ord("|"):
        if t[i + 1] != ord("|"):
            raise _reserved(c)
        i += 1
        kind = "spoiler"
    elif c == ord("["):
        kind = "text_link"
    elif c == ord("`"):
        if t[i + 1] == ord("`") and t[i + 2] == ord("`"):
            i += 3
            kind = "pre"
            lang_end = i
            while t[lang_end] not in SPACE and t[lang_end] != ord("`"):
                lang_end += 1
            if i != lang_end and lang_end < t.size and t[lang_end] != ord("`"):
                kind = "pre_code"
                argument = t.data[i:lang_end].decode("utf-8", "replace")
                i = lang_end
            if t[i] in b"\n\r":
                if t[i + 1] in b"\n\r" and t[i] != t[i + 1]:
                    i += 2
                else:
                    i += 1
            i -= 1
        else:
            kind = "code"
    elif c == ord("!"):
        if t[i + 1] != ord("["):
            raise _reserved(c)
        i += 1
        kind = "custom_emoji"
    elif c == ord("\n"):
        out.push_byte(c)
        return None, i, have_quote, True
    elif c == ord(">"):
        if not can_start_quote:
            raise _reserved(c)
        if have_quote:
            return None, i, have_quote, can_start_quote
        kind = "blockquote"
        have_quote = True
    else:
        raise _reserved(c)
    return (
        _MdOpen(kind, argument, out.utf16, byte_offset, len(out.buf)),
        i,
        have_quote,
        (can_start_quote),
    )


def _md2_url(t: ByteText, i: int) -> tuple[str, int]:
    """Reads ``(url)`` starting at the ``(``; returns the URL and the index of ``)``."""
    i += 1
    start = i
    url = bytearray()
    while i < t.size and t[i] != ord(")"):
        if t[i] == ord("\\") and 0 < t[i + 1] <= 126:
            url.append(t[i + 1])
            i += 2
            continue
        url.append(t[i])
        i += 1
    if t[i] != ord(")"):
        raise EntityParseError(f"Can't find end of a URL at byte offset {start}")
    return url.decode("utf-8", "replace"), i


def _md2_close(
    t: ByteText,
    i: int,
    stack: list[_MdOpen],
    out: ByteOut,
    entities: list[Entity],
    have_quote: bool,
) -> tuple[int, bool, bool]:
    c = t[i]
    kind = stack[-1].kind
    can_start_quote = False
    if c == ord("\n") and kind != "blockquote":
        top = stack[-1]
        spoiler_right_before = top.byte_offset == i - 2 or (
            top.byte_offset == i - 3 and out.buf[-1:] == b"\r"
        )
        if kind != "spoiler" or not spoiler_right_before:
            raise _cant_find_end(top)
        stack.pop()
        if stack[-1].kind != "blockquote":
            raise _cant_find_end(stack[-1])
        kind = "expandable_blockquote"
    top = stack[-1]
    argument = top.argument
    user_id: int | None = None
    skip = out.utf16 == top.offset
    if kind in ("underline", "spoiler"):
        i += 1
    elif kind in ("pre", "pre_code"):
        i += 2
    elif kind == "text_link":
        if t[i + 1] != ord("("):
            url = out.buf[top.begin :].decode("utf-8", "replace")
        else:
            url, i = _md2_url(t, i + 1)
        user_id = link_user_id(url)
        if user_id is None:
            checked = checked_link(url)
            if checked is None:
                skip = True
            else:
                argument = checked
    elif kind == "custom_emoji":
        if t[i + 1] != ord("("):
            raise EntityParseError("The entity must contain a tg://emoji or tg://time URL")
        url, i = _md2_url(t, i + 1)
        emoji_id = url.removeprefix("tg://emoji?id=")
        if emoji_id == url or not emoji_id.isdigit():
            raise EntityParseError("Invalid tg://emoji or tg://time URL specified")
        argument = emoji_id
    elif kind in ("blockquote", "expandable_blockquote"):
        have_quote = False
        out.push_byte(c)
        can_start_quote = True
        skip = False
    if not skip:
        offset = top.offset
        length = out.utf16 - offset
        if user_id is not None:
            entities.append(Entity("text_mention", offset, length, user_id=user_id))
        elif kind == "text_link":
            entities.append(Entity("text_link", offset, length, url=argument))
        elif kind == "custom_emoji":
            entities.append(Entity("custom_emoji", offset, length, custom_emoji_id=argument))
        elif kind == "pre_code":
            entities.append(Entity("pre", offset, length, language=argument))
        else:
            entities.append(Entity(kind, offset, length))
    stack.pop()
    return i, have_quote, can_start_quote


def parse_markdown(source: str) -> tuple[str, list[Entity]]:
    """Legacy ``Markdown`` parse mode."""
    t = ByteText(source)
    out = ByteOut()
    entities: list[Entity] = []
    i = 0
    while i < t.size:
        c = t[i]
        if c == ord("\\") and t[i + 1] in b"_*`[":
            out.push_byte(t[i + 1])
            i += 2
            continue
        if c not in b"_*`[":
            out.push_byte(c)
            i += 1
            continue
        begin = i
        end_char = ord("]") if c == ord("[") else c
        is_pre = False
        language = ""
        i += 1
        if c == ord("`") and t[i] == ord("`") and t[i + 1] == ord("`"):
            i += 2
            is_pre = True
            lang_end = i
            while t[lang_end] not in SPACE and t[lang_end] != ord("`"):
                lang_end += 1
            if i != lang_end and lang_end < t.size and t[lang_end] != ord("`"):
                language = t.data[i:lang_end].decode("utf-8", "replace")
                i = lang_end
            if t[i] in b"\n\r":
                i += 2 if (t[i + 1] in b"\n\r" and t[i] != t[i + 1]) else 1
        offset = out.utf16
        while i < t.size and (
            t[i] != end_char or (is_pre and not (t[i + 1] == ord("`") and t[i + 2] == ord("`")))
        ):
            out.push_byte(t[i])
            i += 1
        if i >= t.size:
            raise EntityParseError(f"Can't find end of the entity starting at byte offset {begin}")
        if offset != out.utf16:
            length = out.utf16 - offset
            if c == ord("_"):
                entities.append(Entity("italic", offset, length))
            elif c == ord("*"):
                entities.append(Entity("bold", offset, length))
            elif c == ord("["):
                if t[i + 1] != ord("("):
                    url = t.data[begin + 1 : i].decode("utf-8", "replace")
                else:
                    i += 2
                    start = i
                    while i < t.size and t[i] != ord(")"):
                        i += 1
                    url = t.data[start:i].decode("utf-8", "replace")
                user_id = link_user_id(url)
                if user_id is not None:
                    entities.append(Entity("text_mention", offset, length, user_id=user_id))
                elif (checked := checked_link(url)) is not None:
                    entities.append(Entity("text_link", offset, length, url=checked))
            elif is_pre:
                entities.append(Entity("pre", offset, length, language=language or None))
            else:
                entities.append(Entity("code", offset, length))
        if is_pre:
            i += 2
        i += 1
    sort_entities(entities)
    return out.text(), entities
