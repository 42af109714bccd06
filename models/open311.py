"""Requests filed through the Open311 API, by the key their integrating system gave them.

A system that sends ``POST /requests.json`` again after a timeout (it cannot know whether the
first one arrived) names both tries with the same ``Idempotency-Key`` header; the row below,
written in the transaction that files the case, makes the second try answer with the first
one's case instead of filing another.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from models.types import UTCDateTime


class Open311Request(SQLModel, table=True):
    __tablename__ = "open311_requests"

    integration: str = Field(primary_key=True, max_length=32)
    key: str = Field(primary_key=True, max_length=128)
    # Written before the case is filed (so concurrent tries wait on this row, not on filing
    # cases they would throw away), and set in the same transaction.
    case_id: int | None = Field(default=None, foreign_key="cases.id", index=True)
    created_at: datetime = Field(sa_type=UTCDateTime)
