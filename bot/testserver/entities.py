"""Message entities: the shared record type, UTF-16 helpers, link checks and auto-detection.

Owns everything about entities that is independent of a particular markup language: the
``Entity`` record the parsers produce, conversion to Bot API ``MessageEntity`` dicts, Telegram's
sort order, the URL normalisation Telegram applies to ``text_link`` targets, and detection of the
entities Telegram adds on its own (bot commands, mentions, hashtags, URLs, e-mails).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


class EntityParseError(Exception):
    """Markup could not be parsed; the message is Telegram's own wording (without prefix)."""


@dataclass
class Entity:
    """One MessageEntity with UTF-16 offset/length, as Telegram reports them."""

    type: str
    offset: int
    length: int
    url: str | None = None
    language: str | None = None
    custom_emoji_id: str | None = None
    user_id: int | None = None

    def to_dict(self, user: dict[str, Any] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"offset": self.offset, "length": self.length, "type": self.type}
        if self.url is not None:
            out["url"] = self.url
        if self.language:
            out["language"] = self.language
        if self.custom_emoji_id is not None:
            out["custom_emoji_id"] = self.custom_emoji_id
        if self.type == "text_mention":
            out["user"] = user or {"id": self.user_id, "is_bot": False, "first_name": ""}
        return out


# tdlib orders entities by offset, then longer first, then by a fixed type priority so that
# nesting is stable; the priority below follows its MessageEntity::Type declaration order.
_TYPE_ORDER = {
    name: i
    for i, name in enumerate(
        [
            "mention",
            "hashtag",
            "bot_command",
            "url",
            "email",
            "bold",
            "italic",
            "code",
            "pre",
            "text_link",
            "text_mention",
            "cashtag",
            "phone_number",
            "underline",
            "strikethrough",
            "blockquote",
            "bank_card_number",
            "spoiler",
            "custom_emoji",
            "expandable_blockquote",
        ]
    )
}


def sort_entities(entities: list[Entity]) -> None:
    entities.sort(key=lambda e: (e.offset, -e.length, _TYPE_ORDER.get(e.type, 99)))


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def utf16_to_index(text: str, utf16_offset: int) -> int:
    """Python string index of the character starting at ``utf16_offset`` (clamped to the end)."""
    units = 0
    for index, char in enumerate(text):
        if units >= utf16_offset:
            return index
        units += 2 if ord(char) > 0xFFFF else 1
    return len(text)


def utf16_offsets(text: str) -> list[int]:
    """UTF-16 offset of every character of ``text`` plus one trailing entry for the end."""
    out = [0] * (len(text) + 1)
    units = 0
    for index, char in enumerate(text):
        out[index] = units
        units += 2 if ord(char) > 0xFFFF else 1
    out[len(text)] = units
    return out


def checked_link(url: str) -> str | None:
    """Normalise a link the way Telegram does for ``text_link``; ``None`` means it is dropped."""
    lowered = url.lower()
    for scheme in ("tg:", "ton:", "tonsite:"):
        if lowered.startswith(scheme):
            rest = url[len(scheme) :].removeprefix("//")
            host, _, query = rest.partition("?")
            host = host.rstrip("/")
            if not host or not re.fullmatch(r"[A-Za-z0-9_.-]+", host):
                return None
            return f"{scheme[:-1]}://{host}" + (f"?{query}" if query else "")
    candidate = url if "://" in url else f"http://{url}"
    try:
        parts = urlsplit(candidate)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https"):
        return None
    host = (parts.hostname or "").lower()
    if "." not in host and ":" not in host:
        return None
    netloc = host if ":" not in host else f"[{host}]"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    if port is not None:
        netloc = f"{netloc}:{port}"
    path = parts.path or "/"
    tail = (f"?{parts.query}" if parts.query else "") + (
        f"#{parts.fragment}" if parts.fragment else ""
    )
    return f"{parts.scheme.lower()}://{netloc}{path}{tail}"


def link_user_id(url: str) -> int | None:
    """User id of a ``tg://user?id=N`` link (such links become ``text_mention``)."""
    match = re.fullmatch(r"tg://user\?id=(\d{1,19})", url.strip(), flags=re.IGNORECASE)
    return int(match.group(1)) if match else None


# Auto-detected entities.  These are simplified versions of tdlib's matchers: they cover the
# forms bots and tests actually produce rather than every Unicode corner case.
_AUTO_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("bot_command", re.compile(r"(?<![\w/])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w/])")),
    ("email", re.compile(r"(?<![\w.@])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")),
    ("mention", re.compile(r"(?<![\w@])@[A-Za-z0-9_]{3,32}(?![\w@])")),
    ("hashtag", re.compile(r"(?<![\w#])#\w*[^\W\d]\w*")),
    ("cashtag", re.compile(r"(?<![\w$])\$[A-Z]{3,8}(?![\w$])")),
    (
        "url",
        re.compile(
            r"(?<![\w@/])(?:https?://[^\s<>\"]+|www\.[^\s<>\"]+|"
            r"(?:[A-Za-z0-9-]+\.)+(?:com|org|net|io|ru|me|dev|app|cn|info|gov|edu)"
            r"(?:/[^\s<>\"]*)?)",
            re.IGNORECASE,
        ),
    ),
]
# Entities that auto-detection must not overlap (tdlib never finds entities inside these).
_OPAQUE = {"code", "pre", "text_link", "text_mention", "custom_emoji", "url", "email"}


def find_entities(text: str) -> list[Entity]:
    """Entities Telegram detects by itself in plain text (commands, mentions, URLs, ...)."""
    offsets = utf16_offsets(text)
    found: list[Entity] = []
    taken: list[tuple[int, int]] = []
    for kind, pattern in _AUTO_PATTERNS:
        for match in pattern.finditer(text):
            start, end = match.start(), match.end()
            if kind == "url":
                # Trailing punctuation is not part of a link in Telegram clients either.
                while end > start and text[end - 1] in ".,;:!?)]}'":
                    end -= 1
            if any(start < t_end and t_start < end for t_start, t_end in taken):
                continue
            taken.append((start, end))
            found.append(Entity(kind, offsets[start], offsets[end] - offsets[start]))
    sort_entities(found)
    return found


def merge_auto_entities(entities: list[Entity], auto: list[Entity]) -> list[Entity]:
    """Add auto-detected entities that do not cross explicit ones (as tdlib's merge does)."""
    merged = list(entities)
    for new in auto:
        new_end = new.offset + new.length
        clash = False
        for old in entities:
            old_end = old.offset + old.length
            # Formatting entities (bold, italic, ...) may freely overlap detected ones.
            if old.type in _OPAQUE and new.offset < old_end and old.offset < new_end:
                clash = True
                break
        if not clash:
            merged.append(new)
    sort_entities(merged)
    return merged
