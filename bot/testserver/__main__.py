"""Command-line entry point: run the Bot API test server until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from .server import BotAPIServer


async def _serve(args: argparse.Namespace) -> None:
    server = BotAPIServer(
        args.token or ["123456:TEST-TOKEN"],
        host=args.host,
        port=args.port,
        username=args.username,
        privacy_mode=not args.no_privacy,
    )
    async with server:
        print(f"Bot API test server listening on {server.base_url}", flush=True)
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="Telegram Bot API test server")
    parser.add_argument("--token", action="append", help="bot token (repeatable)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--username", default="whistle_test_bot")
    parser.add_argument("--no-privacy", action="store_true", help="bots see all group messages")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
