"""Scheduled reports and the files the bot uploads.

A :class:`ReportRun` row says that one report (daily, weekly, monthly) for one period has been
queued; it is written in the same transaction as the report's outbox rows, and its unique key
makes the report go out once however many times (or on however many replicas) the job runs.

An :class:`OutboxFile` holds the bytes of something the bot uploads (a report's chart, a CSV
export) until the outbox row that names it is delivered.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime


class ReportRun(SQLModel, table=True):
    __tablename__ = "report_runs"
    __table_args__ = (UniqueConstraint("kind", "period_start", name="uq_report_runs_period"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)  # daily | weekly | monthly
    period_start: datetime = Field(sa_type=UTCDateTime)
    period_end: datetime = Field(sa_type=UTCDateTime)
    queued_at: datetime = Field(sa_type=UTCDateTime)


class OutboxFile(SQLModel, table=True):
    __tablename__ = "outbox_files"

    key: str = Field(primary_key=True, max_length=32)
    filename: str = Field(max_length=120)
    content: bytes = Field(sa_type=LargeBinary)
    created_at: datetime = Field(sa_type=UTCDateTime, index=True)
