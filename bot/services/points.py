"""积分: volunteers' points — crediting confirmed help, the ledger, leaderboards, the shop and
one-time redemption codes checked by partner merchants.

The ledger (:class:`PointEntry`) is append-only and a balance is always its sum. Everything
that changes a volunteer's points first locks the volunteer's row, so two spends (or a spend
and an adjustment) of one volunteer never both see the same balance; SQLite serialises every
transaction anyway (``BEGIN IMMEDIATE``). Stock is taken with one conditional update (``taken <
stock``) and a code is used with another (``used_at IS NULL AND expires_at > now``), never
read-then-write, so the last item goes once and a code works once. Guards raise
:class:`UserError`, which rolls the whole update back.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.callbacks import RedeemOffer
from bot.district import District, Merchant, Offer, Role
from bot.i18n import N_, when
from bot.services.errors import UserError
from bot.services.outbox import button, enqueue, inline_keyboard, send_text
from models import (
    Case,
    EntryKind,
    HelpRequest,
    OfferStock,
    PointEntry,
    Redemption,
    Volunteer,
    VolunteerStatus,
)

# Commands in the private-chat menu, after the resident's own.
# Message ids built from a value in templates (``"points.kind." ~ kind``).
DYNAMIC_MESSAGE_IDS = (
    N_("points.kind.earn"), N_("points.kind.spend"), N_("points.kind.adjust"),
    N_("points.kind.refund"), N_("points.top.week"), N_("points.top.month"),
)  # fmt: skip

# No 0/O, 1/I: a code read aloud at a shop counter cannot be mistaken.
CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
CODE_LENGTH = 8
RECENT_ENTRIES = 10
LEADERBOARD_SIZE = 10
PAIR_WINDOW = timedelta(days=7)
MAX_REASON = 200
MAX_ADJUSTMENT = 100_000
_ADJUST_RE = re.compile(r"(\d{1,15})\s+([+-]?\d{1,9})\s+(.+)", re.DOTALL)
_CODE_STRIP_RE = re.compile(r"[\s\-–—_]+")

SPENDERS = frozenset({VolunteerStatus.APPROVED, VolunteerStatus.PAUSED})


def _local_midnight(district: District, day: date) -> datetime:
    return datetime.combine(day, time(0), district.tzinfo)


def _today(district: District, now: datetime) -> date:
    return now.astimezone(district.tzinfo).date()


# -- the ledger -------------------------------------------------------------------------------


async def balance(session: AsyncSession, user_id: int) -> int:
    total = await session.scalar(
        select(func.coalesce(func.sum(PointEntry.points), 0)).where(
            col(PointEntry.user_id) == user_id
        )
    )
    return int(total or 0)


async def _earned(session: AsyncSession, *conditions: Any) -> int:
    total = await session.scalar(
        select(func.coalesce(func.sum(PointEntry.points), 0)).where(
            col(PointEntry.kind) == EntryKind.EARN, *conditions
        )
    )
    return int(total or 0)


async def _locked_volunteer(session: AsyncSession, user_id: int) -> Volunteer | None:
    # Flushed first: reloading the row must not drop the caller's unsaved changes to it.
    await session.flush()
    return await session.get(Volunteer, user_id, with_for_update=True, populate_existing=True)


def _same_contact(case: Case, volunteer: Volunteer) -> bool:
    mine, theirs = (case.contact or "").strip(), (volunteer.contact or "").strip()
    return bool(mine) and mine.casefold() == theirs.casefold()


async def credit_help(
    session: AsyncSession,
    district: District,
    *,
    case: Case,
    volunteer_id: int,
    now: datetime,
    auto: bool,
) -> int:
    """Credit the volunteer for a help request closed as helped (``auto`` when the requester
    did not answer in time), within the district's caps; tells the volunteer. Returns the
    points credited. Call it in the transaction that closes the request."""
    volunteer = await _locked_volunteer(session, volunteer_id)
    if volunteer is None:
        return 0
    rules = district.points
    request = await session.get(HelpRequest, case.id)
    worth = rules.for_skills(request.skills if request is not None else [])
    if worth <= 0:
        return 0
    already = await session.scalar(
        select(col(PointEntry.id)).where(
            col(PointEntry.case_id) == case.id,
            col(PointEntry.user_id) == volunteer_id,
            col(PointEntry.kind) == EntryKind.EARN,
        )
    )
    if already is not None:
        return 0  # a request earns its volunteer once
    context: dict[str, Any] = {"number": case.number, "auto": auto, "worth": worth, "why": None}
    if case.resident_id == volunteer_id or _same_contact(case, volunteer):
        credited, context["why"] = 0, "self"
    else:
        midnight = _local_midnight(district, _today(district, now))
        today = await _earned(
            session, col(PointEntry.user_id) == volunteer_id, col(PointEntry.at) >= midnight
        )
        pair = await _earned(
            session,
            col(PointEntry.user_id) == volunteer_id,
            col(PointEntry.counterparty_id) == case.resident_id,
            col(PointEntry.at) > now - PAIR_WINDOW,
        )
        daily_room = max(0, rules.daily_cap - today)
        pair_room = max(0, rules.pair_weekly_cap - pair)
        credited = min(worth, daily_room, pair_room)
        if credited < worth:
            context["why"] = "daily" if daily_room <= pair_room else "pair"
    if credited > 0:
        session.add(
            PointEntry(
                user_id=volunteer_id,
                kind=EntryKind.EARN,
                points=credited,
                reason="help",
                case_id=case.id,
                counterparty_id=case.resident_id,
                by_id=None if auto else case.resident_id,
                auto=auto,
                at=now,
            )
        )
        await session.flush()
    enqueue(
        session,
        chat_id=volunteer_id,
        locale=volunteer.language,
        now=now,
        template="points_credit.html",
        context={**context, "points": credited, "balance": await balance(session, volunteer_id)},
    )
    return credited


def parse_adjustment(args: str | None) -> tuple[int, int, str]:
    """``<user id> <+/-points> <reason>``."""
    match = _ADJUST_RE.fullmatch((args or "").strip())
    if match is None:
        raise UserError(N_("points.adjust-usage"))
    user_id, points, reason = int(match[1]), int(match[2]), match[3].strip()
    if points == 0 or abs(points) > MAX_ADJUSTMENT:
        raise UserError(N_("points.adjust-bad-number"), limit=MAX_ADJUSTMENT)
    if len(reason) > MAX_REASON:
        raise UserError(N_("points.adjust-reason-long"), limit=MAX_REASON)
    return user_id, points, reason


async def adjust(
    session: AsyncSession,
    district: District,
    *,
    admin_id: int,
    args: str | None,
    now: datetime,
) -> PointEntry:
    """A district admin corrects a volunteer's points, with a reason; never below zero."""
    person = district.person(admin_id)
    if person is None or not person.has_role(Role.ADMIN):
        raise UserError(N_("points.adjust-not-admin"))
    user_id, points, reason = parse_adjustment(args)
    volunteer = await _locked_volunteer(session, user_id)
    if volunteer is None:
        raise UserError(N_("points.adjust-unknown"), user_id=user_id)
    current = await balance(session, user_id)
    if current + points < 0:
        raise UserError(N_("points.adjust-negative"), balance=current)
    entry = PointEntry(
        user_id=user_id,
        kind=EntryKind.ADJUST,
        points=points,
        reason=reason,
        by_id=admin_id,
        at=now,
    )
    session.add(entry)
    await session.flush()
    signed = f"{points:+d}"
    send_text(
        session,
        chat_id=user_id,
        locale=volunteer.language,
        now=now,
        text_key=N_("points.adjusted"),
        points=signed,
        reason=reason,
        balance=current + points,
    )
    send_text(
        session,
        chat_id=admin_id,
        locale=district.default_language,
        now=now,
        text_key=N_("points.adjust-done"),
        points=signed,
        name=volunteer.name,
        user_id=user_id,
        balance=current + points,
    )
    return entry


