"""Records of what happened, as read by tests: bot messages, API calls, callback answers.

Owns the plain data classes the inspection API returns.  ``BotMessage`` describes a message a
bot sent (and everything that later happened to it: edits, deletion); ``RequestRecord`` is one
Bot API call as the server saw it; ``CallbackAnswer`` is one successful answerCallbackQuery.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class MessageVersion:
    """A former state of an edited bot message."""

    text: str | None
    caption: str | None
    parse_mode: str | None
    reply_markup: dict[str, Any] | None
    raw: dict[str, Any]
    method: str


@dataclass
class BotMessage:
    """A message sent by a bot, kept up to date with its edits and deletion."""

    bot_id: int
    chat_id: int
    message_id: int
    method: str
    raw: dict[str, Any]
    date: int
    seq: int
    text: str | None = None
    caption: str | None = None
    parse_mode: str | None = None
    source: str | None = None
    photo: list[str] = field(default_factory=list)
    document: str | None = None
    reply_markup: dict[str, Any] | None = None
    reply_to_message_id: int | None = None
    media_group_id: str | None = None
    edits: list[MessageVersion] = field(default_factory=list)
    deleted: bool = False
    last_method: str | None = None

    @property
    def entities(self) -> list[dict[str, Any]]:
        found = self.raw.get("entities") or self.raw.get("caption_entities") or []
        return list(found)

    @property
    def edited(self) -> bool:
        return bool(self.edits)

    @property
    def content(self) -> str | None:
        """Text or caption, whichever the message has."""
        return self.text if self.text is not None else self.caption

    def buttons(self) -> list[dict[str, Any]]:
        """All buttons of the inline or reply keyboard, row by row flattened."""
        if not self.reply_markup:
            return []
        rows = self.reply_markup.get("inline_keyboard") or self.reply_markup.get("keyboard") or []
        return [button for row in rows for button in row]

    def button_texts(self) -> list[str]:
        return [str(button.get("text", "")) for button in self.buttons()]

    def callback_data(self) -> list[str]:
        return [str(b["callback_data"]) for b in self.buttons() if "callback_data" in b]

    def snapshot(self) -> MessageVersion:
        return MessageVersion(
            text=self.text,
            caption=self.caption,
            parse_mode=self.parse_mode,
            reply_markup=copy.deepcopy(self.reply_markup),
            raw=copy.deepcopy(self.raw),
            method=self.last_method or self.method,
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["edited"] = self.edited
        return out


@dataclass
class RequestRecord:
    """One Bot API call: what was asked and how the server answered."""

    bot_id: int | None
    method: str
    params: dict[str, Any]
    time: float
    status: int = 0
    ok: bool = False
    description: str | None = None
    result: Any = None
    fault: str | None = None
    duration: float = 0.0
    via: str = "http"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CallbackAnswer:
    """A successful answerCallbackQuery."""

    bot_id: int
    callback_query_id: str
    text: str | None
    show_alert: bool
    url: str | None
    cache_time: int
    time: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
