"""People who have talked to the bot: only what the bot needs to address them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int = Field(sa_type=BigInteger, primary_key=True, description="Telegram user id")
    first_name: str = Field(default="", max_length=128)
    telegram_language: str | None = Field(default=None, max_length=16)
    language: str | None = Field(default=None, max_length=16, description="chosen with /lang")
    created_at: datetime = Field(sa_type=UTCDateTime)
    last_seen_at: datetime = Field(sa_type=UTCDateTime)
    # Blocked by an admin (/block): the bot ignores the user and tells them so, at most once in
    # a while (``block_notice_at``).
    blocked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    blocked_by: int | None = Field(default=None, sa_type=BigInteger)
    block_reason: str | None = Field(default=None, max_length=200)
    block_notice_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ChatLanguage(SQLModel, table=True):
    """The language a group chat is spoken to in, set with /lang by one of its admins.
    Groups without a row get the district's default language."""

    __tablename__ = "chat_languages"

    chat_id: int = Field(sa_type=BigInteger, primary_key=True)
    language: str = Field(max_length=16)
    set_by: int = Field(sa_type=BigInteger)
    set_at: datetime = Field(sa_type=UTCDateTime)
