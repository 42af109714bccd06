"""A Telegram Bot API test server for end-to-end tests, benchmarks and playgrounds.

``BotAPIServer`` speaks the Bot API over real HTTP on 127.0.0.1, so the real aiogram bot
runs against it unchanged::

    async with BotAPIServer(tokens=["123456:TEST-TOKEN"]) as server:
        session = AiohttpSession(api=TelegramAPIServer.from_base(server.base_url))
        bot = Bot("123456:TEST-TOKEN", session=session)

Bot API side
    ``/bot<TOKEN>/<method>`` (GET or POST; query string, JSON, urlencoded or multipart
    bodies; method names case-insensitive) and ``/file/bot<TOKEN>/<file_path>``.  Answers use
    the ``{"ok": ..., "result"/"error_code"/"description"/"parameters"}`` envelope with
    Telegram's own error texts.  Implemented: getMe, getUpdates, setWebhook, deleteWebhook,
    getWebhookInfo, sendMessage, sendPhoto, sendDocument, sendVoice, sendAudio, sendVideo,
    sendAnimation, sendVideoNote, sendSticker, sendMediaGroup, sendLocation, sendChatAction,
    copyMessage, forwardMessage, editMessageText, editMessageCaption, editMessageReplyMarkup,
    deleteMessage, deleteMessages, answerCallbackQuery, getFile, setMyCommands,
    getMyCommands, deleteMyCommands, set/getMyName, set/getMyDescription,
    set/getMyShortDescription, setChatMenuButton, setMyDefaultAdministratorRights, getChat,
    getChatMember, getChatAdministrators, getChatMemberCount, leaveChat, logOut, close.
    Other methods answer 404 "Not Found".  Privacy mode is on by default: in groups a bot
    that is not an administrator only receives commands, @mentions of it, replies to its
    messages and service messages.

Control API (Python, on the server object)
    World: ``add_bot``, ``add_user``, ``deactivate_user``, ``create_group``, ``add_member``,
    ``remove_member``, ``set_member_status``, ``kick_bot``, ``block_bot``, ``unblock_bot``,
    ``migrate_group``, ``reset``.
    Acting as a user: ``send_text``, ``send_photo``, ``send_document``, ``send_voice``,
    ``send_sticker``, ``send_location``, ``send_media_group``, ``edit_text``,
    ``press_button``.
    Reading: ``messages``, ``sent_in``, ``last_message``, ``history``, ``requests``,
    ``calls``, ``callback_answers``, ``commands``, ``effective_commands``,
    ``pending_updates``, ``webhook_info``, ``stats``, ``events``; waiting: ``wait_for``,
    ``wait_for_message``.
    Faults: ``fail_next``, ``delay_next``, ``drop_next``, ``lose_answer_next``,
    ``clear_faults``, ``enforce_limits``.

Control API over HTTP (same port; JSON; CORS enabled)
    ``POST /control/<action>`` with a JSON object of the Python method's keyword arguments,
    for every action above that changes state plus ``wait_for_message``.  Bytes are sent
    base64-encoded under ``<name>_base64`` (``data_base64`` for send_photo/document/voice,
    ``items_base64`` for send_media_group).  Example::

        POST /control/send_text     {"user_id": 42, "text": "/start"}
        POST /control/press_button  {"user_id": 42, "message_id": 3, "callback_data": "ok"}
        POST /control/fail_next     {"status": 429, "retry_after": 2, "method": "sendMessage"}

    ``GET /control/state`` (bots, users, chats, stats, faults, limits),
    ``GET /control/messages?chat_id=&bot=``, ``GET /control/history?chat_id=&bot=``,
    ``GET /control/requests?method=&limit=``, ``GET /control/callback_answers``,
    ``GET /control/commands?scope=<json>&language_code=&bot=``,
    ``GET /control/updates?bot=`` (pending updates),
    ``GET /control/events?after=<seq>&timeout=<seconds>`` (long-polled event feed) and
    ``GET /control/file?file_id=`` (raw bytes).  Results come as ``{"ok": true,
    "result": ...}``; misuse as ``{"ok": false, "error_code": 400, "description": ...}``.

Run standalone with ``python -m bot.testserver --token 123456:TEST-TOKEN --port 8081``.
"""

from __future__ import annotations

from .core import ServerConfig
from .errors import ApiError, ControlError
from .faults import Fault
from .records import BotMessage, CallbackAnswer, MessageVersion, RequestRecord
from .server import BotAPIServer

__all__ = [
    "ApiError",
    "BotAPIServer",
    "BotMessage",
    "CallbackAnswer",
    "ControlError",
    "Fault",
    "MessageVersion",
    "RequestRecord",
    "ServerConfig",
]
