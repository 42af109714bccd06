"""A corpus of hostile input, driven through the real bot and the Bot API test server.

Every item is sent in a known context (an idle private chat, a step of a filing dialog, the
volunteer group, a group the district does not know). After each one the bot must have
answered when the input came from a person in a private chat, must not have crashed (no
apology, no error logged), must not have changed what it should not (no case, claim, volunteer
or points appearing, nobody else's case touched), and must never show another resident's data.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from bot import callbacks
from bot.app import Whistle
from bot.clock import ManualClock
from bot.district import District
from bot.services import cases
from bot.testserver import BotAPIServer
from models import Case, CaseKind, HelpClaim, HelpRequest, PointEntry, User, Volunteer
from tests.casework import ask_for_help, submit
from tests.conftest import AppFactory, settled

RESIDENT = 7900  # sends the hostile input
NEIGHBOUR = 7901  # whose cases must stay theirs
VOLUNTEERS = -1001000000003
KANGLE_VOLUNTEERS = -1001000000041
CGZF = -1001000000021
STRANGE_GROUP = -1009000000001  # not in the district file
SECRETS = ("邻居秘密甲乙丙", "9单元909", "neighbour_secret")
APOLOGY = "抱歉，处理时出了点问题"

TEXTS = [
    "<b>粗体</b><i>斜体",
    "<script>alert(1)</script>",
    '<a href="javascript:alert(1)">点我</a>',
    "</pre></code>&amp;&lt;&gt;&#0;",
    "{{ 7*7 }} {% raw %}{{ config }}",
    "%(number)s %s %d {0} {number}",
    "' OR '1'='1' --",
    "Robert'); DROP TABLE cases;--",
    "\u200b\u200c\u200d\u2060\ufeff" * 20,
    "\u202e\u202d反转\u2066文字\u2069",
    "🙂" * 300,
    "👨‍👩‍👧‍👦" * 60,
    "a" * 4096,
    "字" * 4097,
    "长" * 100_000,
    "\n" * 50 + "x",
    " \t \u3000 ",
    "HB-000001",
    "HB-999999",
    "@admin 你好",
    "https://evil.example/phish?id=1",
    "tg://user?id=1",
    "null",
    "\\x00\\x01\\u0000",
    "𝕳𝖊𝖑𝖑𝖔 𝔀𝓸𝓻𝓵𝓭",
    "٠١٢٣٤٥٦٧٨٩ 13800000000",
    "ᠮᠣᠩᠭᠣᠯ ᠬᠡᠯᠡ" * 30,
    "ﷺ" * 200,
    "😀\ufe0f\u20e3" * 100,
    "<tg-spoiler>x</tg-spoiler><blockquote expandable>",
]
COMMANDS = [
    "/start junk junk",
    "/start@SomeOtherBot",
    "/report extra junk",
    "/my 999999",
    "/my ../../etc/passwd",
    "/lang xx",
    "/lang " + "x" * 300,
    "/unknowncommand",
    "/volunteer junk",
    "/points junk",
    "/top <b>",
    "/shop ' OR 1=1",
    "/redeem",
    "/redeem ' OR 1=1 --",
    "/redeem " + "A" * 200,
    "/adjust x y z",
    "/block",
    "/unblock abc",
    "/bind cgzf",
    "/cancel junk",
]


@dataclasses.dataclass(frozen=True)
class Item:
    name: str
    context: str  # idle | say | ask-where | report-photos | volunteers | strange-group
    act: Callable[[Env], Awaitable[None]]
    must_answer: bool = True
    logged: str | None = None  # an error the bot must log for this input (and no other)


@dataclasses.dataclass
class Env:
    app: Whistle
    server: BotAPIServer
    their_case: int
    their_help: int
    help_card: int
    greeting: int


def text_item(context: str, text: str) -> Item:
    async def act(env: Env) -> None:
        env.server.send_text(RESIDENT, text)

    return Item(f"{context}: text {text[:20]!r}…({len(text)})", context, act)


def media_items(context: str) -> list[Item]:
    def sender(kind: str) -> Callable[[Env], Awaitable[None]]:
        async def act(env: Env) -> None:
            server = env.server
            if kind == "sticker":
                server.send_sticker(RESIDENT)
            elif kind == "voice":
                server.send_voice(RESIDENT, b"OggS\x00garbage")
            elif kind == "video":
                server.send_video(RESIDENT, b"\x00\x00\x00 ftypisom junk")
            elif kind == "document":
                server.send_document(
                    RESIDENT,
                    b"MZ\x90\x00",
                    filename="run.exe",
                    mime_type="application/x-msdownload",
                )
            elif kind == "corrupt-photo":
                server.send_photo(RESIDENT, b"this is not an image at all")
            elif kind == "location":
                server.send_location(RESIDENT, 91.0 - 1.0, 179.9)
            else:
                content = {
                    "contact": {
                        "contact": {"phone_number": "+8613800000000", "first_name": "某人"}
                    },
                    "unreadable-poll": {
                        "poll": {
                            "id": "1",
                            "question": "<b>?</b>",
                            "options": [{"text": "a", "voter_count": 0}],
                            "total_voter_count": 0,
                            "is_closed": False,
                            "is_anonymous": True,
                            "type": "regular",
                            "allows_multiple_answers": False,
                        }
                    },
                    "poll": {
                        "poll": {
                            "id": "2",
                            "question": "<b>?</b>",
                            "options": [{"persistent_id": "o1", "text": "a", "voter_count": 0}],
                            "total_voter_count": 0,
                            "is_closed": False,
                            "is_anonymous": True,
                            "type": "regular",
                            "allows_multiple_answers": False,
                            "allows_revoting": False,
                            "members_only": False,
                        }
                    },
                    "dice": {"dice": {"emoji": "🎲", "value": 6}},
                }[kind]
                server.send_content(RESIDENT, content)

        return act

    kinds = [
        "sticker", "voice", "video", "document", "corrupt-photo", "location",
        "contact", "poll", "dice",
    ]  # fmt: skip
    items = [Item(f"{context}: {kind}", context, sender(kind)) for kind in kinds]
    # An update this aiogram cannot read (a poll without fields it requires): skipped and
    # logged, and the updates after it still arrive.
    items.append(
        Item(
            f"{context}: unreadable update",
            context,
            sender("unreadable-poll"),
            must_answer=False,
            logged="update.unreadable",
        )
    )
    return items


def command_item(context: str, text: str) -> Item:
    async def act(env: Env) -> None:
        env.server.send_text(RESIDENT, text)

    return Item(f"{context}: command {text[:24]!r}", context, act)


def forged_presses() -> list[Item]:
    """Every kind of button, forged: aimed at the neighbour's cases, at nothing, or garbage."""

    def press(make: Callable[[Env], str]) -> Callable[[Env], Awaitable[None]]:
        async def act(env: Env) -> None:
            env.server.press_button(RESIDENT, env.greeting, make(env), force=True)

        return act

    forged: list[tuple[str, Callable[[Env], str]]] = [
        ("ack their case", lambda e: callbacks.CaseAction("ack", e.their_case).pack()),
        ("answer their case", lambda e: callbacks.CaseAction("ans", e.their_case).pack()),
        ("return their case", lambda e: callbacks.CaseAction("ret", e.their_case).pack()),
        ("assign their case", lambda e: callbacks.AssignCase(e.their_case, "cgzf").pack()),
        ("rate their case", lambda e: callbacks.RateCase(e.their_case, "u").pack()),
        ("view their case", lambda e: callbacks.ViewCase(e.their_case).pack()),
        ("withdraw their case", lambda e: callbacks.WithdrawCase(e.their_case).pack()),
        ("confirm withdrawing", lambda e: callbacks.ConfirmWithdraw(e.their_case).pack()),
        ("call outcome", lambda e: callbacks.CallOutcome(e.their_case, "ok").pack()),
        ("triage step", lambda e: callbacks.TriageStep(e.their_case, "lead", "cgzf").pack()),
        ("propose deadline", lambda e: callbacks.ProposeDeadline(e.their_case, 7).pack()),
        ("decide deadline", lambda e: callbacks.DecideDeadline(e.their_case, 7, "y").pack()),
        ("bundle decision", lambda e: callbacks.BundleDecision(1, "y").pack()),
        ("approve myself", lambda e: callbacks.VolunteerDecision(RESIDENT, "y").pack()),
        ("pause", lambda e: callbacks.VolunteerPause("p").pack()),
        ("claim their help", lambda e: callbacks.ClaimHelp(e.their_help).pack()),
        ("finish their help", lambda e: callbacks.HelpProgress(e.their_help, "done").pack()),
        ("confirm their help", lambda e: callbacks.HelpConfirm(e.their_help, "y").pack()),
        ("redeem nothing", lambda e: callbacks.RedeemOffer("zzzzzzzzzz", 1).pack()),
        ("free redeem", lambda e: callbacks.RedeemOffer("zzzzzzzzzz", 0).pack()),
        ("language", lambda e: callbacks.LanguageChoice("xx").pack()),
        ("page -5", lambda e: callbacks.MyCasesPage(-5).pack()),
        ("page 10^9", lambda e: callbacks.MyCasesPage(10**9).pack()),
        ("old draft", lambda e: callbacks.DraftAction("dead", "ok", "").pack()),
        ("old signup", lambda e: callbacks.VolunteerForm("dead", "com", "kangle").pack()),
        ("forget garbage", lambda e: callbacks.ForgetMe("z").pack()),
        ("view missing", lambda e: callbacks.ViewCase(10**9).pack()),
        ("view negative", lambda e: callbacks.ViewCase(-1).pack()),
    ]
    prefixes = sorted(
        {
            kind.prefix
            for kind in vars(callbacks).values()
            if isinstance(kind, type)
            and issubclass(kind, callbacks.Callback)
            and kind is not callbacks.Callback
        }
    )
    for prefix in prefixes:
        forged.append((f"{prefix} garbage", lambda e, p=prefix: f"{p}:" + "x" * 40))
        forged.append((f"{prefix} empty fields", lambda e, p=prefix: f"{p}:::"))
    forged += [
        ("no prefix", lambda e: "zz9:1"),
        ("64 bytes", lambda e: "字" * 21),
        ("colons", lambda e: ":::::"),
    ]
    return [Item(f"press: {name}", "idle", press(make)) for name, make in forged]


