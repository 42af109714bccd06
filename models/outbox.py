"""The transactional outbox: every outgoing Bot API call is a row written in the same
transaction as the change that causes it.

The sender delivers messages in order per chat (callback answers at once, see lanes below). A
row's lifecycle is PENDING → DELIVERED, or PENDING → DEAD after a permanent error or too many
attempts, or PENDING → SUPERSEDED when a newer edit of the same message replaced it before it
was sent (kept for the audit, never sent); the transitions live here.

Each row is in a lane (:class:`Lane`), which decides only who goes first when rows compete:
callback answers are sent at once and stand in no chat's order; among a chat's messages the
order is always the order of their ids, and when chats compete for the overall budget a chat
whose next message is interactive goes before one whose next message is a bulk notice.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import IntEnum, StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Enum, Index, SmallInteger
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime


class OutboxStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"
    # An edit replaced by a newer edit of the same message before it was sent, or an edit of
    # a folded card that was never posted (bot/services/folding.py).
    SUPERSEDED = "superseded"


class Lane(IntEnum):
    """Who goes first (lower first) when outbox rows compete for the sender."""

    # answerCallbackQuery: not a message to a chat; sent at once, in no chat's order, unpaced.
    ANSWER = 0
    # Messages someone is waiting for (replies in a dialog, cards, acknowledgements): the
    # default.
    INTERACTIVE = 1
    # Notices nobody is waiting for at that moment (digests, scheduled reports,
    # re-announcements, dead-message reports): they take what budget the others leave.
    BULK = 2


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_status_chat_id", "status", "chat_id", "id"),
        Index("ix_outbox_status_due", "status", "next_attempt_at"),
        # The pending callback answers, found without walking a burst of pending messages.
        Index("ix_outbox_status_lane_due", "status", "lane", "next_attempt_at"),
        # A group's messages of the last minute (bot/services/folding.py).
        Index("ix_outbox_chat_delivered", "chat_id", "delivered_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    chat_id: int = Field(sa_type=BigInteger)
    method: str = Field(max_length=40)
    locale: str = Field(max_length=16)
    # Text comes from a Jinja2 template or a message id of the catalogue, rendered at send time
    # in the recipient's locale.
    template: str | None = Field(default=None, max_length=80)
    text_key: str | None = Field(default=None, max_length=80)
    context: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    params: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    keyboard: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    # For replies and edits: which earlier message of this chat it refers to.
    target: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    # What the sent message is about, recorded in message_links on delivery.
    link_subject_type: str | None = Field(default=None, max_length=32)
    link_subject_id: str | None = Field(default=None, max_length=64)
    link_purpose: str | None = Field(default=None, max_length=32)

    lane: int = Field(default=Lane.INTERACTIVE, sa_type=SmallInteger)

    status: OutboxStatus = Field(
        default=OutboxStatus.PENDING,
        # Stored as its value in a plain VARCHAR: no database enum type to migrate.
        sa_type=Enum(
            OutboxStatus,
            native_enum=False,
            length=16,
            values_callable=lambda members: [m.value for m in members],
        ),
    )
    attempts: int = 0
    created_at: datetime = Field(sa_type=UTCDateTime)
    next_attempt_at: datetime = Field(sa_type=UTCDateTime)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    message_id: int | None = Field(default=None, sa_type=BigInteger)
    last_error: str | None = Field(default=None, max_length=500)
    # The sender (one per replica) sending this row right now, until when: replicas share the
    # outbox, and a claim that is not renewed lapses, so a replica that dies gives its chats
    # back (bot/sender.py).
    claimed_by: str | None = Field(default=None, max_length=64)
    claimed_until: datetime | None = Field(default=None, sa_type=UTCDateTime)

    def mark_delivered(self, *, message_id: int | None, now: datetime) -> None:
        if self.status is not OutboxStatus.PENDING:
            raise ValueError(f"outbox row {self.id} is {self.status}, not pending")
        self.status = OutboxStatus.DELIVERED
        self.attempts += 1
        self.message_id = message_id
        self.delivered_at = now

    def schedule_retry(self, *, error: str, delay: timedelta, now: datetime) -> None:
        self.attempts += 1
        self.last_error = error[:500]
        self.next_attempt_at = now + delay

    def mark_dead(self, *, reason: str, now: datetime) -> None:
        self.status = OutboxStatus.DEAD
        self.attempts += 1
        self.last_error = reason[:500]
        self.next_attempt_at = now

    def mark_superseded(self, *, by: int, now: datetime) -> None:
        self.mark_moot(reason=f"superseded by {by}", now=now)

    def mark_moot(self, *, reason: str, now: datetime) -> None:
        """Not sent because there is nothing left for it to do (a newer edit of the same
        message, or an edit of a card that was folded into a digest and never posted)."""
        if self.status is not OutboxStatus.PENDING:
            raise ValueError(f"outbox row {self.id} is {self.status}, not pending")
        self.status = OutboxStatus.SUPERSEDED
        self.last_error = reason[:500]
        self.next_attempt_at = now
