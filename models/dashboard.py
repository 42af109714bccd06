"""Sign-in to the web dashboard: one-time links and the sessions they open.

Neither table holds a secret: a link's token and a session's id are stored as their SHA-256
digests, so reading the database gives nobody a way in. A link is used with one conditional
update (``used_at IS NULL AND expires_at > now``), so of two simultaneous uses one wins.
Sessions live here rather than only in the cookie so that they survive a restart (with a
fixed ``WEB_SECRET``), expire, and can be ended and checked.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime


class LoginLink(SQLModel, table=True):
    __tablename__ = "dashboard_links"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    user_id: int = Field(sa_type=BigInteger, index=True)
    # What the link opens: "district" (everything) or "department" (``departments`` only).
    scope: str = Field(max_length=16)
    departments: list[str] = Field(default_factory=list, sa_type=JSON)
    created_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The outbox row that carries the link: its copy of the token is blanked once used (no
    # foreign key, as delivered rows are pruned).
    outbox_id: int | None = None


class DashboardSession(SQLModel, table=True):
    __tablename__ = "dashboard_sessions"

    id: int | None = Field(default=None, primary_key=True)
    session_hash: str = Field(max_length=64, unique=True, index=True)
    user_id: int = Field(sa_type=BigInteger, index=True)
    scope: str = Field(max_length=16)
    departments: list[str] = Field(default_factory=list, sa_type=JSON)
    link_id: int | None = Field(default=None, foreign_key="dashboard_links.id")
    created_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    # Signed out (or ended by an administrator); expired sessions keep this empty.
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
