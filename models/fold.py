"""Cards folded into a digest while a group is over its budget (bot/services/folding.py).

Telegram lets a bot post about twenty messages a minute into one group. When a group's queue
is already that long, a new case's card is not queued behind it: the case becomes a line of
the group's open digest (one message, edited in place as lines are added), and the case gets
its own card, drawn from its state at that time, once the group's queue is short again.

A :class:`CardFold` is one case's withheld card: which group, which card (its message link's
purpose), which digest shows it, and when it was released (its card queued, or no longer
wanted because the case left that group). A :class:`FoldDigest` is one digest message; it is
finished when every line in it has been released.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime


class FoldDigest(SQLModel, table=True):
    __tablename__ = "fold_digests"
    __table_args__ = (Index("ix_fold_digests_chat_finished", "chat_id", "finished_at"),)

    id: int | None = Field(default=None, primary_key=True)
    chat_id: int = Field(sa_type=BigInteger)
    opened_at: datetime = Field(sa_type=UTCDateTime)
    # Lines in it; a full digest takes no more (the next fold opens a new one).
    lines: int = 0
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class CardFold(SQLModel, table=True):
    __tablename__ = "card_folds"
    __table_args__ = (
        Index("ix_card_folds_digest", "digest_id"),
        Index("ix_card_folds_case", "case_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    digest_id: int
    chat_id: int = Field(sa_type=BigInteger)
    case_id: int
    # The purpose of the card's message link (models.MessageLink): "card", "center-card", …
    purpose: str = Field(max_length=32)
    # What the card needs besides the case to be drawn later (a center card's reason).
    extra: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    folded_at: datetime = Field(sa_type=UTCDateTime)
    released_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # "posted" (its own card queued) or "gone" (the case left the group meanwhile).
    outcome: str | None = Field(default=None, max_length=16)