def group_items() -> list[Item]:
    def reply(text: str) -> Callable[[Env], Awaitable[None]]:
        async def act(env: Env) -> None:
            env.server.send_text(RESIDENT, text, chat_id=VOLUNTEERS, reply_to=env.help_card)

        return act

    def channel_post(env: Env) -> Awaitable[None]:
        env.server.push_update(
            "channel_post",
            {
                "message_id": 1,
                "date": 0,
                "chat": {"id": -1002000000001, "type": "channel", "title": "某频道"},
                "sender_chat": {"id": -1002000000001, "type": "channel", "title": "某频道"},
                "text": "/start",
            },
        )
        return _done()

    def anonymous_admin(env: Env) -> Awaitable[None]:
        env.server.push_update(
            "message",
            {
                "message_id": 9001,
                "date": 0,
                "chat": {"id": CGZF, "type": "supergroup", "title": "城管"},
                "sender_chat": {"id": CGZF, "type": "supergroup", "title": "城管"},
                "from": {"id": 1087968824, "is_bot": True, "first_name": "Group"},
                "text": "/bind cgzf",
            },
        )
        return _done()

    def other_bot(env: Env) -> Awaitable[None]:
        env.server.push_update(
            "message",
            {
                "message_id": 9002,
                "date": 0,
                "chat": {"id": VOLUNTEERS, "type": "supergroup", "title": "志愿者"},
                "from": {"id": 5550001, "is_bot": True, "first_name": "SpamBot"},
                "text": "我来",
                "reply_to_message": {
                    "message_id": env.help_card,
                    "date": 0,
                    "chat": {"id": VOLUNTEERS, "type": "supergroup", "title": "志愿者"},
                    "text": "card",
                },
            },
        )
        return _done()

    def strange(text: str) -> Callable[[Env], Awaitable[None]]:
        async def act(env: Env) -> None:
            env.server.send_text(RESIDENT, text, chat_id=STRANGE_GROUP)

        return act

    items = [
        Item(f"volunteers: reply {text[:16]!r}", "volunteers", reply(text), must_answer=False)
        for text in ("我来", "<b>我来</b>", "' OR 1=1", "字" * 4096)
    ]
    items += [
        Item("channel post", "volunteers", channel_post, must_answer=False),
        Item("anonymous group admin", "volunteers", anonymous_admin, must_answer=False),
        Item("another bot claims", "volunteers", other_bot, must_answer=False),
    ]
    items += [
        Item(f"unknown group: {text}", "strange-group", strange(text), must_answer=False)
        for text in ("/start", "/bind cgzf", "/bind ../../x", "你好", "/report")
    ]
    return items


