"""The control API's reading half: what the bots did, and waiting for it to happen.

Owns queries over the logs (bot messages per chat, raw chat history, API calls, callback
answers, commands, pending updates) and the event-driven waits: ``wait_for`` re-checks its
predicate whenever the server state changes and fails with a summary of recent activity.
"""

from __future__ import annotations

import asyncio
import copy
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

from .core import ServerCore
from .files import StoredFile
from .records import BotMessage, CallbackAnswer, RequestRecord

T = TypeVar("T")


class Inspection:
    _core: ServerCore

    # -- messages ----------------------------------------------------------------------------
    def messages(
        self, chat_id: int | None = None, *, bot: int | str | None = None
    ) -> list[BotMessage]:
        """Every message the bot sent (oldest first), including deleted ones."""
        bot_id = self._core.resolve_bot(bot).id if bot is not None else None
        if bot_id is not None and chat_id is not None:
            return list(self._core.bot_messages_by_chat.get((bot_id, chat_id), []))
        return [
            record
            for record in self._core.bot_messages
            if (chat_id is None or record.chat_id == chat_id)
            and (bot_id is None or record.bot_id == bot_id)
        ]

    def sent_in(self, chat_id: int, *, bot: int | str | None = None) -> list[BotMessage]:
        """The bot's messages still visible in a chat."""
        return [record for record in self.messages(chat_id, bot=bot) if not record.deleted]

    def last_message(self, chat_id: int, *, bot: int | str | None = None) -> BotMessage | None:
        visible = self.sent_in(chat_id, bot=bot)
        return visible[-1] if visible else None

    def history(self, chat_id: int, *, bot: int | str | None = None) -> list[dict[str, Any]]:
        """The chat as the bot sees it: user and bot messages, oldest first, minus deleted."""
        state = self._core.resolve_bot(bot)
        stored = state.history(chat_id).messages
        return [copy.deepcopy(m.raw) for _, m in sorted(stored.items()) if not m.deleted]

    def user(self, user_id: int) -> dict[str, Any] | None:
        """A registered user's ``User`` object, as Telegram would describe them."""
        user = self._core.world.users.get(user_id)
        return user.to_dict() if user is not None else None

    def menu_button(self, chat_id: int, *, bot: int | str | None = None) -> dict[str, Any]:
        """The menu button a private chat shows (setChatMenuButton; else the bot's default)."""
        buttons = self._core.resolve_bot(bot).menu_buttons
        return buttons.get(chat_id) or buttons.get(0) or {"type": "default"}

    def file(self, file_id: str) -> StoredFile | None:
        """A stored file (a user's upload or the bot's) by its file id."""
        return self._core.world.files.get(file_id)

    # -- logs --------------------------------------------------------------------------------
    @property
    def requests(self) -> list[RequestRecord]:
        return self._core.requests

    def calls(self, method: str) -> list[RequestRecord]:
        """Logged calls of one Bot API method (case-insensitive)."""
        wanted = method.lower()
        return [record for record in self._core.requests if record.method.lower() == wanted]

    @property
    def callback_answers(self) -> list[CallbackAnswer]:
        return self._core.callback_answers

    @property
    def stats(self) -> Counter[str]:
        return self._core.stats

    @property
    def events(self) -> list[dict[str, Any]]:
        """Recent events (the last 10 000), each with an increasing ``seq``."""
        return list(self._core.events)

    def pending_updates(self, *, bot: int | str | None = None) -> list[dict[str, Any]]:
        return list(self._core.resolve_bot(bot).queue.pending)

    def commands(
        self,
        scope: dict[str, Any] | None = None,
        language_code: str = "",
        *,
        bot: int | str | None = None,
    ) -> list[dict[str, str]]:
        """The command list set for exactly this scope and language (like getMyCommands)."""
        state = self._core.resolve_bot(bot)
        return [dict(c) for c in state.commands.get((_scope_key(scope), language_code), [])]

    def effective_commands(
        self,
        chat_id: int,
        user_id: int | None = None,
        language_code: str = "",
        *,
        bot: int | str | None = None,
    ) -> list[dict[str, str]]:
        """The commands a client shows in a chat, resolved through scopes as Telegram does."""
        state = self._core.resolve_bot(bot)
        chat = self._core.world.chats.get(chat_id)
        keys: list[str] = []
        if chat_id > 0:
            keys = [f"chat:{chat_id}", "all_private_chats", "default"]
        else:
            member = chat.members.get(user_id) if chat and user_id is not None else None
            is_admin = member is not None and member.is_admin()
            if user_id is not None:
                keys.append(f"chat_member:{chat_id}:{user_id}")
            if is_admin:
                keys.append(f"chat_administrators:{chat_id}")
            keys.append(f"chat:{chat_id}")
            if is_admin:
                keys.append("all_chat_administrators")
            keys += ["all_group_chats", "default"]
        for key in keys:
            for language in (language_code, ""):
                found = state.commands.get((key, language))
                if found:
                    return [dict(c) for c in found]
        return []

    # -- waiting -----------------------------------------------------------------------------
    async def wait_for(
        self,
        predicate: Callable[[Any], T],
        timeout: float = 5.0,  # noqa: ASYNC109 - the control API's documented signature
        *,
        description: str | None = None,
    ) -> T:
        """Waits until ``predicate(server)`` is truthy and returns its value."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            changed = self._core.changed_event()
            result = predicate(self)
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                what = description or str(getattr(predicate, "__name__", repr(predicate)))
                raise TimeoutError(self._timeout_report(what, timeout))
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                continue

    async def wait_for_message(
        self,
        chat_id: int,
        *,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109 - the control API's documented signature
        bot: int | str | None = None,
    ) -> list[BotMessage]:
        """The next ``count`` bot messages in a chat that no earlier call returned.

        Each chat has a read cursor, so a conversation reads naturally:
        ``send_text(...)`` then ``await wait_for_message(chat)`` returns the reply to it even
        if the bot had answered earlier messages before.
        """
        state = self._core.resolve_bot(bot)
        key = (state.id, chat_id)

        def unread(_server: Any) -> list[BotMessage]:
            sent = self.messages(chat_id, bot=state.id)
            start = self._core.read_cursors.get(key, 0)
            fresh = sent[start : start + count]
            return fresh if len(fresh) >= count else []

        found = await self.wait_for(
            unread, timeout, description=f"{count} new bot message(s) in chat {chat_id}"
        )
        self._core.read_cursors[key] = self._core.read_cursors.get(key, 0) + count
        return found

    def _timeout_report(self, what: str, timeout: float) -> str:
        lines = [f"timed out after {timeout}s waiting for {what}"]
        recent = self._core.requests[-8:]
        if recent:
            lines.append("recent Bot API calls:")
            for record in recent:
                outcome = "ok" if record.ok else f"{record.status} {record.description}"
                if record.status == 0 and not record.fault:
                    outcome = "in progress"
                if record.fault:
                    outcome = f"{outcome} [{record.fault}]"
                lines.append(f"  {record.method}: {outcome}")
        else:
            lines.append("no Bot API calls were made (is the bot polling this server?)")
        for state in self._core.world.bots.values():
            pending = len(state.queue.pending)
            if pending:
                lines.append(f"bot {state.id} has {pending} undelivered update(s)")
        for message in self._core.bot_messages[-3:]:
            lines.append(
                f"  bot message {message.message_id} in chat {message.chat_id}: "
                f"{(message.content or '')[:80]!r}"
            )
        return "\n".join(lines)


def _scope_key(scope: dict[str, Any] | None) -> str:
    if not scope:
        return "default"
    kind = str(scope.get("type", "default"))
    if kind == "chat_member":
        return f"chat_member:{scope['chat_id']}:{scope['user_id']}"
    if kind in ("chat", "chat_administrators"):
        return f"{kind}:{scope['chat_id']}"
    return kind