# -- /points and /top -------------------------------------------------------------------------


async def _volunteer(session: AsyncSession, user_id: int) -> Volunteer:
    volunteer = await session.get(Volunteer, user_id)
    if volunteer is None or volunteer.status not in SPENDERS:
        raise UserError(N_("points.not-volunteer"))
    return volunteer


def _offer_name(district: District, merchant: str, offer: str, lang: str) -> str:
    found = district.merchant(merchant)
    item = found.offer(offer) if found else None
    return item.names.get(lang) if item else offer


def _merchant_name(district: District, merchant: str, lang: str) -> str:
    found = district.merchant(merchant)
    return found.names.get(lang) if found else merchant


async def show_points(
    session: AsyncSession, district: District, *, user_id: int, lang: str, now: datetime
) -> int:
    """The balance and the latest entries; returns the balance."""
    await _volunteer(session, user_id)
    rows = (
        await session.execute(
            select(PointEntry, col(Case.number), col(Redemption.merchant), col(Redemption.offer))
            .outerjoin(Case, col(Case.id) == col(PointEntry.case_id))
            .outerjoin(Redemption, col(Redemption.id) == col(PointEntry.redemption_id))
            .where(col(PointEntry.user_id) == user_id)
            .order_by(col(PointEntry.at).desc(), col(PointEntry.id).desc())
            .limit(RECENT_ENTRIES)
        )
    ).all()
    entries = []
    for entry, number, merchant, offer in rows:
        if entry.kind in (EntryKind.SPEND, EntryKind.REFUND) and merchant and offer:
            detail = _offer_name(district, merchant, offer, lang)
        elif entry.kind is EntryKind.EARN:
            detail = number or ""
        else:
            detail = entry.reason
        entries.append(
            {
                "at": entry.at.isoformat(),
                "kind": entry.kind.value,
                "points": f"{entry.points:+d}",
                "detail": detail,
                "auto": entry.auto,
            }
        )
    total = await balance(session, user_id)
    enqueue(
        session,
        chat_id=user_id,
        locale=lang,
        now=now,
        template="points_balance.html",
        context={"balance": total, "entries": entries},
    )
    return total


