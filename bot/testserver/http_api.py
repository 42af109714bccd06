"""The Bot API over HTTP: ``/bot<TOKEN>/<method>`` and ``/file/bot<TOKEN>/<file_path>``.

Owns request routing, the response envelope, the request log, and where injected faults
act on a call: delays before anything happens, drops close the connection without performing
the call, failures answer with the configured error, and lost answers perform the call and
then close the connection without a response.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
from aiohttp import web

from . import api_chats, api_edit, api_send, api_updates  # noqa: F401 - register the methods
from .api_common import METHODS, Call, Described
from .core import ServerCore
from .errors import ApiError
from .faults import DELAY, DROP, FAIL, LOSE_ANSWER, Fault
from .params import Params
from .records import RequestRecord
from .world import BotState


def _dumps(value: Any) -> str:
    # Compact like api.telegram.org answers.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def envelope(status: int, payload: dict[str, Any]) -> web.Response:
    return web.json_response(payload, status=status, dumps=_dumps)


class BotApiHttp:
    def __init__(self, core: ServerCore) -> None:
        self.core = core
        self.session: aiohttp.ClientSession | None = None

    def routes(self) -> list[web.RouteDef]:
        return [
            web.route("*", "/bot{token}/{method}", self.handle_method),
            web.get("/file/bot{token}/{path:.+}", self.handle_file),
        ]

    async def dispatch(
        self, bot: BotState, method: str, params: Params, *, via: str = "http"
    ) -> tuple[int, dict[str, Any], RequestRecord]:
        """Runs one Bot API method and logs it; never raises ApiError."""
        name, handler = METHODS[method.lower()]
        core = self.core
        record = RequestRecord(bot.id, name, params.loggable(), time=core.clock(), via=via)
        core.requests.append(record)
        started = time.perf_counter()
        try:
            result = await handler(Call(core, bot, params, name, self.session))
        except ApiError as exc:
            status, payload = exc.code, exc.payload()
        else:
            payload = {"ok": True}
            if isinstance(result, Described):
                payload["result"] = result.value
                payload["description"] = result.description
            else:
                payload["result"] = result
            status = 200
        self._finish(record, status, payload, time.perf_counter() - started)
        return status, payload, record

    def _finish(
        self, record: RequestRecord, status: int, payload: dict[str, Any], duration: float
    ) -> None:
        record.status = status
        record.ok = bool(payload.get("ok"))
        record.description = payload.get("description")
        record.result = payload.get("result")
        record.duration = duration
        self.core.stats["requests"] += 1
        if not record.ok:
            self.core.stats["errors"] += 1
            self.core.stats[f"status_{status}"] += 1
        self.core.notify()

    async def execute_internal(self, bot: BotState, method: str, params: Params) -> Any:
        """A method call that did not come over HTTP (e.g. a webhook reply)."""
        if method.lower() not in METHODS:
            return None
        _, payload, _ = await self.dispatch(bot, method, params, via="webhook_reply")
        return payload

    async def handle_method(self, request: web.Request) -> web.StreamResponse:
        core = self.core
        bot = core.world.bot_by_token(request.match_info["token"])
        method = request.match_info["method"]
        if bot is None:
            return envelope(401, ApiError(401, "Unauthorized").payload())
        if method.lower() not in METHODS:
            return envelope(404, ApiError(404, "Not Found").payload())
        try:
            params = await Params.from_request(request)
        except ApiError as exc:
            return envelope(exc.code, exc.payload())
        key = method.lower()
        chat_id = params.string("chat_id")
        fault = core.faults.take(DELAY, bot.id, key, chat_id)
        if fault is not None:
            await asyncio.sleep(fault.seconds)
        fault = core.faults.take(DROP, bot.id, key, chat_id)
        if fault is not None:
            self._log_fault(bot, key, params, "dropped")
            return self._hang_up(request)
        fault = core.faults.take(FAIL, bot.id, key, chat_id)
        if fault is not None:
            return self._injected_failure(bot, key, params, fault)
        status, payload, record = await self.dispatch(bot, method, params)
        fault = core.faults.take(LOSE_ANSWER, bot.id, key, chat_id)
        if fault is not None:
            record.fault = "answer_lost"
            core.stats["faults"] += 1
            return self._hang_up(request)
        return envelope(status, payload)

    def _log_fault(self, bot: BotState, key: str, params: Params, what: str) -> RequestRecord:
        record = RequestRecord(
            bot.id, METHODS[key][0], params.loggable(), time=self.core.clock(), fault=what
        )
        self.core.requests.append(record)
        self.core.stats["faults"] += 1
        self.core.notify()
        return record

    def _injected_failure(
        self, bot: BotState, key: str, params: Params, fault: Fault
    ) -> web.Response:
        record = self._log_fault(bot, key, params, "injected")
        error = ApiError(fault.status, fault.description, fault.parameters or None)
        payload = error.payload()
        self._finish(record, fault.status, payload, 0.0)
        if fault.status == 429:
            self.core.stats["429"] += 1
        return envelope(fault.status, payload)

    @staticmethod
    def _hang_up(request: web.Request) -> web.Response:
        transport = request.transport
        if transport is not None:
            transport.close()
        return web.Response(status=500)

    async def handle_file(self, request: web.Request) -> web.StreamResponse:
        bot = self.core.world.bot_by_token(request.match_info["token"])
        if bot is None:
            return envelope(401, ApiError(401, "Unauthorized").payload())
        stored = self.core.world.files.by_path(request.match_info["path"])
        if stored is None:
            return envelope(404, ApiError(404, "Not Found").payload())
        self.core.stats["downloads"] += 1
        return web.Response(
            body=stored.data, content_type=stored.mime_type or "application/octet-stream"
        )
