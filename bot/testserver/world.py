"""The simulated Telegram world: users, chats, memberships, bots and their message histories.

Owns the state every other module reads and mutates, and the Bot API object shapes derived
from it (``User``, ``Chat``, ``ChatMember``).  Chats are shared by all bots; each bot has its
own view of the messages in a chat (its ``ChatHistory``), its own update queue, webhook,
commands and the set of users who started or blocked it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .files import FileStore
from .records import BotMessage
from .updates import UpdateQueue

MEMBER_STATUSES = ("creator", "administrator", "member", "restricted", "left", "kicked")
PRESENT = ("creator", "administrator", "member", "restricted")
ADMIN_RIGHTS = (
    "can_manage_chat",
    "can_delete_messages",
    "can_manage_video_chats",
    "can_restrict_members",
    "can_promote_members",
    "can_change_info",
    "can_invite_users",
    "can_post_stories",
    "can_edit_stories",
    "can_delete_stories",
    "can_pin_messages",
    "can_manage_topics",
    "can_send_welcome_messages",
)
# Rights an administrator gets unless told otherwise (promoting others is off, as usual).
DEFAULT_ADMIN_RIGHTS = {right: right != "can_promote_members" for right in ADMIN_RIGHTS}


@dataclass
class User:
    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    is_bot: bool = False
    deactivated: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}
        if self.last_name:
            out["last_name"] = self.last_name
        if self.username:
            out["username"] = self.username
        if self.language_code and not self.is_bot:
            out["language_code"] = self.language_code
        return out

    def private_chat(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "type": "private", "first_name": self.first_name}
        if self.last_name:
            out["last_name"] = self.last_name
        if self.username:
            out["username"] = self.username
        return out


@dataclass
class Member:
    status: str
    rights: dict[str, bool] = field(default_factory=dict)
    until_date: int = 0

    def is_present(self) -> bool:
        return self.status in PRESENT

    def is_admin(self) -> bool:
        return self.status in ("creator", "administrator")

    def can(self, right: str) -> bool:
        if self.status == "creator":
            return True
        if self.status != "administrator":
            return False
        return self.rights.get(right, DEFAULT_ADMIN_RIGHTS.get(right, False))


@dataclass
class Chat:
    """A group or supergroup (private chats are derived from ``User``)."""

    id: int
    type: str
    title: str
    username: str | None = None
    description: str | None = None
    members: dict[int, Member] = field(default_factory=dict)
    migrated_to: int | None = None
    migrated_from: int | None = None
    is_forum: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "type": self.type, "title": self.title}
        if self.username:
            out["username"] = self.username
        if self.is_forum:
            out["is_forum"] = True
        return out

    def type_word(self) -> str:
        """'group' or 'supergroup', as used in Telegram's 'bot is not a member of the X chat'."""
        return "supergroup" if self.type == "supergroup" else self.type


def member_dict(user: dict[str, Any], member: Member) -> dict[str, Any]:
    """A Bot API ``ChatMember`` object."""
    status = member.status
    if status == "creator":
        return {"status": "creator", "user": user, "is_anonymous": False}
    if status == "administrator":
        out: dict[str, Any] = {
            "status": "administrator",
            "user": user,
            "can_be_edited": False,
            "is_anonymous": False,
        }
        for right in ADMIN_RIGHTS:
            out[right] = member.can(right)
        return out
    if status == "kicked":
        return {"status": "kicked", "user": user, "until_date": member.until_date}
    if status == "restricted":
        return {
            "status": "restricted",
            "user": user,
            "is_member": True,
            "until_date": member.until_date,
            **dict.fromkeys(_SEND_RIGHTS, False),
        }
    return {"status": status, "user": user}


_SEND_RIGHTS = (
    "can_send_messages",
    "can_send_audios",
    "can_send_documents",
    "can_send_photos",
    "can_send_videos",
    "can_send_video_notes",
    "can_send_voice_notes",
    "can_send_polls",
    "can_send_other_messages",
    "can_add_web_page_previews",
    "can_change_info",
    "can_invite_users",
    "can_pin_messages",
    "can_manage_topics",
)


@dataclass
class StoredMessage:
    """One message in a bot's view of a chat."""

    raw: dict[str, Any]
    sender_id: int
    from_bot: bool
    record: BotMessage | None = None
    deleted: bool = False


