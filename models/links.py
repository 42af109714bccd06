"""What each message the bot sent is about: (chat id, message id) → subject.

Replies and button presses are mapped back through this table, never by parsing the text of
the message being replied to. A subject may have several messages per chat (a card, its
reminders); ``purpose`` tells them apart so a living card can be found and edited.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime


class MessageLink(SQLModel, table=True):
    __tablename__ = "message_links"
    __table_args__ = (
        Index("ix_message_links_subject", "subject_type", "subject_id", "chat_id", "purpose"),
    )

    chat_id: int = Field(sa_type=BigInteger, primary_key=True)
    message_id: int = Field(sa_type=BigInteger, primary_key=True)
    subject_type: str = Field(max_length=32)
    subject_id: str = Field(max_length=64)
    purpose: str = Field(default="message", max_length=32)
    created_at: datetime = Field(sa_type=UTCDateTime)
