"""Building blocks shared by the Bot API method handlers.

Owns the method registry (``api_method``), the per-call context (``Call``), chat resolution
with Telegram's access rules and error texts, reply markup and reply parameter parsing, input
file resolution (uploads, ``attach://``, file_id, local HTTP URLs), flood-limit accounting and
the creation of bot-sent messages.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from .core import ServerCore
from .entities import checked_link
from .errors import (
    WRONG_FILE,
    ApiError,
    bad_request,
    chat_migrated,
    forbidden,
    lower_first,
    too_many_requests,
)
from .files import TYPE_NAMES, StoredFile, compatible
from .formatting import FormattedText, format_text
from .params import Params, UploadedFile
from .records import BotMessage
from .world import BotState, Chat, StoredMessage, User

# Access levels, from strongest to weakest: SEND also requires that a private chat's user
# has started the bot and not blocked it; WRITE and EDIT need group membership; READ only
# needs the chat to be visible to the bot.
SEND = "send"
WRITE = "write"
EDIT = "edit"
READ = "read"


@dataclass
class Call:
    core: ServerCore
    bot: BotState
    params: Params
    method: str
    http: aiohttp.ClientSession | None = None


@dataclass
class Described:
    """A successful result that also carries Telegram's ``description`` (setWebhook does)."""

    value: Any
    description: str


Handler = Callable[[Call], Awaitable[Any]]
METHODS: dict[str, tuple[str, Handler]] = {}


