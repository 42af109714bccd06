"""How close does the outbox sender get to Telegram's limits without drawing a 429? Runs the
real application against the project's Bot API test server with the flood limits enforced
(30 messages a second overall, 20 a minute in a group, one a second in a private chat with a
burst of 3) and queues messages in one transaction.

    python -m bench.pacing [--private 900] [--chats 300] [--groups 20] [--group-messages 20]
                           [--database URL]

Two runs, one after the other:

- fan-out: ``--private`` messages over ``--chats`` private chats. The overall limit binds, so
  the figure is delivered/s ÷ the configured per-second limit, with delivered/s counted as the
  messages after the first second's allowance over the time from the first send to the last
  (a sliding one-second window lets N messages go out in ceil(N/30) − 1 seconds at best).
- mixed: ``--group-messages`` to each of ``--groups`` groups plus one to each of 200 private
  chats (the test suite's 600). The figure is the best time the configured limits allow (the
  pacer's own schedule on a simulated clock, no network) ÷ the measured time.

Both print the 429 answers the server gave (the target is 0). The JSON result is written to
bench/results/ (not under version control).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlmodel import col

from bench.results import RESULTS, write_result
from bot.app import Whistle
from bot.db import transaction
from bot.district import load_district
from bot.pacing import Limits
from bot.services.outbox import send_text
from bot.settings import Settings
from bot.testserver import BotAPIServer
from models import OutboxMessage, OutboxStatus

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "424242:BENCH-whistle-token"
TEXT_KEY = "health.unreachable-groups"  # one parameter: tells the messages apart


async def queue_texts(
    app: Whistle, messages: Iterable[tuple[int, str] | tuple[int, str, bool]]
) -> None:
    """Queue one ``TEXT_KEY`` message to each ``(chat, units)`` in this order, in one
    transaction, so that the sender sees them all at once (it is not woken); a third item
    ``True``, ``(chat, units, True)``, queues it as bulk (a digest's lane)."""
    async with transaction(app.factory) as session:
        for chat, units, *bulk in messages:
            send_text(
                session,
                chat_id=chat,
                locale="en",
                now=app.clock.now(),
                text_key=TEXT_KEY,
                units=units,
                bulk=any(bulk),
            )


async def pending(app: Whistle) -> int:
    async with app.factory() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(col(OutboxMessage.status) == OutboxStatus.PENDING)
        )
    return int(count or 0)


async def settle(app: Whistle, within: float) -> None:
    deadline = time.monotonic() + within
    while await pending(app):
        if time.monotonic() > deadline:
            raise TimeoutError("the outbox did not empty in time")
        await asyncio.sleep(0.05)


def ideal_seconds(chats: list[int], limits: Limits) -> float:
    """The shortest span between the first and the last of these sends that Telegram's limits
    allow, worked out from the limits alone (not by the service's own pacer): at most
    ``global_per_second`` calls in any second, ``group_per_minute`` messages to one group in
    any minute, and one chat's messages at ``private_per_second`` after a burst of ``burst``."""
    counts = Counter(chats)
    bounds: list[float] = [math.floor((len(chats) - 1) / limits.global_per_second)]
    for chat, sent in counts.items():
        if chat < 0:
            bounds.append(math.floor((sent - 1) / limits.group_per_minute) * 60.0)
        bounds.append(max(0.0, (sent - limits.burst) / limits.private_per_second))
    return float(max(bounds))


