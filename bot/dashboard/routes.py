"""The dashboard's pages on the service's aiohttp application (``/dashboard/…``).

Every page request finds its session (cookie → ``dashboard_sessions``), re-checks the person's
scope against the district file, and reads within that scope: a department login gets 403 for
another department's case and its photos, and lists and counts of its own cases only. Pages
are rendered server-side (Jinja2, autoescaped) in the viewer's language; every asset is served
from ``/dashboard/static`` and the content security policy lets nothing else load.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiogram.exceptions import TelegramAPIError
from aiohttp import web
from babel.numbers import format_percent
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import select
from sqlmodel import col

from bot.clock import Clock
from bot.dashboard import map as case_map
from bot.dashboard import queries
from bot.dashboard.auth import COOKIE, COOKIE_PATH, Signer
from bot.db import SessionFactory, read_transaction, transaction
from bot.district import District
from bot.i18n import N_, Catalogues, Translator, babel_locale
from bot.logs import log_event
from bot.services import dashboard as sign_in
from bot.services import stats
from bot.services.users import language_of
from bot.telegram_files import TelegramFiles
from models import Case, CaseKind, CaseStatus, PhotoUpload, User, VolunteerStatus
from models.webapp import UPLOAD_PREFIX

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
PREFIX = "/dashboard"

SECURITY_HEADERS = {
    # Nothing loads from anywhere but this server; no inline scripts or styles.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

# Message ids built from values in templates (``"dashboard.event." ~ kind``).
DYNAMIC_MESSAGE_IDS = (
    N_("dashboard.event.submitted"), N_("dashboard.event.dispatched"),
    N_("dashboard.event.acknowledged"), N_("dashboard.event.answered"),
    N_("dashboard.event.returned"), N_("dashboard.event.transferred"),
    N_("dashboard.event.reopened"), N_("dashboard.event.closed"),
    N_("dashboard.event.co_rated"), N_("dashboard.event.commented"),
    N_("dashboard.event.withdrawn"), N_("dashboard.event.deadline_proposed"),
    N_("dashboard.event.deadline_agreed"), N_("dashboard.event.deadline_rejected"),
    N_("dashboard.event.escalated"), N_("dashboard.event.chief_called"),
    N_("dashboard.event.triaged"), N_("dashboard.event.claimed"),
    N_("dashboard.event.released"), N_("dashboard.event.on-way"),
    N_("dashboard.event.done"), N_("dashboard.event.help-confirmed"),
    N_("dashboard.event.reannounced"), N_("dashboard.event.office-told"),
    N_("dashboard.event.photo"), N_("dashboard.event.followed"),
    N_("dashboard.event.bundled"), N_("dashboard.event.bundle_joined"),
    N_("dashboard.event.risk_flagged"),
    N_("dashboard.role.resident"), N_("dashboard.role.department"),
    N_("dashboard.role.center"), N_("dashboard.role.system"),
    N_("dashboard.role.volunteer"), N_("dashboard.role.street_office"),
    N_("dashboard.sent.delivered"), N_("dashboard.sent.pending"), N_("dashboard.sent.dead"),
    N_("dashboard.rung.pending"), N_("dashboard.rung.fired"), N_("dashboard.rung.cancelled"),
    N_("dashboard.ladder.ack"), N_("dashboard.ladder.deadline"),
    N_("dashboard.card.none"), N_("dashboard.card.yellow"), N_("dashboard.card.red"),
    N_("dashboard.scope.district"), N_("dashboard.scope.department"),
    N_("dashboard.photos.report"), N_("dashboard.photos.answer"),
    N_("dashboard.volunteer.pending"), N_("dashboard.volunteer.approved"),
    N_("dashboard.volunteer.declined"), N_("dashboard.volunteer.paused"),
    N_("dashboard.purpose.card"),
    N_("dashboard.purpose.center-card"),
    N_("dashboard.purpose.triage-card"),
    N_("dashboard.purpose.assist-card"),
    N_("dashboard.purpose.card-location"),
    N_("dashboard.purpose.answer-prompt"),
    N_("dashboard.purpose.return-prompt"),
    N_("dashboard.purpose.reminder"),
    N_("dashboard.purpose.task"),
    N_("dashboard.purpose.rating"),
    N_("dashboard.purpose.help-card"),
    N_("dashboard.purpose.help-again"),
    N_("dashboard.purpose.help-details"),
    N_("dashboard.purpose.deadline-ask"),
    N_("dashboard.purpose.deadline-proposal"),
    N_("dashboard.purpose.risk-alert"),
    N_("dashboard.purpose.photo"),
)  # fmt: skip

# The periods the rates panel offers (``?period=``); the month by default.
RATE_PERIODS = ("today", "week", "month")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Page:
    """One signed-in request: who, in which language."""

    viewer: sign_in.Viewer
    lang: str
    now: datetime


class Dashboard:
    def __init__(
        self,
        *,
        factory: SessionFactory,
        district: District,
        catalogues: Catalogues,
        clock: Clock,
        files: TelegramFiles,
        secret: str | None,
        session_lasts: timedelta,
        secure_cookie: bool = False,
    ) -> None:
        self.factory = factory
        self.district = district
        self.catalogues = catalogues
        self.clock = clock
        self.files = files
        self.signer = Signer(secret)
        self.session_lasts = session_lasts
        self.secure_cookie = secure_cookie
        self._envs: dict[str, Environment] = {}

    def install(self, app: web.Application) -> None:
        add = app.router.add_route
        add("GET", PREFIX, self._page(self.overview))
        add("GET", PREFIX + "/", self._page(self.overview))
        add("GET", PREFIX + "/cases", self._page(self.case_list))
        add("GET", PREFIX + "/cases/{number}", self._page(self.case_page))
        add("GET", PREFIX + "/cases/{number}/photos/{which}/{index}", self._page(self.photo))
        add("GET", PREFIX + "/volunteers", self._page(self.volunteers))
        add("GET", PREFIX + "/login", self.login_page)
        add("POST", PREFIX + "/login", self.login)
        add("POST", PREFIX + "/logout", self.logout)
        app.router.add_static(PREFIX + "/static", STATIC, append_version=False)
        if self.signer.generated:
            log_event(logger, "dashboard.secret_generated")

    # -- rendering ---------------------------------------------------------------------------

    def env(self, lang: str) -> Environment:
        env = self._envs.get(lang)
        if env is not None:
            return env
        env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            extensions=["jinja2.ext.i18n"],
            trim_blocks=True,
            lstrip_blocks=True,
        )
        translator = self.catalogues.translator(lang)
        env.install_gettext_callables(  # type: ignore[attr-defined]
            gettext=translator.raw,
            ngettext=lambda s, p, n: translator.raw(s if n == 1 else p),
            newstyle=True,
        )
        env.globals.update(self._helpers(lang, translator))
        self._envs[lang] = env
        return env

    def _helpers(self, lang: str, translator: Translator) -> dict[str, Any]:
        district = self.district
        locale = babel_locale(lang)

        def unit_name(code: str | None) -> str:
            if not code:
                return ""
            if code == "center":
                return district.governance_center.names.get(lang)
            unit = district.department(code) or district.street_office(code)
            return unit.names.get(lang) if unit else code

        def category_name(code: str | None) -> str:
            category = district.category(code) if code else None
            return category.names.get(lang) if category else (code or "—")

        def local(moment: datetime | None, pattern: str | None = None) -> str:
            """A time for the reader (their language's pattern, through Babel); with a
            ``pattern``, a machine value such as a date in a link."""
            if moment is None:
                return ""
            if pattern is not None:
                return moment.astimezone(district.tzinfo).strftime(pattern)
            return self.catalogues.moment(moment.isoformat(), lang)

        def label(message_id: str, fallback: str) -> str:
            return translator.raw(message_id) if translator.has(message_id) else fallback

        def purpose(name: str) -> str:
            """What a message about a case was (its link's purpose), e.g. "card-photo"."""
            base, photo = (
                (name[: -len("-photo")], True) if name.endswith("-photo") else (name, False)
            )
            text = label(f"dashboard.purpose.{base}", base)
            return f"{text} · {translator.raw('dashboard.purpose.photo')}" if photo else text

        def url(path: str, params: dict[str, str] | None = None) -> str:
            return PREFIX + path + ("?" + urlencode(params) if params else "")

        def percent(value: float | None) -> str:
            return "—" if value is None else format_percent(value, "#,##0.0%", locale=locale)

        def duration(value: timedelta | None) -> str:
            if value is None:
                return "—"
            minutes = value.total_seconds() / 60
            if minutes < 60:
                return translator("stats.minutes", n=round(minutes))
            return translator("stats.hours", n=f"{minutes / 60:.1f}")

        def countdown(moment: datetime, now: datetime) -> str:
            seconds = int((moment - now).total_seconds())
            sign = "-" if seconds < 0 else ""
            seconds = abs(seconds)
            hours, rest = divmod(seconds, 3600)
            return f"{sign}{hours}:{rest // 60:02d}:{rest % 60:02d}"

        return {
            "lang": lang,
            "district_name": district.names.get(lang),
            "unit_name": unit_name,
            "unit_names": lambda codes: ", ".join(unit_name(code) for code in codes),
            "category_name": category_name,
            "local": local,
            "label": label,
            "url": url,
            "countdown": countdown,
            "percent": percent,
            "purpose": purpose,
            "duration": duration,
            "static": lambda name: f"{PREFIX}/static/{name}",
        }

    def render(
        self, template: str, lang: str, *, status: int = 200, **context: Any
    ) -> web.Response:
        body = self.env(lang).get_template(template).render(**context)
        response = web.Response(text=body, status=status, content_type="text/html")
        response.headers.update(SECURITY_HEADERS)
        return response

    def notice(
        self, lang: str, status: int, title: str, text: str, page: Page | None = None
    ) -> web.Response:
        """A page that only says something (signed out, refused, not found)."""
        return self.render(
            "notice.html", lang, status=status, title=title, text=text, page=page, nav=""
        )

    # -- sessions ----------------------------------------------------------------------------

    def _page(self, view: Callable[[web.Request, Page], Awaitable[web.StreamResponse]]) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            now = self.clock.now()
            session_id = self.signer.unsign(request.cookies.get(COOKIE))
            page: Page | None = None
            if session_id is not None:
                async with read_transaction(self.factory) as session:
                    viewer = await sign_in.viewer(session, self.district, session_id, now=now)
                    if viewer is not None:
                        user = await session.get(User, viewer.user_id)
                        lang = language_of(
                            user, self.catalogues.languages, self.district.default_language
                        )
                        page = Page(viewer, lang, now)
            if page is None:
                lang = self.district.default_language
                response = self.notice(
                    lang, 401, N_("dashboard.signed-out.title"), N_("dashboard.signed-out.text")
                )
                if request.cookies.get(COOKIE):
                    response.del_cookie(COOKIE, path=COOKIE_PATH)
                return response
            return await view(request, page)

        return handle

    async def login_page(self, request: web.Request) -> web.Response:
        """The link from the bot: a page that signs in with a POST (automatically, by a small
        script), so link scanners and previews that only fetch the page use nothing."""
        token = request.query.get("token", "")[:128]
        lang = self.district.default_language
        async with read_transaction(self.factory) as session:
            state = await sign_in.peek_link(session, token, now=self.clock.now())
        if state is not sign_in.LinkState.VALID:
            return self.refused(lang, state)
        return self.render("login.html", lang, token=token, page=None)

    def refused(self, lang: str, state: sign_in.LinkState) -> web.Response:
        if state is sign_in.LinkState.USED:
            key = N_("dashboard.link.used")
        elif state is sign_in.LinkState.EXPIRED:
            key = N_("dashboard.link.expired")
        else:
            key = N_("dashboard.link.unknown")
        status = 403 if state is sign_in.LinkState.UNKNOWN else 410
        return self.notice(lang, status, N_("dashboard.link.refused"), key)

    async def login(self, request: web.Request) -> web.Response:
        form = await request.post()
        token = str(form.get("token", ""))[:128]
        now = self.clock.now()
        async with transaction(self.factory) as session:
            opened = await sign_in.use_link(
                session, self.district, token, now=now, lasts=self.session_lasts
            )
        if isinstance(opened, sign_in.LinkState):
            log_event(logger, "dashboard.link_refused", state=opened.value)
            return self.refused(self.district.default_language, opened)
        log_event(logger, "dashboard.signed_in", user_id=opened.user_id)
        response = web.Response(status=303, headers={"Location": PREFIX})
        response.set_cookie(
            COOKIE,
            self.signer.sign(opened.session_id),
            max_age=int(self.session_lasts.total_seconds()),
            path=COOKIE_PATH,
            httponly=True,
            samesite="Lax",
            secure=self.secure_cookie,
        )
        return response

    async def logout(self, request: web.Request) -> web.Response:
        session_id = self.signer.unsign(request.cookies.get(COOKIE))
        if session_id is not None:
            async with transaction(self.factory) as session:
                await sign_in.end_session(session, session_id, now=self.clock.now())
        response = self.notice(
            self.district.default_language,
            200,
            N_("dashboard.logged-out.title"),
            N_("dashboard.signed-out.text"),
        )
        response.del_cookie(COOKIE, path=COOKIE_PATH)
        return response

    # -- pages -------------------------------------------------------------------------------

    async def overview(self, request: web.Request, page: Page) -> web.StreamResponse:
        access = page.viewer.access
        period = request.query.get("period", "month")
        if period not in RATE_PERIODS:
            period = "month"
        start, end = stats.period(period, page.now, self.district.tzinfo)
        async with read_transaction(self.factory) as session:
            data = await queries.overview(session, self.district, access, now=page.now)
            report = await stats.compute(
                session, self.district, start=start, end=end, now=page.now
            )
        drawing = case_map.draw(self.district.district.outline, data.located)
        # Every department for the district's roles (those without cases too, so a quiet
        # department is seen as such); a department login sees its own rows only.
        rows = [
            (d.code, report.departments.get(d.code, stats.Figures()))
            for d in self.district.departments
            if access.sees(d.code)
        ]
        rows.sort(key=lambda row: (-row[1].dispatched, row[0]))
        return self.render(
            "overview.html",
            page.lang,
            page=page,
            data=data,
            drawing=drawing,
            nav="overview",
            period=period,
            periods=RATE_PERIODS,
            report=report,
            rate_rows=rows,
            definitions=stats.DEFINITIONS,
        )

    async def case_list(self, request: web.Request, page: Page) -> web.StreamResponse:
        access = page.viewer.access
        filters = queries.parse_filters(request.query)
        async with read_transaction(self.factory) as session:
            rows, total = await queries.case_list(session, self.district, access, filters)
        departments = [
            d for d in self.district.departments if access.district_wide or access.sees(d.code)
        ]
        pages = max(1, -(-total // queries.PAGE_SIZE))
        return self.render(
            "cases.html",
            page.lang,
            page=page,
            nav="cases",
            rows=rows,
            total=total,
            pages=pages,
            filters=filters,
            statuses=[s.value for s in CaseStatus],
            kinds=[k.value for k in CaseKind],
            categories=self.district.categories,
            departments=departments,
        )

    async def _visible_case(self, number: str, page: Page) -> Case | web.Response:
        async with read_transaction(self.factory) as session:
            case = (
                await session.scalars(select(Case).where(col(Case.number) == number[:20]))
            ).first()
        if case is None:
            return self.notice(
                page.lang,
                404,
                N_("dashboard.not-found.title"),
                N_("dashboard.not-found.text"),
                page,
            )
        if not page.viewer.access.sees_case(case):
            log_event(logger, "dashboard.forbidden", user_id=page.viewer.user_id, case=case.number)
            return self.notice(
                page.lang,
                403,
                N_("dashboard.forbidden.title"),
                N_("dashboard.forbidden.text"),
                page,
            )
        return case

    async def case_page(self, request: web.Request, page: Page) -> web.StreamResponse:
        found = await self._visible_case(request.match_info["number"], page)
        if isinstance(found, web.Response):
            return found
        assert found.id is not None
        async with read_transaction(self.factory) as session:
            detail = await queries.case_detail(session, found.id)
        assert detail is not None
        case = detail.case
        return self.render(
            "case.html",
            page.lang,
            page=page,
            nav="cases",
            case=case,
            detail=detail,
            # The department card's rule: the name unless the resident chose anonymity; help
            # requests never show it (their card does not), nor cases an integrating system
            # filed (the card names the system instead).
            reporter=None
            if case.anonymous or case.kind is CaseKind.HELP or not case.from_telegram
            else case.resident_name,
            via=self._integration_name(case.integration, page.lang),
            chat_label=self._chat_labeller(case, detail.bound_units, page.lang),
            rung_label=self._rung_label,
        )

    def _chat_labeller(self, case: Case, bound: dict[int, str], lang: str) -> Callable[[int], str]:
        district = self.district
        t = self.catalogues.translator(lang)

        def chat_label(chat_id: int) -> str:
            if chat_id == case.resident_id:
                return t(N_("dashboard.chat.resident"))
            if chat_id == district.governance_center.chat_id:
                return district.governance_center.names.get(lang)
            supervision = district.supervision
            if supervision is not None and chat_id == supervision.chat_id:
                return supervision.names.get(lang)
            if chat_id in district.volunteer_chat_ids():
                return t(N_("dashboard.chat.volunteers"))
            code = bound.get(chat_id)
            unit = (district.department(code) or district.street_office(code)) if code else None
            named = unit or district.unit_by_chat(chat_id)
            if named is not None:
                return named.names.get(lang)
            person = district.person(chat_id)
            if person is not None:
                return person.name
            if chat_id > 0:
                return t(N_("dashboard.chat.private"))
            return t(N_("dashboard.chat.group"))

        return chat_label

    def _integration_name(self, code: str | None, lang: str) -> str | None:
        if code is None:
            return None
        integration = self.district.integration(code)
        return integration.names.get(lang) if integration else code

    def _rung_label(self, ladder: str, rung: int) -> str:
        rungs = self.district.ladder if ladder == "ack" else self.district.deadline_ladder
        if rung >= len(rungs):
            return str(rung)
        step = rungs[rung]
        return str(getattr(step, "after", None) or getattr(step, "at", ""))

    async def _photo_bytes(self, name: str) -> bytes:
        """A case photo from Telegram, or, filed in the Mini App and not sent yet, as the bot
        keeps it."""
        if not name.startswith(UPLOAD_PREFIX):
            return await self.files.fetch(name)
        async with read_transaction(self.factory) as session:
            upload = await session.get(PhotoUpload, name.removeprefix(UPLOAD_PREFIX))
        if upload is None:
            raise FileNotFoundError(name)
        return upload.content

    async def photo(self, request: web.Request, page: Page) -> web.StreamResponse:
        found = await self._visible_case(request.match_info["number"], page)
        if isinstance(found, web.Response):
            return found
        which = request.match_info["which"]
        photos = {"report": found.photos, "answer": found.answer_photos}.get(which)
        try:
            index = int(request.match_info["index"])
        except ValueError:
            index = -1
        if photos is None or not 0 <= index < len(photos):
            return self.notice(
                page.lang, 404, N_("dashboard.not-found.title"), N_("dashboard.not-found.text")
            )
        try:
            data = await self._photo_bytes(photos[index])
        except (TelegramAPIError, FileNotFoundError) as error:
            log_event(
                logger,
                "dashboard.photo_unavailable",
                case=found.number,
                error=type(error).__name__,
            )
            return self.notice(
                page.lang, 404, N_("dashboard.not-found.title"), N_("dashboard.photo.gone")
            )
        return web.Response(
            body=data,
            content_type=image_type(data),
            headers={
                "Cache-Control": "no-store",  # nothing stays on a shared device
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'none'",
            },
        )

    async def volunteers(self, request: web.Request, page: Page) -> web.StreamResponse:
        async with read_transaction(self.factory) as session:
            summary = await queries.volunteers(
                session, self.district, page.viewer.access, now=page.now
            )
        return self.render(
            "volunteers.html",
            page.lang,
            page=page,
            nav="volunteers",
            summary=summary,
            statuses=[s.value for s in VolunteerStatus],
        )


def image_type(data: bytes) -> str:
    """The image's media type by its first bytes (Telegram serves photos as JPEG)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"GIF8"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    return "application/octet-stream"
