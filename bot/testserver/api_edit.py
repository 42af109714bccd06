"""Bot API methods that change or reuse existing messages.

Owns editMessageText, editMessageCaption, editMessageReplyMarkup (with Telegram's
"message is not modified" rule: the new content and markup must differ; omitting
``reply_markup`` removes the keyboard), deleteMessage(s), copyMessage and forwardMessage.
"""

from __future__ import annotations

import copy
from typing import Any

from .api_common import (
    EDIT,
    READ,
    SEND,
    WRITE,
    Call,
    Target,
    api_method,
    build_message,
    caption_fields,
    count_send,
    param_text,
    parse_reply_markup,
    resolve_chat,
    resolve_reply,
    store_bot_message,
)
from .errors import NOT_MODIFIED, ApiError, bad_request
from .world import StoredMessage

_MEDIA_FIELDS = ("photo", "document", "video", "audio", "animation", "voice")
_COPYABLE = (
    "text",
    "entities",
    "link_preview_options",
    *_MEDIA_FIELDS,
    "sticker",
    "video_note",
    "location",
    "venue",
    "contact",
    "caption",
    "caption_entities",
    "show_caption_above_media",
    "has_media_spoiler",
)


def _own_message(call: Call) -> tuple[Target, StoredMessage]:
    if call.params.has("inline_message_id"):
        # Inline mode is not simulated, so no inline message can exist.
        raise bad_request("MESSAGE_ID_INVALID")
    target = resolve_chat(call, EDIT)
    message_id = call.params.integer("message_id")
    stored = call.bot.history(target.chat_id).get(message_id) if message_id > 0 else None
    if stored is None:
        raise bad_request("message to edit not found")
    if not stored.from_bot or stored.sender_id != call.bot.id:
        raise bad_request("message can't be edited")
    return target, stored


def _new_inline_markup(call: Call) -> dict[str, Any] | None:
    markup = parse_reply_markup(call.params)
    return copy.deepcopy(markup.data) if markup is not None and markup.inline else None


