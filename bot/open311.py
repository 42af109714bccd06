"""The Open311 GeoReport v2 API (JSON only): how other channels — the district's 12345
hotline, a city app — file cases and follow them.

Services are the district's report and post categories (help requests are neighbours helping
neighbours through volunteers, not municipal service requests, so they are neither offered
nor listed). A request filed here is a case filed through the same service as a resident's
(:func:`bot.services.cases.submit`: the department's card, triage, the ladder, statistics);
its source is the integrating system (``open311:<code>``), which follows it with GET requests,
so nobody is messaged in Telegram about it. What the system tells about its caller (name,
phone, email) is kept like a resident's personal data: never on a card, in a log or in any
answer here.

Every answer is a JSON document; errors are the spec's ``[{"code": …, "description": …}]``
with the same HTTP status. Texts for people (service names, status notes, errors) are in the
language asked for by ``locale`` or ``Accept-Language``, else the district's.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramNotFound
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from bot.clock import Clock
from bot.db import SessionFactory, read_transaction, transaction
from bot.district import Category, CategoryKind, District, Integration
from bot.i18n import N_, Catalogues, Translator, match_language
from bot.logs import log_event
from bot.services import cases, early_warning, privacy
from bot.services.errors import UserError
from bot.telegram_files import TelegramFiles
from bot.warning import EarlyWarning
from models import Case, CaseKind, CaseStatus, Open311Request
from models.case import OPEN, OPEN311_PREFIX

logger = logging.getLogger(__name__)

PREFIX = "/open311/v2"
SERVICE_KINDS = (CategoryKind.REPORT, CategoryKind.SAY)
DEFAULT_WINDOW = timedelta(days=90)
MAX_RESULTS = 1000
MAX_MEDIA_URL = 500
MAX_NAME = 128
MAX_CONTACT = 128
CLOSED = frozenset({CaseStatus.CLOSED, CaseStatus.WITHDRAWN})
# Whistle's own status, as an integrating system reads it in status_notes.
STATUS_NOTES = {
    CaseStatus.TRIAGE: N_("open311.status.triage"),
    CaseStatus.DISPATCHED: N_("open311.status.dispatched"),
    CaseStatus.ACKNOWLEDGED: N_("open311.status.acknowledged"),
    CaseStatus.ANSWERED: N_("open311.status.answered"),
    CaseStatus.REOPENED: N_("open311.status.reopened"),
    CaseStatus.CLOSED: N_("open311.status.closed"),
    CaseStatus.PUBLISHED: N_("open311.status.published"),
    CaseStatus.WITHDRAWN: N_("open311.status.withdrawn"),
    CaseStatus.BUNDLED: N_("open311.status.bundled"),
}
GROUPS = {
    CategoryKind.REPORT: N_("open311.group.report"),
    CategoryKind.SAY: N_("open311.group.say"),
}


class Open311Error(Exception):
    """An answer in the spec's error format: the HTTP status is also the body's code."""

    def __init__(self, status: int, message_id: str, **params: Any) -> None:
        super().__init__(message_id)
        self.status = status
        self.message_id = message_id
        self.params = params


def error_body(status: int, description: str) -> list[dict[str, Any]]:
    return [{"code": status, "description": description}]


@dataclass
class Open311:
    """The API's handlers; :meth:`register` adds its routes to the service's aiohttp app."""

    factory: SessionFactory
    district: District
    catalogues: Catalogues
    clock: Clock
    files: TelegramFiles  # photos come through the bot
    early_warning: EarlyWarning | None = None
    on_commit: Callable[[], None] | None = None  # wakes the sender after a case is filed
    public_url: str | None = None  # where media_url points (else the request's own host)

    def register(self, app: web.Application) -> None:
        app.router.add_get(f"{PREFIX}/services.json", self.services)
        app.router.add_get(PREFIX + "/services/{code}.json", self.service_definition)
        app.router.add_post(f"{PREFIX}/requests.json", self.create_request)
        app.router.add_get(f"{PREFIX}/requests.json", self.list_requests)
        app.router.add_get(PREFIX + "/requests/{id}.json", self.get_request)
        app.router.add_get(PREFIX + "/media/{id}.jpg", self.media)

    # -- services ----------------------------------------------------------------------------

    async def services(self, request: web.Request) -> web.Response:
        t = self._translator(request)
        body = [self._service(category, t) for category in self._services()]
        return web.json_response(body)

    async def service_definition(self, request: web.Request) -> web.Response:
        t = self._translator(request)
        try:
            category = self._find_service(request.match_info["code"])
        except Open311Error as error:
            return self._error(error, t)
        # No extra questions beyond the standard fields (the spec's attributes).
        return web.json_response({"service_code": category.code, "attributes": []})

    def _services(self) -> list[Category]:
        return [c for c in self.district.categories if c.kind in SERVICE_KINDS]

    def _find_service(self, code: str) -> Category:
        category = self.district.category(code)
        if category is None or category.kind not in SERVICE_KINDS:
            raise Open311Error(404, N_("open311.error.service-unknown"), code=code[:64])
        return category

    def _service(self, category: Category, t: Translator) -> dict[str, Any]:
        return {
            "service_code": category.code,
            "service_name": category.names.get(t.language),
            "description": category.names.get(t.language),
            "metadata": False,
            "type": "realtime",
            "keywords": category.kind.value,
            "group": t(GROUPS[category.kind]),
        }

    # -- filing ------------------------------------------------------------------------------

    async def create_request(self, request: web.Request) -> web.Response:
        t = self._translator(request)
        try:
            fields = await _fields(request)
            integration = self._integration(fields)
            key = _idempotency_key(request)
            draft, caller = self._draft(fields, integration)
            try:
                case, replayed = await self._file(draft, caller, integration, key)
            except IntegrityError:
                if key is None:
                    raise
                # The same key filed by a concurrent try that committed first: this try finds
                # its case now.
                case, replayed = await self._file(draft, caller, integration, key)
        except Open311Error as error:
            return self._error(error, t)
        except UserError as error:  # the case service refused it (too long a description …)
            return self._error(Open311Error(400, error.message_id, **error.params), t)
        if replayed:
            log_event(logger, "open311.replayed", case=case.number, integration=integration.code)
        else:
            if self.on_commit is not None:
                self.on_commit()
            log_event(logger, "open311.filed", case=case.number, integration=integration.code)
        body = [
            {
                "service_request_id": case.number,
                "service_notice": self._notice(case, t),
                "account_id": None,
            }
        ]
        headers = {"Idempotent-Replayed": "true"} if replayed else None
        return web.json_response(body, status=201, headers=headers)

    def _integration(self, fields: Mapping[str, str]) -> Integration:
        integration = self.district.integration_by_key(fields.get("api_key", ""))
        if integration is None:
            log_event(logger, "open311.forbidden", logging.WARNING)
            raise Open311Error(403, N_("open311.error.api-key"))
        return integration

    def _draft(
        self, fields: Mapping[str, str], integration: Integration
    ) -> tuple[cases.Draft, cases.Person]:
        code = fields.get("service_code", "")
        if not code:
            raise Open311Error(400, N_("open311.error.missing"), field="service_code")
        category = self._find_service(code)
        description = fields.get("description", "")
        media_url = fields.get("media_url") or None
        if media_url is not None and (
            len(media_url) > MAX_MEDIA_URL or not media_url.startswith(("http://", "https://"))
        ):
            raise Open311Error(400, N_("open311.error.bad-value"), field="media_url")
        if not description and media_url is None:
            raise Open311Error(400, N_("open311.error.description-or-media"))
        if not description:
            description = self.catalogues.translator(self.district.default_language)(
                N_("open311.media-only")
            )
        latitude, longitude = _coordinates(fields)
        address = fields.get("address_string") or None
        address_id = fields.get("address_id") or None
        if latitude is None and address is None and address_id is None:
            raise Open311Error(400, N_("open311.error.location"))
        if address is None and address_id is not None:
            # The integrating system's own address register: kept as the address shown.
            address = f"#{address_id}"
        if address is not None and len(address) > cases.MAX_ADDRESS:
            raise Open311Error(400, N_("open311.error.bad-value"), field="address_string")
        name = " ".join(fields.get(key, "") for key in ("first_name", "last_name")).strip()
        contact = ", ".join(v for v in (fields.get("phone"), fields.get("email")) if v)
        draft = cases.Draft(
            kind=CaseKind(category.kind.value),
            category=category.code,
            description=description,
            latitude=latitude,
            longitude=longitude,
            address=address,
            # Whatever was said about the caller stays off every card and list.
            anonymous=True,
            share_contact=bool(contact),
            contact=contact[:MAX_CONTACT] or None,
            source=OPEN311_PREFIX + integration.code,
            media_url=media_url,
        )
        # No Telegram user stands behind the case: the id no user has.
        caller = cases.Person(privacy.FORGOTTEN, name[:MAX_NAME], self.district.default_language)
        return draft, caller

    async def _file(
        self,
        draft: cases.Draft,
        caller: cases.Person,
        integration: Integration,
        key: str | None,
    ) -> tuple[Case, bool]:
        """File the case; with an idempotency key already used by this integration, the case
        that key filed instead (True: a replay)."""
        now = self.clock.now()
        claim: Open311Request | None = None
        async with transaction(self.factory) as session:
            if key is not None:
                earlier = await session.scalar(
                    select(Case)
                    .join(Open311Request, col(Open311Request.case_id) == col(Case.id))
                    .where(
                        col(Open311Request.integration) == integration.code,
                        col(Open311Request.key) == key,
                    )
                )
                if earlier is not None:
                    return earlier, True
                # Claimed before filing: a concurrent try with the same key waits here and then
                # fails on the key, instead of filing a case (and using a number) for nothing.
                claim = Open311Request(integration=integration.code, key=key, created_at=now)
                session.add(claim)
                await session.flush()
            case = await cases.submit(
                session, self.district, resident=caller, draft=draft, now=now
            )
            if self.early_warning is not None:
                await early_warning.screen_case(
                    session, self.district, self.early_warning.library, case, now=now
                )
            if claim is not None:
                claim.case_id = case.id
        return case, False

    def _notice(self, case: Case, t: Translator) -> str:
        if case.status is CaseStatus.DISPATCHED:
            return t(N_("open311.notice.department"), department=self._unit(case.department, t))
        return t(N_("open311.notice.triage"), unit=self._agency(case, t) or "")

    # -- following ---------------------------------------------------------------------------

    async def list_requests(self, request: web.Request) -> web.Response:
        t = self._translator(request)
        try:
            query = self._query(request.query)
        except Open311Error as error:
            return self._error(error, t)
        async with read_transaction(self.factory) as session:
            found = (await session.scalars(query)).all()
        base = self._base_url(request)
        return web.json_response([self._request(case, t, base) for case in found])

    def _query(self, params: Mapping[str, str]) -> Any:
        query = select(Case).where(col(Case.kind) != CaseKind.HELP)
        ids = _split(params.get("service_request_id", ""))
        if ids:
            # The spec: with ids given, the other filters are ignored.
            query = query.where(col(Case.number).in_([i.upper() for i in ids[:MAX_RESULTS]]))
        else:
            codes = _split(params.get("service_code", ""))
            if codes:
                query = query.where(col(Case.category).in_(codes))
            statuses = _split(params.get("status", "").lower())
            if statuses:
                if not set(statuses) <= {"open", "closed"}:
                    raise Open311Error(400, N_("open311.error.bad-value"), field="status")
                wanted: set[CaseStatus] = set()
                if "open" in statuses:
                    wanted |= OPEN
                if "closed" in statuses:
                    wanted |= CLOSED
                query = query.where(col(Case.status).in_(sorted(wanted)))
            start = self._datetime(params, "start_date")
            end = self._datetime(params, "end_date")
            if start is None:
                start = (end or self.clock.now()) - DEFAULT_WINDOW
            query = query.where(col(Case.created_at) >= start)
            if end is not None:
                query = query.where(col(Case.created_at) <= end)
        return query.order_by(col(Case.created_at).desc(), col(Case.id).desc()).limit(MAX_RESULTS)

    def _datetime(self, params: Mapping[str, str], name: str) -> datetime | None:
        raw = params.get(name, "").strip()
        if not raw:
            return None
        try:
            moment = datetime.fromisoformat(raw.replace("z", "Z"))
        except ValueError:
            raise Open311Error(400, N_("open311.error.bad-value"), field=name) from None
        if moment.tzinfo is None:  # a local time of the district
            moment = moment.replace(tzinfo=self.district.tzinfo)
        return moment

    async def get_request(self, request: web.Request) -> web.Response:
        t = self._translator(request)
        async with read_transaction(self.factory) as session:
            case = await self._case(session, request.match_info["id"])
        if case is None:
            error = Open311Error(
                404, N_("open311.error.request-unknown"), id=request.match_info["id"][:32]
            )
            return self._error(error, t)
        return web.json_response([self._request(case, t, self._base_url(request))])

    async def _case(self, session: Any, number: str) -> Case | None:
        case: Case | None = await session.scalar(
            select(Case).where(col(Case.number) == number.strip().upper())
        )
        return None if case is None or case.kind is CaseKind.HELP else case

    def _request(self, case: Case, t: Translator, base: str) -> dict[str, Any]:
        """A case as the spec's service request. Never the resident's (or caller's) name,
        contact, or a help request's door: those are not among the fields at all."""
        category = self.district.category(case.category) if case.category else None
        return {
            "service_request_id": case.number,
            "status": "closed" if case.status in CLOSED else "open",
            "status_notes": t(STATUS_NOTES[case.status]),
            "service_name": category.names.get(t.language) if category else None,
            "service_code": case.category,
            "description": case.description,
            "agency_responsible": self._agency(case, t),
            "service_notice": None,
            "requested_datetime": self._iso(case.created_at),
            "updated_datetime": self._iso(case.updated_at),
            "expected_datetime": self._iso(case.deadline_at),
            "address": case.address,
            "address_id": None,
            "zipcode": None,
            "lat": case.latitude,
            "long": case.longitude,
            "media_url": self._media_url(case, base),
        }

    def _agency(self, case: Case, t: Translator) -> str | None:
        """Who holds the case: its department, or while it waits for assignment the street
        office triaging it or the governance center."""
        if case.status is CaseStatus.TRIAGE:
            if case.triage_step and case.triage_unit:
                return self._unit(case.triage_unit, t)
            return self.district.governance_center.names.get(t.language)
        return self._unit(case.department, t) if case.department else None

    def _unit(self, code: str | None, t: Translator) -> str:
        unit = (
            (self.district.department(code) or self.district.street_office(code)) if code else None
        )
        return unit.names.get(t.language) if unit else (code or "")

    def _iso(self, moment: datetime | None) -> str | None:
        if moment is None:
            return None
        return moment.astimezone(self.district.tzinfo).isoformat(timespec="seconds")

    def _media_url(self, case: Case, base: str) -> str | None:
        if case.photos:
            return f"{base}{PREFIX}/media/{case.number}.jpg"
        return case.media_url

    def _base_url(self, request: web.Request) -> str:
        return self.public_url or f"{request.scheme}://{request.host}"

    # -- media -------------------------------------------------------------------------------

    async def media(self, request: web.Request) -> web.Response:
        """The case's first photo, fetched from Telegram through the bot."""
        t = self._translator(request)
        async with read_transaction(self.factory) as session:
            case = await self._case(session, request.match_info["id"])
        if case is None or not case.photos:
            error = Open311Error(
                404, N_("open311.error.request-unknown"), id=request.match_info["id"][:32]
            )
            return self._error(error, t)
        try:
            data = await self.files.fetch(case.photos[0])
        except (FileNotFoundError, TelegramNotFound, TelegramBadRequest):
            return self._error(Open311Error(404, N_("open311.error.media-gone")), t)
        except TelegramAPIError as error:
            log_event(
                logger,
                "open311.media_failed",
                logging.WARNING,
                case=case.number,
                error=type(error).__name__,
            )
            return self._error(Open311Error(502, N_("open311.error.media-unavailable")), t)
        return web.Response(body=data, content_type="image/jpeg")

    # -- languages and errors ----------------------------------------------------------------

    def _translator(self, request: web.Request) -> Translator:
        supported = self.catalogues.languages
        asked = match_language(request.query.get("locale"), supported)
        if asked is None:
            for tag in _accepted_languages(request.headers.get("Accept-Language", "")):
                asked = match_language(tag, supported)
                if asked is not None:
                    break
        return self.catalogues.translator(asked or self.district.default_language)

    def _error(self, error: Open311Error, t: Translator) -> web.Response:
        description = t(error.message_id, **error.params)
        return web.json_response(error_body(error.status, description), status=error.status)


IDEMPOTENCY_KEY = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 128


def _idempotency_key(request: web.Request) -> str | None:
    """The integrating system's name for this request, so a retry files nothing new:
    1-128 visible ASCII characters (a UUID, say)."""
    key = request.headers.get(IDEMPOTENCY_KEY)
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not all("!" <= ch <= "~" for ch in key):
        raise Open311Error(400, N_("open311.error.bad-value"), field=IDEMPOTENCY_KEY)
    return key


async def _fields(request: web.Request) -> dict[str, str]:
    """The POST's fields: form-encoded as the spec has it, or a JSON object."""
    if request.content_type == "application/json":
        try:
            data = await request.json()
        except ValueError:
            raise Open311Error(400, N_("open311.error.bad-body")) from None
        if not isinstance(data, dict):
            raise Open311Error(400, N_("open311.error.bad-body"))
        return {
            str(key): str(value).strip()
            for key, value in data.items()
            if isinstance(value, str | int | float) and not isinstance(value, bool)
        }
    form = await request.post()
    return {key: value.strip() for key, value in form.items() if isinstance(value, str)}


def _coordinates(fields: Mapping[str, str]) -> tuple[float | None, float | None]:
    """lat and long together, as numbers within range; neither is fine too."""
    raw_lat, raw_long = fields.get("lat", ""), fields.get("long", "")
    if not raw_lat and not raw_long:
        return None, None
    values: list[float] = []
    for name, raw, limit in (("lat", raw_lat, 90.0), ("long", raw_long, 180.0)):
        if not raw:
            raise Open311Error(400, N_("open311.error.missing"), field=name)
        try:
            value = float(raw)
        except ValueError:
            raise Open311Error(400, N_("open311.error.bad-value"), field=name) from None
        if not math.isfinite(value) or abs(value) > limit:
            raise Open311Error(400, N_("open311.error.bad-value"), field=name)
        values.append(value)
    return values[0], values[1]


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _accepted_languages(header: str) -> list[str]:
    """Accept-Language's tags, most wanted first."""
    weighted: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and tag != "*" and quality > 0:
            weighted.append((-quality, position, tag))
    return [tag for _, _, tag in sorted(weighted)]
