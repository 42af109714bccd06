"""Bot API calls per photo report: filed in the Mini App's one form ÷ through the chat dialog,
in one run against the real service and the project's Bot API test server.

    python -m bench.mini_app [--residents 40] [--postgres URL]

The same residents file the same photo report (one photo, 飞线充电, an address) both ways:
first through the chat dialog as a Telegram client drives it (photo with caption → category
button → typed address → Confirm, each step waiting for the bot's answer), then through the
Mini App's HTTP API as its page drives it (one photo upload, one submission, the launch data
signed with the bot's token). Every Bot API call the service makes from the first resident's
first step until its outbox is empty is counted at the test server, by method; ``getUpdates``
(polling, the same either way) is left out. Both ways end in the same case, receipt and
department card, so the difference is the dialog. Telegram lets a bot make about 30 calls a
second in all, which bounds the reports a district can take in a minute: 1,800 ÷ calls per
report, before the group limits (20 messages a minute in one group, which the group's digest
absorbs the same way for both).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from PIL import Image
from sqlalchemy import func, select

from bench.crash import TOKEN, Resident
from bench.intake import district_file
from bot.app import Whistle
from bot.district import load_district
from bot.playground.launch import launch_data as signed_launch_data
from bot.settings import Settings
from bot.testserver import BotAPIServer
from models import Case, OutboxMessage, OutboxStatus

DEPARTMENT_CHAT = -1001000000021  # cgzf, where flying-wire reports go
CENTER = -1001000000001
FIRST_RESIDENT = 8_100_000
NOT_COUNTED = frozenset({"getupdates"})
CALLS_PER_SECOND = 30  # Telegram's limit over all chats
STEP_TIMEOUT = 60.0


@dataclass
class Way:
    reports: int = 0
    calls: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def per_report(self) -> float:
        return sum(self.calls.values()) / self.reports if self.reports else 0.0

    @property
    def reports_per_minute(self) -> float:
        """The most reports Telegram's overall limit lets through in a minute this way."""
        return CALLS_PER_SECOND * 60 / self.per_report if self.per_report else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "reports": self.reports,
            "calls_per_report": round(self.per_report, 2),
            "calls_by_method": dict(sorted(self.calls.items())),
            "reports_per_minute_at_30_calls_a_second": round(self.reports_per_minute),
            "seconds": round(self.seconds, 2),
        }


