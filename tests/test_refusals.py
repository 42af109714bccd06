"""Folding refusals of replies in a group (bot/services/refusals.py) on SQLite and PostgreSQL:
concurrent refusals from two engines (as two replicas would) fold into one message with the
right count, a new minute opens one new message, and who is told privately."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bot.db import SessionFactory, create_engine, session_factory, transaction
from bot.i18n import Catalogues
from bot.services import refusals
from models import GroupRefusal, OutboxMessage, OutboxStatus

GROUP = -1001000000003
T0 = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
CATALOGUES = Catalogues("zh-Hans")


async def refuse(factory: SessionFactory, message_id: int, now: datetime) -> None:
    async with transaction(factory) as session:
        await refusals.fold(
            session,
            chat_id=GROUP,
            message_id=message_id,
            locale="zh-Hans",
            subject="case:1",
            reason="help.already-taken",
            params={"name": "<b>小李</b>"},
            now=now,
        )


async def group_rows(factory: SessionFactory) -> list[OutboxMessage]:
    async with factory() as session:
        rows = await session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.chat_id == GROUP)  # type: ignore[arg-type]
            .order_by(OutboxMessage.id)  # type: ignore[arg-type]
        )
        return list(rows.all())


class TestFolding:
    async def test_concurrent_refusals_from_two_replicas_fold_into_one_message(
        self, factory: SessionFactory, database_url: str
    ) -> None:
        other_engine = create_engine(database_url)
        other = session_factory(other_engine)
        try:
            await asyncio.gather(
                *(refuse(factory if i % 2 else other, 100 + i, T0) for i in range(20))
            )
            rows = await group_rows(factory)
            sends = [r for r in rows if r.method == "sendMessage"]
            edits = [r for r in rows if r.method == "editMessageText"]
            assert len(sends) == 1 and len(edits) == 19
            [send] = sends
            assert send.target is not None and 100 <= send.target["message_id"] < 120
            assert send.context["others"] == 0
            assert sorted(e.context["others"] for e in edits) == list(range(1, 20))
            assert {tuple(sorted((e.target or {}).items())) for e in edits} == {
                (
                    ("purpose", refusals.LINK_PURPOSE),
                    ("subject_id", send.link_subject_id),
                    ("subject_type", refusals.LINK_SUBJECT),
                )
            }
            async with factory() as session:
                [state] = (await session.scalars(select(GroupRefusal))).all()
            assert state.count == 20 and state.serial == 1 and state.outbox_id == send.id

            # A minute later, refusals racing again open exactly one new message.
            later = T0 + refusals.WINDOW + timedelta(seconds=1)
            await asyncio.gather(
                *(refuse(factory if i % 2 else other, 200 + i, later) for i in range(6))
            )
            rows = await group_rows(factory)
            sends = [r for r in rows if r.method == "sendMessage"]
            assert len(sends) == 2 and sends[1].link_subject_id != sends[0].link_subject_id
            async with factory() as session:
                [state] = (await session.scalars(select(GroupRefusal))).all()
            assert state.count == 6 and state.serial == 2 and state.outbox_id == sends[1].id
        finally:
            await other_engine.dispose()

    async def test_the_folded_line_is_rendered_and_escaped(self, factory: SessionFactory) -> None:
        await refuse(factory, 100, T0)
        await refuse(factory, 101, T0)
        await refuse(factory, 102, T0)
        send, _first_edit, edit = await group_rows(factory)
        catalogues = CATALOGUES
        assert (
            catalogues.render(send.template or "", send.context, "zh-Hans")
            == "已被&lt;b&gt;小李&lt;/b&gt;认领。"
        )
        assert (
            catalogues.render(edit.template or "", edit.context, "zh-Hans")
            == "已被&lt;b&gt;小李&lt;/b&gt;认领。 另有 2 人也尝试了。"
        )
        assert "Also tried: 2 more." in catalogues.render(edit.template or "", edit.context, "en")


class TestPrivately:
    async def test_told_privately_only_when_the_last_private_message_arrived(
        self, factory: SessionFactory
    ) -> None:
        async with transaction(factory) as session:
            assert not await refusals.reachable_privately(session, 42)
            for status in (OutboxStatus.DELIVERED, OutboxStatus.DEAD):
                session.add(
                    OutboxMessage(
                        chat_id=43 if status is OutboxStatus.DEAD else 42,
                        method="sendMessage",
                        locale="zh-Hans",
                        text_key="start.greeting",
                        status=status,
                        created_at=T0,
                        next_attempt_at=T0,
                    )
                )
            await session.flush()
            assert await refusals.reachable_privately(session, 42)
            assert not await refusals.reachable_privately(session, 43)
            await refusals.refuse_reply(
                session,
                chat_id=GROUP,
                message_id=7,
                user_id=42,
                user_locale="en",
                group_locale="zh-Hans",
                subject="case:1",
                number="HB-000001",
                reason="help.already-taken",
                params={"name": "小李"},
                now=T0,
            )
        rows = await group_rows(factory)
        assert rows == []
        async with factory() as session:
            private = await session.scalar(
                select(OutboxMessage).where(
                    OutboxMessage.chat_id == 42,  # type: ignore[arg-type]
                    OutboxMessage.template == refusals.PRIVATE_TEMPLATE,  # type: ignore[arg-type]
                )
            )
        assert private is not None and private.locale == "en"
        text = CATALOGUES.render(private.template or "", private.context, private.locale)
        assert text == "Your reply about HB-000001 in the group:\nAlready taken by 小李."