@dataclass
class ChatHistory:
    messages: dict[int, StoredMessage] = field(default_factory=dict)
    next_id: int = 1

    def allocate_id(self) -> int:
        message_id = self.next_id
        self.next_id += 1
        return message_id

    def get(self, message_id: int) -> StoredMessage | None:
        stored = self.messages.get(message_id)
        if stored is None or stored.deleted:
            return None
        return stored


@dataclass
class PendingCallback:
    query: dict[str, Any]
    created: float
    answered: bool = False


@dataclass
class WebhookConfig:
    url: str
    secret_token: str = ""
    max_connections: int = 40
    ip_address: str | None = None
    has_custom_certificate: bool = False
    last_error_date: int | None = None
    last_error_message: str | None = None

    def info(self, pending: int, allowed_updates: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "url": self.url,
            "has_custom_certificate": self.has_custom_certificate,
            "pending_update_count": pending,
            "max_connections": self.max_connections,
        }
        if self.ip_address:
            out["ip_address"] = self.ip_address
        if self.last_error_date is not None:
            out["last_error_date"] = self.last_error_date
            out["last_error_message"] = self.last_error_message or ""
        if allowed_updates:
            out["allowed_updates"] = list(allowed_updates)
        return out


@dataclass
class WebhookBalance:
    """A stand-in for a load balancer in front of several receivers of one webhook: updates
    go to ``urls`` in turn (a URL that fails is followed by the next one), up to ``parallel``
    at once but one at a time per chat, and every ``repeat_every``-th delivered update is
    posted a second time, as Telegram does when it misses an answer."""

    urls: list[str]
    parallel: int = 8
    repeat_every: int = 0
    turn: int = 0
    delivered: int = 0
    repeated: int = 0

    def next_url(self) -> str:
        url = self.urls[self.turn % len(self.urls)]
        self.turn += 1
        return url


class BotState:
    """Everything that belongs to one bot token."""

    def __init__(self, token: str, username: str, first_name: str) -> None:
        self.token = token
        self.id = int(token.split(":", 1)[0])
        self.username = username
        self.first_name = first_name
        self.queue = UpdateQueue()
        self.webhook: WebhookConfig | None = None
        self.balance: WebhookBalance | None = None
        self.commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        self.profile: dict[tuple[str, str], str] = {}
        # setChatMenuButton: each private chat's menu button (0: the default for all).
        self.menu_buttons: dict[int, dict[str, Any]] = {}
        self.started: set[int] = set()
        self.blocked_by: set[int] = set()
        self.callbacks: dict[str, PendingCallback] = {}
        self.histories: dict[int, ChatHistory] = {}

    def reset(self) -> None:
        self.queue.reset()
        self.webhook = None
        self.balance = None
        self.commands.clear()
        self.profile.clear()
        self.menu_buttons.clear()
        self.started.clear()
        self.blocked_by.clear()
        self.callbacks.clear()
        self.histories.clear()

    def user(self) -> User:
        return User(self.id, self.first_name, username=self.username, is_bot=True)

    def user_dict(self) -> dict[str, Any]:
        return self.user().to_dict()

    def history(self, chat_id: int) -> ChatHistory:
        return self.histories.setdefault(chat_id, ChatHistory())


class World:
    def __init__(self) -> None:
        self.bots: dict[int, BotState] = {}
        self.users: dict[int, User] = {}
        self.chats: dict[int, Chat] = {}
        self.files = FileStore()

    def reset(self) -> None:
        self.users.clear()
        self.chats.clear()
        self.files.clear()
        for bot in self.bots.values():
            bot.reset()

    def bot_by_token(self, token: str) -> BotState | None:
        for bot in self.bots.values():
            if bot.token == token:
                return bot
        return None

    def find_user(self, user_id: int) -> User | None:
        user = self.users.get(user_id)
        if user is not None:
            return user
        bot = self.bots.get(user_id)
        return bot.user() if bot is not None else None

    def chat_by_username(self, username: str) -> Chat | None:
        name = username.removeprefix("@").lower()
        for chat in self.chats.values():
            if chat.username and chat.username.lower() == name:
                return chat
        return None

    def chat_dict(self, chat_id: int) -> dict[str, Any]:
        chat = self.chats.get(chat_id)
        if chat is not None:
            return chat.to_dict()
        user = self.find_user(chat_id)
        if user is None:
            raise KeyError(chat_id)
        return user.private_chat()


def unix_now() -> int:
    return int(time.time())
