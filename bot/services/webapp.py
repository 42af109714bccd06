"""Filing in one form (the Mini App): the resident's draft, the photos uploaded for it, and the
submission, which files the case through :func:`bot.services.cases.submit` like the chat
dialog does (the same checks, transaction, card, ladder and receipt in the chat).

Photos are decoded and re-encoded here before they go anywhere: only JPEG, PNG and WebP are
taken, at most :data:`MAX_PHOTO_BYTES` as sent, and what is kept is a fresh JPEG at most
:data:`MAX_SIDE` pixels on its longer side, with no metadata (no camera, no place). A case
names such a photo ``upload:<key>`` until the sender has uploaded it to Telegram once.

A submission carries an id the app chose for its draft: the same id again (a double tap, a
retry after a lost answer) finds the case already filed instead of filing another.
"""

from __future__ import annotations

import io
import math
import re
import secrets
from datetime import datetime
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.district import CategoryKind, District
from bot.i18n import N_
from bot.services import cases, early_warning
from bot.services.errors import UserError
from bot.warning import KeywordLibrary
from models import Case, CaseKind, PhotoUpload, WebAppDraft, WebAppSubmission
from models.webapp import UPLOAD_PREFIX

MAX_MEGABYTES = 10
MAX_PHOTO_BYTES = MAX_MEGABYTES * 2**20
MAX_PIXELS = 50_000_000  # an image header claiming more is refused before it is decoded
MAX_SIDE = 2560  # Telegram keeps photos at most this size on the longer side
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP"})
MAX_CONTACT = 64
MAX_DRAFT_BYTES = 16_000
# What the form files, and how it names each.
KINDS = {CaseKind.REPORT: N_("webapp.kind.report"), CaseKind.SAY: N_("webapp.kind.say")}
SUBMISSION = re.compile(r"^[0-9a-fA-F-]{8,36}$")


class Refused(UserError):
    """A request the app must be told no to, with the HTTP status that says why."""

    def __init__(self, status: int, message_id: str, **params: Any) -> None:
        super().__init__(message_id, **params)
        self.status = status


# -- the form -----------------------------------------------------------------------------------


def form(district: District, lang: str, draft: WebAppDraft | None) -> dict[str, Any]:
    """What the form offers: the report and post categories, the district's outline, the
    limits, and the resident's draft (the route adds the kinds' names)."""
    return {
        "lang": lang,
        "categories": [
            {"code": c.code, "name": c.names.get(lang), "kind": c.kind.value}
            for c in district.categories
            if c.kind in (CategoryKind.REPORT, CategoryKind.SAY)
        ],
        "outline": [list(corner) for corner in district.district.outline or ()] or None,
        "limits": {
            "photos": cases.MAX_PHOTOS,
            "photo_bytes": MAX_PHOTO_BYTES,
            "description": cases.MAX_DESCRIPTION,
            "address": cases.MAX_ADDRESS,
            "contact": MAX_CONTACT,
        },
        "draft": draft.data if draft is not None else None,
    }


async def load_draft(session: AsyncSession, user_id: int) -> WebAppDraft | None:
    return await session.get(WebAppDraft, user_id)


async def save_draft(
    session: AsyncSession, user_id: int, data: dict[str, Any], *, size: int, now: datetime
) -> None:
    """Keep what the resident has filled in, as they left it (checked only when submitted)."""
    if size > MAX_DRAFT_BYTES:
        raise Refused(413, N_("webapp.error.draft-too-big"))
    draft = await session.get(WebAppDraft, user_id, with_for_update=True)
    if draft is None:
        session.add(WebAppDraft(user_id=user_id, data=data, updated_at=now))
    else:
        draft.data, draft.updated_at = data, now


# -- photos -----------------------------------------------------------------------------------


def check_photo(data: bytes) -> tuple[bytes, int, int]:
    """The photo as the bot keeps it (a fresh JPEG with no metadata), or :class:`Refused`."""
    if len(data) > MAX_PHOTO_BYTES:
        raise Refused(413, N_("webapp.error.photo-too-big"), limit=MAX_MEGABYTES)
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in ACCEPTED_FORMATS:
                raise Refused(415, N_("webapp.error.not-a-photo"))
            if image.width * image.height > MAX_PIXELS:
                raise Refused(
                    413, N_("webapp.error.photo-too-big"), limit=MAX_PHOTO_BYTES // 2**20
                )
            image.load()
            upright = ImageOps.exif_transpose(image)
            upright.thumbnail((MAX_SIDE, MAX_SIDE))
            flat = upright.convert("RGB")
            out = io.BytesIO()
            flat.save(out, "JPEG", quality=85, optimize=True)
            return out.getvalue(), flat.width, flat.height
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as error:
        raise Refused(415, N_("webapp.error.not-a-photo")) from error


async def add_photo(session: AsyncSession, user_id: int, data: bytes, *, now: datetime) -> str:
    """Check and keep one photo for the resident's draft; returns its key."""
    waiting = await session.scalar(
        select(func.count())
        .select_from(PhotoUpload)
        .where(col(PhotoUpload.user_id) == user_id, col(PhotoUpload.case_id).is_(None))
    )
    # A draft holds at most five; a few more may wait while the resident swaps some out.
    if int(waiting or 0) >= 2 * cases.MAX_PHOTOS:
        raise Refused(409, N_("webapp.error.photos-full"), limit=cases.MAX_PHOTOS)
    content, width, height = check_photo(data)
    key = secrets.token_hex(16)
    session.add(
        PhotoUpload(
            key=key, user_id=user_id, content=content, width=width, height=height, created_at=now
        )
    )
    return key


async def photo(session: AsyncSession, user_id: int, key: str) -> bytes:
    upload = await session.get(PhotoUpload, key)
    if upload is None or upload.user_id != user_id:
        raise Refused(404, N_("webapp.error.photo-gone"))
    return upload.content


