"""``python -m bot`` runs the service (long polling, or a webhook when WEBHOOK_URL is set);
``python -m bot migrate`` only migrates;
``python -m bot check`` validates the district file, the keyword library and settings;
``python -m bot playground`` (also ``python -m bot`` without a BOT_TOKEN) starts the playground:
the bot against the project's own Bot API server, with a web page standing in for Telegram."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from pydantic import ValidationError

from bot.db import create_engine, migrate
from bot.district import DistrictError, load_district, resolve_district_path
from bot.logs import configure_logging, log_event
from bot.replicas import StartupError, check_database
from bot.settings import Settings
from bot.warning import LibraryError, load_library, resolve_keywords_path

logger = logging.getLogger("bot")


async def _run(settings: Settings) -> int:
    from bot.app import Whistle

    district = load_district(resolve_district_path(settings.whistle_config))
    app = Whistle(settings=settings, district=district)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    stopping = asyncio.create_task(stop.wait())
    failing: asyncio.Task[None] | None = None
    try:
        await app.start()
        failing = asyncio.create_task(app.wait())
        await asyncio.wait({stopping, failing}, return_when=asyncio.FIRST_COMPLETED)
        if failing.done() and failing.exception() is not None:
            logger.error("app.failed", exc_info=failing.exception())
            return 1
        return 0
    except StartupError as error:
        logger.error("app.start_failed", extra={"reason": "unavailable"})
        print(f"Whistle cannot start: {error}", file=sys.stderr)
        return 1
    except Exception:
        # e.g. the web port is taken or Telegram refused the webhook URL
        logger.exception("app.start_failed")
        return 1
    finally:
        stopping.cancel()
        if failing is not None:
            failing.cancel()
        await app.stop()


async def _migrate(url: str) -> None:
    engine = create_engine(url)
    try:
        await check_database(engine, url)
    finally:
        await engine.dispose()
    await migrate(url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    parser.add_argument(
        "command",
        nargs="?",
        default="run",
        choices=["run", "migrate", "check", "replay-ladder", "playground"],
    )
    parser.add_argument("--host", default="127.0.0.1", help="playground: the page's address")
    parser.add_argument("--port", type=int, default=8000, help="playground: the page's port")
    parser.add_argument(
        "--no-browser", action="store_true", help="playground: do not open a web browser"
    )
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as error:
        problems = "\n".join(
            "  "
            + " ".join([*map(str, problem["loc"]), problem["msg"].removeprefix("Value error, ")])
            for problem in error.errors()
        )
        print(f"The settings are invalid:\n{problems}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        path = resolve_district_path(settings.whistle_config)
        district = load_district(path)
    except DistrictError as error:
        print(f"The district file is invalid:\n{error}", file=sys.stderr)
        return 2
    except FileNotFoundError as error:
        print(f"The district file was not found: {error}", file=sys.stderr)
        return 2
    keywords = resolve_keywords_path(settings.keywords_file)
    try:
        load_library(keywords)
    except LibraryError as error:
        print(f"The keyword library is invalid:\n{error}", file=sys.stderr)
        return 2
    if args.command == "check":
        print(f"{path}: OK")
        print(f"{keywords}: OK")
        return 0
    if args.command == "replay-ladder":
        from bot.replay import format_deliveries, replay_ladder

        print(format_deliveries(asyncio.run(replay_ladder(district))))
        return 0
    if args.command == "migrate":
        try:
            asyncio.run(_migrate(settings.database_url))
        except StartupError as error:
            print(f"Whistle cannot migrate: {error}", file=sys.stderr)
            return 1
        log_event(logger, "db.migrated")
        return 0
    if args.command == "playground" or settings.bot_token is None:
        from pathlib import Path

        from bot import playground

        if args.command != "playground":
            print("BOT_TOKEN is not set: starting the playground.", flush=True)
        return asyncio.run(
            playground.run(
                settings,
                district,
                host=args.host,
                port=args.port,
                data_dir=Path("data"),
                open_browser=not args.no_browser,
            )
        )
    return asyncio.run(_run(settings))


if __name__ == "__main__":
    sys.exit(main())
