"""Bot API methods about the bot itself, chats and members.

Owns getMe, getChat, getChatMember, getChatAdministrators, getChatMemberCount, leaveChat,
the bot command lists (setMyCommands/getMyCommands/deleteMyCommands with scopes and language
codes) and the bot's name/description settings.
"""

from __future__ import annotations

import re
from typing import Any

from .api_common import READ, WRITE, Call, api_method, resolve_chat, tdlib_error, web_app_url
from .errors import bad_request
from .world import Member, member_dict

_GIFT_TYPES = {
    "unlimited_gifts": True,
    "limited_gifts": True,
    "unique_gifts": True,
    "premium_subscription": True,
    "gifts_from_channels": True,
}
_GROUP_PERMISSIONS = {
    "can_send_messages": True,
    "can_send_audios": True,
    "can_send_documents": True,
    "can_send_photos": True,
    "can_send_videos": True,
    "can_send_video_notes": True,
    "can_send_voice_notes": True,
    "can_send_polls": True,
    "can_send_other_messages": True,
    "can_add_web_page_previews": True,
    "can_change_info": False,
    "can_invite_users": True,
    "can_pin_messages": False,
    "can_manage_topics": False,
}


@api_method("getMe")
async def get_me(call: Call) -> Any:
    bot = call.bot
    return {
        **bot.user_dict(),
        "can_join_groups": True,
        "can_read_all_group_messages": not call.core.config.privacy_mode,
        "supports_inline_queries": False,
        "can_connect_to_business": False,
        "has_main_web_app": False,
    }


@api_method("logOut", "close")
async def log_out(call: Call) -> Any:
    return True


@api_method("getChat")
async def get_chat(call: Call) -> Any:
    target = resolve_chat(call, READ)
    info: dict[str, Any]
    if target.user is not None:
        info = target.user.private_chat()
    else:
        assert target.chat is not None
        chat = target.chat
        info = chat.to_dict()
        info["permissions"] = dict(_GROUP_PERMISSIONS)
        if chat.description:
            info["description"] = chat.description
        if chat.migrated_from is not None:
            info["migrated_from_chat_id"] = chat.migrated_from
        if chat.type == "supergroup":
            info["has_visible_history"] = True
    info.update({"accent_color_id": 0, "max_reaction_count": 11})
    info["accepted_gift_types"] = dict(_GIFT_TYPES)
    return info


def _user_id(call: Call) -> int:
    raw = call.params.string("user_id").strip()
    if not raw:
        raise bad_request("user_id is empty")
    if not re.fullmatch(r"[+-]?\d+", raw):
        raise bad_request("invalid user_id specified")
    return int(raw)


@api_method("getChatMember")
async def get_chat_member(call: Call) -> Any:
    target = resolve_chat(call, READ)
    user_id = _user_id(call)
    user = call.core.world.find_user(user_id)
    if user is None:
        raise bad_request("user not found")
    if target.chat is None:
        present = user_id in (target.chat_id, call.bot.id)
        return member_dict(user.to_dict(), Member("member" if present else "left"))
    member = target.chat.members.get(user_id, Member("left"))
    return member_dict(user.to_dict(), member)


@api_method("getChatAdministrators")
async def get_chat_administrators(call: Call) -> Any:
    target = resolve_chat(call, READ)
    if target.chat is None:
        raise bad_request("there are no administrators in the private chat")
    world = call.core.world
    out = []
    for user_id, member in target.chat.members.items():
        user = world.find_user(user_id)
        if member.is_admin() and user is not None:
            out.append(member_dict(user.to_dict(), member))
    return out


@api_method("getChatMemberCount", "getChatMembersCount")
async def get_chat_member_count(call: Call) -> Any:
    target = resolve_chat(call, READ)
    if target.chat is None:
        return 2
    return sum(1 for member in target.chat.members.values() if member.is_present())


@api_method("leaveChat")
async def leave_chat(call: Call) -> Any:
    target = resolve_chat(call, WRITE)
    if target.chat is None:
        raise bad_request("chat member status can't be changed in private chats")
    chat = target.chat
    old = chat.members[call.bot.id]
    chat.members[call.bot.id] = Member("left")
    bot_user = call.bot.user_dict()
    call.core.emit(
        call.bot,
        "my_chat_member",
        {
            "chat": chat.to_dict(),
            "from": bot_user,
            "date": call.core.unix_now(),
            "old_chat_member": member_dict(bot_user, old),
            "new_chat_member": member_dict(bot_user, Member("left")),
        },
    )
    return True


# -- commands ------------------------------------------------------------------------------
_SIMPLE_SCOPES = ("default", "all_private_chats", "all_group_chats", "all_chat_administrators")


