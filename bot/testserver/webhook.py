"""Webhook delivery: POSTing pending updates to a bot's webhook URL.

Owns one delivery task per bot with a webhook.  Like telegram-bot-api, updates go out up to
the webhook's ``max_connections`` at once but one at a time per chat (so each chat's updates
arrive in order), as ``application/json`` with the ``X-Telegram-Bot-Api-Secret-Token`` header;
anything but a 2xx answer is recorded as ``last_error_date``/``last_error_message``
(Telegram's wording) and retried with exponential backoff.  A 2xx JSON answer containing a
``method`` field is executed as a Bot API call ("reply to the webhook").

With a :class:`~.world.WebhookBalance` set (``BotAPIServer.balance_webhook``) the server stands
in for a load balancer in front of several replicas: updates go to its URLs in turn, several
at once but one at a time per chat (so each chat's updates arrive in order), a failing URL is
followed by the next one, and some updates are delivered twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

import aiohttp

from .core import ServerCore
from .params import Params
from .world import BotState, WebhookBalance, WebhookConfig

Executor = Callable[[BotState, str, Params], Awaitable[Any]]
_NOT_ALLOWED_IN_REPLY = ("deletewebhook", "setwebhook", "close", "logout")
BALANCE_SCAN = 2000  # pending updates looked at for one whose chat is free


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
        while True:
            webhook = self._bot.webhook
            if webhook is None:
                return
            if self._bot.balance is not None:
                await self._run_balanced(self._bot.balance)
                continue
            # One receiver: the webhook's own URL, max_connections at once, never repeated.
            own = WebhookBalance(urls=[webhook.url], parallel=webhook.max_connections)
            await self._run_balanced(own, webhook=webhook)

    async def _run_balanced(
        self, balance: WebhookBalance, *, webhook: WebhookConfig | None = None
    ) -> None:
        """Deliver through the balance until the webhook or the balance changes (``webhook``:
        the balance stands for that webhook alone, until it changes)."""
        tasks: dict[int, asyncio.Task[None]] = {}
        busy: set[Hashable] = set()

        def current() -> bool:
            if webhook is not None:
                return self._bot.webhook is webhook and self._bot.balance is None
            return self._bot.webhook is not None and self._bot.balance is balance

        try:
            while current():
                self._wake.clear()
                seen: set[Hashable] = set()
                for update in itertools.islice(self._bot.queue.pending, BALANCE_SCAN):
                    if len(tasks) >= balance.parallel:
                        break
                    update_id, key = update["update_id"], _chat_key(update)
                    free = update_id not in tasks and key not in seen and key not in busy
                    seen.add(key)
                    if not free:
                        continue
                    busy.add(key)
                    tasks[update_id] = asyncio.create_task(
                        self._deliver_balanced(balance, update, key, tasks, busy, current)
                    )
                await self._wake.wait()
        finally:
            for task in tasks.values():
                task.cancel()

    async def _deliver_balanced(
        self,
        balance: WebhookBalance,
        update: dict[str, Any],
        key: Hashable,
        tasks: dict[int, asyncio.Task[None]],
        busy: set[Hashable],
        current: Callable[[], bool],
    ) -> None:
        config = self._core.config
        try:
            failures = 0
            while True:
                webhook = self._bot.webhook
                if webhook is None or not current():
                    return
                error, reply = await self._post(webhook, update, balance.next_url())
                if error is None:
                    break
                failures += 1
                webhook.last_error_date = self._core.unix_now()
                webhook.last_error_message = error
                self._core.stats["webhook_errors"] += 1
                self._core.add_event("webhook_error", bot_id=self._bot.id, error=error)
                await asyncio.sleep(
                    min(
                        config.webhook_retry_delay * 2 ** (failures - 1),
                        config.webhook_max_retry_delay,
                    )
                )
            self._bot.queue.remove(update["update_id"])
            self._core.stats["webhook_deliveries"] += 1
            self._core.notify()
            if reply is not None:
                await self._run_reply(reply)
            balance.delivered += 1
            if balance.repeat_every and balance.delivered % balance.repeat_every == 0:
                # Telegram did not see the answer and sends the update again (anywhere).
                for _ in balance.urls:
                    error, _reply = await self._post(webhook, update, balance.next_url())
                    if error is None:
                        balance.repeated += 1
                        self._core.stats["webhook_repeats"] += 1
                        break
        finally:
            tasks.pop(update["update_id"], None)
            busy.discard(key)
            self._wake.set()

    async def _post(
        self, webhook: WebhookConfig, update: dict[str, Any], url: str | None = None
    ) -> tuple[str | None, dict[str, Any] | None]:
        headers = {"Content-Type": "application/json"}
        if webhook.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = webhook.secret_token
        timeout = aiohttp.ClientTimeout(total=self._core.config.webhook_timeout)
        body = json.dumps(update, ensure_ascii=False).encode("utf-8")
        try:
            async with self._session.post(
                url or webhook.url, data=body, headers=headers, timeout=timeout
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


def _chat_key(update: dict[str, Any]) -> Hashable:
    """The chat an update belongs to (its updates are delivered one at a time, in order)."""
    for name, payload in update.items():
        if name == "update_id" or not isinstance(payload, dict):
            continue
        chat = payload.get("chat") or (payload.get("message") or {}).get("chat")
        if isinstance(chat, dict) and "id" in chat:
            return ("chat", chat["id"])
        sender = payload.get("from") or payload.get("user")
        if isinstance(sender, dict) and "id" in sender:
            return ("user", sender["id"])
    return ("update", update["update_id"])


def _reply_of(payload: bytes) -> dict[str, Any] | None:
    if not payload.strip():
        return None
    try:
        value = json.loads(payload)
    except ValueError:
        return None
    return value if isinstance(value, dict) and "method" in value else None
