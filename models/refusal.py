"""Refusals answered in a group, folded: one message per (chat, subject, reason) a minute.

When many people reply to the same card at once (fifty volunteers racing for one help
request), each refusal would otherwise be a message of its own, and Telegram lets a bot post
only about twenty a minute into one group. The first refusal in a window is a reply; the
following ones bump ``count`` with one conditional UPDATE in their own transaction and edit
that reply ("also tried: N") through the outbox, where queued edits of one message coalesce.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime


class GroupRefusal(SQLModel, table=True):
    __tablename__ = "group_refusals"
    __table_args__ = (
        UniqueConstraint("chat_id", "subject", "reason", name="uq_group_refusals_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    chat_id: int = Field(sa_type=BigInteger)
    # What the refused replies were about ("case:12") and why (the catalogue's message id).
    subject: str = Field(max_length=64)
    reason: str = Field(max_length=80)
    # Which window this is: the refusal message of each window is linked as "<id>.<serial>".
    serial: int = 1
    # Refusals folded into the window's message, the first one included.
    count: int = 1
    window_start: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    # The outbox row that posts the window's message.
    outbox_id: int | None = Field(default=None)