async def _done() -> None:
    return None


def edited_items() -> list[Item]:
    async def edit(env: Env) -> None:
        sent = env.server.send_text(RESIDENT, "原来的话")
        await processed(env)
        env.server.edit_text(RESIDENT, sent["message_id"], "<b>改过的</b> /report")

    return [Item("edited message", "idle", edit, must_answer=False)]


def corpus() -> list[Item]:
    items: list[Item] = []
    for context in ("idle", "say", "ask-where", "report-photos"):
        items += [text_item(context, text) for text in TEXTS]
    for context in ("idle", "say"):
        items += [command_item(context, text) for text in COMMANDS]
    for context in ("idle", "say", "ask-where"):
        items += media_items(context)
    items += forged_presses()
    items += group_items()
    items += edited_items()
    return items


def test_the_corpus_is_what_the_readme_says() -> None:
    # The README states the corpus's size; a corpus that shrinks (or grows) says so there.
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    stated = re.search(r"drives a corpus of (\d+) hostile inputs", readme)
    assert stated is not None
    assert len(corpus()) == int(stated.group(1))


# -- running it -------------------------------------------------------------------------------


async def processed(env: Env) -> None:
    """Every update the server queued has been handled and committed, and what the bot wrote
    has been sent."""
    await env.server.wait_for(lambda s: not s.pending_updates(), timeout=15)
    await settled(env.app)


