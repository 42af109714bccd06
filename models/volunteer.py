"""Volunteers (热心人) and their claims on help requests (邻里互助).

A help request is claimed by one conditional update of its case (see
:mod:`bot.services.volunteers`); each claim also leaves a :class:`HelpClaim` row, the history
of who took the request, and when it was released or finished.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, BigInteger
from sqlmodel import Field, SQLModel

from models.case import _enum
from models.types import UTCDateTime


class VolunteerStatus(StrEnum):
    PENDING = "pending"  # waiting for a community admin
    APPROVED = "approved"
    DECLINED = "declined"
    PAUSED = "paused"  # approved, but not taking requests for now


class Volunteer(SQLModel, table=True):
    __tablename__ = "volunteers"

    user_id: int = Field(sa_type=BigInteger, primary_key=True)
    display_name: str = Field(max_length=64)
    first_name: str = Field(default="", max_length=128)
    language: str = Field(max_length=16)
    community: str = Field(max_length=32)
    skills: list[str] = Field(default_factory=list, sa_type=JSON)
    availability: str = Field(default="", max_length=200)
    # The volunteer's Telegram @username when they have one: a requester with the same contact
    # earns them no points (self-dealing).
    contact: str | None = Field(default=None, max_length=128)
    status: VolunteerStatus = Field(sa_type=_enum(VolunteerStatus))
    registered_at: datetime = Field(sa_type=UTCDateTime)
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    decided_by: int | None = Field(default=None, sa_type=BigInteger)

    @property
    def name(self) -> str:
        """How the volunteer is shown everywhere (cards, requesters, rankings, the dashboard):
        the name they registered with; their Telegram first name only if they gave none."""
        return self.display_name or self.first_name


class HelpClaim(SQLModel, table=True):
    """One volunteer's claim on one help request. ``ended`` is ``released`` or ``done``."""

    __tablename__ = "help_claims"

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    volunteer_id: int = Field(sa_type=BigInteger, index=True)
    claimed_at: datetime = Field(sa_type=UTCDateTime)
    on_way_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    ended: str | None = Field(default=None, max_length=16)