def scope_key(call: Call) -> str:
    """A canonical key for the ``scope`` argument, checking chats like Telegram does."""
    value = call.params.json("scope", "can't parse BotCommandScope JSON object")
    if value is None:
        return "default"
    if not isinstance(value, dict):
        raise bad_request("BotCommandScope must be an Object")
    kind = value.get("type")
    if kind in _SIMPLE_SCOPES:
        return str(kind)
    if kind not in ("chat", "chat_administrators", "chat_member"):
        raise bad_request("unsupported type specified")
    chat_id = value.get("chat_id")
    if chat_id is None or chat_id == "":
        raise bad_request("empty chat_id specified")
    scoped = Call(call.core, call.bot, type(call.params)({"chat_id": chat_id}), call.method)
    target = resolve_chat(scoped, READ)
    if kind != "chat_member":
        return f"{kind}:{target.chat_id}"
    user_id = value.get("user_id")
    if not isinstance(user_id, int) or user_id <= 0:
        raise bad_request("invalid user_id specified")
    return f"chat_member:{target.chat_id}:{user_id}"


def language(call: Call) -> str:
    code = call.params.string("language_code")
    if code and not re.fullmatch(r"[a-z]{2}", code):
        raise bad_request("invalid language code specified")
    return code


def _commands(call: Call) -> list[dict[str, str]]:
    value = call.params.json("commands", "can't parse commands JSON object")
    if value is None:
        value = []
    if not isinstance(value, list):
        raise bad_request("expected an Array of BotCommand")
    out: list[dict[str, str]] = []
    for item in value:
        if not isinstance(item, dict):
            raise bad_request("can't parse BotCommand: expected an Object")
        command = str(item.get("command", "")).strip().removeprefix("/")
        description = str(item.get("description", "")).strip()
        if not command:
            raise tdlib_error("Command must be non-empty")
        if len(command) > 32:
            raise tdlib_error("Command length must not exceed 32")
        if not description:
            raise tdlib_error("Command description must be non-empty")
        if len(description) > 256:
            raise tdlib_error("Command description length must not exceed 256")
        if not re.fullmatch(r"[a-z0-9_]+", command):
            raise bad_request("BOT_COMMAND_INVALID")
        out.append({"command": command, "description": description})
    if len(out) > 100:
        raise bad_request("BOT_COMMANDS_TOO_MUCH")
    return out


@api_method("setMyCommands")
async def set_my_commands(call: Call) -> Any:
    commands = _commands(call)
    key = (scope_key(call), language(call))
    if commands:
        call.bot.commands[key] = commands
    else:
        call.bot.commands.pop(key, None)
    call.core.add_event("commands", bot_id=call.bot.id, scope=key[0], language_code=key[1])
    return True


@api_method("getMyCommands")
async def get_my_commands(call: Call) -> Any:
    key = (scope_key(call), language(call))
    return [dict(command) for command in call.bot.commands.get(key, [])]


@api_method("deleteMyCommands")
async def delete_my_commands(call: Call) -> Any:
    key = (scope_key(call), language(call))
    call.bot.commands.pop(key, None)
    return True


# -- name / description --------------------------------------------------------------------
_PROFILE_FIELDS = {
    "setmyname": ("name", 64),
    "setmydescription": ("description", 512),
    "setmyshortdescription": ("short_description", 120),
}


@api_method("setMyName", "setMyDescription", "setMyShortDescription")
async def set_my_profile(call: Call) -> Any:
    field, limit = _PROFILE_FIELDS[call.method.lower()]
    value = call.params.string(field)
    if len(value) > limit:
        raise bad_request(f"{field.upper()}_INVALID" if field == "name" else "ABOUT_TOO_LONG")
    key = (field, language(call))
    if value:
        call.bot.profile[key] = value
    else:
        call.bot.profile.pop(key, None)
    return True


@api_method("getMyName", "getMyDescription", "getMyShortDescription")
async def get_my_profile(call: Call) -> Any:
    field = call.method[5:]
    field = {"Name": "name", "Description": "description"}.get(field, "short_description")
    code = language(call)
    value = call.bot.profile.get((field, code)) or call.bot.profile.get((field, ""), "")
    if field == "name" and not value:
        value = call.bot.first_name
    return {field: value}


@api_method("setMyDefaultAdministratorRights")
async def accept_settings(call: Call) -> Any:
    # Accepted and recorded in the request log; the simulated clients do not render them.
    return True


@api_method("setChatMenuButton")
async def set_chat_menu_button(call: Call) -> Any:
    """A private chat's menu button (no chat: the default for all): ``commands``, ``default``
    or ``web_app`` with its text and https address, as Telegram checks them."""
    button = call.params.json("menu_button", "can't parse menu button JSON object")
    if button is None:
        button = {"type": "default"}
    if not isinstance(button, dict) or button.get("type") not in (
        "commands",
        "default",
        "web_app",
    ):
        raise bad_request("unsupported menu button type")
    if button["type"] == "web_app":
        text = button.get("text")
        if not isinstance(text, str) or not text.strip():
            raise bad_request("BUTTON_TEXT_INVALID")
        web_app_url(button.get("web_app"))
    chat_id = call.params.integer("chat_id")
    call.bot.menu_buttons[chat_id or 0] = button
    return True