@dataclass
class MiniAppFigures:
    database: str
    chat: Way = field(default_factory=Way)
    app: Way = field(default_factory=Way)

    @property
    def ratio(self) -> float:
        """Calls per report in the app ÷ in the chat dialog."""
        return self.app.per_report / self.chat.per_report if self.chat.per_report else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "chat_dialog": self.chat.to_dict(),
            "mini_app": self.app.to_dict(),
            "ratio": round(self.ratio, 3),
        }

    def table(self) -> str:
        rows = [
            ("database", self.database),
            ("reports each way", str(self.chat.reports)),
            ("chat dialog: calls per report", _way(self.chat)),
            ("Mini App: calls per report", _way(self.app)),
            ("Mini App ÷ chat dialog", f"{self.ratio:.3f}"),
            (
                "reports a minute within 30 calls/s",
                f"chat {self.chat.reports_per_minute:.0f}, "
                f"Mini App {self.app.reports_per_minute:.0f}",
            ),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def _way(way: Way) -> str:
    methods = ", ".join(f"{m} {n / way.reports:.1f}" for m, n in way.calls.most_common())
    return f"{way.per_report:.2f} ({methods})"


def launch_data(user_id: int) -> str:
    """Launch data for the resident, signed with the bot's token as Telegram signs it."""
    user = {"id": user_id, "first_name": f"居民{user_id}", "language_code": "zh-hans"}
    return signed_launch_data(TOKEN, user=user, now=datetime.now(UTC))


def _photo(seed: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (160, 120), (seed % 256, 90, 140)).save(out, "JPEG")
    return out.getvalue()


async def measure(database_url: str, *, residents: int) -> MiniAppFigures:
    figures = MiniAppFigures(database_url.split(":", 1)[0].split("+", 1)[0])
    with tempfile.TemporaryDirectory(prefix="whistle-mini-app-") as scratch:
        district = load_district(district_file(Path(scratch)))
        async with BotAPIServer(tokens=[TOKEN]) as server:
            server.create_group(CENTER, "综治中心", members=[])
            server.create_group(DEPARTMENT_CHAT, "城管执法局", members=[])
            people = [FIRST_RESIDENT + i for i in range(residents)]
            for user_id in people:
                server.add_user(user_id, first_name=f"居民{user_id}", language_code="zh-hans")
                server.send_text(user_id, "/start")
            settings = Settings(
                _env_file=None,
                BOT_TOKEN=TOKEN,
                TELEGRAM_API_BASE=server.base_url,
                DATABASE_URL=database_url,
                WEB_ENABLED=True,
                WEB_PORT=0,
                POLLING_TIMEOUT=1,
                SEND_GLOBAL_PER_SECOND=10_000,
                SEND_GROUP_PER_MINUTE=100_000,
                SEND_PRIVATE_PER_SECOND=10_000,
            )
            app = Whistle(settings=settings, district=district)
            await app.start()
            try:
                for user_id in people:
                    await server.wait_for_message(user_id)
                await _idle(app)
                figures.chat = await _through_the_chat(app, server, people)
                figures.app = await _through_the_app(app, server, people)
                filed = await cases_filed(app)
                if filed != 2 * residents:
                    raise RuntimeError(f"{filed} cases filed, not {2 * residents}")
            finally:
                await app.stop()
    return figures


async def _through_the_chat(app: Whistle, server: BotAPIServer, people: list[int]) -> Way:
    first = len(server.requests)
    started = time.perf_counter()
    filers = [Resident(server, user_id, step_timeout=STEP_TIMEOUT) for user_id in people]
    for filer in filers:
        filer.seen = len(server.messages(filer.user_id))
    await asyncio.gather(*(filer.file_report(1) for filer in filers))
    return await _counted(app, server, first, started, len(people))


async def _through_the_app(app: Whistle, server: BotAPIServer, people: list[int]) -> Way:
    first = len(server.requests)
    started = time.perf_counter()
    base = f"http://127.0.0.1:{app.web_port}/app/api"
    async with aiohttp.ClientSession() as http:

        async def file(user_id: int) -> None:
            headers = {"Authorization": f"tma {launch_data(user_id)}"}
            form = aiohttp.FormData()
            form.add_field("photo", _photo(user_id), filename="p.jpg", content_type="image/jpeg")
            async with http.post(f"{base}/photos", data=form, headers=headers) as response:
                assert response.status == 201, await response.text()
                key = (await response.json())["id"]
            body = {
                "submission": str(uuid.uuid4()),
                "kind": "report",
                "description": f"楼道里飞线充电（App-{user_id}）",
                "category": "flying_wire",
                "photos": [key],
                "address": f"康乐小区{user_id}栋门口",
            }
            async with http.post(f"{base}/submit", json=body, headers=headers) as response:
                assert response.status == 201, await response.text()

        await asyncio.gather(*(file(user_id) for user_id in people))
    return await _counted(app, server, first, started, len(people))


async def _counted(
    app: Whistle, server: BotAPIServer, first: int, started: float, reports: int
) -> Way:
    await _idle(app)
    way = Way(reports=reports, seconds=time.perf_counter() - started)
    for record in server.requests[first:]:
        if record.method.lower() not in NOT_COUNTED:
            way.calls[record.method] += 1
    return way


async def _idle(app: Whistle, timeout: float = 120.0) -> None:  # noqa: ASYNC109
    """Until the outbox has nothing pending."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        async with app.factory() as session:
            pending = await session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status == OutboxStatus.PENDING)  # type: ignore[arg-type]
            )
        if not pending:
            return
        app.sender.wake()
        await asyncio.sleep(0.1)
    raise TimeoutError("the outbox did not empty")


async def cases_filed(app: Whistle) -> int:
    async with app.factory() as session:
        return int(await session.scalar(select(func.count()).select_from(Case)) or 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=40)
    parser.add_argument("--postgres", help="a PostgreSQL URL to use instead of SQLite")
    args = parser.parse_args(argv)

    async def run() -> MiniAppFigures:
        if args.postgres:
            return await measure(args.postgres, residents=args.residents)
        with tempfile.TemporaryDirectory(prefix="whistle-mini-app-db-") as scratch:
            url = f"sqlite+aiosqlite:///{scratch}/bench.db"
            return await measure(url, residents=args.residents)

    figures = asyncio.run(run())
    print(figures.table())
    print(json.dumps(figures.to_dict(), ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
