"""The control API over HTTP, under ``/control/...`` on the Bot API port.

Owns the JSON mapping of the Python control API so another process or a web page can drive
the simulated world: ``POST /control/<action>`` with a JSON object of keyword arguments
(binary arguments travel base64-encoded as ``<name>_base64``) and ``GET`` endpoints for
reading state.  Answers use the Bot API style envelope ``{"ok": true, "result": ...}`` and
carry permissive CORS headers for browser playgrounds.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import inspect
import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .errors import ControlError

if TYPE_CHECKING:
    from .server import BotAPIServer

# Actions callable with POST; each is the BotAPIServer method of the same name.
POST_ACTIONS = (
    "add_bot",
    "add_user",
    "deactivate_user",
    "create_group",
    "add_member",
    "remove_member",
    "set_member_status",
    "kick_bot",
    "block_bot",
    "unblock_bot",
    "migrate_group",
    "send_text",
    "send_photo",
    "send_document",
    "send_voice",
    "send_video",
    "send_sticker",
    "send_location",
    "send_media_group",
    "edit_text",
    "press_button",
    "fail_next",
    "delay_next",
    "drop_next",
    "lose_answer_next",
    "clear_faults",
    "enforce_limits",
    "reset",
    "wait_for_message",
)
_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
}


def to_json(value: Any) -> Any:
    """Control API results as JSON-compatible values."""
    if hasattr(value, "to_dict"):
        return to_json(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_json(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [to_json(item) for item in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def _answer(result: Any, status: int = 200) -> web.Response:
    body = {"ok": True, "result": to_json(result)}
    return web.json_response(
        body, status=status, headers=_CORS, dumps=lambda v: json.dumps(v, ensure_ascii=False)
    )


def _failure(status: int, description: str) -> web.Response:
    body = {"ok": False, "error_code": status, "description": description}
    return web.json_response(
        body, status=status, headers=_CORS, dumps=lambda v: json.dumps(v, ensure_ascii=False)
    )


def _int(request: web.Request, name: str) -> int | None:
    value = request.query.get(name)
    return int(value) if value not in (None, "") else None


class ControlHttp:
    def __init__(self, server: BotAPIServer) -> None:
        self.server = server

    def routes(self) -> list[web.RouteDef]:
        return [
            web.options("/control/{name}", self.preflight),
            web.get("/control/state", self.state),
            web.get("/control/messages", self.messages),
            web.get("/control/history", self.history),
            web.get("/control/requests", self.requests),
            web.get("/control/callback_answers", self.callback_answers),
            web.get("/control/commands", self.commands),
            web.get("/control/updates", self.updates),
            web.get("/control/events", self.events),
            web.get("/control/file", self.file),
            web.post("/control/{name}", self.action),
        ]

    async def preflight(self, request: web.Request) -> web.Response:
        return web.Response(status=204, headers=_CORS)

    async def action(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in POST_ACTIONS:
            return _failure(404, f"unknown control action {name!r}")
        try:
            body = await request.json() if request.can_read_body else {}
        except ValueError:
            return _failure(400, "the body must be a JSON object")
        if not isinstance(body, dict):
            return _failure(400, "the body must be a JSON object")
        method = getattr(self.server, name)
        try:
            kwargs = _decode_binary(body)
            inspect.signature(method).bind(**kwargs)
        except (TypeError, ValueError) as exc:
            return _failure(400, f"bad arguments for {name}: {exc}")
        try:
            result = method(**kwargs)
            if inspect.isawaitable(result):
                result = await result
        except TimeoutError as exc:
            return _failure(408, str(exc))
        except (ControlError, ValueError, KeyError) as exc:
            return _failure(400, str(exc))
        return _answer(result)

    async def state(self, request: web.Request) -> web.Response:
        core = self.server._core
        world = core.world
        result = {
            "base_url": self.server.base_url,
            "bots": [
                {
                    **bot.user_dict(),
                    "token": bot.token,
                    "pending_updates": len(bot.queue.pending),
                    "webhook": self.server.webhook_info(bot=bot.id),
                }
                for bot in world.bots.values()
            ],
            "users": [user.to_dict() for user in world.users.values()],
            "chats": [
                {
                    **chat.to_dict(),
                    "members": {str(uid): m.status for uid, m in chat.members.items()},
                    "migrated_to": chat.migrated_to,
                }
                for chat in world.chats.values()
            ],
            "stats": dict(core.stats),
            "faults": [fault.to_dict() for fault in core.faults.faults],
            "limits": dataclasses.asdict(core.limiter.config),
        }
        return _answer(result)

    async def messages(self, request: web.Request) -> web.Response:
        bot = request.query.get("bot") or None
        return _answer(self.server.messages(_int(request, "chat_id"), bot=bot))

    async def history(self, request: web.Request) -> web.Response:
        chat_id = _int(request, "chat_id")
        if chat_id is None:
            return _failure(400, "chat_id is required")
        try:
            return _answer(self.server.history(chat_id, bot=request.query.get("bot") or None))
        except ControlError as exc:
            return _failure(400, str(exc))

    async def requests(self, request: web.Request) -> web.Response:
        method = request.query.get("method")
        records = self.server.calls(method) if method else self.server.requests
        limit = _int(request, "limit")
        return _answer(records[-limit:] if limit else records)

    async def callback_answers(self, request: web.Request) -> web.Response:
        return _answer(self.server.callback_answers)

    async def commands(self, request: web.Request) -> web.Response:
        scope_text = request.query.get("scope")
        try:
            scope = json.loads(scope_text) if scope_text else None
            result = self.server.commands(
                scope,
                request.query.get("language_code", ""),
                bot=request.query.get("bot") or None,
            )
        except (ValueError, KeyError) as exc:
            return _failure(400, str(exc))
        return _answer(result)

    async def updates(self, request: web.Request) -> web.Response:
        return _answer(self.server.pending_updates(bot=request.query.get("bot") or None))

    async def events(self, request: web.Request) -> web.Response:
        """Event feed after sequence number ``after``; long-polls up to ``timeout`` seconds."""
        after = _int(request, "after") or 0
        timeout = float(request.query.get("timeout", "0") or 0)
        core = self.server._core

        def fresh(_server: Any) -> list[dict[str, Any]]:
            return [event for event in core.events if event["seq"] > after]

        found = fresh(self.server)
        if not found and timeout > 0:
            try:
                found = await self.server.wait_for(fresh, min(timeout, 50.0))
            except TimeoutError:
                found = []
            except asyncio.CancelledError:
                raise
        return _answer(found)

    async def file(self, request: web.Request) -> web.Response:
        stored = self.server._core.world.files.get(request.query.get("file_id", ""))
        if stored is None:
            return _failure(404, "no such file")
        return web.Response(
            body=stored.data,
            content_type=stored.mime_type or "application/octet-stream",
            headers=_CORS,
        )


def _decode_binary(body: dict[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for key, value in body.items():
        if key.endswith("_base64"):
            name = key.removesuffix("_base64")
            if isinstance(value, list):
                kwargs[name] = [base64.b64decode(item) for item in value]
            else:
                kwargs[name] = base64.b64decode(value)
        else:
            kwargs[key] = value
    return kwargs
