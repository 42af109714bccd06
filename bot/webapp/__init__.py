"""The Mini App: a resident files a 随手拍 report or a 我有话说 post in one form, opened from a
``web_app`` button in the private chat (and the chat's menu button), served by the bot's own
web server beside the dashboard and Open311.

Every API request is signed by Telegram: the ``Authorization: tma <initData>`` header carries
the launch data Telegram gave the app, checked with aiogram's helper against the bot's token
and refused (401, nothing changed) when it is missing, forged, or older than
``WEBAPP_MAX_AGE_MINUTES``. There is no cookie and no other login. The form's work is
:mod:`bot.services.webapp`; filing goes through the same case service as the chat dialog.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiogram.utils.web_app import WebAppInitData, safe_parse_webapp_init_data
from aiohttp import web
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy.exc import IntegrityError

from bot.clock import Clock
from bot.db import SessionFactory, read_transaction, transaction
from bot.district import District
from bot.i18n import N_, Catalogues, Translator, match_language
from bot.logs import log_event
from bot.services import cases, users, webapp
from bot.services.errors import UserError
from bot.warning import EarlyWarning
from models import User

logger = logging.getLogger(__name__)

PREFIX = "/app"
HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
MAX_UPLOAD = webapp.MAX_PHOTO_BYTES + 64 * 1024  # the photo and its multipart wrapping
SECURITY_HEADERS = {
    # Only this server's scripts, styles and images (photos are shown from blob: URLs). No
    # frame-ancestors limit: Telegram's web client and the playground show the app in a frame.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        "img-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
TAG = re.compile(r"<[^>]+>")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Unauthorized(Exception):
    """Launch data missing, forged or stale."""


def signed_in(
    header: str | None, token: str, *, now: datetime, max_age: timedelta
) -> WebAppInitData:
    """The launch data in ``Authorization: tma <initData>``, checked against the bot's token
    (Telegram's HMAC of every field) and its age."""
    if not header or not header.startswith("tma "):
        raise Unauthorized("no launch data")
    try:
        data = safe_parse_webapp_init_data(token, header.removeprefix("tma "))
    except ValueError as error:
        raise Unauthorized("the signature does not match") from error
    if data.user is None:
        raise Unauthorized("no user in the launch data")
    signed = data.auth_date
    age = now - signed
    if age > max_age or age < -timedelta(minutes=5):
        raise Unauthorized("stale launch data")
    return data


@dataclass
class MiniApp:
    """The form page, its static files and its JSON API; :meth:`install` adds the routes."""

    factory: SessionFactory
    district: District
    catalogues: Catalogues
    clock: Clock
    token: str  # the bot's: Telegram signs the launch data with it
    max_age: timedelta  # how old signed launch data may be
    early_warning: EarlyWarning | None = None
    on_commit: Callable[[], None] | None = None  # wakes the sender after a case is filed
    _envs: dict[str, Environment] = field(default_factory=dict, init=False, repr=False)

    def install(self, app: web.Application) -> None:
        app.router.add_get(PREFIX + "/", self.page)
        app.router.add_static(PREFIX + "/static", STATIC, append_version=False)
        api = PREFIX + "/api"
        app.router.add_get(api + "/form", self._signed(self.form))
        app.router.add_put(api + "/draft", self._signed(self.draft))
        app.router.add_post(api + "/photos", self._signed(self.add_photo))
        app.router.add_get(api + "/photos/{key}", self._signed(self.photo))
        app.router.add_delete(api + "/photos/{key}", self._signed(self.remove_photo))
        app.router.add_post(api + "/submit", self._signed(self.submit))

    # -- the page ----------------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.Response:
        """The form, in the language the bot put in the button's address (``?lang=``)."""
        asked = request.query.get("lang")
        lang = asked if asked in self.catalogues.languages else self.district.default_language
        t = self.catalogues.translator(lang)
        body = (
            self._env(lang)
            .get_template("form.html")
            .render(
                lang=lang,
                dir="ltr",
                vertical=lang == "mn-Mong",
                api=PREFIX + "/api",
                strings=self.strings(t),
            )
        )
        response = web.Response(text=body, content_type="text/html")
        response.headers.update(SECURITY_HEADERS)
        return response

    def strings(self, t: Translator) -> dict[str, str]:
        """Every ``webapp.*`` message as plain text, for the page's script."""
        return {key: _plain(t.raw(key)) for key in t.ids("webapp.")}

    def _env(self, lang: str) -> Environment:
        env = self._envs.get(lang)
        if env is None:
            env = Environment(
                loader=FileSystemLoader(TEMPLATES),
                autoescape=select_autoescape(default=True, default_for_string=True),
                undefined=StrictUndefined,
                trim_blocks=True,
                lstrip_blocks=True,
            )
            translator = self.catalogues.translator(lang)
            env.globals.update(_=translator.html, static=lambda name: f"{PREFIX}/static/{name}")
            self._envs[lang] = env
        return env

    # -- signed requests ---------------------------------------------------------------------

    def _signed(
        self, view: Callable[[web.Request, cases.Person], Awaitable[web.Response]]
    ) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            now = self.clock.now()
            try:
                data = signed_in(
                    request.headers.get("Authorization"), self.token, now=now, max_age=self.max_age
                )
            except Unauthorized as error:
                log_event(logger, "webapp.unauthorized", logging.WARNING, reason=str(error))
                return self._refusal(401, N_("webapp.error.unauthorized"), self._lang(None, None))
            assert data.user is not None
            async with read_transaction(self.factory) as session:
                user = await session.get(User, data.user.id)
                blocked = user is not None and user.blocked_at is not None
            lang = self._lang(user, data.user.language_code)
            if blocked:
                return self._refusal(403, N_("webapp.error.blocked"), lang)
            name = " ".join(filter(None, (data.user.first_name, data.user.last_name)))
            resident = cases.Person(data.user.id, name, lang)
            try:
                return await view(request, resident)
            except webapp.Refused as refused:
                return self._refusal(refused.status, refused.message_id, lang, **refused.params)
            except UserError as error:  # the case service refused it
                return self._refusal(400, error.message_id, lang, **error.params)

        return handle

    def _lang(self, user: User | None, telegram: str | None) -> str:
        supported = self.catalogues.languages
        if user is None:
            return match_language(telegram, supported) or self.district.default_language
        return users.language_of(user, supported, self.district.default_language)

    def _refusal(self, status: int, message_id: str, lang: str, **params: Any) -> web.Response:
        text = _plain(self.catalogues.translator(lang).html(message_id, **params))
        return web.json_response({"error": text}, status=status, headers=SECURITY_HEADERS)

    # -- the API -----------------------------------------------------------------------------

    async def form(self, request: web.Request, resident: cases.Person) -> web.Response:
        async with read_transaction(self.factory) as session:
            draft = await webapp.load_draft(session, resident.id)
        body = webapp.form(self.district, resident.language, draft)
        body["name"] = resident.name
        t = self.catalogues.translator(resident.language)
        body["kinds"] = [
            {"code": kind.value, "name": _plain(t.raw(name))}
            for kind, name in webapp.KINDS.items()
        ]
        return web.json_response(body, headers=SECURITY_HEADERS)

    async def draft(self, request: web.Request, resident: cases.Person) -> web.Response:
        raw = await request.read()
        if len(raw) > webapp.MAX_DRAFT_BYTES:
            raise webapp.Refused(413, N_("webapp.error.draft-too-big"))
        data = _json_object(raw)
        async with transaction(self.factory) as session:
            await webapp.save_draft(
                session, resident.id, data, size=len(raw), now=self.clock.now()
            )
        return web.json_response({"ok": True}, headers=SECURITY_HEADERS)

    async def add_photo(self, request: web.Request, resident: cases.Person) -> web.Response:
        content = await _upload(request)
        async with transaction(self.factory) as session:
            key = await webapp.add_photo(session, resident.id, content, now=self.clock.now())
        log_event(logger, "webapp.photo", bytes=len(content))
        return web.json_response({"id": key}, status=201, headers=SECURITY_HEADERS)

    async def photo(self, request: web.Request, resident: cases.Person) -> web.Response:
        async with read_transaction(self.factory) as session:
            content = await webapp.photo(session, resident.id, request.match_info["key"])
        return web.Response(body=content, content_type="image/jpeg", headers=SECURITY_HEADERS)

    async def remove_photo(self, request: web.Request, resident: cases.Person) -> web.Response:
        async with transaction(self.factory) as session:
            await webapp.remove_photo(session, resident.id, request.match_info["key"])
        return web.json_response({"ok": True}, headers=SECURITY_HEADERS)

    async def submit(self, request: web.Request, resident: cases.Person) -> web.Response:
        data = _json_object(await request.read())
        try:
            case, filed = await self._file(resident, data)
        except IntegrityError:
            # The same submission filed by a concurrent try that committed first.
            case, filed = await self._file(resident, data)
        if filed and self.on_commit is not None:
            self.on_commit()
        log_event(logger, "webapp.filed" if filed else "webapp.replayed", case=case.number)
        return web.json_response(
            {"number": case.number}, status=201 if filed else 200, headers=SECURITY_HEADERS
        )

    async def _file(self, resident: cases.Person, data: dict[str, Any]) -> tuple[Any, bool]:
        keywords = self.early_warning.library if self.early_warning is not None else None
        async with transaction(self.factory) as session:
            return await webapp.submit(
                session,
                self.district,
                resident=resident,
                data=data,
                keywords=keywords,
                now=self.clock.now(),
            )


def _plain(text: str) -> str:
    """A catalogue message (HTML) as the text it shows."""
    return html.unescape(TAG.sub("", text))


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw or b"{}")
    except ValueError as error:
        raise webapp.Refused(400, N_("webapp.error.bad-form")) from error
    if not isinstance(data, dict):
        raise webapp.Refused(400, N_("webapp.error.bad-form"))
    return data


async def _upload(request: web.Request) -> bytes:
    """The one photo of a multipart upload, read no further than the size allowed."""
    if request.content_length is not None and request.content_length > MAX_UPLOAD:
        raise webapp.Refused(413, N_("webapp.error.photo-too-big"), limit=webapp.MAX_MEGABYTES)
    try:
        reader = await request.multipart()
    except (AssertionError, ValueError) as error:  # not multipart
        raise webapp.Refused(415, N_("webapp.error.not-a-photo")) from error
    while (part := await reader.next()) is not None:
        if getattr(part, "name", None) != "photo":
            continue
        content = bytearray()
        while chunk := await part.read_chunk(64 * 1024):  # type: ignore[union-attr]
            content += chunk
            if len(content) > webapp.MAX_PHOTO_BYTES:
                raise webapp.Refused(
                    413, N_("webapp.error.photo-too-big"), limit=webapp.MAX_MEGABYTES
                )
        return bytes(content)
    raise webapp.Refused(400, N_("webapp.error.bad-form"))