async def enter(env: Env, context: str) -> None:
    server = env.server
    if context in ("volunteers", "strange-group"):
        return
    server.send_text(RESIDENT, "/cancel")
    await processed(env)
    if context == "say":
        server.send_text(RESIDENT, "/say")
    elif context == "report-photos":
        server.send_text(RESIDENT, "/report")
    elif context == "ask-where":
        server.send_text(RESIDENT, "/ask")
        await processed(env)
        server.send_text(RESIDENT, "帮忙搬一张桌子")
        await processed(env)
        ask = server.messages(RESIDENT)[-1]
        labels = ask.button_texts()
        server.press_button(
            RESIDENT, ask.message_id, ask.callback_data()[labels.index("康乐社区")]
        )
    await processed(env)


async def snapshot(app: Whistle) -> dict[str, Any]:
    async with app.factory() as session:

        async def count(model: Any) -> int:
            return int(await session.scalar(select(func.count()).select_from(model)) or 0)

        theirs = (
            await session.scalars(select(Case).where(Case.resident_id == NEIGHBOUR))  # type: ignore[arg-type]
        ).all()
        resident = await session.get(User, RESIDENT)
        held = await session.execute(
            select(col(HelpRequest.case_id), col(HelpRequest.volunteer_id))
        )
        holders = dict(held.all())
        return {
            "cases": await count(Case),
            "claims": await count(HelpClaim),
            "volunteers": await count(Volunteer),
            "points": await count(PointEntry),
            "theirs": sorted(
                (c.id, c.status, holders.get(c.id), c.rating, c.department, c.description)
                for c in theirs
            ),
            "language": resident.language if resident else None,
        }


