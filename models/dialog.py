"""Dialog (FSM) state in the database, so a half-finished report survives a restart."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime


class DialogState(SQLModel, table=True):
    __tablename__ = "dialog_states"

    bot_id: int = Field(sa_type=BigInteger, primary_key=True)
    chat_id: int = Field(sa_type=BigInteger, primary_key=True)
    user_id: int = Field(sa_type=BigInteger, primary_key=True)
    # Telegram's thread and business-connection ids; "" when absent so they can be key parts.
    thread_id: str = Field(default="", primary_key=True, max_length=32)
    business_connection_id: str = Field(default="", primary_key=True, max_length=64)
    destiny: str = Field(default="default", primary_key=True, max_length=32)
    state: str | None = Field(default=None, max_length=128)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    updated_at: datetime = Field(sa_type=UTCDateTime)
