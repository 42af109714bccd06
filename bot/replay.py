"""``python -m bot replay-ladder``: what a case that nobody acknowledges receives, and when,
under the district file's ladder.

It runs the real ladder on a scratch SQLite database and a test clock — the same scanner,
templates and outbox rows as production — and prints every message it would send.
"""

from __future__ import annotations

import html
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlmodel import col

from bot.clock import ManualClock
from bot.db import create_engine, migrate, session_factory, transaction
from bot.district import District
from bot.i18n import Catalogues
from bot.rendering import Renderer, district_globals
from bot.services import ladder
from models import Case, CaseKind, CaseStatus, OutboxMessage, User

_TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class Delivery:
    offset: timedelta
    recipient: str
    text: str


def _recipients(district: District, lang: str) -> dict[int, str]:
    names: dict[int, str] = {}
    if district.governance_center.chat_id:
        names[district.governance_center.chat_id] = district.governance_center.names.get(lang)
    if district.supervision and district.supervision.chat_id:
        names[district.supervision.chat_id] = district.supervision.names.get(lang)
    for department in district.departments:
        if department.chat_id:
            names[department.chat_id] = department.names.get(lang)
    for person in district.people:
        names[person.telegram_id] = person.name
    return names


async def replay_ladder(district: District) -> list[Delivery]:
    lang = district.default_language
    department = next((d for d in district.departments if d.chat_id), district.departments[0])
    start = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)
    clock = ManualClock(start)
    renderer = Renderer(
        Catalogues(lang, template_globals=district_globals(district), zone=district.tzinfo)
    )
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite+aiosqlite:///{Path(scratch) / 'replay.db'}"
        await migrate(url)
        engine = create_engine(url)
        factory = session_factory(engine)
        try:
            async with transaction(factory) as session:
                # Everyone with a role has started the bot, as they should have.
                for person in district.people:
                    session.add(
                        User(
                            id=person.telegram_id,
                            first_name=person.name,
                            created_at=start,
                            last_seen_at=start,
                        )
                    )
                case = Case(
                    kind=CaseKind.REPORT,
                    status=CaseStatus.DISPATCHED,
                    department=department.code,
                    resident_id=1,
                    resident_language=lang,
                    description="—",
                    created_at=start,
                    updated_at=start,
                )
                session.add(case)
                await session.flush()
                assert case.id is not None
                case.number = district.case_number(case.id)
                await ladder.start(session, district, case, now=start)
            deliveries: list[Delivery] = []
            names = _recipients(district, lang)
            seen = 0
            for rung in district.ladder:
                clock.set(start + rung.offset)
                async with transaction(factory) as session:
                    await ladder.fire_due(session, district, now=clock.now())
                async with factory() as session:
                    rows = (
                        await session.scalars(
                            select(OutboxMessage)
                            .where(col(OutboxMessage.id) > seen)
                            .order_by(col(OutboxMessage.id))
                        )
                    ).all()
                for row in rows:
                    assert row.id is not None
                    seen = row.id
                    text = renderer.text(row) or ""
                    plain = html.unescape(_TAG.sub("", text)).strip()
                    if row.method.startswith("edit"):  # the living card, shown by its title
                        plain = "✎ " + (plain.splitlines()[0] if plain else "")
                    deliveries.append(
                        Delivery(
                            rung.offset,
                            names.get(row.chat_id, str(row.chat_id)),
                            plain,
                        )
                    )
            return deliveries
        finally:
            await engine.dispose()


def format_deliveries(deliveries: list[Delivery]) -> str:
    lines = []
    for delivery in deliveries:
        minutes = int(delivery.offset.total_seconds() // 60)
        stamp = f"+{minutes // 60}:{minutes % 60:02d}"
        text = delivery.text.replace("\n", " / ")
        lines.append(f"{stamp:>7}  {delivery.recipient}: {text}")
    return "\n".join(lines)