async def run_once(
    app: Whistle, server: BotAPIServer, chats: list[int], limits: Limits
) -> dict[str, Any]:
    await settle(app, 30)
    await asyncio.sleep(1.1)  # the start-up calls leave the one-second window
    server.enforce_limits(
        per_chat_per_second=limits.private_per_second,
        per_group_per_minute=limits.group_per_minute,
        global_per_second=limits.global_per_second,
        burst=limits.burst,
    )
    refused_before = server.stats["429"]
    calls_before = len(server.calls("sendMessage"))
    await queue_texts(app, ((chat, str(n)) for n, chat in enumerate(chats)))
    app.sender.wake()
    await settle(app, 600)
    server.enforce_limits(False)
    calls = [c for c in server.calls("sendMessage")[calls_before:] if c.ok]
    times = sorted(c.time for c in calls)
    return {
        "messages": len(chats),
        "delivered": len(calls),
        "seconds": round(times[-1] - times[0], 3) if times else 0.0,
        "responses_429": server.stats["429"] - refused_before,
    }


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    limits = Limits()
    district = load_district(ROOT / "config.example.toml")
    private = [8_000_000 + i for i in range(max(args.chats, 200))]
    groups = [-1003000000000 - i for i in range(args.groups)]
    with tempfile.TemporaryDirectory() as scratch:
        database = args.database or f"sqlite+aiosqlite:///{Path(scratch) / 'bench.db'}"
        async with BotAPIServer(tokens=[TOKEN]) as server:
            for user in private:
                server.add_user(user, language_code="en")
                server.send_text(user, "hi")
            for group in groups:
                server.create_group(group, f"group {group}")
            settings = Settings(
                _env_file=None,
                BOT_TOKEN=TOKEN,
                TELEGRAM_API_BASE=server.base_url,
                DATABASE_URL=database,
                SEND_GLOBAL_PER_SECOND=limits.global_per_second,
                SEND_GROUP_PER_MINUTE=limits.group_per_minute,
                SEND_PRIVATE_PER_SECOND=limits.private_per_second,
                SEND_BURST=limits.burst,
                WEB_ENABLED=False,
            )
            app = Whistle(settings=settings, district=district)
            await app.start(receive=False)
            try:
                fan_out = [private[i % args.chats] for i in range(args.private)]
                one = await run_once(app, server, fan_out, limits)
                per_second = limits.global_per_second
                allowance = min(one["delivered"], math.floor(per_second))
                rate = (one["delivered"] - allowance) / one["seconds"] if one["seconds"] else 0
                one["delivered_per_second"] = round(rate, 2)
                one["ratio_to_limit"] = round(rate / per_second, 3)

                mixed_chats = [g for _ in range(args.group_messages) for g in groups]
                mixed_chats += private[:200]
                two = await run_once(app, server, mixed_chats, limits)
                best = ideal_seconds(mixed_chats, limits)
                two["ideal_seconds"] = round(best, 3)
                two["ratio_to_ideal"] = round(best / two["seconds"], 3) if two["seconds"] else 0
            finally:
                await app.stop()
    return {"limits": limits.__dict__, "fan_out": one, "mixed": two, "database": database}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pacing", description=__doc__)
    parser.add_argument("--private", type=int, default=900, help="fan-out messages")
    parser.add_argument("--chats", type=int, default=300, help="fan-out private chats")
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--group-messages", type=int, default=20, help="per group (mixed)")
    parser.add_argument("--database", help="database URL (default: a scratch SQLite file)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where to write JSON")
    args = parser.parse_args(argv)

    figures = asyncio.run(bench(args))
    if not args.database:
        figures["database"] = "sqlite (scratch file)"
    out = write_result(args.results, "pacing", figures)
    one, two = figures["fan_out"], figures["mixed"]
    print(
        f"fan-out: {one['delivered']}/{one['messages']} messages to {args.chats} private chats "
        f"in {one['seconds']:.1f} s, {one['delivered_per_second']:.1f}/s = "
        f"{one['ratio_to_limit']:.3f} of the {figures['limits']['global_per_second']:g}/s "
        f"limit; 429 answers: {one['responses_429']}"
    )
    print(
        f"mixed: {two['delivered']}/{two['messages']} messages to {args.groups} groups and 200 "
        f"private chats in {two['seconds']:.1f} s (the limits allow {two['ideal_seconds']:.1f} "
        f"s) = {two['ratio_to_ideal']:.3f} of ideal; 429 answers: {two['responses_429']}"
    )
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
