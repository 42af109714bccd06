"""Bot API methods for receiving updates, answering callbacks and fetching files.

Owns getUpdates (long polling, offsets, 409 conflicts), setWebhook/deleteWebhook/
getWebhookInfo (with Telegram's success descriptions such as "Webhook was set"),
answerCallbackQuery and getFile.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from .api_common import Call, Described, api_method
from .errors import POLL_CONFLICT, QUERY_TOO_OLD, WEBHOOK_CONFLICT, ApiError, bad_request
from .files import MAX_DOWNLOAD_SIZE
from .records import CallbackAnswer
from .updates import PollTerminated
from .world import WebhookConfig

LONG_POLL_MAX_TIMEOUT = 50
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def _allowed_updates(call: Call) -> list[str] | None:
    try:
        value = call.params.json("allowed_updates", "can't parse allowed updates")
    except ApiError:
        return None  # telegram-bot-api ignores an unparsable allowed_updates
    if not isinstance(value, list):
        return None
    return [str(item) for item in value if isinstance(item, str)]


@api_method("getUpdates")
async def get_updates(call: Call) -> Any:
    bot = call.bot
    if bot.webhook is not None:
        raise ApiError(409, WEBHOOK_CONFLICT)
    params = call.params
    offset = params.integer("offset", 0)
    limit = params.integer("limit", 100, 1, 100)
    timeout = params.integer("timeout", 0, 0, LONG_POLL_MAX_TIMEOUT)
    allowed = _allowed_updates(call)
    if allowed is not None:
        bot.queue.allowed_updates = allowed
    generation = bot.queue.begin_poll(POLL_CONFLICT)
    # The offset confirms earlier updates: whoever waits for the queue to empty hears of it now,
    # not at the next unrelated change.
    before = len(bot.queue.pending)
    bot.queue.confirm(offset)
    if len(bot.queue.pending) != before:
        call.core.notify()
    try:
        return await bot.queue.long_poll(offset, limit, timeout, generation, call.core.closing)
    except PollTerminated as exc:
        raise ApiError(409, str(exc)) from exc


@api_method("setWebhook", "deleteWebhook")
async def set_webhook(call: Call) -> Any:
    bot = call.bot
    params = call.params
    url = params.string("url").strip() if call.method == "setWebhook" else ""
    drop = params.boolean("drop_pending_updates")
    if not url:
        was_set = bot.webhook is not None
        bot.webhook = None
        if drop:
            bot.queue.clear()
        call.core.webhook_changed(bot)
        return Described(True, "Webhook was deleted" if was_set else "Webhook is already deleted")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise bad_request("invalid webhook URL specified")
    if parts.hostname.lower() not in _LOCAL_HOSTS:
        # Deliberately never contacts the internet: only local receivers can be targets.
        raise bad_request("bad webhook: the test server delivers only to 127.0.0.1/localhost")
    secret = params.string("secret_token")
    if len(secret) > 256:
        raise bad_request("secret token is too long")
    if not re.fullmatch(r"[A-Za-z0-9_-]*", secret):
        raise bad_request("secret token contains unallowed characters")
    config = WebhookConfig(
        url=url,
        secret_token=secret,
        max_connections=params.integer("max_connections", 40, 1, 100),
        ip_address=params.optional_string("ip_address"),
        has_custom_certificate=params.file("certificate") is not None,
    )
    allowed = _allowed_updates(call)
    if allowed is not None:
        bot.queue.allowed_updates = allowed
    current = bot.webhook
    same = current is not None and (
        current.url,
        current.secret_token,
        current.max_connections,
        current.ip_address,
    ) == (config.url, config.secret_token, config.max_connections, config.ip_address)
    if same and not drop and not config.has_custom_certificate:
        return Described(True, "Webhook is already set")
    if drop:
        bot.queue.clear()
    bot.webhook = config
    bot.queue.terminate_poll("Conflict: terminated by setWebhook request")
    call.core.webhook_changed(bot)
    return Described(True, "Webhook was set")


@api_method("getWebhookInfo")
async def get_webhook_info(call: Call) -> Any:
    bot = call.bot
    pending = len(bot.queue.pending)
    if bot.webhook is None:
        return {"url": "", "has_custom_certificate": False, "pending_update_count": pending}
    return bot.webhook.info(pending, bot.queue.allowed_updates)


@api_method("answerCallbackQuery")
async def answer_callback_query(call: Call) -> Any:
    params = call.params
    query_id = params.string("callback_query_id").strip()
    pending = call.bot.callbacks.get(query_id)
    expired = (
        pending is None
        or pending.answered
        or call.core.clock() - pending.created > call.core.config.callback_query_ttl
    )
    if expired or pending is None:
        raise ApiError(400, QUERY_TOO_OLD)
    text = params.string("text")
    if len(text) > 200:
        raise bad_request("MESSAGE_TOO_LONG")
    pending.answered = True
    answer = CallbackAnswer(
        bot_id=call.bot.id,
        callback_query_id=query_id,
        text=text or None,
        show_alert=params.boolean("show_alert"),
        url=params.optional_string("url"),
        cache_time=params.integer("cache_time", 0, 0, 24 * 30 * 60 * 60),
        time=call.core.clock(),
    )
    call.core.callback_answers.append(answer)
    call.core.add_event("callback_answer", bot_id=call.bot.id, answer=answer.to_dict())
    return True


@api_method("getFile")
async def get_file(call: Call) -> Any:
    file_id = call.params.string("file_id").strip()
    if not file_id:
        raise bad_request("file_id not specified")
    stored = call.core.world.files.get(file_id)
    if stored is None:
        raise bad_request("invalid file_id")
    if stored.file_size > MAX_DOWNLOAD_SIZE:
        raise bad_request("file is too big")
    return stored.api_file()