def _apply_edit(
    call: Call,
    target: Target,
    stored: StoredMessage,
    changes: dict[str, Any],
    drop: tuple[str, ...],
    markup: dict[str, Any] | None,
    *,
    parse_mode: str | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    count_send(call, target)
    raw = copy.deepcopy(stored.raw)
    for key in drop:
        raw.pop(key, None)
    raw.update(changes)
    if markup is None:
        raw.pop("reply_markup", None)
    else:
        raw["reply_markup"] = markup
    raw["edit_date"] = call.core.unix_now()
    stored.raw = raw
    record = stored.record
    if record is not None:
        record.edits.append(record.snapshot())
        record.raw = raw
        record.last_method = call.method
        record.reply_markup = copy.deepcopy(markup)
        if "text" in raw:
            record.text = raw["text"]
        if any(field in raw for field in _MEDIA_FIELDS):
            record.caption = raw.get("caption")
        if call.method != "editMessageReplyMarkup":
            record.parse_mode = parse_mode
            record.source = source
    call.core.stats["edits"] += 1
    call.core.add_event("bot_edit", bot_id=call.bot.id, chat_id=target.chat_id, message=raw)
    return raw


@api_method("editMessageText")
async def edit_message_text(call: Call) -> Any:
    params = call.params
    text, parse_mode, formatted = param_text(call)
    markup = _new_inline_markup(call)
    target, stored = _own_message(call)
    if "text" not in stored.raw:
        raise bad_request("there is no text in the message to edit")
    unchanged = (
        stored.raw.get("text") == formatted.text
        and stored.raw.get("entities", []) == formatted.entities
        and stored.raw.get("reply_markup") == markup
    )
    if unchanged:
        raise ApiError(400, NOT_MODIFIED)
    changes: dict[str, Any] = {"text": formatted.text}
    if formatted.entities:
        changes["entities"] = formatted.entities
    link_preview = params.json(
        "link_preview_options", "can't parse link preview options JSON object"
    )
    if isinstance(link_preview, dict) and link_preview:
        changes["link_preview_options"] = link_preview
    return _apply_edit(
        call,
        target,
        stored,
        changes,
        ("entities", "link_preview_options"),
        markup,
        parse_mode=parse_mode,
        source=text,
    )


@api_method("editMessageCaption")
async def edit_message_caption(call: Call) -> Any:
    params = call.params
    parse_mode = params.optional_string("parse_mode")
    entities = params.json("caption_entities", "can't parse entities JSON object")
    caption = caption_fields(call, params.string("caption"), parse_mode, entities)
    markup = _new_inline_markup(call)
    target, stored = _own_message(call)
    if not any(field in stored.raw for field in _MEDIA_FIELDS):
        raise bad_request("there is no caption in the message to edit")
    unchanged = (
        stored.raw.get("caption") == caption.get("caption")
        and stored.raw.get("caption_entities") == caption.get("caption_entities")
        and stored.raw.get("reply_markup") == markup
    )
    if unchanged:
        raise ApiError(400, NOT_MODIFIED)
    return _apply_edit(
        call,
        target,
        stored,
        caption,
        ("caption", "caption_entities"),
        markup,
        parse_mode=parse_mode,
        source=params.optional_string("caption"),
    )


@api_method("editMessageReplyMarkup")
async def edit_message_reply_markup(call: Call) -> Any:
    markup = _new_inline_markup(call)
    target, stored = _own_message(call)
    if stored.raw.get("reply_markup") == markup:
        raise ApiError(400, NOT_MODIFIED)
    return _apply_edit(call, target, stored, {}, (), markup)


def _delete(call: Call, target: Target, message_id: int) -> bool:
    stored = call.bot.history(target.chat_id).get(message_id) if message_id > 0 else None
    if stored is None:
        raise bad_request("message to delete not found")
    own = stored.from_bot and stored.sender_id == call.bot.id
    if not own and target.chat is not None:
        member = target.chat.members.get(call.bot.id)
        if member is None or not member.can("can_delete_messages"):
            raise bad_request("message can't be deleted")
    stored.deleted = True
    if stored.record is not None:
        stored.record.deleted = True
    call.core.stats["deletes"] += 1
    call.core.add_event(
        "bot_delete", bot_id=call.bot.id, chat_id=target.chat_id, message_id=message_id
    )
    return True


@api_method("deleteMessage")
async def delete_message(call: Call) -> Any:
    target = resolve_chat(call, WRITE)
    return _delete(call, target, call.params.integer("message_id"))


@api_method("deleteMessages")
async def delete_messages(call: Call) -> Any:
    ids = call.params.json("message_ids", "can't parse message identifiers JSON object")
    if not ids:
        raise bad_request("message identifiers are not specified")
    if not isinstance(ids, list):
        raise bad_request("expected an Array of message identifiers")
    if len(ids) > 100:
        raise bad_request("too many message identifiers specified")
    target = resolve_chat(call, WRITE)
    for message_id in ids:
        try:
            _delete(call, target, int(message_id))
        except (ApiError, TypeError, ValueError):
            continue  # deleteMessages silently skips messages it cannot delete
    return True


def _source_message(call: Call, what: str) -> tuple[Target, StoredMessage]:
    source = resolve_chat(call, READ, param="from_chat_id")
    message_id = call.params.integer("message_id")
    stored = call.bot.history(source.chat_id).get(message_id) if message_id > 0 else None
    if stored is None:
        raise bad_request(f"message to {what} not found")
    if not any(key in stored.raw for key in _COPYABLE):
        raise bad_request(
            "message can't be copied" if what == "copy" else "message can't be forwarded"
        )
    return source, stored


@api_method("copyMessage")
async def copy_message(call: Call) -> Any:
    params = call.params
    _, stored = _source_message(call, "copy")
    content = {k: copy.deepcopy(v) for k, v in stored.raw.items() if k in _COPYABLE}
    parse_mode = params.optional_string("parse_mode")
    if params.raw("caption") is not None and any(f in content for f in _MEDIA_FIELDS):
        content.pop("caption", None)
        content.pop("caption_entities", None)
        entities = params.json("caption_entities", "can't parse entities JSON object")
        content.update(caption_fields(call, params.string("caption"), parse_mode, entities))
    markup = parse_reply_markup(params)
    target = resolve_chat(call, SEND)
    reply_to = resolve_reply(call, target)
    count_send(call, target)
    raw = build_message(call, target, content, reply_to=reply_to, markup=markup)
    store_bot_message(call, target, raw, markup=markup, parse_mode=parse_mode)
    return {"message_id": raw["message_id"]}


@api_method("forwardMessage")
async def forward_message(call: Call) -> Any:
    source, stored = _source_message(call, "forward")
    content = {k: copy.deepcopy(v) for k, v in stored.raw.items() if k in _COPYABLE}
    origin: dict[str, Any] = {"type": "user", "date": stored.raw.get("date", call.core.unix_now())}
    origin["sender_user"] = stored.raw.get("from")
    if source.chat is not None and source.chat.type != "group" and source.chat.username:
        origin = {
            "type": "chat",
            "date": origin["date"],
            "sender_chat": source.chat.to_dict(),
        }
    content = {"forward_origin": origin, **content}
    target = resolve_chat(call, SEND)
    count_send(call, target)
    raw = build_message(call, target, content)
    store_bot_message(call, target, raw)
    return raw
