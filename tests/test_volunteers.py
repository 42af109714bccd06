"""Volunteers end to end: /volunteer registration and approval, claiming a help card by reply
or by button (exactly one winner under concurrency), the winner's details, release, progress,
the requester's confirmation, and every claim that must change nothing."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.app import Whistle
from bot.clock import ManualClock
from bot.db import transaction
from bot.services import closure, volunteers
from bot.services.errors import UserError
from bot.testserver import BotAPIServer
from models import (
    Case,
    CaseEvent,
    CaseStatus,
    GroupRefusal,
    HelpClaim,
    HelpRequest,
    Volunteer,
    VolunteerStatus,
)
from scheduler import jobs
from tests.casework import ask_for_help, step
from tests.conftest import AppFactory, settled

RESIDENT = 7400
ADMIN = 100000002  # 张晓燕, a district admin in config.example.toml
COMMUNITY_ADMIN = 100000006  # 孙桂兰, 康乐社区's admin: decides on its volunteers
BUREAU_ADMIN = 100000005  # an admin of the urban management bureau: not for volunteers
VOLUNTEERS = -1001000000003
HELPERS = [8101, 8102, 8103, 8104, 8105]
STRANGER = 8999
KANGLE_OFFICE = -1001000000031  # 康乐社区's group
KANGLE_VOLUNTEERS = -1001000000041  # and its own volunteer group
CROWD = list(range(8200, 8250))  # fifty volunteers


@pytest.fixture
async def world(api_server: BotAPIServer, make_app: AppFactory) -> Whistle:
    api_server.add_user(RESIDENT, first_name="王晓霞", language_code="zh-hans")
    api_server.add_user(ADMIN, first_name="晓燕", language_code="zh-hans")
    api_server.add_user(COMMUNITY_ADMIN, first_name="桂兰", language_code="zh-hans")
    for index, helper in enumerate(HELPERS):
        api_server.add_user(helper, first_name=f"热心人{index}", language_code="zh-hans")
    api_server.add_user(STRANGER, first_name="路人", language_code="zh-hans")
    api_server.create_group(VOLUNTEERS, "志愿者", members=[*HELPERS, STRANGER])
    # The bot may write to a person only after they started it.
    people = [RESIDENT, ADMIN, COMMUNITY_ADMIN, *HELPERS]
    for person in people:
        api_server.send_text(person, "/start")
    app = await make_app(clock=ManualClock())
    for person in people:
        await api_server.wait_for_message(person)  # the greeting
    return app


async def approved(
    app: Whistle, *helpers: int, status: VolunteerStatus = VolunteerStatus.APPROVED
) -> None:
    async with transaction(app.factory) as session:
        for helper in helpers:
            session.add(
                Volunteer(
                    user_id=helper,
                    display_name=f"志愿者{helper}",
                    first_name="热心人",
                    language="zh-Hans",
                    community="kangle",
                    skills=["代购"],
                    availability="周末",
                    status=status,
                    registered_at=app.clock.now(),
                )
            )


async def publish(
    app: Whistle,
    api_server: BotAPIServer,
    *,
    contact: bool,
    community: str | None = None,
    chat: int = VOLUNTEERS,
) -> tuple[Case, Any]:
    case = await ask_for_help(
        app,
        resident=RESIDENT,
        description="帮忙买药",
        address="3号楼",
        door="2单元501",
        community=community,
        skills=["代购"],
        needed_when="明天上午",
        share_contact=contact,
        contact="13800000000",
    )
    [card] = await api_server.wait_for_message(chat)
    await api_server.wait_for_message(RESIDENT)  # the receipt
    await settled(app)
    return case, card


async def reload(app: Whistle, case_id: int | None) -> Case:
    async with app.factory() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        return case


def claim_by_reply(api_server: BotAPIServer, person: int, card: Any) -> None:
    """``person`` replies 我来 ("I'll go") to the help request's card in the volunteers'
    group."""
    api_server.send_text(person, "我来", chat_id=VOLUNTEERS, reply_to=card.message_id)


def claim_by_button(api_server: BotAPIServer, person: int, card: Any) -> None:
    """``person`` presses the claim button under the help request's card in the volunteers'
    group."""
    api_server.press_button(person, card.message_id, card.callback_data()[0], chat_id=VOLUNTEERS)


async def held(app: Whistle, case_id: int | None) -> HelpRequest:
    """The help part of a request as the database has it now: who holds it."""
    async with app.factory() as session:
        request = await session.get(HelpRequest, case_id)
        assert request is not None
        return request


async def claim_rows(app: Whistle, case_id: int | None) -> int:
    async with app.factory() as session:
        count = await session.scalar(
            select(func.count()).select_from(HelpClaim).where(HelpClaim.case_id == case_id)  # type: ignore[arg-type]
        )
        return int(count or 0)


async def until(api_server: BotAPIServer, check: Any, *, patience: float = 5.0) -> Any:
    return await api_server.wait_for(lambda _s: check(), timeout=patience)


def told(api_server: BotAPIServer, people: list[int], text: str, *, count: int) -> Any:
    """The private messages containing ``text`` to these people, once there are ``count``."""
    found = [m for p in people for m in api_server.messages(p) if text in (m.text or "")]
    return found if len(found) == count else None


class TestRegistration:
    async def test_register_approve_pause_resume(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        helper = HELPERS[0]
        api_server.send_text(helper, "/volunteer")
        [ask] = await api_server.wait_for_message(helper)
        assert "称呼" in ask.text
        api_server.send_text(helper, "小李<b>")
        [ask_community] = await api_server.wait_for_message(helper)
        assert "康乐社区" in ask_community.button_texts()
        data = ask_community.callback_data()[ask_community.button_texts().index("康乐社区")]
        api_server.press_button(helper, ask_community.message_id, data)
        [ask_skills] = await api_server.wait_for_message(helper)
        assert ask_skills.button_texts()[:2] == ["代购", "陪诊"]
        await settled(world)
        api_server.press_button(helper, ask_skills.message_id, ask_skills.callback_data()[1])
        await until(
            api_server, lambda: "✅ 陪诊" in api_server.messages(helper)[-1].button_texts()
        )
        api_server.press_button(helper, ask_skills.message_id, ask_skills.callback_data()[-1])
        [ask_time] = await api_server.wait_for_message(helper)
        assert "空" in ask_time.text
        api_server.send_text(helper, "周末下午")
        [applied] = await api_server.wait_for_message(helper)
        assert "审核" in applied.text
        # The application goes to the community's own admin, not to the district's.
        [application] = await api_server.wait_for_message(COMMUNITY_ADMIN)
        assert "小李&lt;b&gt;" not in application.text  # the client shows text, not markup
        assert "小李<b>" in application.text and "陪诊" in application.text
        assert "周末下午" in application.text

        # Pending: cannot claim yet.
        async with world.factory() as session:
            volunteer = await session.get(Volunteer, helper)
            assert volunteer is not None and volunteer.status is VolunteerStatus.PENDING
            assert volunteer.skills == ["陪诊"] and volunteer.community == "kangle"

        # Only the community's or the district's admins decide; anyone else (another unit's
        # admin included) is refused and nothing changes.
        for outsider in (STRANGER, BUREAU_ADMIN):
            async with transaction(world.factory) as session:
                with pytest.raises(UserError):
                    await volunteers.decide(
                        session,
                        world.district,
                        admin_id=outsider,
                        user_id=helper,
                        approve=True,
                        now=world.clock.now(),
                    )
        await settled(world)
        assert api_server.messages(ADMIN)[-1].text.startswith("晓燕")  # only the greeting
        approve, _decline = application.callback_data()
        api_server.press_button(COMMUNITY_ADMIN, application.message_id, approve)
        [outcome] = await api_server.wait_for_message(helper)
        assert "通过" in outcome.text
        async with world.factory() as session:
            volunteer = await session.get(Volunteer, helper)
            assert volunteer is not None and volunteer.status is VolunteerStatus.APPROVED

        api_server.send_text(helper, "/volunteer")
        [status] = await api_server.wait_for_message(helper)
        assert "在岗" in status.text and status.button_texts() == ["⏸ 暂停"]
        await settled(world)
        api_server.press_button(helper, status.message_id, status.callback_data()[0])
        [paused] = await api_server.wait_for_message(helper)
        assert "暂停" in paused.text and paused.button_texts() == ["▶️ 恢复"]
        await settled(world)
        api_server.press_button(helper, paused.message_id, paused.callback_data()[0])
        [resumed] = await api_server.wait_for_message(helper)
        assert "在岗" in resumed.text

    async def test_declined_volunteer_is_told(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        await approved(world, HELPERS[1], status=VolunteerStatus.PENDING)
        await step(world, volunteers.decide, admin_id=ADMIN, user_id=HELPERS[1], approve=False)
        [told] = await api_server.wait_for_message(HELPERS[1])
        assert "未通过" in told.text


class TestClaiming:
    async def test_claim_by_reply_details_with_consented_contact(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        await approved(world, HELPERS[0])
        case, card = await publish(world, api_server, contact=True)
        assert card.button_texts() == ["🙋 我来"] and "13800000000" not in card.text
        claim_by_reply(api_server, HELPERS[0], card)
        [details] = await api_server.wait_for_message(HELPERS[0])
        assert "帮忙买药" in details.text and "13800000000" in details.text
        assert details.button_texts() == ["🚶 我在路上", "✅ 已完成", "↩️ 放弃认领"]
        [coming] = await api_server.wait_for_message(RESIDENT)
        assert "志愿者8101" in coming.text
        # One name per volunteer: the card shows the name the requester heard (the registered
        # one), not the Telegram first name.
        await until(
            api_server, lambda: "志愿者8101" in (api_server.messages(VOLUNTEERS)[0].text or "")
        )
        edited = api_server.messages(VOLUNTEERS)[0]
        assert "热心人" not in edited.text
        assert edited.button_texts() == [] and "13800000000" not in edited.text
        loaded = await reload(world, case.id)
        assert loaded.status is CaseStatus.PUBLISHED
        assert (await held(world, case.id)).volunteer_id == HELPERS[0]

    async def test_claim_by_button_without_consent_hides_contact(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        await approved(world, HELPERS[1])
        case, card = await publish(world, api_server, contact=False)
        claim_by_button(api_server, HELPERS[1], card)
        [details] = await api_server.wait_for_message(HELPERS[1])
        assert "13800000000" not in details.text and "未提供联系方式" in details.text
        assert (await held(world, case.id)).volunteer_id == HELPERS[1]

    async def test_five_concurrent_claims_one_winner(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        await approved(world, *HELPERS)
        case, card = await publish(world, api_server, contact=True)
        for helper in HELPERS:
            claim_by_reply(api_server, helper, card)
        # Everyone here started the bot: the four too late are told privately, not in the group.
        taken = await until(api_server, lambda: told(api_server, HELPERS, "已被", count=4))
        await settled(world)
        loaded = await held(world, case.id)
        assert loaded.volunteer_id in HELPERS
        assert loaded.volunteer_id not in {m.chat_id for m in taken}
        assert all(loaded.volunteer_name and loaded.volunteer_name in m.text for m in taken)
        assert all(case.number in m.text for m in taken)
        assert api_server.messages(VOLUNTEERS) == [card]  # only the card, edited
        assert await claim_rows(world, case.id) == 1
        details = [m for h in HELPERS for m in api_server.messages(h) if "认领了" in m.text]
        assert len(details) == 1 and "13800000000" in details[0].text
        assert details[0].chat_id == loaded.volunteer_id

    async def test_concurrent_button_presses_one_winner(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        await approved(world, *HELPERS)
        case, card = await publish(world, api_server, contact=False)
        for helper in HELPERS:
            claim_by_button(api_server, helper, card)
        await until(
            api_server,
            lambda: sum("已被" in (a.text or "") for a in api_server.callback_answers) == 4,
        )
        await settled(world)
        assert await claim_rows(world, case.id) == 1


class TestProgress:
    async def test_release_reopens_then_on_way_done_confirm_closes(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        await approved(world, HELPERS[0], HELPERS[1])
        case, card = await publish(world, api_server, contact=True)
        claim_by_reply(api_server, HELPERS[0], card)
        [details] = await api_server.wait_for_message(HELPERS[0])
        await api_server.wait_for_message(RESIDENT)
        await settled(world)
        api_server.press_button(HELPERS[0], details.message_id, details.callback_data()[2])
        [released] = await api_server.wait_for_message(RESIDENT)
        assert "重新开放" in released.text
        await until(
            api_server, lambda: api_server.messages(VOLUNTEERS)[0].button_texts() == ["🙋 我来"]
        )
        assert (await held(world, case.id)).volunteer_id is None

        # A stale press of the released claim changes nothing.
        await settled(world)
        api_server.press_button(HELPERS[0], details.message_id, details.callback_data()[0])
        await until(
            api_server,
            lambda: any(
                "过期" in (a.text or "") or "失效" in (a.text or "")
                for a in api_server.callback_answers
            ),
        )

        claim_by_button(api_server, HELPERS[1], card)
        [details] = await api_server.wait_for_message(HELPERS[1])
        await api_server.wait_for_message(RESIDENT)
        await settled(world)
        api_server.press_button(HELPERS[1], details.message_id, details.callback_data()[0])
        [on_way] = await api_server.wait_for_message(RESIDENT)
        assert "路上" in on_way.text
        await settled(world)
        api_server.press_button(HELPERS[1], details.message_id, details.callback_data()[1])
        [question] = await api_server.wait_for_message(RESIDENT)
        assert question.button_texts() == ["👍 帮到了", "🙏 帮到了，谢谢！", "👎 没帮到"]
        await settled(world)
        api_server.press_button(RESIDENT, question.message_id, question.callback_data()[0])
        [thanks] = await api_server.wait_for_message(RESIDENT)
        assert "办结" in thanks.text
        loaded = await reload(world, case.id)
        assert loaded.status is CaseStatus.CLOSED
        await until(api_server, lambda: "完成" in (api_server.messages(VOLUNTEERS)[0].text or ""))
        # Points only for the volunteer the requester confirmed, only now.
        _on_way, _done, helped, credited = await api_server.wait_for_message(HELPERS[1], count=4)
        assert "确认" in helped.text
        assert "获得 10 积分" in credited.text and "余额：10" in credited.text
        api_server.send_text(HELPERS[1], "/points")
        [balance] = await api_server.wait_for_message(HELPERS[1])
        assert "10" in balance.text and case.number in balance.text
        assert not any("积分" in (m.text or "") for m in api_server.messages(HELPERS[0]))


class TestRefusals:
    async def test_strangers_pending_and_paused_cannot_claim(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        await approved(world, HELPERS[0], status=VolunteerStatus.PENDING)
        await approved(world, HELPERS[1], status=VolunteerStatus.PAUSED)
        case, card = await publish(world, api_server, contact=True)
        claim_by_reply(api_server, STRANGER, card)
        [refused] = await api_server.wait_for_message(VOLUNTEERS)
        assert "/volunteer" in refused.text
        # Someone who started the bot is told privately instead of in the group.
        claim_by_reply(api_server, HELPERS[0], card)
        [refused] = await api_server.wait_for_message(HELPERS[0])
        assert "审核" in refused.text and case.number in refused.text
        claim_by_button(api_server, HELPERS[1], card)
        await until(
            api_server, lambda: any("暂停" in (a.text or "") for a in api_server.callback_answers)
        )
        # A forged payload naming another case, and garbage, change nothing.
        api_server.press_button(
            HELPERS[1], card.message_id, "h1:999", chat_id=VOLUNTEERS, force=True
        )
        api_server.press_button(
            HELPERS[1], card.message_id, "h1:abc", chat_id=VOLUNTEERS, force=True
        )
        await settled(world)
        assert (await held(world, case.id)).volunteer_id is None
        assert await claim_rows(world, case.id) == 0

    async def test_claim_on_a_closed_request_is_refused(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        await approved(world, HELPERS[0], HELPERS[1])
        case, card = await publish(world, api_server, contact=True)
        claim_by_reply(api_server, HELPERS[1], card)
        await api_server.wait_for_message(HELPERS[1])  # the details
        await settled(world)
        assert case.id is not None
        await step(world, closure.withdraw, case_id=case.id, resident_id=RESIDENT)
        [told] = await api_server.wait_for_message(HELPERS[1])
        assert "撤回" in told.text
        await settled(world)
        claim_by_reply(api_server, HELPERS[0], card)
        await until(
            api_server,
            lambda: any("不再开放" in (m.text or "") for m in api_server.messages(HELPERS[0])),
        )
        assert await claim_rows(world, case.id) == 1  # only the claim before the withdrawal


async def settle_help(app: Whistle) -> int:
    clock = app.clock
    assert isinstance(clock, ManualClock)
    return await jobs.settle_help_requests(
        factory=app.factory, clock=clock, district=app.district, on_commit=app.sender.wake
    )


def advance(app: Whistle, **delta: float) -> None:
    assert isinstance(app.clock, ManualClock)
    app.clock.advance(timedelta(**delta))


async def events(app: Whistle, case_id: int | None) -> list[CaseEvent]:
    async with app.factory() as session:
        rows = await session.scalars(
            select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.id)  # type: ignore[arg-type]
        )
        return list(rows.all())


class TestTheCard:
    async def test_card_shows_community_and_building_never_door_or_phone(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        api_server.create_group(KANGLE_VOLUNTEERS, "康乐志愿者", members=HELPERS)
        await approved(world, HELPERS[0])
        _case, card = await publish(
            world, api_server, contact=True, community="kangle", chat=KANGLE_VOLUNTEERS
        )
        assert "康乐社区 · 3号楼" in card.text and "代购" in card.text
        assert "501" not in card.text and "13800000000" not in card.text
        assert api_server.messages(VOLUNTEERS) == []
        # Replies in the community's own volunteer group claim too.
        api_server.send_text(
            HELPERS[0], "我来", chat_id=KANGLE_VOLUNTEERS, reply_to=card.message_id
        )
        [details] = await api_server.wait_for_message(HELPERS[0])
        assert "门牌：2单元501" in details.text and "13800000000" in details.text
        await until(api_server, lambda: f"志愿者{HELPERS[0]}" in (card.text or ""))
        assert "501" not in card.text and "13800000000" not in card.text

    async def test_fifty_volunteers_reply_at_once_one_claim(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        # Half the crowd started the bot (so it may write to them), half never did; five
        # members who are no volunteers reply too.
        started, unstarted = CROWD[:25], CROWD[25:]
        outsiders = list(range(8300, 8305))
        for index, person in enumerate(CROWD + outsiders):
            api_server.add_user(person, first_name=f"志愿者{index}", language_code="zh-hans")
            api_server.add_member(VOLUNTEERS, person)
        for person in started:
            api_server.send_text(person, "/start")
        for person in started:
            await api_server.wait_for_message(person)
        await approved(world, *CROWD)
        case, card = await publish(world, api_server, contact=True)
        before = len(group_sends(api_server))

        racers = CROWD + outsiders
        random.Random(7).shuffle(racers)
        world.unit_of_work.most_in_flight = 0
        for person in racers:  # all at once: none waits for an answer
            claim_by_reply(api_server, person, card)

        # One wins; the card names them.
        await until(api_server, lambda: card.button_texts() == [], patience=60)
        loaded = await held(world, case.id)
        winner, name = loaded.volunteer_id, loaded.volunteer_name
        assert winner in CROWD and name and name in card.text
        assert world.unit_of_work.most_in_flight >= 2  # the claims really raced

        # Losers who started the bot are told privately, with the case number.
        told = [p for p in started if p != winner]
        await until(
            api_server,
            lambda: all(
                any("已被" in (m.text or "") for m in api_server.messages(p)) for p in told
            ),
            patience=60,
        )
        # The others: one reply in the group per kind of refusal, edited to count them all.
        folded = [p for p in unstarted if p != winner]
        taken_line = f"已被{name}认领。 另有 {len(folded) - 1} 人也尝试了。"
        outsiders_line = f"另有 {len(outsiders) - 1} 人也尝试了。"

        def lines() -> list[Any]:
            return [m for m in api_server.messages(VOLUNTEERS) if m.message_id != card.message_id]

        await until(
            api_server,
            lambda: (
                any(m.text == taken_line for m in lines())
                and any(outsiders_line in (m.text or "") for m in lines())
            ),
            patience=60,
        )
        await settled(world)
        assert sorted(m.text for m in lines()) == sorted(
            [taken_line, next(m.text for m in lines() if "/volunteer" in m.text)]
        )
        assert "/volunteer" in next(m.text for m in lines() if m.text != taken_line)

        # At most three messages for the whole race (here: the two folded lines).
        sends = group_sends(api_server)[before:]
        assert len(sends) <= 3, [r.params.get("text") for r in sends]
        assert len(sends) == 2
        # Each folded line answers one of those it counts.
        [taken] = [m for m in lines() if m.text == taken_line]
        replied = {m["message_id"]: m for m in api_server.history(VOLUNTEERS)}
        assert replied[taken.reply_to_message_id]["from"]["id"] in folded

        for person in told:
            [private] = [m for m in api_server.messages(person) if "已被" in (m.text or "")]
            assert name in private.text and case.number in private.text
        for person in folded + outsiders:  # never privately: the bot may not write to them
            assert api_server.messages(person) == []

        async with world.factory() as session:
            counts = dict(
                (
                    await session.execute(
                        select(GroupRefusal.reason, GroupRefusal.count).where(
                            GroupRefusal.chat_id == VOLUNTEERS  # type: ignore[arg-type]
                        )
                    )
                ).all()
            )
        assert counts == {"help.already-taken": len(folded), "help.not-volunteer": 5}
        assert await claim_rows(world, case.id) == 1
        details = [m for p in CROWD for m in api_server.messages(p) if "认领了" in m.text]
        assert [m.chat_id for m in details] == ([winner] if winner in started else [])
        claimed = [e for e in await events(world, case.id) if e.kind == "claimed"]
        assert len(claimed) == 1


def group_sends(api_server: BotAPIServer, chat_id: int = VOLUNTEERS) -> list[Any]:
    """The sendMessage calls the test server received for a group."""
    return [r for r in api_server.calls("sendMessage") if r.params["chat_id"] == str(chat_id)]


class TestOwnRequest:
    async def test_the_requester_cannot_claim_their_own_request(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        await approved(world, RESIDENT)
        api_server.add_member(VOLUNTEERS, RESIDENT)
        case, card = await publish(world, api_server, contact=False)
        claim_by_reply(api_server, RESIDENT, card)
        refused = await until(
            api_server,
            lambda: next(
                (m for m in api_server.messages(RESIDENT) if "自己" in (m.text or "")), None
            ),
        )
        assert case.number in refused.text
        await settled(world)
        assert (await held(world, case.id)).volunteer_id is None
        assert await claim_rows(world, case.id) == 0