@pytest.fixture
async def env(api_server: BotAPIServer, make_app: AppFactory, district: District) -> Env:
    api_server.add_user(RESIDENT, first_name="<b>坏</b>人", username="mallory")
    api_server.add_user(NEIGHBOUR, first_name="邻居", username="neighbour_secret")
    for chat_id in district.configured_chat_ids():
        api_server.create_group(chat_id, f"group {chat_id}", members=[RESIDENT])
    api_server.create_group(STRANGE_GROUP, "陌生群", members=[RESIDENT])
    # The corpus comes faster than anyone types, and repeats "not understood" within a
    # minute: what each input gets on its own is checked here (each a minute apart on the
    # test clock), the flood notice and the once-a-minute fallback in test_front_door.
    app = await make_app(env={"FLOOD_LIMIT": 100_000}, clock=ManualClock())
    for person in (RESIDENT, NEIGHBOUR):
        api_server.send_text(person, "/start")
        await api_server.wait_for_message(person)
    greeting = api_server.messages(RESIDENT)[-1].message_id
    theirs = await submit(
        app,
        cases.Draft(
            kind=CaseKind.SAY,
            description="邻居秘密甲乙丙",
            category="suggestion",
            anonymous=True,
        ),
        resident=NEIGHBOUR,
        name="邻居",
    )
    help_request = await ask_for_help(
        app,
        resident=NEIGHBOUR,
        name="邻居",
        description="帮忙取快递",
        address="9号楼",
        door="9单元909",
        share_contact=True,
        contact="@neighbour_secret",
    )
    [card] = await api_server.wait_for_message(VOLUNTEERS)
    await settled(app)
    assert theirs.id is not None and help_request.id is not None
    return Env(app, api_server, theirs.id, help_request.id, card.message_id, greeting)


async def test_hostile_corpus(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    server = env.server
    failures: list[str] = []
    before = await snapshot(env.app)
    clock = env.app.clock
    assert isinstance(clock, ManualClock)
    for item in corpus():
        clock.advance(timedelta(minutes=1))
        await enter(env, item.context)
        messages = len(server.messages(RESIDENT))
        answers = len(server.callback_answers)
        errors = sum(r.levelno >= logging.ERROR for r in caplog.records)
        await item.act(env)
        await processed(env)
        new = server.messages(RESIDENT)[messages:]
        shown = " ".join(m.text or m.caption or "" for m in new)
        shown += " ".join(a.text or "" for a in server.callback_answers[answers:])
        if item.must_answer and not new and len(server.callback_answers) == answers:
            failures.append(f"{item.name}: no answer")
        logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR][errors:]
        if APOLOGY in shown or logged != ([item.logged] if item.logged else []):
            failures.append(f"{item.name}: crashed or logged {logged}")
        if any(secret in shown for secret in SECRETS):
            failures.append(f"{item.name}: showed the neighbour's data")
        after = await snapshot(env.app)
        if after != before:
            changed = sorted(key for key in before if before[key] != after[key])
            failures.append(f"{item.name}: changed {changed}")
            before = after
    # Nothing leaked into any chat the resident can read (the groups included).
    readable = [VOLUNTEERS, CGZF, STRANGE_GROUP, RESIDENT]
    for chat in readable:
        for message in server.messages(chat):
            text = (message.text or "") + (message.caption or "")
            if "9单元909" in text or (chat == RESIDENT and "邻居秘密" in text):
                failures.append(f"chat {chat} shows private data: {text[:60]!r}")
    assert failures == [], "\n".join(failures)