def api_method(*names: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        for name in names:
            METHODS[name.lower()] = (name, handler)
        return handler

    return register


# -- chats ---------------------------------------------------------------------------------
@dataclass
class Target:
    chat_id: int
    chat: Chat | None = None
    user: User | None = None

    @property
    def is_group(self) -> bool:
        return self.chat is not None


def parse_chat_id(raw: str) -> int:
    match = re.match(r"\s*[+-]?\d+", raw)
    return int(match.group(0)) if match else 0


def resolve_chat(call: Call, access: str = SEND, param: str = "chat_id") -> Target:
    """Finds the chat a call addresses and applies Telegram's access checks."""
    raw = call.params.string(param).strip()
    if not raw:
        raise bad_request(f"{param} is empty")
    world = call.core.world
    bot = call.bot
    if raw.startswith("@"):
        found = world.chat_by_username(raw)
        if found is None:
            raise bad_request("chat not found")
        chat_id = found.id
    else:
        chat_id = parse_chat_id(raw)
    if chat_id > 0:
        return _private_target(bot, world.find_user(chat_id), chat_id, access)
    chat = world.chats.get(chat_id)
    member = chat.members.get(bot.id) if chat is not None else None
    if chat is None or member is None:
        raise bad_request("chat not found")
    word = chat.type_word()
    if chat.type == "group":
        if chat.migrated_to is not None and access in (SEND, WRITE):
            raise chat_migrated(chat.migrated_to)
        if access != READ:
            if member.status == "kicked":
                raise forbidden("bot was kicked from the group chat")
            if not member.is_present():
                raise forbidden("bot is not a member of the group chat")
    else:
        if member.status == "kicked":
            raise forbidden(f"bot was kicked from the {word} chat")
        public = chat.username is not None
        if not member.is_present() and (access != READ or not public):
            raise forbidden(f"bot is not a member of the {word} chat")
    return Target(chat_id, chat=chat)


def _private_target(bot: BotState, user: User | None, chat_id: int, access: str) -> Target:
    if user is None or chat_id == bot.id:
        raise bad_request("chat not found")
    if access != READ and user.deactivated:
        raise forbidden("user is deactivated")
    if access == SEND:
        if user.is_bot:
            raise forbidden("bot can't send messages to bots")
        if user.id in bot.blocked_by:
            raise forbidden("bot was blocked by the user")
        if user.id not in bot.started:
            raise forbidden("bot can't initiate conversation with a user")
    return Target(chat_id, user=user)


def chat_dict(call: Call, target: Target) -> dict[str, Any]:
    if target.chat is not None:
        return target.chat.to_dict()
    assert target.user is not None
    return target.user.private_chat()


def count_send(call: Call, target: Target) -> None:
    """Flood control: refuses the call with 429 when the configured limits are exceeded."""
    retry_after = call.core.limiter.acquire(call.bot.id, target.chat_id, target.is_group)
    if retry_after is not None:
        call.core.stats["429"] += 1
        raise too_many_requests(retry_after)


# -- reply markup --------------------------------------------------------------------------
@dataclass
class Markup:
    kind: str  # inline | keyboard | remove | force_reply
    data: dict[str, Any]

    @property
    def inline(self) -> bool:
        return self.kind == "inline"


_INLINE_TYPES = (
    "url",
    "callback_data",
    "callback_game",
    "pay",
    "switch_inline_query",
    "switch_inline_query_chosen_chat",
    "switch_inline_query_current_chat",
    "login_url",
    "web_app",
    "copy_text",
)
_MAX_BUTTONS = 100


def parse_reply_markup(params: Params) -> Markup | None:
    value = params.json("reply_markup", "can't parse reply keyboard markup JSON object")
    if value is None:
        return None
    return reply_markup_from(value)


def reply_markup_from(value: Any) -> Markup | None:
    if not isinstance(value, dict):
        raise bad_request("object expected as reply markup")
    if value.get("keyboard"):
        return _reply_keyboard(value)
    inline = value.get("inline_keyboard")
    if inline:
        if not isinstance(inline, list) or not all(isinstance(r, list) for r in inline):
            raise bad_request(
                'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays'
            )
        rows = [[_inline_button(button) for button in row] for row in inline]
        if sum(len(row) for row in rows) > _MAX_BUTTONS:
            raise bad_request("reply markup is too long")
        return Markup("inline", {"inline_keyboard": rows})
    if value.get("remove_keyboard") or value.get("hide_keyboard"):
        out = {"remove_keyboard": True}
        if value.get("selective"):
            out["selective"] = True
        return Markup("remove", out)
    if value.get("force_reply") or value.get("force_reply_keyboard"):
        data: dict[str, Any] = {"force_reply": True}
        for key in ("input_field_placeholder", "selective"):
            if value.get(key):
                data[key] = value[key]
        return Markup("force_reply", data)
    return None


def _reply_keyboard(value: dict[str, Any]) -> Markup:
    keyboard = value["keyboard"]
    if not isinstance(keyboard, list) or not all(isinstance(r, list) for r in keyboard):
        raise bad_request('field "keyboard" must be an Array of Arrays')
    rows: list[list[dict[str, Any]]] = []
    for row in keyboard:
        new_row: list[dict[str, Any]] = []
        for button in row:
            if isinstance(button, str):
                new_row.append({"text": button})
            elif isinstance(button, dict) and isinstance(button.get("text"), str):
                if "web_app" in button:
                    web_app_url(button["web_app"])
                new_row.append(dict(button))
            elif isinstance(button, dict):
                raise bad_request("can't parse keyboard button: Can't find field \"text\"")
            else:
                raise bad_request(
                    "can't parse keyboard button: KeyboardButton must be a String or an Object"
                )
        rows.append(new_row)
    data: dict[str, Any] = {"keyboard": rows}
    for key in (
        "is_persistent",
        "resize_keyboard",
        "one_time_keyboard",
        "input_field_placeholder",
        "selective",
    ):
        if value.get(key):
            data[key] = value[key]
    return Markup("keyboard", data)


def web_app_url(value: Any) -> str:
    """A ``WebAppInfo``'s address: https, as Telegram asks; plain http is taken too, as
    Telegram's test environment takes it (the playground and the tests run without TLS)."""
    url = value.get("url") if isinstance(value, dict) else None
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise bad_request("BUTTON_URL_INVALID")
    return url


def _inline_button(button: Any) -> dict[str, Any]:
    prefix = "can't parse inline keyboard button: "
    if not isinstance(button, dict):
        raise bad_request(prefix + "InlineKeyboardButton must be an Object")
    text = button.get("text")
    if not isinstance(text, str):
        raise bad_request(prefix + 'Can\'t find field "text"')
    out: dict[str, Any] = {"text": text}
    for key in ("icon_custom_emoji_id", "style"):
        if button.get(key):
            out[key] = button[key]
    for kind in _INLINE_TYPES:
        if kind not in button:
            continue
        value = button[kind]
        if kind in ("url", "callback_data") and not value:
            continue  # tdlib treats an empty url/callback_data as absent
        if kind == "callback_data":
            if not isinstance(value, str):
                raise bad_request(prefix + 'Field "callback_data" must be of type String')
            if len(value.encode("utf-8")) > 64:
                raise bad_request("BUTTON_DATA_INVALID")
        if kind == "url" and (not isinstance(value, str) or checked_link(value) is None):
            raise bad_request("BUTTON_URL_INVALID")
        if kind == "web_app":
            web_app_url(value)
        out[kind] = value
        return out
    raise bad_request(prefix + "Text buttons are unallowed in the inline keyboard")


# -- replies -------------------------------------------------------------------------------
def resolve_reply(call: Call, target: Target) -> StoredMessage | None:
    params = call.params
    value = params.json("reply_parameters", "can't parse reply parameters JSON object")
    if value is not None:
        if not isinstance(value, dict):
            raise bad_request("object expected as reply parameters")
        message_id = value.get("message_id")
        if not isinstance(message_id, int):
            raise bad_request(
                'can\'t parse reply parameters: Field "message_id" must be of type Number'
            )
        allow = bool(value.get("allow_sending_without_reply"))
    else:
        message_id = params.integer("reply_to_message_id")
        allow = params.boolean("allow_sending_without_reply")
    if not message_id:
        return None
    stored = call.bot.history(target.chat_id).get(message_id)
    if stored is None and not allow:
        raise bad_request("message to be replied not found")
    return stored


def reply_copy(stored: StoredMessage) -> dict[str, Any]:
    """A message as embedded in ``reply_to_message`` (Telegram does not nest further)."""
    raw = copy.deepcopy(stored.raw)
    raw.pop("reply_to_message", None)
    return raw


# -- text ----------------------------------------------------------------------------------
def resolver(call: Call) -> Callable[[int], dict[str, Any] | None]:
    def resolve(user_id: int) -> dict[str, Any] | None:
        user = call.core.world.find_user(user_id)
        return user.to_dict() if user is not None else None

    return resolve


def param_text(call: Call) -> tuple[str, str | None, FormattedText]:
    """A message's ``text`` (refused when empty), its ``parse_mode``, and the text and
    entities they make."""
    params = call.params
    text = params.string("text")
    if not text:
        raise bad_request("message text is empty")
    parse_mode = params.optional_string("parse_mode")
    entities = params.json("entities", "can't parse entities JSON object")
    return text, parse_mode, format_text(text, parse_mode, entities, resolve_user=resolver(call))


def caption_fields(
    call: Call, caption: str, parse_mode: str | None, entities: Any
) -> dict[str, Any]:
    formatted = format_text(
        caption, parse_mode, entities, caption=True, resolve_user=resolver(call)
    )
    out: dict[str, Any] = {}
    if formatted.text:
        out["caption"] = formatted.text
        if formatted.entities:
            out["caption_entities"] = formatted.entities
    return out


def param_caption(call: Call) -> dict[str, Any]:
    params = call.params
    entities = params.json("caption_entities", "can't parse entities JSON object")
    fields = caption_fields(
        call, params.string("caption"), params.optional_string("parse_mode"), entities
    )
    if fields and params.boolean("show_caption_above_media"):
        fields["show_caption_above_media"] = True
    return fields


# -- files ---------------------------------------------------------------------------------
@dataclass
class InputRef:
    """A file parameter resolved to either new bytes or an already stored file."""

    upload: UploadedFile | None = None
    existing: StoredFile | None = None


_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


async def resolve_input_file(
    call: Call, value: str, kind: str, field: str, *, missing: str | None = None
) -> InputRef:
    """Interprets a file argument like tdlib: attach://, direct part, file_id or HTTP URL."""
    params = call.params
    if value.startswith("attach://"):
        upload = params.file(value.removeprefix("attach://"))
    elif not value:
        upload = params.file(field)
    else:
        if value.lower().startswith(("http://", "https://")):
            return InputRef(upload=await _fetch_url(call, value, kind))
        stored = call.core.world.files.get(value.strip())
        if stored is None:
            raise ApiError(400, WRONG_FILE)
        if not compatible(stored.kind, kind):
            raise bad_request(
                f"can't use file of type {TYPE_NAMES[stored.kind]} as {TYPE_NAMES[kind]}"
            )
        return InputRef(existing=stored)
    if upload is None:
        raise bad_request(missing or f"there is no {kind.replace('_', ' ')} in the request")
    if not upload.data:
        raise bad_request("file must be non-empty")
    return InputRef(upload=upload)


async def _fetch_url(call: Call, url: str, kind: str) -> UploadedFile:
    host = (urlsplit(url).hostname or "").lower()
    if host not in _LOCAL_HOSTS or call.http is None:
        # The test server never reaches the internet; only local URLs can be fetched.
        raise ApiError(400, WRONG_FILE)
    try:
        async with call.http.get(url, timeout=aiohttp.ClientTimeout(total=10)) as response:
            if response.status != 200:
                raise bad_request("failed to get HTTP URL content")
            data = await response.read()
            content_type = response.content_type
    except aiohttp.ClientError as exc:
        raise bad_request("failed to get HTTP URL content") from exc
    if kind == "photo" and not content_type.startswith("image/"):
        raise bad_request("wrong type of the web page content")
    name = urlsplit(url).path.rsplit("/", 1)[-1] or "file"
    return UploadedFile(field="url", filename=name, content_type=content_type, data=data)


# -- messages ------------------------------------------------------------------------------
def build_message(
    call: Call,
    target: Target,
    content: dict[str, Any],
    *,
    reply_to: StoredMessage | None = None,
    markup: Markup | None = None,
) -> dict[str, Any]:
    history = call.bot.history(target.chat_id)
    raw: dict[str, Any] = {
        "message_id": history.allocate_id(),
        "from": call.bot.user_dict(),
        "chat": chat_dict(call, target),
        "date": call.core.unix_now(),
    }
    if reply_to is not None:
        raw["reply_to_message"] = reply_copy(reply_to)
    thread_id = call.params.integer("message_thread_id")
    if target.chat is not None and target.chat.is_forum and thread_id > 0:
        raw["message_thread_id"] = thread_id
        raw["is_topic_message"] = True
    raw.update(content)
    if call.params.boolean("protect_content"):
        raw["has_protected_content"] = True
    effect = call.params.string("message_effect_id")
    if effect:
        raw["effect_id"] = effect
    if markup is not None and markup.inline:
        raw["reply_markup"] = copy.deepcopy(markup.data)
    return raw


def store_bot_message(
    call: Call,
    target: Target,
    raw: dict[str, Any],
    *,
    markup: Markup | None = None,
    parse_mode: str | None = None,
    source: str | None = None,
) -> BotMessage:
    photo = raw.get("photo") or []
    document = raw.get("document") or raw.get("voice") or raw.get("audio") or raw.get("video")
    reply = raw.get("reply_to_message")
    record = BotMessage(
        bot_id=call.bot.id,
        chat_id=target.chat_id,
        message_id=raw["message_id"],
        method=call.method,
        raw=raw,
        date=raw["date"],
        seq=call.core.next_seq(),
        text=raw.get("text"),
        caption=raw.get("caption"),
        parse_mode=parse_mode,
        source=source,
        photo=[size["file_id"] for size in photo],
        document=document["file_id"] if isinstance(document, dict) else None,
        reply_markup=copy.deepcopy(markup.data) if markup is not None else None,
        reply_to_message_id=reply["message_id"] if isinstance(reply, dict) else None,
        media_group_id=raw.get("media_group_id"),
    )
    call.bot.history(target.chat_id).messages[record.message_id] = StoredMessage(
        raw=raw, sender_id=call.bot.id, from_bot=True, record=record
    )
    call.core.record_bot_message(record)
    return record


def tdlib_error(message: str) -> ApiError:
    return bad_request(lower_first(message))
