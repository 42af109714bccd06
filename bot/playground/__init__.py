"""The playground: the whole loop in a browser, with no Telegram account.

``python -m bot`` without a BOT_TOKEN (or ``python -m bot playground``) starts the project's
Bot API server, the real application pointed at it (its own SQLite database, a clock that can
run fast or jump to the next due time), the example district's groups and people, and a web
page on 127.0.0.1 that stands in for the Telegram clients. Nothing in the services or the
handlers knows about it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import webbrowser
from pathlib import Path

from bot.district import District
from bot.i18n import Catalogues
from bot.logs import log_event
from bot.playground.runner import Playground
from bot.playground.web import PlaygroundWeb
from bot.settings import Settings

logger = logging.getLogger(__name__)
DEFAULT_PORT = 8000


def has_display() -> bool:
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


async def run(
    settings: Settings,
    district: District,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    data_dir: Path = Path("data"),
    open_browser: bool = True,
) -> int:
    playground = Playground(settings=settings, district=district, data_dir=data_dir)
    web = PlaygroundWeb(playground, host=host, port=port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await playground.start()
        await web.start()
        t = Catalogues(district.default_language).translator(district.default_language)
        print(f"Whistle playground: {web.url}", flush=True)
        print(f"  {t('playground.real-bot')}", flush=True)
        print(
            "  To use a real bot: put BOT_TOKEN=<token from @BotFather> in .env and run "
            "python -m bot again. Ctrl+C stops the playground.",
            flush=True,
        )
        log_event(logger, "playground.listening", port=web.port)
        if open_browser and has_display():
            with contextlib.suppress(Exception):
                webbrowser.open(web.url)
        await stop.wait()
        return 0
    except Exception:
        logger.exception("playground.failed")
        return 1
    finally:
        await web.stop()
        await playground.stop()
