"""Bot API methods that send new messages.

Owns sendMessage, sendPhoto, sendDocument and the other single-file senders, sendMediaGroup,
sendLocation and sendChatAction.  Each validates its arguments in Telegram's order (content
first, then the chat, then the replied message), applies flood limits and records the
resulting ``Message``.
"""

from __future__ import annotations

import secrets
from typing import Any

from .api_common import (
    SEND,
    Call,
    InputRef,
    api_method,
    build_message,
    caption_fields,
    count_send,
    param_caption,
    param_text,
    parse_reply_markup,
    resolve_chat,
    resolve_input_file,
    resolve_reply,
    store_bot_message,
    tdlib_error,
)
from .errors import bad_request
from .files import StoredFile, guess_mime


@api_method("sendMessage")
async def send_message(call: Call) -> Any:
    params = call.params
    params.json("reply_parameters", "can't parse reply parameters JSON object")
    text, parse_mode, formatted = param_text(call)
    link_preview = params.json(
        "link_preview_options", "can't parse link preview options JSON object"
    )
    if link_preview is not None and not isinstance(link_preview, dict):
        raise bad_request("object expected as link preview options")
    markup = parse_reply_markup(params)
    target = resolve_chat(call, SEND)
    reply_to = resolve_reply(call, target)
    count_send(call, target)
    content: dict[str, Any] = {"text": formatted.text}
    if formatted.entities:
        content["entities"] = formatted.entities
    if link_preview:
        content["link_preview_options"] = link_preview
    raw = build_message(call, target, content, reply_to=reply_to, markup=markup)
    store_bot_message(call, target, raw, markup=markup, parse_mode=parse_mode, source=text)
    return raw


# kind -> (parameter name, Message field)
_SINGLE_FILE = {
    "sendPhoto": ("photo", "photo"),
    "sendDocument": ("document", "document"),
    "sendVoice": ("voice", "voice"),
    "sendAudio": ("audio", "audio"),
    "sendVideo": ("video", "video"),
    "sendAnimation": ("animation", "animation"),
    "sendVideoNote": ("video_note", "video_note"),
    "sendSticker": ("sticker", "sticker"),
}


@api_method(*_SINGLE_FILE)
async def send_file(call: Call) -> Any:
    kind, field = _SINGLE_FILE[call.method]
    params = call.params
    params.json("reply_parameters", "can't parse reply parameters JSON object")
    caption = {} if kind in ("sticker", "video_note") else param_caption(call)
    markup = parse_reply_markup(params)
    ref = await resolve_input_file(call, params.string(kind), kind, kind)
    target = resolve_chat(call, SEND)
    reply_to = resolve_reply(call, target)
    count_send(call, target)
    content = {field: media_object(call, kind, ref, params_overrides(call)), **caption}
    if kind == "animation":
        content["document"] = dict(content["animation"])
    if params.boolean("has_spoiler"):
        content["has_media_spoiler"] = True
    raw = build_message(call, target, content, reply_to=reply_to, markup=markup)
    store_bot_message(
        call,
        target,
        raw,
        markup=markup,
        parse_mode=params.optional_string("parse_mode"),
        source=params.optional_string("caption"),
    )
    return raw


def params_overrides(call: Call) -> dict[str, Any]:
    params = call.params
    out: dict[str, Any] = {}
    for key in ("duration", "width", "height", "length"):
        if params.has(key):
            out[key] = params.integer(key)
    for key in ("title", "performer", "emoji"):
        if params.has(key):
            out[key] = params.string(key)
    return out


def store_input(call: Call, kind: str, ref: InputRef) -> list[StoredFile]:
    """Stores an upload (or reuses a known file) and returns it; photos yield all sizes."""
    files = call.core.world.files
    if ref.existing is not None:
        return files.photo_set_of(ref.existing) if kind == "photo" else [ref.existing]
    assert ref.upload is not None
    upload = ref.upload
    if kind == "photo":
        return files.add_photo(upload.data)
    fallback = upload.content_type
    if fallback in ("application/octet-stream", ""):
        fallback = {"voice": "audio/ogg", "sticker": "image/webp", "video": "video/mp4"}.get(
            kind, "application/octet-stream"
        )
    mime = guess_mime(upload.filename, fallback)
    return [files.add(kind, upload.data, file_name=upload.filename, mime_type=mime)]


def media_object(call: Call, kind: str, ref: InputRef, overrides: dict[str, Any]) -> Any:
    """The Message field value (PhotoSize list, Document, Voice, ...) for a sent file."""
    stored = store_input(call, kind, ref)
    if kind == "photo":
        return [size.photo_size() for size in stored]
    return file_object(kind, stored[0], overrides)