@dataclass(frozen=True)
class Standing:
    rank: int
    user_id: int
    name: str
    points: int


async def leaderboard(
    session: AsyncSession, *, community: str, since: datetime, until: datetime
) -> list[Standing]:
    """Earnings of a community's volunteers in ``[since, until)``, best first; equal
    earnings share a rank."""
    total = func.sum(PointEntry.points).label("total")
    rows = (
        await session.execute(
            select(
                col(PointEntry.user_id),
                col(Volunteer.first_name),
                col(Volunteer.display_name),
                total,
            )
            .join(Volunteer, col(Volunteer.user_id) == col(PointEntry.user_id))
            .where(
                col(PointEntry.kind) == EntryKind.EARN,
                col(PointEntry.at) >= since,
                col(PointEntry.at) < until,
                col(Volunteer.community) == community,
            )
            .group_by(
                col(PointEntry.user_id), col(Volunteer.first_name), col(Volunteer.display_name)
            )
            .order_by(total.desc(), col(PointEntry.user_id))
        )
    ).all()
    standings: list[Standing] = []
    for index, (user_id, first_name, display_name, points) in enumerate(rows):
        rank = index + 1
        if standings and standings[-1].points == int(points):
            rank = standings[-1].rank
        standings.append(Standing(rank, int(user_id), display_name or first_name, int(points)))
    return standings


def _board(standings: list[Standing], user_id: int) -> dict[str, Any]:
    top = standings[:LEADERBOARD_SIZE]
    mine = next((s for s in standings if s.user_id == user_id), None)
    return {
        "top": [{"rank": s.rank, "name": s.name, "points": s.points} for s in top],
        "me": (
            {"rank": mine.rank, "points": mine.points}
            if mine is not None and mine not in top
            else None
        ),
    }


