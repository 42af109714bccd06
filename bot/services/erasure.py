"""/forgetme as the resident sees it through: their data erased (:func:`privacy.forget`), and
every message the bot can still change that showed it changed too, through the outbox.

What showed the resident is found from the message links of their cases: the department's
card and each 协办 unit's card, the center's and the triage card, the volunteer group's help
card, supervision pushes and burst digests are edited to the anonymised case (no name, no
description, no address, no exact place); the photo messages and location pins under them are
deleted (Telegram lets a bot delete its own messages for 48 hours; an older one stays, and the
sender records that it could not). The resident's private chat with the bot is forgotten with
the rest (its messages are theirs, in their own chat).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.district import District
from bot.i18n import N_
from bot.services import folding, notify, privacy, triage_card
from bot.services.outbox import enqueue
from models import CardFold, Case, HelpRequest, MessageLink, OutboxMessage

# Messages that show the case's photos or its exact place: deleted, not edited.
LOCATION = "card-location"
SUPERVISION = notify.SUPERVISION


@dataclass(frozen=True)
class Forgotten:
    cases: int  # cases anonymised
    messages: int  # messages in groups edited or deleted

    def answer(self, district: District, lang: str) -> tuple[str, dict[str, Any]]:
        """The closing answer's message and parameters: what was erased, what changed in the
        groups, and what the district keeps (with its retention period, if it has one)."""
        days = district.privacy.retention_days
        text_key = N_("forget.done") if days is None else N_("forget.done-retention")
        return text_key, {
            "count": self.cases,
            "messages": self.messages,
            "district": district.district.names.get(lang),
            "days": days,
        }


async def forget(
    session: AsyncSession, district: District, *, user_id: int, now: datetime
) -> Forgotten:
    """Erase the person (refused while they have open cases, see :func:`privacy.forget`) and
    queue the edits of what the groups still show of their cases."""
    mine = (await session.scalars(select(Case).where(col(Case.resident_id) == user_id))).all()
    one_photo = {case.id: len(case.photos) == 1 for case in mine}
    ids = [case.id for case in mine if case.id is not None]
    count = await privacy.forget(session, user_id=user_id, now=now)
    if not ids:
        return Forgotten(count, 0)
    cases = (await session.scalars(select(Case).where(col(Case.id).in_(ids)))).all()
    touched = 0
    for case in cases:
        touched += await _redraw(session, district, case, one_photo.get(case.id, False), now)
    return Forgotten(count, touched)


async def _redraw(
    session: AsyncSession, district: District, case: Case, one_photo: bool, now: datetime
) -> int:
    assert case.id is not None
    lang = district.default_language
    links = (
        await session.scalars(
            select(MessageLink).where(
                col(MessageLink.subject_type) == "case",
                col(MessageLink.subject_id) == str(case.id),
                col(MessageLink.chat_id) < 0,  # groups; private chats were forgotten
            )
        )
    ).all()
    touched = 0
    for link in links:
        if link.purpose.endswith("-photo") or link.purpose == LOCATION:
            enqueue(session, chat_id=link.chat_id, locale=lang, now=now, method="deleteMessage",
                    target=link.message_id)  # fmt: skip
        else:
            drawn = await _drawing(session, district, case, link, one_photo)
            if drawn is None:
                continue  # reminders, prompts, notes: they name the case, not the resident
            template, context = drawn
            caption = link.purpose == notify.CARD and one_photo
            enqueue(
                session,
                chat_id=link.chat_id,
                locale=lang,
                now=now,
                method="editMessageCaption" if caption else "editMessageText",
                template=template,
                context=context,
                target=link.message_id,
            )
        touched += 1
    touched += await _redraw_digests(session, case, lang, now)
    return touched


async def _drawing(
    session: AsyncSession, district: District, case: Case, link: MessageLink, one_photo: bool
) -> tuple[str, dict[str, object]] | None:
    """The template and context a linked message is drawn with again, or None for a message
    that shows nothing of the resident."""
    purpose = link.purpose
    if purpose == notify.CARD:
        return "case_card.html", notify.card_context(case, caption=one_photo)
    if purpose == notify.ASSIST_CARD:
        return "case_card.html", notify.card_context(case, assisting=True, lead=case.department)
    if purpose == notify.CENTER_CARD:
        return "center_card.html", notify.card_context(case)
    if purpose == triage_card.TRIAGE_CARD:
        return "triage_card.html", triage_card.context(case, district)
    if purpose == notify.HELP_CARD:
        request = await session.get(HelpRequest, case.id)
        assert request is not None
        return "help_card.html", notify.help_context(case, request)
    if purpose == SUPERVISION:
        context = await _last_context(session, link.chat_id, link.message_id)
        if context is None:
            return None
        return "ladder_supervision.html", {
            **context,
            **notify.card_context(case),
            "reporter_hidden": True,
        }
    return None


async def _last_context(
    session: AsyncSession, chat_id: int, message_id: int
) -> dict[str, object] | None:
    """What a message was drawn with (its outbox row, kept for a month)."""
    row = await session.scalar(
        select(OutboxMessage).where(
            col(OutboxMessage.chat_id) == chat_id, col(OutboxMessage.message_id) == message_id
        )
    )
    return dict(row.context) if row is not None else None


async def _redraw_digests(session: AsyncSession, case: Case, lang: str, now: datetime) -> int:
    """A burst digest's line shows the case's address or description: drawn again."""
    digests = (
        await session.execute(
            select(col(CardFold.digest_id), col(CardFold.chat_id))
            .where(col(CardFold.case_id) == case.id)
            .distinct()
        )
    ).all()
    for digest_id, chat_id in digests:
        await folding.redraw(session, digest_id, chat_id=chat_id, locale=lang, now=now)
    return len(digests)
