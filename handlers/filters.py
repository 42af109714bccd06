"""Small filters shared by the routers."""

from __future__ import annotations

from typing import Any

from aiogram.filters import Filter
from aiogram.types import CallbackQuery, Message

from bot.callbacks import Callback


class CallbackOf(Filter):
    """Matches presses whose payload unpacks as ``kind``; the handler receives it as ``cb``."""

    def __init__(self, kind: type[Callback]) -> None:
        self.kind = kind

    async def __call__(self, query: CallbackQuery) -> bool | dict[str, Any]:
        payload = self.kind.unpack(query.data)
        return False if payload is None else {"cb": payload}


class TextIn(Filter):
    """Matches a text message equal to one of ``texts`` (menu buttons in every language)."""

    def __init__(self, texts: dict[str, str]) -> None:
        self.texts = texts

    async def __call__(self, message: Message) -> bool | dict[str, Any]:
        key = self.texts.get((message.text or "").strip())
        return False if key is None else {"choice": key}
