"""Files held by Telegram (residents' photos, answers' proof), fetched through the bot for the
web pages that show them (the dashboard, Open311's ``media_url``).

Telegram keeps the file; Whistle stores only its ``file_id``. A page asking for a photo costs a
``getFile`` and a download, so the bytes of recently shown files are kept in a small
in-process cache (bounded by count and by size: one photo is at most a few hundred KB).
"""

from __future__ import annotations

from collections import OrderedDict

from aiogram import Bot

MAX_CACHED = 64
MAX_BYTES = 20 * 1024 * 1024  # getFile serves files up to 20 MB


class TelegramFiles:
    def __init__(self, bot: Bot, *, max_cached: int = MAX_CACHED) -> None:
        self.bot = bot
        self.max_cached = max_cached
        self._cache: OrderedDict[str, bytes] = OrderedDict()

    async def fetch(self, file_id: str) -> bytes:
        """The file's bytes; raises aiogram's ``TelegramAPIError`` when Telegram refuses."""
        cached = self._cache.get(file_id)
        if cached is not None:
            self._cache.move_to_end(file_id)
            return cached
        info = await self.bot.get_file(file_id)
        if info.file_path is None or (info.file_size or 0) > MAX_BYTES:
            raise FileNotFoundError(file_id)
        stream = await self.bot.download_file(info.file_path)
        if stream is None:
            raise FileNotFoundError(file_id)
        data = stream.read()
        self._cache[file_id] = data
        while len(self._cache) > self.max_cached:
            self._cache.popitem(last=False)
        return data