async def remove_photo(session: AsyncSession, user_id: int, key: str) -> None:
    """A photo taken out of the draft (one already filed with a case stays with it)."""
    await session.execute(
        delete(PhotoUpload).where(
            col(PhotoUpload.key) == key,
            col(PhotoUpload.user_id) == user_id,
            col(PhotoUpload.case_id).is_(None),
        )
    )


# -- submitting -------------------------------------------------------------------------------


async def submit(
    session: AsyncSession,
    district: District,
    *,
    resident: cases.Person,
    data: dict[str, Any],
    now: datetime,
    keywords: KeywordLibrary | None = None,
) -> tuple[Case, bool]:
    """File the form's case, screened for dispute risks like the chat's (``keywords``);
    returns it and whether it was filed now (False: this submission was filed before, and
    nothing changed)."""
    submission = str(data.get("submission") or "")
    if not SUBMISSION.match(submission):
        raise Refused(400, N_("webapp.error.bad-form"))
    # The submission's row first: a second try of the same one waits here for the first to
    # commit, then finds its case (PostgreSQL: the primary key; SQLite: one writer at a time).
    existing = await session.get(WebAppSubmission, submission)
    if existing is not None:
        if existing.user_id != resident.id or existing.case_id is None:
            raise Refused(409, N_("webapp.error.bad-form"))
        case = await session.get(Case, existing.case_id)
        assert case is not None
        return case, False
    row = WebAppSubmission(submission=submission, user_id=resident.id, created_at=now)
    session.add(row)
    await session.flush()
    draft, keys = await _draft(session, resident.id, data)
    case = await cases.submit(
        session,
        district,
        resident=resident,
        draft=draft,
        now=now,
    )
    row.case_id = case.id
    await session.execute(
        update(PhotoUpload)
        .where(col(PhotoUpload.key).in_(keys))
        .values(case_id=case.id)
        .execution_options(synchronize_session=False)
    )
    await session.execute(delete(WebAppDraft).where(col(WebAppDraft.user_id) == resident.id))
    if keywords is not None:
        await early_warning.screen_case(session, district, keywords, case, now=now)
    return case, True


async def _draft(
    session: AsyncSession, user_id: int, data: dict[str, Any]
) -> tuple[cases.Draft, list[str]]:
    """The form's fields as the case service's draft, each checked as the chat dialog does."""
    try:
        kind = CaseKind(str(data.get("kind")))
    except ValueError as error:
        raise Refused(400, N_("webapp.error.bad-form")) from error
    if kind not in KINDS:
        raise Refused(400, N_("webapp.error.bad-form"))
    keys = [str(key) for key in _list(data.get("photos"))]
    if len(keys) > cases.MAX_PHOTOS or len(set(keys)) != len(keys):
        raise Refused(400, N_("webapp.error.too-many-photos"), limit=cases.MAX_PHOTOS)
    if kind is CaseKind.SAY and keys:
        raise Refused(400, N_("webapp.error.bad-form"))
    owned = set(
        (
            await session.scalars(
                select(col(PhotoUpload.key)).where(
                    col(PhotoUpload.key).in_(keys),
                    col(PhotoUpload.user_id) == user_id,
                    col(PhotoUpload.case_id).is_(None),
                )
            )
        ).all()
    )
    if owned != set(keys):
        raise Refused(400, N_("webapp.error.photo-gone"))
    latitude, longitude = _point(data.get("latitude"), data.get("longitude"))
    address = _text(data.get("address"))
    if address is not None and len(address) > cases.MAX_ADDRESS:
        raise Refused(
            400, N_("dialog.text-too-long"), limit=cases.MAX_ADDRESS, length=len(address)
        )
    if kind is CaseKind.REPORT and latitude is None and address is None:
        raise Refused(400, N_("webapp.error.place-needed"))
    share_contact = data.get("share_contact") is True
    contact = _text(data.get("contact")) if share_contact else None
    if share_contact and (contact is None or len(contact) > MAX_CONTACT):
        raise Refused(400, N_("webapp.error.contact"), limit=MAX_CONTACT)
    category = _text(data.get("category"))
    draft = cases.Draft(
        kind=kind,
        photos=[UPLOAD_PREFIX + key for key in keys],
        description=str(data.get("description") or ""),
        category=category,
        latitude=latitude,
        longitude=longitude,
        address=address,
        anonymous=data.get("anonymous") is True,
        share_contact=share_contact,
        contact=contact,
    )
    return draft, keys


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _point(latitude: Any, longitude: Any) -> tuple[float | None, float | None]:
    if latitude is None and longitude is None:
        return None, None
    if not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in (latitude, longitude)
    ):
        raise Refused(400, N_("webapp.error.bad-form"))
    lat, lon = float(latitude), float(longitude)
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise Refused(400, N_("webapp.error.bad-form"))
    return lat, lon


# -- Telegram's copies and pruning --------------------------------------------------------------


async def learned(session: AsyncSession, file_ids: dict[str, str]) -> None:
    """Telegram has these uploaded photos now (``upload:<key>`` → file id): their cases name
    them by file id from here on, as a photo sent in the chat is named."""
    keys = [name.removeprefix(UPLOAD_PREFIX) for name in file_ids]
    found = await session.scalars(
        select(col(PhotoUpload.case_id)).where(
            col(PhotoUpload.key).in_(keys), col(PhotoUpload.case_id).is_not(None)
        )
    )
    for case_id in sorted({case_id for case_id in found if case_id is not None}):
        case = await session.get(Case, case_id, with_for_update=True)
        if case is not None:
            case.photos = [file_ids.get(photo, photo) for photo in case.photos]
