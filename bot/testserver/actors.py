"""The control API's world-building and user-acting half.

Owns everything a test does *as Telegram or as a user*: creating users and groups, changing
memberships, blocking the bot, migrating a group to a supergroup, and sending messages,
media, locations and button presses as a user.  Each action creates the Message (or
CallbackQuery / ChatMemberUpdated) a real client would produce and enqueues the update for
every bot that would receive it (respecting privacy mode in groups).
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Iterable, Sequence
from typing import Any

from .core import ServerCore
from .errors import ControlError
from .formatting import plain_entities
from .world import (
    BotState,
    Chat,
    Member,
    PendingCallback,
    StoredMessage,
    User,
    member_dict,
)

_SERVICE_KEYS = (
    "new_chat_members",
    "left_chat_member",
    "new_chat_title",
    "migrate_to_chat_id",
    "migrate_from_chat_id",
    "group_chat_created",
    "supergroup_chat_created",
    "pinned_message",
)
# A minimal valid WebP header, used when a sticker is sent without explicit bytes.
_STICKER_BYTES = (
    b"RIFF\x1a\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x00\x00\x00\x00\xff\x01\x00\xff\x01\x00"
)


class UserActions:
    _core: ServerCore

    # -- world building --------------------------------------------------------------------
    def add_user(
        self,
        user_id: int,
        first_name: str = "Test",
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "zh-hans",
        *,
        is_bot: bool = False,
    ) -> dict[str, Any]:
        """Registers (or updates) a Telegram user and returns its ``User`` object."""
        if user_id <= 0:
            raise ControlError("user ids are positive integers")
        if user_id in self._core.world.bots:
            raise ControlError(f"{user_id} is the id of a registered bot")
        user = User(user_id, first_name, last_name, username, language_code, is_bot=is_bot)
        self._core.world.users[user_id] = user
        self._core.notify()
        return user.to_dict()

    def deactivate_user(self, user_id: int) -> None:
        """Marks the account deleted: sends to it fail with 'user is deactivated'."""
        self._user(user_id).deactivated = True

    def create_group(
        self,
        chat_id: int,
        title: str,
        *,
        type: str = "supergroup",
        members: Iterable[int] = (),
        admins: Iterable[int] = (),
        creator: int | None = None,
        username: str | None = None,
        forum: bool = False,
        bot_member: bool = True,
        bot_status: str = "member",
        bot: int | str | None = None,
    ) -> dict[str, Any]:
        """Creates a group or supergroup; the bot joins it (silently) unless told otherwise."""
        if type not in ("group", "supergroup"):
            raise ControlError("type must be 'group' or 'supergroup'")
        if chat_id >= 0:
            raise ControlError("group chat ids are negative (supergroups look like -100...)")
        chat = Chat(chat_id, type, title, username=username, is_forum=forum and type != "group")
        for user_id in members:
            self._user(user_id)
            chat.members[user_id] = Member("member")
        for user_id in admins:
            self._user(user_id)
            chat.members[user_id] = Member("administrator")
        if creator is not None:
            self._user(creator)
            chat.members[creator] = Member("creator")
        if bot_member:
            self._check_status(bot_status)
            chat.members[self._core.resolve_bot(bot).id] = Member(bot_status)
        self._core.world.chats[chat_id] = chat
        self._core.notify()
        return chat.to_dict()

    def add_member(
        self,
        chat_id: int,
        user_id: int,
        *,
        status: str = "member",
        by: int | None = None,
    ) -> dict[str, Any] | None:
        """Adds a user (or a registered bot) to a group and emits the service message."""
        self._check_status(status)
        chat = self._group(chat_id)
        bots = self._core.world.bots
        if user_id in bots:
            joined_bot = bots[user_id]
            old = chat.members.get(user_id, Member("left"))
            chat.members[user_id] = Member(status)
            actor = self._user(by) if by is not None else self._any_admin(chat)
            self._my_chat_member(joined_bot, chat.to_dict(), actor, old, chat.members[user_id])
            joined = joined_bot.user_dict()
        else:
            joined_user = self._user(user_id)
            chat.members[user_id] = Member(status)
            actor = self._user(by) if by is not None else joined_user
            joined = joined_user.to_dict()
        return self._service(chat, actor, {"new_chat_members": [joined]})

    def remove_member(
        self, chat_id: int, user_id: int, *, kicked: bool = False, by: int | None = None
    ) -> dict[str, Any] | None:
        """Removes a user from a group (left or kicked) and emits ``left_chat_member``."""
        chat = self._group(chat_id)
        user = self._user(user_id)
        chat.members[user_id] = Member("kicked" if kicked else "left")
        actor = self._user(by) if by is not None else user
        return self._service(chat, actor, {"left_chat_member": user.to_dict()})

    def set_member_status(self, chat_id: int, user_id: int, status: str, **rights: bool) -> None:
        """Changes a member's status (and administrator rights) without any update."""
        self._check_status(status)
        chat = self._group(chat_id)
        chat.members[user_id] = Member(status, dict(rights))
        self._core.notify()

    def kick_bot(
        self, chat_id: int, *, by: int | None = None, bot: int | str | None = None
    ) -> None:
        """Removes the bot from a group as banned; it gets a ``my_chat_member`` update."""
        chat = self._group(chat_id)
        state = self._core.resolve_bot(bot)
        old = chat.members.get(state.id, Member("left"))
        new = Member("kicked")
        chat.members[state.id] = new
        actor = self._user(by) if by is not None else self._any_admin(chat)
        self._my_chat_member(state, chat.to_dict(), actor, old, new)

    def block_bot(self, user_id: int, *, bot: int | str | None = None) -> None:
        """The user blocks the bot: sends now fail with 'bot was blocked by the user'."""
        state = self._core.resolve_bot(bot)
        user = self._user(user_id)
        state.blocked_by.add(user_id)
        self._my_chat_member(state, user.private_chat(), user, Member("member"), Member("kicked"))

    def unblock_bot(self, user_id: int, *, bot: int | str | None = None) -> None:
        state = self._core.resolve_bot(bot)
        user = self._user(user_id)
        if user_id in state.blocked_by:
            state.blocked_by.discard(user_id)
            self._my_chat_member(
                state, user.private_chat(), user, Member("kicked"), Member("member")
            )

    def migrate_group(self, old_id: int, new_id: int) -> dict[str, Any]:
        """Upgrades a basic group to a supergroup, emitting both migration service messages."""
        world = self._core.world
        old = self._group(old_id)
        if old.type != "group":
            raise ControlError(f"chat {old_id} is a {old.type}; only basic groups migrate")
        if old.migrated_to is not None:
            raise ControlError(f"chat {old_id} was already migrated to {old.migrated_to}")
        if new_id in world.chats or new_id >= 0:
            raise ControlError(f"{new_id} is not a free supergroup id")
        new = Chat(new_id, "supergroup", old.title, members=copy.deepcopy(old.members))
        new.migrated_from = old_id
        world.chats[new_id] = new
        actor = self._any_admin(old)
        self._service(old, actor, {"migrate_to_chat_id": new_id})
        old.migrated_to = new_id
        self._service(new, actor, {"migrate_from_chat_id": old_id})
        return new.to_dict()

    # -- acting as a user --------------------------------------------------------------------
    def send_text(
        self,
        user_id: int,
        text: str,
        *,
        chat_id: int | None = None,
        reply_to: int | None = None,
        bot: int | str | None = None,
    ) -> dict[str, Any]:
        """The user sends a text message; commands, mentions, links get their entities."""
        if not text:
            raise ControlError("a text message cannot be empty")
        content: dict[str, Any] = {"text": text}
        entities = plain_entities(text)
        if entities:
            content["entities"] = entities
        return self._user_message(user_id, content, chat_id, reply_to, bot)

    def send_photo(
        self,
        user_id: int,
        data: bytes,
        *,
        caption: str | None = None,
        chat_id: int | None = None,
        reply_to: int | None = None,
        filename: str = "photo.jpg",
        bot: int | str | None = None,
    ) -> dict[str, Any]:
        """The user sends a photo; ``filename`` is accepted but, as in Telegram, not kept."""
        sizes = self._core.world.files.add_photo(data)
        content: dict[str, Any] = {"photo": [size.photo_size() for size in sizes]}
        content.update(self._caption(caption))
        return self._user_message(user_id, content, chat_id, reply_to, bot)

    def send_document(
        self,
        user_id: int,
        data: bytes,
        *,
        filename: str,
        mime_type: str,
        caption: str | None = None,
        chat_id: int | None = None,
        reply_to: int | None = None,
        bot: int | str | None = None,
    ) -> dict[str, Any]:
        document = self._file("document", data, file_name=filename, mime_type=mime_type)
        content: dict[str, Any] = {"document": document, **self._caption(caption)}
        return self._user_message(user_id, content, chat_id, reply_to, bot)

    def send_voice(
        self,
        user_id: int,
        data: bytes,
        *,
        duration: int = 1,
        chat_id: int | None = None,
        reply_to: int | None = None,
        bot: int | str | None = None,
    ) -> dict[str, Any]:
        voice = {"duration": duration, **self._file("voice", data, mime_type="audio/ogg")}
        return self._user_message(user_id, {"voice": voice}, chat_id, reply_to, bot)

    def send_video(
        self,
        user_id: int,
        data: bytes,
        *,
        duration: int = 1,
        caption: str | None = None,
        chat_id: int | None = None,
        reply_to: int | None = None,
        bot: int | str | None = None,
    ) -> dict[str, Any]:
        video = {
            "duration": duration,
            **self._file("video", data, width=640, height=360, mime_type="video/mp4"),
        }
        content: dict[str, Any] = {"video": video}
        if caption:
            content["caption"] = caption
        return self._user_message(user_id, content, chat_id, reply_to, bot)

    def _file(self, kind: str, data: bytes, **attributes: Any) -> dict[str, Any]:
        """Stores a file the user sends; its object as the update shows it: ``attributes``
        (name, type, size) in the order given, then its ids."""
        stored = self._core.world.files.add(kind, data, **attributes)
        return {**attributes, **stored.ids()}

    def send_sticker(
        self,
        user_id: int,
        *,
        emoji: str = "👍",
        data: bytes | None = None,
        chat_id: int | None = None,
        reply_to: int | None = None,
        bot: int | str | None = None,
    ) -> dict[str, Any]:
        stored = self._core.world.files.add(
            "sticker", data or _STICKER_BYTES, mime_type="image/webp", width=512, height=512
        )
        sticker = {
            **stored.ids(),
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": emoji,
        }
        return self._user_message(user_id, {"sticker": sticker}, chat_id, reply_to, bot)

    def send_content(
        self,
        user_id: int,
        content: dict[str, Any],
        *,
        chat_id: int | None = None,
        reply_to: int | None = None,
        bot: int | str | None = None,
    ) -> dict[str, Any]:
        """The user sends a message with any content, given as Bot API fields (``contact``,
        ``poll``, ``dice``, ``sender_chat`` …), e.g. for hostile-input tests."""
        return self._user_message(user_id, content, chat_id, reply_to, bot)

    def push_update(
        self, kind: str, payload: dict[str, Any], *, bot: int | str | None = None
    ) -> dict[str, Any] | None:
        """Queue an update exactly as given (a ``channel_post``, a message from another bot):
        what Telegram could send that no user action here produces."""
        return self._core.emit(self._core.resolve_bot(bot), kind, copy.deepcopy(payload))

    def send_location(
        self,
        user_id: int,
        latitude: float,
        longitude: float,
        *,
        chat_id: int | None = None,
        reply_to: int | None = None,
        bot: int | str | None = None,
    ) -> dict[str, Any]:
        location = {"latitude": float(latitude), "longitude": float(longitude)}
        return self._user_message(user_id, {"location": location}, chat_id, reply_to, bot)

    def send_media_group(
        self,
        user_id: int,
        items: Sequence[bytes],
        *,
        caption: str | None = None,
        chat_id: int | None = None,
        bot: int | str | None = None,
    ) -> list[dict[str, Any]]:
        """Sends an album of photos: one message per item sharing a ``media_group_id``."""
        if not 2 <= len(items) <= 10:
            raise ControlError("an album holds 2-10 items")
        group_id = str(secrets.randbelow(10**18) + 10**17)
        sent = []
        for index, data in enumerate(items):
            sizes = self._core.world.files.add_photo(data)
            content: dict[str, Any] = {
                "media_group_id": group_id,
                "photo": [size.photo_size() for size in sizes],
            }
            if index == 0:
                content.update(self._caption(caption))
            sent.append(self._user_message(user_id, content, chat_id, None, bot))
        return sent

    def edit_text(
        self,
        user_id: int,
        message_id: int,
        text: str,
        *,
        chat_id: int | None = None,
        bot: int | str | None = None,
    ) -> dict[str, Any]:
        """The user edits one of their text messages; bots get ``edited_message``."""
        state = self._core.resolve_bot(bot)
        chat = user_id if chat_id is None else chat_id
        stored = state.history(chat).get(message_id)
        if stored is None or stored.sender_id != user_id or "text" not in stored.raw:
            raise ControlError(f"user {user_id} has no text message {message_id} in chat {chat}")
        raw = copy.deepcopy(stored.raw)
        raw["text"] = text
        raw.pop("entities", None)
        entities = plain_entities(text)
        if entities:
            raw["entities"] = entities
        raw["edit_date"] = self._core.unix_now()
        stored.raw = raw
        self._core.emit(state, "edited_message", copy.deepcopy(raw))
        return raw

    def press_button(
        self,
        user_id: int,
        message_id: int,
        callback_data: str,
        *,
        chat_id: int | None = None,
        force: bool = False,
        bot: int | str | None = None,
    ) -> dict[str, Any]:
        """The user taps an inline button; returns the ``CallbackQuery`` sent to the bot.

        Refuses (ControlError) when the message has no button with that callback data,
        unless ``force`` is set: real clients can send arbitrary data, so bots must cope.
        """
        state = self._core.resolve_bot(bot)
        user = self._user(user_id)
        chat = user_id if chat_id is None else chat_id
        stored = state.history(chat).get(message_id)
        if stored is None:
            raise ControlError(f"there is no message {message_id} in chat {chat}")
        if not force:
            if not stored.from_bot or stored.sender_id != state.id:
                raise ControlError(f"message {message_id} in chat {chat} was not sent by the bot")
            available = _callback_buttons(stored)
            if callback_data not in available:
                raise ControlError(
                    f"message {message_id} in chat {chat} has no button with callback_data "
                    f"{callback_data!r}; it has {available!r}"
                )
        query_id = str(secrets.randbelow(9 * 10**18) + 10**18)
        query = {
            "id": query_id,
            "from": user.to_dict(),
            "message": copy.deepcopy(stored.raw),
            "chat_instance": str((state.id * 1_000_003 ^ chat) & 0x7FFFFFFFFFFFFFFF),
            "data": callback_data,
        }
        state.callbacks[query_id] = PendingCallback(query, self._core.clock())
        self._core.emit(state, "callback_query", query)
        return query

    # -- internals ---------------------------------------------------------------------------
    def _user(self, user_id: int) -> User:
        world = self._core.world
        user = world.users.get(user_id)
        if user is None:
            if user_id in world.bots:
                return world.bots[user_id].user()
            self.add_user(user_id, f"User{user_id}")
            user = world.users[user_id]
        return user

    def _group(self, chat_id: int) -> Chat:
        chat = self._core.world.chats.get(chat_id)
        if chat is None:
            raise ControlError(f"there is no group {chat_id}; create it with create_group()")
        return chat

    @staticmethod
    def _check_status(status: str) -> None:
        if status not in ("creator", "administrator", "member", "restricted", "left", "kicked"):
            raise ControlError(f"unknown member status {status!r}")

    def _any_admin(self, chat: Chat) -> User:
        bots = self._core.world.bots
        ranked = sorted(
            (uid for uid in chat.members if uid not in bots),
            key=lambda uid: (
                ("creator", "administrator", "member").index(chat.members[uid].status)
                if chat.members[uid].status in ("creator", "administrator", "member")
                else 3
            ),
        )
        if ranked:
            return self._user(ranked[0])
        return self._user(777000)  # Telegram's service account acts when nobody else can

    def _caption(self, caption: str | None) -> dict[str, Any]:
        if not caption:
            return {}
        out: dict[str, Any] = {"caption": caption}
        entities = plain_entities(caption)
        if entities:
            out["caption_entities"] = entities
        return out

    def _my_chat_member(
        self, state: BotState, chat: dict[str, Any], actor: User, old: Member, new: Member
    ) -> None:
        bot_user = state.user_dict()
        self._core.emit(
            state,
            "my_chat_member",
            {
                "chat": chat,
                "from": actor.to_dict(),
                "date": self._core.unix_now(),
                "old_chat_member": member_dict(bot_user, old),
                "new_chat_member": member_dict(bot_user, new),
            },
        )

    def _service(self, chat: Chat, actor: User, content: dict[str, Any]) -> dict[str, Any] | None:
        first: dict[str, Any] | None = None
        for state in self._core.world.bots.values():
            member = chat.members.get(state.id)
            if member is None or not member.is_present():
                continue
            raw = self._deliver(state, chat.id, chat, actor, content, None)
            first = first or raw
        self._core.notify()
        return first

    def _user_message(
        self,
        user_id: int,
        content: dict[str, Any],
        chat_id: int | None,
        reply_to: int | None,
        bot: int | str | None,
    ) -> dict[str, Any]:
        state = self._core.resolve_bot(bot)
        user = self._user(user_id)
        if user.is_bot:
            raise ControlError(f"{user_id} is a bot; bots cannot act as users")
        target = user_id if chat_id is None else chat_id
        if target > 0:
            if target != user_id:
                raise ControlError("a user writes to the bot in their own chat (chat_id=user_id)")
            if user_id in state.blocked_by:
                # Writing again means the user pressed "Restart" / unblocked the bot.
                self.unblock_bot(user_id, bot=state.id)
            state.started.add(user_id)
            return self._deliver(state, target, None, user, content, reply_to)
        chat = self._group(target)
        if chat.migrated_to is not None:
            raise ControlError(f"group {target} was migrated to {chat.migrated_to}")
        member = chat.members.get(user_id)
        if member is None or not member.is_present():
            raise ControlError(f"user {user_id} is not a member of chat {target}")
        result: dict[str, Any] | None = None
        for other in self._core.world.bots.values():
            bot_member = chat.members.get(other.id)
            if other is not state and (bot_member is None or not bot_member.is_present()):
                continue
            raw = self._deliver(other, target, chat, user, content, reply_to)
            if other is state:
                result = raw
        assert result is not None
        return result

    def _deliver(
        self,
        state: BotState,
        chat_id: int,
        chat: Chat | None,
        sender: User,
        content: dict[str, Any],
        reply_to: int | None,
    ) -> dict[str, Any]:
        history = state.history(chat_id)
        raw: dict[str, Any] = {
            "message_id": history.allocate_id(),
            "from": sender.to_dict(),
            "chat": chat.to_dict() if chat is not None else sender.private_chat(),
            "date": self._core.unix_now(),
        }
        if reply_to is not None:
            replied = history.get(reply_to)
            if replied is None:
                raise ControlError(f"there is no message {reply_to} in chat {chat_id} to reply to")
            quoted = copy.deepcopy(replied.raw)
            quoted.pop("reply_to_message", None)
            raw["reply_to_message"] = quoted
        raw.update(copy.deepcopy(content))
        history.messages[raw["message_id"]] = StoredMessage(raw, sender.id, from_bot=False)
        self._core.add_event("user_message", bot_id=state.id, chat_id=chat_id, message=raw)
        member = chat.members.get(state.id) if chat is not None else None
        present = chat is None or (member is not None and member.is_present())
        if present and self._bot_sees(state, chat, raw):
            self._core.emit(state, "message", copy.deepcopy(raw))
        return raw

    def _bot_sees(self, state: BotState, chat: Chat | None, raw: dict[str, Any]) -> bool:
        """Privacy mode: in groups a non-admin bot sees commands, mentions and replies only."""
        if chat is None or not self._core.config.privacy_mode:
            return True
        member = chat.members.get(state.id)
        if member is not None and member.is_admin():
            return True
        if any(key in raw for key in _SERVICE_KEYS):
            return True
        text = str(raw.get("text") or raw.get("caption") or "")
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            if "@" in command:
                return command.split("@", 1)[1].lower() == state.username.lower()
            return True
        if f"@{state.username}".lower() in text.lower():
            return True
        replied = raw.get("reply_to_message")
        return isinstance(replied, dict) and replied.get("from", {}).get("id") == state.id


def _callback_buttons(stored: StoredMessage) -> list[str]:
    markup = stored.raw.get("reply_markup") or {}
    return [
        str(button["callback_data"])
        for row in markup.get("inline_keyboard", [])
        for button in row
        if "callback_data" in button
    ]