async def show_top(
    session: AsyncSession, district: District, *, user_id: int, lang: str, now: datetime
) -> None:
    """This week's and this month's leaderboards of the caller's community."""
    volunteer = await _volunteer(session, user_id)
    today = _today(district, now)
    week = _local_midnight(district, today - timedelta(days=today.weekday()))
    month = _local_midnight(district, today.replace(day=1))
    until = now + timedelta(seconds=1)
    unit = district.department(volunteer.community)
    enqueue(
        session,
        chat_id=user_id,
        locale=lang,
        now=now,
        template="points_top.html",
        context={
            "community": unit.names.get(lang) if unit else volunteer.community,
            "week": _board(
                await leaderboard(session, community=volunteer.community, since=week, until=until),
                user_id,
            ),
            "month": _board(
                await leaderboard(
                    session, community=volunteer.community, since=month, until=until
                ),
                user_id,
            ),
        },
    )


# -- the shop ---------------------------------------------------------------------------------


def offer_key(merchant: Merchant, offer: Offer) -> str:
    """A short stable name for a button: codes may be too long for callback data together,
    and positions move when the file is edited."""
    return hashlib.sha256(f"{merchant.code}/{offer.code}".encode()).hexdigest()[:10]


def find_offer(district: District, key: str) -> tuple[Merchant, Offer] | None:
    for merchant in district.merchants:
        for offer in merchant.offers:
            if offer_key(merchant, offer) == key:
                return merchant, offer
    return None


def _offer_open(district: District, offer: Offer, now: datetime) -> bool:
    return offer.valid_until is None or _today(district, now) <= offer.valid_until


async def taken_counts(session: AsyncSession) -> dict[tuple[str, str], int]:
    rows = (await session.execute(select(OfferStock))).scalars().all()
    return {(row.merchant, row.offer): row.taken for row in rows}


async def show_shop(
    session: AsyncSession, district: District, *, user_id: int, lang: str, now: datetime
) -> None:
    """Current offers (open and in stock) with the balance and a Redeem button each."""
    await _volunteer(session, user_id)
    taken = await taken_counts(session)
    offers: list[dict[str, Any]] = []
    rows: list[list[dict[str, Any]]] = []
    for merchant in district.merchants:
        for offer in merchant.offers:
            used = taken.get((merchant.code, offer.code), 0)
            if not _offer_open(district, offer, now) or (
                offer.stock is not None and used >= offer.stock
            ):
                continue
            name = offer.names.get(lang)
            offers.append(
                {
                    "merchant": merchant.names.get(lang),
                    "name": name,
                    "price": offer.price,
                    "description": offer.description.get(lang) if offer.description else None,
                    "left": None if offer.stock is None else offer.stock - used,
                    "until": offer.valid_until.isoformat() if offer.valid_until else None,
                }
            )
            rows.append(
                [
                    button(
                        N_("points.button.redeem"),
                        RedeemOffer(offer_key(merchant, offer), offer.price).pack(),
                        name=name,
                        price=offer.price,
                    )
                ]
            )
    enqueue(
        session,
        chat_id=user_id,
        locale=lang,
        now=now,
        template="points_shop.html",
        context={"balance": await balance(session, user_id), "offers": offers},
        keyboard=inline_keyboard(*rows) if rows else None,
    )


def _insert_ignoring_duplicates(session: AsyncSession, merchant: str, offer: str) -> Any:
    values = {"merchant": merchant, "offer": offer, "taken": 0}
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(OfferStock).values(**values).on_conflict_do_nothing()
    return sqlite.insert(OfferStock).values(**values).on_conflict_do_nothing()


