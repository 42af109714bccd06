"""Update ids already handled, so a redelivered update has no second effect."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime


class ProcessedUpdate(SQLModel, table=True):
    __tablename__ = "processed_updates"

    bot_id: int = Field(sa_type=BigInteger, primary_key=True)
    update_id: int = Field(sa_type=BigInteger, primary_key=True)
    processed_at: datetime = Field(sa_type=UTCDateTime, index=True)
