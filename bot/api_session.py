"""The HTTP session to the Bot API: aiogram's, keeping each method's response model alive.

aiogram reads every answer through ``Response[method.__returning__]``, a parametrized pydantic
generic. Pydantic holds parametrized generics only weakly, so once a call's answer is read the
class is collected and the next call builds it again (schema and validator included): about a
tenth of the sender's time under load. Holding one per method class makes it a lookup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.methods.base import Response, TelegramMethod, TelegramType

if TYPE_CHECKING:
    from aiogram import Bot


class BotApiSession(AiohttpSession):
    _response_types: ClassVar[dict[type[Any], Any]] = {}

    def check_response(
        self, bot: Bot, method: TelegramMethod[TelegramType], status_code: int, content: str
    ) -> Response[TelegramType]:
        kind = type(method)
        if kind not in self._response_types:
            self._response_types[kind] = Response[method.__returning__]  # type: ignore[name-defined]
        return super().check_response(bot, method, status_code, content)
