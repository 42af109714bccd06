"""积分: the volunteers' points ledger, the stock of merchants' offers, and redemption codes.

The ledger is append-only: a row is never updated or deleted, and a volunteer's balance is the
sum of their rows. Spending takes stock with one conditional update of :class:`OfferStock`
(``taken < stock``) and leaves a :class:`Redemption` whose one-time code a merchant marks used
with another conditional update, so neither stock nor a code can be used twice.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Index
from sqlmodel import Field, SQLModel

from models.case import _enum
from models.types import UTCDateTime


class EntryKind(StrEnum):
    EARN = "earn"  # a help request confirmed as helped
    SPEND = "spend"  # a redemption (negative)
    ADJUST = "adjust"  # an admin's correction, with its reason
    REFUND = "refund"  # an expired, unused code gives its points back


class PointEntry(SQLModel, table=True):
    """One line of a volunteer's points ledger."""

    __tablename__ = "point_entries"
    __table_args__ = (
        Index("ix_point_entries_user_at", "user_id", "at"),
        # The leaderboards sum earnings of a period.
        Index("ix_point_entries_kind_at", "kind", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(sa_type=BigInteger)
    kind: EntryKind = Field(sa_type=_enum(EntryKind))
    points: int  # signed: earnings and refunds add, spending subtracts
    reason: str = Field(default="", max_length=200)
    case_id: int | None = Field(default=None, foreign_key="cases.id")
    redemption_id: int | None = Field(default=None, foreign_key="redemptions.id")
    # For earnings: the requester who was helped (the per-pair cap counts by it).
    counterparty_id: int | None = Field(default=None, sa_type=BigInteger)
    # Who caused the entry: the requester, an admin, or None for the system.
    by_id: int | None = Field(default=None, sa_type=BigInteger)
    # Credited because the requester did not answer in time.
    auto: bool = False
    at: datetime = Field(sa_type=UTCDateTime)


class OfferStock(SQLModel, table=True):
    """How many of an offer have been taken; the stock itself is in the district file."""

    __tablename__ = "offer_stock"

    merchant: str = Field(primary_key=True, max_length=32)
    offer: str = Field(primary_key=True, max_length=32)
    taken: int = 0


class Redemption(SQLModel, table=True):
    """Points spent on an offer, and the one-time code the merchant checks."""

    __tablename__ = "redemptions"
    __table_args__ = (
        # The refund scan reads unused codes by expiry.
        Index("ix_redemptions_used_expires", "used_at", "expires_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=16, unique=True, index=True)
    user_id: int = Field(sa_type=BigInteger, index=True)
    merchant: str = Field(max_length=32)
    offer: str = Field(max_length=32)
    points: int
    created_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    used_by: int | None = Field(default=None, sa_type=BigInteger)
    refunded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
