"""Webhook delivery: POSTing pending updates to a bot's webhook URL.

Owns one delivery task per bot with a webhook.  Updates go out one at a time in update order
as ``application/json`` with the ``X-Telegram-Bot-Api-Secret-Token`` header; anything but a
2xx answer is recorded as ``last_error_date``/``last_error_message`` (Telegram's wording) and
retried with exponential backoff.  Like telegram-bot-api, a 2xx JSON answer containing a
``method`` field is executed as a Bot API call ("reply to the webhook").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from .core import ServerCore
from .params import Params
from .world import BotState, WebhookConfig, unix_now

Executor = Callable[[BotState, str, Params], Awaitable[Any]]
_NOT_ALLOWED_IN_REPLY = ("deletewebhook", "setwebhook", "close", "logout")


class WebhookDeliverer:
    def __init__(
        self,
        core: ServerCore,
        bot: BotState,
        session: aiohttp.ClientSession,
        execute: Executor,
    ) -> None:
        self._core = core
        self._bot = bot
        self._session = session
        self._execute = execute
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name=f"webhook-{bot.id}")

    def kick(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        failures = 0
        config = self._core.config
        while True:
            webhook = self._bot.webhook
            if webhook is None:
                return
            queue = self._bot.queue
            if not queue.pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            update = queue.pending[0]
            error, reply = await self._post(webhook, update)
            if error is None:
                failures = 0
                queue.confirm(update["update_id"] + 1)
                self._core.stats["webhook_deliveries"] += 1
                self._core.notify()
                if reply is not None:
                    await self._run_reply(reply)
                continue
            failures += 1
            webhook.last_error_date = unix_now()
            webhook.last_error_message = error
            self._core.stats["webhook_errors"] += 1
            self._core.add_event("webhook_error", bot_id=self._bot.id, error=error)
            delay = min(
                config.webhook_retry_delay * 2 ** (failures - 1), config.webhook_max_retry_delay
            )
            await asyncio.sleep(delay)

    async def _post(
        self, webhook: WebhookConfig, update: dict[str, Any]
    ) -> tuple[str | None, dict[str, Any] | None]:
        headers = {"Content-Type": "application/json"}
        if webhook.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = webhook.secret_token
        timeout = aiohttp.ClientTimeout(total=self._core.config.webhook_timeout)
        body = json.dumps(update, ensure_ascii=False).encode("utf-8")
        try:
            async with self._session.post(
                webhook.url, data=body, headers=headers, timeout=timeout
            ) as response:
                payload = await response.read()
                if not 200 <= response.status <= 299:
                    reason = response.reason or ""
                    return f"Wrong response from the webhook: {response.status} {reason}", None
                return None, _reply_of(payload)
        except TimeoutError:
            return "Read timeout expired", None
        except aiohttp.ClientConnectorError:
            return "Connection refused", None
        except aiohttp.ClientError as exc:
            return f"Webhook connection failed: {exc}", None

    async def _run_reply(self, reply: dict[str, Any]) -> None:
        method = str(reply.get("method", ""))
        lowered = method.lower()
        if not lowered or lowered in _NOT_ALLOWED_IN_REPLY or lowered.startswith("get"):
            return
        params = Params({key: value for key, value in reply.items() if key != "method"})
        await self._execute(self._bot, method, params)


def _reply_of(payload: bytes) -> dict[str, Any] | None:
    if not payload.strip():
        return None
    try:
        value = json.loads(payload)
    except ValueError:
        return None
    return value if isinstance(value, dict) and "method" in value else None