def file_object(kind: str, stored: StoredFile, overrides: dict[str, Any]) -> dict[str, Any]:
    base = stored.ids()
    if kind in ("document", "audio", "video", "animation") and stored.file_name:
        base["file_name"] = stored.file_name
    if kind not in ("sticker", "video_note") and stored.mime_type:
        base["mime_type"] = stored.mime_type
    if kind in ("voice", "audio", "video", "animation", "video_note"):
        base["duration"] = overrides.get("duration", 0)
    if kind in ("video", "animation"):
        base["width"] = overrides.get("width", stored.width or 640)
        base["height"] = overrides.get("height", stored.height or 360)
    if kind == "video_note":
        base["length"] = overrides.get("length", 240)
    if kind == "audio":
        for key in ("title", "performer"):
            if key in overrides:
                base[key] = overrides[key]
    if kind == "sticker":
        base.update(
            {
                "type": "regular",
                "width": stored.width or 512,
                "height": stored.height or 512,
                "is_animated": False,
                "is_video": False,
            }
        )
        if overrides.get("emoji"):
            base["emoji"] = overrides["emoji"]
    return base


_ALBUM_TYPES = {"photo", "video", "document", "audio"}
_TYPE_WORD = {"document": "Document", "audio": "Audio"}


@api_method("sendMediaGroup")
async def send_media_group(call: Call) -> Any:
    params = call.params
    params.json("reply_parameters", "can't parse reply parameters JSON object")
    if not params.has("media"):
        raise bad_request('parameter "media" is required')
    media = params.json("media", "can't parse media JSON object")
    if not isinstance(media, list):
        raise bad_request("expected an Array of InputMedia")
    items = [await _album_item(call, item) for item in media]
    if len(items) > 10:
        raise bad_request("too many messages to send as an album")
    if not items:
        raise bad_request("there are no messages to send")
    if len(items) < 2:
        # Bot API documents 2-10 items; a single item is refused here.
        raise bad_request("media group must contain 2-10 items")
    kinds = {kind for kind, _, _ in items}
    for kind in ("document", "audio"):
        if kind in kinds and len(kinds) > 1:
            raise tdlib_error(f"{_TYPE_WORD[kind]} can't be mixed with other media types")
    target = resolve_chat(call, SEND)
    reply_to = resolve_reply(call, target)
    count_send(call, target)
    group_id = str(secrets.randbelow(10**18) + 10**17)
    sent: list[dict[str, Any]] = []
    for kind, ref, caption in items:
        content: dict[str, Any] = {"media_group_id": group_id}
        content[kind] = media_object(call, kind, ref, {})
        content.update(caption)
        raw = build_message(call, target, content, reply_to=reply_to, markup=None)
        store_bot_message(call, target, raw, source=caption.get("caption"))
        sent.append(raw)
    return sent


async def _album_item(call: Call, item: Any) -> tuple[str, InputRef, dict[str, Any]]:
    prefix = "can't parse InputMedia: "
    if not isinstance(item, dict):
        raise bad_request(prefix + "expected an Object")
    kind = item.get("type")
    if not isinstance(kind, str):
        raise bad_request(prefix + 'Can\'t find field "type"')
    caption = caption_fields(
        call,
        str(item.get("caption") or ""),
        item.get("parse_mode") if isinstance(item.get("parse_mode"), str) else None,
        item.get("caption_entities"),
    )
    if kind == "animation":
        raise bad_request(prefix + 'type "animation" can\'t be used in sendMediaGroup')
    if kind not in _ALBUM_TYPES:
        raise bad_request(prefix + f'type "{kind}" is unsupported')
    media = item.get("media")
    ref = await resolve_input_file(
        call, media if isinstance(media, str) else "", kind, "", missing=prefix + "media not found"
    )
    return kind, ref, caption


@api_method("sendLocation")
async def send_location(call: Call) -> Any:
    params = call.params
    params.json("reply_parameters", "can't parse reply parameters JSON object")
    if not params.string("latitude").strip():
        raise bad_request("latitude is empty")
    if not params.string("longitude").strip():
        raise bad_request("longitude is empty")
    location: dict[str, Any] = {
        "latitude": params.number("latitude"),
        "longitude": params.number("longitude"),
    }
    for key in ("horizontal_accuracy", "live_period", "heading", "proximity_alert_radius"):
        if params.has(key):
            location[key] = (
                params.number(key) if key == "horizontal_accuracy" else (params.integer(key))
            )
    markup = parse_reply_markup(params)
    target = resolve_chat(call, SEND)
    reply_to = resolve_reply(call, target)
    count_send(call, target)
    raw = build_message(call, target, {"location": location}, reply_to=reply_to, markup=markup)
    store_bot_message(call, target, raw, markup=markup)
    return raw


_CHAT_ACTIONS = {
    "typing",
    "upload_photo",
    "record_video",
    "upload_video",
    "record_voice",
    "upload_voice",
    "upload_document",
    "choose_sticker",
    "find_location",
    "record_video_note",
    "upload_video_note",
}


@api_method("sendChatAction")
async def send_chat_action(call: Call) -> Any:
    action = call.params.string("action").strip().lower()
    if action not in _CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    target = resolve_chat(call, SEND)
    call.core.add_event(
        "chat_action",
        bot_id=call.bot.id,
        chat_id=target.chat_id,
        action=action,
        date=call.core.unix_now(),
    )
    return True
