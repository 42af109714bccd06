"""Groups: membership, privacy mode, chat queries and bot commands."""

from __future__ import annotations

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllGroupChats,
    BotCommandScopeAllPrivateChats,
    BotCommandScopeChat,
)

from bot.testserver import BotAPIServer

GROUP = -1001234


@pytest.fixture
def group(api_server: BotAPIServer) -> int:
    for user_id, name in ((1, "Creator"), (2, "Admin"), (3, "Member"), (4, "Outsider")):
        api_server.add_user(user_id, name)
    api_server.create_group(GROUP, "Neighbourhood", members=[3], admins=[2], creator=1)
    return GROUP


async def test_chat_queries(api_server: BotAPIServer, tg_bot: Bot, group: int) -> None:
    chat = await tg_bot.get_chat(group)
    assert (chat.id, chat.type, chat.title) == (group, "supergroup", "Neighbourhood")
    statuses = [(await tg_bot.get_chat_member(group, uid)).status for uid in (1, 2, 3, 4)]
    assert statuses == ["creator", "administrator", "member", "left"]
    me = await tg_bot.get_chat_member(group, 123456)
    assert me.status == "member" and me.user.is_bot
    admins = await tg_bot.get_chat_administrators(group)
    assert sorted(a.user.id for a in admins) == [1, 2]
    assert await tg_bot.get_chat_member_count(group) == 4
    with pytest.raises(TelegramBadRequest, match="user not found"):
        await tg_bot.get_chat_member(group, 99)
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await tg_bot.get_chat(-100999)
    private = await tg_bot.get_chat(1)
    assert (private.type, private.first_name) == ("private", "Creator")


async def test_privacy_mode(api_server: BotAPIServer, tg_bot: Bot, group: int) -> None:
    api_server.send_text(3, "just chatting", chat_id=group)
    api_server.send_text(3, "/report@whistle_test_bot", chat_id=group)
    api_server.send_text(3, "/other@someone_else_bot", chat_id=group)
    api_server.send_text(3, "hey @whistle_test_bot look", chat_id=group)
    sent = await tg_bot.send_message(group, "Bot here")
    api_server.send_text(3, "replying", chat_id=group, reply_to=sent.message_id)
    updates = await tg_bot.get_updates()
    seen = [u.message.text for u in updates if u.message]
    assert seen == ["/report@whistle_test_bot", "hey @whistle_test_bot look", "replying"]
    assert len(api_server.history(group)) == 6  # the chat itself has every message

    api_server.set_member_status(group, 123456, "administrator")
    api_server.send_text(3, "admins see everything", chat_id=group)
    updates = await tg_bot.get_updates(offset=updates[-1].update_id + 1)
    assert [u.message.text for u in updates if u.message] == ["admins see everything"]
    with pytest.raises(ValueError, match="not a member"):
        api_server.send_text(4, "let me in", chat_id=group)


async def test_membership_changes(api_server: BotAPIServer, tg_bot: Bot, group: int) -> None:
    joined = api_server.add_member(group, 4)
    assert joined is not None and joined["new_chat_members"][0]["id"] == 4
    api_server.kick_bot(group, by=1)
    updates = await tg_bot.get_updates()
    kinds = [(u.message is not None, u.my_chat_member is not None) for u in updates]
    assert kinds == [(True, False), (False, True)]
    change = updates[1].my_chat_member
    assert change is not None
    assert (change.old_chat_member.status, change.new_chat_member.status) == ("member", "kicked")
    assert change.from_user.id == 1
    with pytest.raises(TelegramForbiddenError) as raised:
        await tg_bot.send_message(group, "anyone?")
    assert raised.value.message == "Forbidden: bot was kicked from the supergroup chat"

    api_server.create_group(-55, "Basic", type="group", members=[3])
    assert await tg_bot.leave_chat(-55)
    with pytest.raises(TelegramForbiddenError, match="bot is not a member of the group chat"):
        await tg_bot.send_message(-55, "back?")
    api_server.create_group(-56, "Basic 2", type="group", members=[3])
    api_server.kick_bot(-56)
    with pytest.raises(TelegramForbiddenError, match="bot was kicked from the group chat"):
        await tg_bot.send_message(-56, "back?")


async def test_commands_with_scopes(api_server: BotAPIServer, tg_bot: Bot, group: int) -> None:
    private = [BotCommand(command="report", description="报告问题")]
    groups = [BotCommand(command="whistle", description="Blow the whistle")]
    in_private = BotCommandScopeAllPrivateChats()
    await tg_bot.set_my_commands(private, scope=in_private, language_code="zh")
    await tg_bot.set_my_commands(groups, scope=BotCommandScopeAllGroupChats())
    await tg_bot.set_my_commands(
        [BotCommand(command="stats", description="Stats")],
        scope=BotCommandScopeChat(chat_id=group),
    )
    got = await tg_bot.get_my_commands(scope=in_private, language_code="zh")
    assert [c.command for c in got] == ["report"]
    assert await tg_bot.get_my_commands() == []
    assert api_server.commands({"type": "all_group_chats"}) == [
        {"command": "whistle", "description": "Blow the whistle"}
    ]
    assert api_server.effective_commands(7, language_code="zh")[0]["command"] == "report"
    assert api_server.effective_commands(-100888)[0]["command"] == "whistle"
    assert api_server.effective_commands(group, 3)[0]["command"] == "stats"
    await tg_bot.delete_my_commands(scope=BotCommandScopeChat(chat_id=group))
    assert api_server.commands({"type": "chat", "chat_id": group}) == []

    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await tg_bot.set_my_commands([BotCommand(command="Bad-Name", description="x")])
    with pytest.raises(TelegramBadRequest, match="invalid language code specified"):
        await tg_bot.set_my_commands(private, language_code="zh-hans")


async def test_forum_topics_are_echoed(api_server: BotAPIServer, tg_bot: Bot) -> None:
    api_server.create_group(-100600, "Forum", forum=True)
    sent = await tg_bot.send_message(-100600, "in a topic", message_thread_id=5)
    assert (sent.message_thread_id, sent.is_topic_message) == (5, True)
    assert sent.chat.is_forum is True