async def take_stock(session: AsyncSession, merchant: str, offer: Offer) -> bool:
    """One of the offer, if any is left: a conditional update, never read-then-write."""
    await session.execute(_insert_ignoring_duplicates(session, merchant, offer.code))
    statement = update(OfferStock).where(
        col(OfferStock.merchant) == merchant, col(OfferStock.offer) == offer.code
    )
    if offer.stock is not None:
        statement = statement.where(col(OfferStock.taken) < offer.stock)
    result = await session.execute(
        statement.values(taken=col(OfferStock.taken) + 1).execution_options(
            synchronize_session=False
        )
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


async def _new_code(session: AsyncSession) -> str:
    while True:  # 32⁸ codes: a clash is all but impossible, but never reuse one
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        clash = await session.scalar(
            select(col(Redemption.id)).where(col(Redemption.code) == code)
        )
        if clash is None:
            return code


def show_code(code: str) -> str:
    """``ABCD-EFGH``: easier to read out; the dash is ignored when checked."""
    half = len(code) // 2
    return f"{code[:half]}-{code[half:]}"


async def redeem(
    session: AsyncSession,
    district: District,
    *,
    user_id: int,
    key: str,
    price: int,
    now: datetime,
) -> Redemption:
    """Spend points on an offer: balance checked under the volunteer's lock, stock taken by a
    conditional update, a spend entry and a one-time code, all in one transaction."""
    volunteer = await _locked_volunteer(session, user_id)
    if volunteer is None or volunteer.status not in SPENDERS:
        raise UserError(N_("points.not-volunteer"))
    found = find_offer(district, key)
    if found is None or found[1].price != price:
        raise UserError(N_("errors.stale-button"))
    merchant, offer = found
    lang = volunteer.language
    if not _offer_open(district, offer, now):
        raise UserError(N_("points.offer-closed"))
    current = await balance(session, user_id)
    if current < offer.price:
        raise UserError(N_("points.not-enough"), balance=current, price=offer.price)
    if not await take_stock(session, merchant.code, offer):
        raise UserError(N_("points.sold-out"), name=offer.names.get(lang))
    expires_at = now + timedelta(days=district.points.code_valid_days)
    if offer.valid_until is not None:
        last_day = _local_midnight(district, offer.valid_until + timedelta(days=1))
        expires_at = min(expires_at, last_day)
    redemption = Redemption(
        code=await _new_code(session),
        user_id=user_id,
        merchant=merchant.code,
        offer=offer.code,
        points=offer.price,
        created_at=now,
        expires_at=expires_at,
    )
    session.add(redemption)
    await session.flush()
    session.add(
        PointEntry(
            user_id=user_id,
            kind=EntryKind.SPEND,
            points=-offer.price,
            reason="redeem",
            redemption_id=redemption.id,
            by_id=user_id,
            at=now,
        )
    )
    enqueue(
        session,
        chat_id=user_id,
        locale=lang,
        now=now,
        template="points_code.html",
        context={
            "code": show_code(redemption.code),
            "merchant": merchant.names.get(lang),
            "offer": offer.names.get(lang),
            "description": offer.description.get(lang) if offer.description else None,
            "price": offer.price,
            "expires": expires_at.isoformat(),
            "balance": current - offer.price,
        },
    )
    return redemption


# -- /redeem at the merchant ------------------------------------------------------------------


def normalise_code(text: str | None) -> str:
    """Upper case, without spaces and dashes; raises when it cannot be a code."""
    code = _CODE_STRIP_RE.sub("", text or "").upper()
    if len(code) != CODE_LENGTH or any(char not in CODE_ALPHABET for char in code):
        raise UserError(N_("points.code-malformed"), length=CODE_LENGTH)
    return code


async def check_code(
    session: AsyncSession,
    district: District,
    *,
    staff_id: int,
    text: str | None,
    lang: str,
    now: datetime,
) -> Redemption:
    """A merchant's staff checks a code: valid once, then used; otherwise why not."""
    merchants = district.merchants_of(staff_id)
    if not merchants:
        raise UserError(N_("points.redeem-not-merchant"))
    code = normalise_code(text)
    mine = [merchant.code for merchant in merchants]
    result = await session.execute(
        update(Redemption)
        .where(
            col(Redemption.code) == code,
            col(Redemption.merchant).in_(mine),
            col(Redemption.used_at).is_(None),
            col(Redemption.refunded_at).is_(None),
            col(Redemption.expires_at) > now,
        )
        .values(used_at=now, used_by=staff_id)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    redemption = await session.scalar(
        select(Redemption)
        .where(col(Redemption.code) == code)
        .execution_options(populate_existing=True)
    )
    if result.rowcount != 1:
        if redemption is None or redemption.merchant not in mine:
            raise UserError(N_("points.code-unknown"))
        if redemption.used_at is not None:
            raise UserError(N_("points.code-used"), time=when(redemption.used_at))
        raise UserError(N_("points.code-expired"), time=when(redemption.expires_at))
    assert redemption is not None
    volunteer = await session.get(Volunteer, redemption.user_id)
    send_text(
        session,
        chat_id=staff_id,
        locale=lang,
        now=now,
        text_key=N_("points.code-valid"),
        offer=_offer_name(district, redemption.merchant, redemption.offer, lang),
        name=volunteer.name if volunteer else "",
        code=show_code(code),
    )
    if volunteer is not None:
        send_text(
            session,
            chat_id=volunteer.user_id,
            locale=volunteer.language,
            now=now,
            text_key=N_("points.code-was-used"),
            offer=_offer_name(district, redemption.merchant, redemption.offer, volunteer.language),
            merchant=_merchant_name(district, redemption.merchant, volunteer.language),
        )
    return redemption


# -- refunds ----------------------------------------------------------------------------------


def _expired(now: datetime) -> tuple[Any, ...]:
    return (
        col(Redemption.used_at).is_(None),
        col(Redemption.refunded_at).is_(None),
        col(Redemption.expires_at) <= now,
    )


async def any_expired(session: AsyncSession, *, now: datetime) -> bool:
    """Whether a code expired unused and is not refunded yet (a plain read, for a read
    transaction; :func:`refund_expired` reads them again)."""
    found = await session.scalar(select(col(Redemption.id)).where(*_expired(now)).limit(1))
    return found is not None


async def refund_expired(
    session: AsyncSession, district: District, *, now: datetime, limit: int = 200
) -> int:
    """Codes that expired unused give their points back (a refund entry) and their stock."""
    query = (
        select(col(Redemption.id))
        .where(*_expired(now))
        .order_by(col(Redemption.expires_at))
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list((await session.scalars(query)).all())
    refunded = 0
    for redemption_id in ids:
        result = await session.execute(
            update(Redemption)
            .where(
                col(Redemption.id) == redemption_id,
                col(Redemption.used_at).is_(None),
                col(Redemption.refunded_at).is_(None),
                col(Redemption.expires_at) <= now,
            )
            .values(refunded_at=now)
            .execution_options(synchronize_session=False)
        )
        assert isinstance(result, CursorResult)
        if result.rowcount != 1:
            continue
        redemption = await session.get(Redemption, redemption_id, populate_existing=True)
        assert redemption is not None
        await session.execute(
            update(OfferStock)
            .where(
                col(OfferStock.merchant) == redemption.merchant,
                col(OfferStock.offer) == redemption.offer,
                col(OfferStock.taken) > 0,
            )
            .values(taken=col(OfferStock.taken) - 1)
            .execution_options(synchronize_session=False)
        )
        # No lock on the volunteer: a refund only adds, and locking here after the stock row
        # would take the locks in the opposite order to a redemption.
        volunteer = await session.get(Volunteer, redemption.user_id)
        session.add(
            PointEntry(
                user_id=redemption.user_id,
                kind=EntryKind.REFUND,
                points=redemption.points,
                reason="expired",
                redemption_id=redemption.id,
                at=now,
            )
        )
        await session.flush()
        if volunteer is not None:
            send_text(
                session,
                chat_id=volunteer.user_id,
                locale=volunteer.language,
                now=now,
                text_key=N_("points.refunded"),
                offer=_offer_name(
                    district, redemption.merchant, redemption.offer, volunteer.language
                ),
                points=redemption.points,
                balance=await balance(session, volunteer.user_id),
            )
        refunded += 1
    return refunded
