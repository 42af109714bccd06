"""The playground's page and its JSON API, on 127.0.0.1.

The page stands in for the Telegram clients: what it sends goes through the test server's
control API as the chosen user, exactly like a Telegram client's action; what the bot does
arrives as server-sent events (``/api/events``) and the page re-reads the chat.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.i18n import N_, Catalogues
from bot.playground.launch import launch_data, launch_url
from bot.playground.runner import TOKEN, Playground
from bot.playground.world import chat_views
from bot.testserver import ControlError

logger = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
EVENT_POLL = 0.2
KEEPALIVE = 15.0
# Every string of the page, in the catalogues like the bot's own.
PAGE_STRINGS = (
    N_("playground.title"),
    N_("playground.intro"),
    N_("playground.chat.residents"),
    N_("playground.chat.staff"),
    N_("playground.chat.volunteers"),
    N_("playground.acting-as"),
    N_("playground.placeholder"),
    N_("playground.send"),
    N_("playground.photo"),
    N_("playground.location"),
    N_("playground.location.send"),
    N_("playground.location.hint"),
    N_("playground.cancel"),
    N_("playground.reply"),
    N_("playground.replying-to"),
    N_("playground.clock"),
    N_("playground.clock.speed"),
    N_("playground.clock.jump"),
    N_("playground.clock.jumped"),
    N_("playground.clock.nothing-due"),
    N_("playground.reset"),
    N_("playground.reset.confirm"),
    N_("playground.empty"),
    N_("playground.edited"),
    N_("playground.real-bot"),
)
MAX_PHOTO = 20 * 1024 * 1024


class PlaygroundWeb:
    def __init__(self, playground: Playground, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.playground = playground
        self.host = host
        self.port = port
        self.catalogues = Catalogues(playground.district.default_language)
        self._runner: web.AppRunner | None = None

    def build(self) -> web.Application:
        app = web.Application(client_max_size=MAX_PHOTO)
        app.add_routes(
            [
                web.get("/", self.page),
                web.get("/api/state", self.state),
                web.get("/api/history", self.history),
                web.get("/api/events", self.events),
                web.get("/api/file", self.file),
                web.post("/api/send", self.send),
                web.post("/api/photo", self.photo),
                web.post("/api/location", self.location),
                web.post("/api/press", self.press),
                web.post("/api/clock", self.clock),
                web.post("/api/reset", self.reset),
                web.post("/api/webapp", self.webapp),
            ]
        )
        app.router.add_static("/static", STATIC, append_version=False)
        return app

    async def start(self) -> None:
        runner = web.AppRunner(self.build(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, self.host, self.port).start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    # -- reading -----------------------------------------------------------------------------
    def _language(self, request: web.Request) -> str:
        wanted = request.query.get("lang")
        languages = self.catalogues.languages
        if wanted in languages:
            return wanted
        return self.catalogues.default_language

    async def page(self, request: web.Request) -> web.Response:
        lang = self._language(request)
        t = self.catalogues.translator(lang)
        html = (STATIC / "playground.html").read_text(encoding="utf-8")
        html = html.replace("{{lang}}", lang).replace("{{title}}", _escape(t("playground.title")))
        return web.Response(
            text=html,
            content_type="text/html",
            headers={
                "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                "style-src 'self'; script-src 'self'; "
                f"frame-src {self.playground.webapp_url.removesuffix('/app/')}",
                "Cache-Control": "no-store",
            },
        )

    async def webapp(self, request: web.Request) -> web.Response:
        """The Mini App's address for the resident the page acts as, with launch data signed
        by the playground's bot token (what Telegram's client does when a web_app button is
        pressed)."""
        body = await request.json()
        user = self.playground.server.user(int(body.get("user_id", 0)))
        if user is None:
            return _json({"error": "user_id"}, status=400)
        opened = str(body.get("url") or self.playground.webapp_url)
        if not opened.startswith(self.playground.webapp_url):
            return _json({"error": "url"}, status=400)
        data = launch_data(TOKEN, user=user, now=self.playground.clock.now())
        return _json({"url": launch_url(opened, data)})

    async def state(self, request: web.Request) -> web.Response:
        lang = self._language(request)
        t = self.catalogues.translator(lang)
        playground = self.playground
        district = playground.district
        outline = district.district.outline
        return _json(
            {
                "lang": lang,
                "languages": list(self.catalogues.languages),
                "strings": {key.removeprefix("playground."): t(key) for key in PAGE_STRINGS},
                "district": district.district.names.get(lang),
                "timezone": str(district.tzinfo),
                "outline": [list(corner) for corner in outline] if outline else None,
                "bot": self.playground.server.bot_user(),
                "chats": [view.to_dict() for view in chat_views(district, lang, t)],
                "clock": self._clock(),
                "generation": playground.generation,
            }
        )

    def _clock(self) -> dict[str, Any]:
        clock = self.playground.clock
        tz = self.playground.district.tzinfo
        return {
            "now": clock.now().astimezone(tz).isoformat(),
            "speed": clock.speed,
            "offset": clock.offset_seconds,
        }

    async def history(self, request: web.Request) -> web.Response:
        try:
            chat_id = int(request.query["chat_id"])
        except (KeyError, ValueError):
            return _json({"error": "chat_id"}, status=400)
        server = self.playground.server
        try:
            messages = server.history(chat_id)
        except ControlError:
            messages = []
        # A reply keyboard is not part of a Message: the client keeps the last one it got.
        keyboards: dict[int, dict[str, Any]] = {}
        for record in server.messages(chat_id, bot=self.playground.bot_id):
            markup = record.reply_markup or {}
            if "keyboard" in markup or "remove_keyboard" in markup:
                keyboards[record.message_id] = markup
        for message in messages:
            if message.get("message_id") in keyboards:
                message["client_keyboard"] = keyboards[message["message_id"]]
        menu = server.menu_button(chat_id, bot=self.playground.bot_id) if chat_id > 0 else None
        return _json({"chat_id": chat_id, "messages": messages, "menu_button": menu})

    async def file(self, request: web.Request) -> web.StreamResponse:
        stored = self.playground.server.file(request.query.get("file_id", ""))
        if stored is None:
            raise web.HTTPNotFound()
        return web.Response(
            body=stored.data, content_type=stored.mime_type or "application/octet-stream"
        )

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: which chats changed, callback answers, the clock, resets."""
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        await response.prepare(request)
        server = self.playground.server
        events = server.events
        last = events[-1]["seq"] if events else 0
        generation = self.playground.generation
        idle = 0.0
        try:
            while True:
                out: list[dict[str, Any]] = []
                if self.playground.generation != generation:
                    generation = self.playground.generation
                    out.append({"kind": "reset"})
                for event in server.events:
                    if event["seq"] <= last:
                        continue
                    last = event["seq"]
                    if event.get("bot_id") not in (None, self.playground.bot_id):
                        continue
                    kind = event["kind"]
                    if "chat_id" in event:
                        out.append({"kind": kind, "chat_id": event["chat_id"]})
                    elif kind == "callback_answer":
                        text = event["answer"].get("text")
                        if text:
                            out.append({"kind": kind, "text": text})
                if out:
                    idle = 0.0
                    for item in out:
                        await response.write(f"data: {json.dumps(item)}\n\n".encode())
                else:
                    idle += EVENT_POLL
                    if idle >= KEEPALIVE:
                        idle = 0.0
                        await response.write(b": keepalive\n\n")
                await asyncio.sleep(EVENT_POLL)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response

    # -- acting ------------------------------------------------------------------------------
    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError as error:
            raise web.HTTPBadRequest(text="the body must be JSON") from error
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="the body must be a JSON object")
        return body

    @staticmethod
    def _target(body: dict[str, Any]) -> tuple[int, int | None]:
        """The acting user and the group (None in the user's private chat)."""
        try:
            user_id = int(body["user_id"])
            chat_id = int(body.get("chat_id") or user_id)
        except (KeyError, TypeError, ValueError) as error:
            raise web.HTTPBadRequest(text="user_id and chat_id are numbers") from error
        return user_id, (None if chat_id == user_id else chat_id)

    async def send(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        user_id, chat_id = self._target(body)
        text = str(body.get("text") or "").strip()
        if not text:
            raise web.HTTPBadRequest(text="empty message")
        reply_to = body.get("reply_to")
        return self._act(
            lambda: self.playground.server.send_text(
                user_id, text, chat_id=chat_id, reply_to=int(reply_to) if reply_to else None
            )
        )

    async def photo(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload = form.get("photo")
        if not isinstance(upload, web.FileField):
            raise web.HTTPBadRequest(text="no photo")
        user_id, chat_id = self._target(dict(form))
        data = upload.file.read()
        caption = str(form.get("caption") or "").strip() or None
        reply_to = str(form.get("reply_to") or "")
        return self._act(
            lambda: self.playground.server.send_photo(
                user_id,
                data,
                caption=caption,
                chat_id=chat_id,
                reply_to=int(reply_to) if reply_to.isdigit() else None,
            )
        )

    async def location(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        user_id, chat_id = self._target(body)
        try:
            latitude, longitude = float(body["latitude"]), float(body["longitude"])
        except (KeyError, TypeError, ValueError) as error:
            raise web.HTTPBadRequest(text="latitude and longitude are numbers") from error
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            raise web.HTTPBadRequest(text="not a place on Earth")
        return self._act(
            lambda: self.playground.server.send_location(
                user_id, latitude, longitude, chat_id=chat_id
            )
        )

    async def press(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        user_id, chat_id = self._target(body)
        return self._act(
            lambda: self.playground.server.press_button(
                user_id, int(body["message_id"]), str(body["data"]), chat_id=chat_id
            )
        )

    @staticmethod
    def _act(action: Any) -> web.Response:
        try:
            action()
        except (ControlError, ValueError, KeyError) as error:
            return _json({"ok": False, "error": str(error)}, status=400)
        return _json({"ok": True})

    async def clock(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        jumped: str | None = None
        if body.get("jump"):
            due = await self.playground.jump()
            if due is not None:
                jumped = due.astimezone(self.playground.district.tzinfo).isoformat()
        if "speed" in body:
            try:
                self.playground.set_speed(float(body["speed"]))
            except (TypeError, ValueError) as error:
                return _json({"ok": False, "error": str(error)}, status=400)
        return _json({"ok": True, "jumped_to": jumped, "clock": self._clock()})

    async def reset(self, request: web.Request) -> web.Response:
        await self.playground.reset()
        return _json({"ok": True, "clock": self._clock()})


def _json(value: Any, status: int = 200) -> web.Response:
    return web.json_response(
        value,
        status=status,
        dumps=lambda v: json.dumps(v, ensure_ascii=False),
        headers={"Cache-Control": "no-store"},
    )


def _escape(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )
