"""Who may use the web dashboard, and signing in without passwords.

``/dashboard`` in a private chat gives a person with a district role (admin, center head,
leader, supervisor) or department staff (people with ``departments`` in the district file) a
one-time link, sent through the outbox like every message. The link's token is random and
stored only as its SHA-256 digest, with the user, the scope it opens and a short expiry; using
it is one conditional update (``used_at IS NULL AND expires_at > now``), so of two uses of
one link exactly one wins. The winner gets a session, also stored as a digest, that expires.

Scopes: the district roles see everything, except that an admin tied to departments is that
department's admin (as for volunteers) and sees its cases only; department staff see their
departments' cases only. The file is the truth on every request: a session whose person lost
the scope it was opened with stops working.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.district import District, Role
from bot.i18n import N_
from bot.services.errors import UserError
from bot.services.outbox import send_text
from models import Case, CaseKind, DashboardSession, LoginLink, OutboxMessage, OutboxStatus

DISTRICT = "district"
DEPARTMENT = "department"
# Roles that see the whole district (an admin does too unless tied to departments).
DISTRICT_ROLES = frozenset({Role.CENTER_HEAD, Role.LEADER, Role.SUPERVISOR})
LOGIN_PATH = "/dashboard/login"


@dataclass(frozen=True)
class Access:
    """What one person may see on the dashboard."""

    scope: str
    departments: tuple[str, ...] = ()

    @property
    def district_wide(self) -> bool:
        return self.scope == DISTRICT

    def sees(self, department: str | None) -> bool:
        return self.district_wide or (department is not None and department in self.departments)

    def sees_case(self, case: Case) -> bool:
        """Its department's cases, and the help requests of its community."""
        return self.sees(case.department) or (
            case.kind is CaseKind.HELP and case.community in self.departments
        )


def access_of(district: District, user_id: int) -> Access | None:
    """The person's dashboard scope by the district file, or None: not for them."""
    person = district.person(user_id)
    if person is None:
        return None
    if any(person.has_role(role) for role in DISTRICT_ROLES) or (
        person.has_role(Role.ADMIN) and not person.departments
    ):
        return Access(DISTRICT)
    if person.departments:
        return Access(DEPARTMENT, tuple(sorted(person.departments)))
    return None


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# -- the link -----------------------------------------------------------------------------------


async def request_link(
    session: AsyncSession,
    district: District,
    *,
    user_id: int,
    lang: str,
    now: datetime,
    base_url: str | None,
    valid_for: timedelta,
) -> None:
    """Send the person a one-time sign-in link, or refuse with the reason."""
    access = access_of(district, user_id)
    if access is None:
        raise UserError(N_("dashboard.refused"))
    if base_url is None:
        raise UserError(N_("dashboard.unavailable"))
    token = new_secret()
    link = LoginLink(
        token_hash=digest(token),
        user_id=user_id,
        scope=access.scope,
        departments=list(access.departments),
        created_at=now,
        expires_at=now + valid_for,
    )
    session.add(link)
    row = send_text(
        session,
        chat_id=user_id,
        locale=lang,
        now=now,
        text_key=N_("dashboard.link"),
        url=f"{base_url}{LOGIN_PATH}?token={token}",
        minutes=int(valid_for.total_seconds() // 60),
    )
    await session.flush()
    link.outbox_id = row.id


class LinkState(StrEnum):
    VALID = "valid"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    USED = "used"


def _state(link: LoginLink | None, now: datetime) -> LinkState:
    if link is None:
        return LinkState.UNKNOWN
    if link.used_at is not None:
        return LinkState.USED
    if link.expires_at <= now:
        return LinkState.EXPIRED
    return LinkState.VALID


async def _link(session: AsyncSession, token: str) -> LoginLink | None:
    if not token:
        return None
    found = await session.scalars(
        select(LoginLink).where(col(LoginLink.token_hash) == digest(token))
    )
    return found.first()


async def peek_link(session: AsyncSession, token: str, *, now: datetime) -> LinkState:
    """Whether the link would work, without using it (link scanners only look)."""
    return _state(await _link(session, token), now)


@dataclass(frozen=True)
class Opened:
    """A session opened by a link: its secret id goes in the cookie."""

    session_id: str
    user_id: int
    expires_at: datetime


async def use_link(
    session: AsyncSession,
    district: District,
    token: str,
    *,
    now: datetime,
    lasts: timedelta,
) -> Opened | LinkState:
    """Use a link once: a new session, or why not."""
    taken: CursorResult[Any] = await session.execute(  # type: ignore[assignment]
        update(LoginLink)
        .where(
            col(LoginLink.token_hash) == digest(token),
            col(LoginLink.used_at).is_(None),
            col(LoginLink.expires_at) > now,
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:
        state = _state(await _link(session, token), now)
        return LinkState.USED if state is LinkState.VALID else state
    link = await _link(session, token)
    assert link is not None and link.id is not None
    await _forget_token(session, link)
    access = access_of(district, link.user_id)
    if access is None or access != Access(link.scope, tuple(link.departments)):
        # The person's role changed since the link was sent.
        return LinkState.EXPIRED
    session_id = new_secret()
    session.add(
        DashboardSession(
            session_hash=digest(session_id),
            user_id=link.user_id,
            scope=link.scope,
            departments=list(link.departments),
            link_id=link.id,
            created_at=now,
            expires_at=now + lasts,
        )
    )
    return Opened(session_id, link.user_id, now + lasts)


async def _forget_token(session: AsyncSession, link: LoginLink) -> None:
    """The delivered message keeps no working token in the outbox table."""
    if link.outbox_id is None:
        return
    row = await session.get(OutboxMessage, link.outbox_id)
    if row is not None and row.status is OutboxStatus.DELIVERED:
        row.context = {**row.context, "url": "…"}


# -- sessions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Viewer:
    """The signed-in person of one request."""

    user_id: int
    access: Access
    expires_at: datetime


async def viewer(
    session: AsyncSession, district: District, session_id: str, *, now: datetime
) -> Viewer | None:
    """The session's person when it is open, unexpired and their scope still holds."""
    found = await session.scalars(
        select(DashboardSession).where(col(DashboardSession.session_hash) == digest(session_id))
    )
    row = found.first()
    if row is None or row.ended_at is not None or row.expires_at <= now:
        return None
    access = access_of(district, row.user_id)
    if access is None or access != Access(row.scope, tuple(row.departments)):
        return None
    return Viewer(row.user_id, access, row.expires_at)


async def end_session(session: AsyncSession, session_id: str, *, now: datetime) -> None:
    await session.execute(
        update(DashboardSession)
        .where(
            col(DashboardSession.session_hash) == digest(session_id),
            col(DashboardSession.ended_at).is_(None),
        )
        .values(ended_at=now)
        .execution_options(synchronize_session=False)
    )


KEPT = timedelta(days=30)


async def prune(session: AsyncSession, *, now: datetime, kept: timedelta = KEPT) -> int:
    """Forget sessions and links that ended more than ``kept`` ago (kept until then so that
    who signed in when can be looked up)."""
    cutoff = now - kept
    sessions: CursorResult[Any] = await session.execute(  # type: ignore[assignment]
        delete(DashboardSession).where(col(DashboardSession.expires_at) < cutoff)
    )
    opened = select(col(DashboardSession.link_id)).where(
        col(DashboardSession.link_id).is_not(None)
    )
    links: CursorResult[Any] = await session.execute(  # type: ignore[assignment]
        delete(LoginLink).where(
            col(LoginLink.expires_at) < cutoff, col(LoginLink.id).not_in(opened)
        )
    )
    return int(sessions.rowcount or 0) + int(links.rowcount or 0)
