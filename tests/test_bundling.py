"""打包 bundling, end to end: a photo report that repeats an open case nearby is offered to
follow it; co-reporters are told what the resident is told and rate too; /bundle in a street
office's group bundles cases into one that is dispatched, escalated and closed once.

Every test runs on SQLite and PostgreSQL through the Bot API test server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col

from bot.app import Whistle
from bot.clock import ManualClock
from bot.db import transaction
from bot.district import District
from bot.services import bundling, cases, closure
from bot.services.errors import UserError
from bot.testserver import BotAPIServer, BotMessage
from models import (
    Case,
    CaseEvent,
    CaseFollower,
    CaseKind,
    CaseStatus,
    Escalation,
    EscalationState,
    OutboxMessage,
    OutboxStatus,
    Rating,
)
from scheduler import jobs
from tests.casework import answer, posted_photo, submit, withdraw
from tests.conftest import AppFactory, settled

FILER, NEIGHBOUR = 7601, 7602  # 王晓霞 (Chinese) and Li (English)
RESIDENTS = (7601, 7603, 7604, 7605, 7606)  # five residents for a bundle of five
STAFF, OUTSIDER = 9201, 9999
CENTER, XINHUA, CGZF = -1001000000001, -1001000000011, -1001000000021
SCRATCH = -1005558
KANGLE = (39.6543, 106.7949)
NORTH_40_M = (39.6543 + 40 / 111_195, 106.7949)  # one degree of latitude is ~111.2 km
NORTH_1_KM = (39.6543 + 1000 / 111_195, 106.7949)
STALE = "这个按钮已失效，请重新操作。"


@pytest.fixture
async def app(
    api_server: BotAPIServer, make_app: AppFactory, district: District
) -> AsyncIterator[Whistle]:
    api_server.add_user(FILER, first_name="王晓霞", username="wangxx", language_code="zh-hans")
    api_server.add_user(NEIGHBOUR, first_name="Li", language_code="en")
    for resident in RESIDENTS[1:]:
        api_server.add_user(resident, first_name=f"居民{resident}", language_code="zh-hans")
    api_server.add_user(STAFF, first_name="赵工")
    api_server.add_user(OUTSIDER, first_name="路人")
    for chat_id in district.configured_chat_ids():
        api_server.create_group(chat_id, f"group {chat_id}", members=[STAFF])
    api_server.create_group(SCRATCH, "scratch", members=[STAFF])
    for resident in {*RESIDENTS, NEIGHBOUR}:
        api_server.send_text(resident, "/start")
    app = await make_app(clock=ManualClock())
    for resident in {*RESIDENTS, NEIGHBOUR}:
        await api_server.wait_for_message(resident)  # the greeting
    yield app
    # Every message the test caused could be rendered and sent (a card edit that fails to
    # render would otherwise go unnoticed).
    await settled(app)
    dead = [row for row in await rows(app, OutboxMessage) if row.status is OutboxStatus.DEAD]
    assert [(row.template or row.text_key, row.last_error) for row in dead] == []


# -- helpers ----------------------------------------------------------------------------------


def photo_file_id(api_server: BotAPIServer) -> str:
    return posted_photo(api_server, STAFF, SCRATCH, b"photo")


async def file_case(
    app: Whistle,
    api_server: BotAPIServer,
    *,
    resident: int = FILER,
    category: str | None = "flying_wire",
    at: tuple[float, float] | None = KANGLE,
    address: str | None = None,
    description: str = "楼道里有人飞线充电，电线从三楼窗户拉下来",
) -> Case:
    """A photo report filed through the service (the first report of a problem); without a
    category, a post for the center to assign."""
    draft = cases.Draft(
        kind=CaseKind.REPORT if category else CaseKind.SAY,
        photos=[photo_file_id(api_server)],
        description=description,
        category=category,
        latitude=at[0] if at else None,
        longitude=at[1] if at else None,
        address=address,
    )
    name = "王晓霞" if resident == FILER else f"居民{resident}"
    case = await submit(app, draft, resident=resident, name=name)
    await api_server.wait_for_message(resident)  # the receipt
    await settled(app)
    return case


def data_with(message: BotMessage, part: str) -> str:
    """The callback data of the button whose data contains ``part``."""
    found = [data for data in message.callback_data() if part in data]
    assert found, f"no button with {part!r} in {message.callback_data()}"
    return found[0]


async def press(
    api_server: BotAPIServer,
    message: BotMessage,
    data: str,
    user: int,
    *,
    chat_id: int | None = None,
    force: bool = False,
) -> Any:
    """Press a button and return the callback answer."""
    answered = len(api_server.callback_answers)
    api_server.press_button(user, message.message_id, data, chat_id=chat_id, force=force)
    await api_server.wait_for(lambda s: len(s.callback_answers) > answered)
    return api_server.callback_answers[-1]


async def report_to_summary(
    api_server: BotAPIServer,
    user: int,
    *,
    category: str = "flying_wire",
    at: tuple[float, float] | None = None,
    address: str | None = None,
    description: str = "Wires hang from the third floor / 三楼飞线",
) -> BotMessage:
    """/report: a photo, a description, the category and the place; returns the summary."""
    api_server.send_text(user, "/report")
    await api_server.wait_for_message(user)
    api_server.send_photo(user, b"my photo")
    await api_server.wait_for_message(user)
    api_server.send_text(user, description)
    [categories] = await api_server.wait_for_message(user)
    await press(api_server, categories, data_with(categories, f":cat:{category}"), user)
    await api_server.wait_for_message(user)  # where is it?
    if at is not None:
        api_server.send_location(user, *at)
    else:
        assert address is not None
        api_server.send_text(user, address)
    [summary] = await api_server.wait_for_message(user)
    return summary


async def confirm(api_server: BotAPIServer, summary: BotMessage, user: int) -> BotMessage:
    """Confirm on the summary; returns the next message (an offer or the receipt)."""
    await press(api_server, summary, data_with(summary, ":ok:"), user)
    [reply] = await api_server.wait_for_message(user)
    return reply


async def rows(app: Whistle, model: Any = Case) -> list[Any]:
    async with app.factory() as session:
        return list((await session.scalars(select(model).order_by(col(model.id)))).all())


async def reload(app: Whistle, case: Case) -> Case:
    async with app.factory() as session:
        found = await session.get(Case, case.id)
        assert found is not None
        return found


def card_of(api_server: BotAPIServer, case: Case) -> BotMessage:
    return next(m for m in api_server.messages(CGZF) if case.number in (m.content or ""))


def texts(api_server: BotAPIServer, user: int) -> list[str]:
    return [m.content or "" for m in api_server.messages(user)]


async def until(api_server: BotAPIServer, check: Any) -> Any:
    return await api_server.wait_for(lambda _s: check(), timeout=5.0)


async def open_timeline(api_server: BotAPIServer, user: int) -> BotMessage:
    """/my, then the newest case's timeline; returns the message showing it."""
    before = len(api_server.messages(user))
    api_server.send_text(user, "/my")
    page = await until(
        api_server,
        lambda: next(
            (
                m
                for m in api_server.messages(user)[before:]
                if any(data.startswith("v1:") for data in m.callback_data())
            ),
            None,
        ),
    )
    await press(api_server, page, page.callback_data()[0], user)
    await until(api_server, lambda: "状态：" in page.text or "Status:" in page.text)
    return page


async def offered_to_follow(
    app: Whistle, api_server: BotAPIServer
) -> tuple[Case, BotMessage, BotMessage]:
    """FILER's case is filed; NEIGHBOUR (English) reports a problem 40 m away and confirms the
    summary. The case, NEIGHBOUR's summary and the offer to follow the case instead."""
    case = await file_case(app, api_server)
    summary = await report_to_summary(api_server, NEIGHBOUR, at=NORTH_40_M)
    offer = await confirm(api_server, summary, NEIGHBOUR)
    return case, summary, offer


async def follow_first_case(app: Whistle, api_server: BotAPIServer) -> Case:
    """FILER's case, and NEIGHBOUR (English) following it from a report 40 m away."""
    case, _summary, offer = await offered_to_follow(app, api_server)
    await press(api_server, offer, data_with(offer, ":follow:"), NEIGHBOUR)
    [following] = await api_server.wait_for_message(NEIGHBOUR)
    assert following.text.startswith(f"👥 You now follow {case.number}")
    return case


# -- the offer --------------------------------------------------------------------------------


class TestSimilarReport:
    async def test_a_report_40_m_away_offers_to_follow_and_following_files_nothing(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        case, summary, offer = await offered_to_follow(app, api_server)

        assert offer.text.startswith("🔎 A resident recently reported a similar problem nearby")
        assert f"{case.number} · Flying-wire e-bike charging" in offer.text
        assert "Status: whistled to the department, awaiting acknowledgement" in offer.text
        assert "Reported: 2026-01-05 09:00" in offer.text
        assert "楼道里有人飞线充电" in offer.text
        assert "王晓霞" not in offer.text and "wangxx" not in offer.text
        assert offer.button_texts() == ["👥 Same problem — follow it", "🆕 Different — new case"]
        await until(api_server, lambda: summary.callback_data() == [])

        follow = data_with(offer, ":follow:")
        await press(api_server, offer, follow, NEIGHBOUR)
        [following] = await api_server.wait_for_message(NEIGHBOUR)
        assert following.text.startswith(f"👥 You now follow {case.number}; no new case")
        await until(api_server, lambda: offer.text == "✔️ 👥 Same problem — follow it")

        assert [c.number for c in await rows(app)] == [case.number]  # no new case
        [follower] = await rows(app, CaseFollower)
        assert (follower.case_id, follower.user_id, follower.language) == (
            case.id,
            NEIGHBOUR,
            "en",
        )
        async with app.factory() as session:
            followed = await session.scalar(
                select(CaseEvent).where(CaseEvent.kind == "followed")  # type: ignore[arg-type]
            )
        assert followed is not None and followed.actor_id == NEIGHBOUR
        assert followed.note == "Wires hang from the third floor / 三楼飞线"
        assert (await reload(app, case)).reporters == 2
        await until(
            api_server, lambda: "共 2 位居民反映" in (card_of(api_server, case).caption or "")
        )

        # Pressed again, the offer is stale.
        again = await press(api_server, offer, follow, NEIGHBOUR, force=True)
        assert again.text == "This button has expired. Please start again."
        # Followed by another resident, the case can no longer be withdrawn by its filer.
        timeline = await open_timeline(api_server, FILER)
        assert timeline.button_texts() == ["« 返回列表"]
        assert "👥 共 2 位居民反映" in timeline.text
        assert case.id is not None
        async with transaction(app.factory) as session:
            with pytest.raises(UserError) as refused:
                await closure.withdraw(
                    session, app.district, case_id=case.id, resident_id=FILER, now=app.clock.now()
                )
        assert refused.value.message_id == "withdraw.shared"

    async def test_different_files_a_new_case(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        case, _summary, offer = await offered_to_follow(app, api_server)
        await press(api_server, offer, data_with(offer, ":new:"), NEIGHBOUR)
        [receipt] = await api_server.wait_for_message(NEIGHBOUR)
        assert "HB-000002" in receipt.text
        await until(api_server, lambda: offer.text == "✔️ 🆕 Different — new case")
        first, second = await rows(app)
        assert first.number == case.number and second.resident_id == NEIGHBOUR
        assert (second.status, second.reporters) == (CaseStatus.DISPATCHED, 1)
        assert await rows(app, CaseFollower) == []
        # The offer is gone with the dialog: following afterwards is stale.
        late = await press(api_server, offer, f"d1:x:follow:{case.id}", NEIGHBOUR, force=True)
        assert late.text == "This button has expired. Please start again."

    async def test_the_same_normalised_address_without_coordinates_matches(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        case = await file_case(app, api_server, at=None, address="康乐小区3号楼北侧")
        summary = await report_to_summary(api_server, FILER + 2, address="康乐小区 ３号楼，北侧。")
        offer = await confirm(api_server, summary, FILER + 2)
        assert offer.text.startswith("🔎 附近最近已有居民反映了同类问题")
        assert case.number in offer.text
        # A forged press naming another case is refused and changes nothing.
        forged = offer.callback_data()[0].replace(f":{case.id}", ":999")
        refused = await press(api_server, offer, forged, FILER + 2, force=True)
        assert refused.text == STALE
        assert await rows(app, CaseFollower) == []

    async def test_a_far_report_or_another_category_is_filed_at_once(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        await file_case(app, api_server)
        far = await report_to_summary(api_server, NEIGHBOUR, at=NORTH_1_KM)
        receipt = await confirm(api_server, far, NEIGHBOUR)
        assert "HB-000002" in receipt.text
        clutter = await report_to_summary(api_server, NEIGHBOUR, category="clutter", at=KANGLE)
        receipt = await confirm(api_server, clutter, NEIGHBOUR)
        assert "HB-000003" in receipt.text
        assert [c.reporters for c in await rows(app)] == [1, 1, 1]

    async def test_what_a_co_reporter_writes_is_screened_for_dispute_risks(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        case = await file_case(app, api_server)
        summary = await report_to_summary(
            api_server, NEIGHBOUR, at=NORTH_40_M, description="说了两句，对门扬言要砍死他"
        )
        offer = await confirm(api_server, summary, NEIGHBOUR)
        await press(api_server, offer, data_with(offer, ":follow:"), NEIGHBOUR)
        [alert] = await api_server.wait_for_message(CENTER)
        assert "矛盾纠纷预警" in alert.text and case.number in alert.text
        assert "砍死他" in alert.text and "Li" not in alert.text
        found = await reload(app, case)
        assert (found.risk_category, found.risk_level, found.status) == (
            "violence",
            3,
            CaseStatus.DISPATCHED,
        )

    def test_address_normalisation_and_distance(self) -> None:
        assert bundling.normalise_address("康乐小区 ３号楼，北侧。") == "康乐小区3号楼北侧"
        assert bundling.normalise_address(" Kangle  Rd. No.３ ") == "kanglerdno3"
        assert 39 < bundling.distance_m(*KANGLE, *NORTH_40_M) < 41
        assert 999 < bundling.distance_m(*KANGLE, *NORTH_1_KM) < 1001


# -- co-reporters ----------------------------------------------------------------------------


class TestCoReporters:
    async def test_a_co_reporter_is_told_of_acknowledgement_answer_and_close_and_rates(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        case = await follow_first_case(app, api_server)
        card = card_of(api_server, case)
        await press(api_server, card, card.callback_data()[0], STAFF, chat_id=CGZF)
        [told] = await api_server.wait_for_message(NEIGHBOUR)
        assert told.text == (
            f"🔔 {case.number}: Urban Management and Law Enforcement Bureau has acknowledged "
            "it and is working on it."
        )
        # The filer's notice travels in its own chat's queue: wait until it is sent.
        await settled(app)
        assert any("已应哨" in t for t in texts(api_server, FILER))

        api_server.send_text(STAFF, "飞线已拆除", chat_id=CGZF, reply_to=card.message_id)
        answer, question = await api_server.wait_for_message(NEIGHBOUR, count=2)
        assert "飞线已拆除" in answer.text
        assert question.button_texts() == [
            "😊 Satisfied",
            "🙂 Basically satisfied",
            "😞 Unsatisfied",
        ]
        await settled(app)

        # The co-reporter's rating is recorded; the case waits for the filer's.
        satisfied, _basically, unsatisfied = question.callback_data()
        await press(api_server, question, unsatisfied, NEIGHBOUR)
        [recorded] = await api_server.wait_for_message(NEIGHBOUR)
        assert recorded.text.startswith("Thank you, your rating is recorded.")
        assert (await reload(app, case)).status is CaseStatus.ANSWERED
        twice = await press(api_server, question, satisfied, NEIGHBOUR, force=True)
        assert twice.text == f"{case.number} has already been rated."

        filer_question = next(
            m for m in api_server.messages(FILER) if m.button_texts()[:1] == ["😊 满意"]
        )
        await press(api_server, filer_question, filer_question.callback_data()[0], FILER)
        [closed] = await api_server.wait_for_message(NEIGHBOUR)
        assert closed.text == f"🏁 {case.number}, which you follow, is closed."
        found = await reload(app, case)
        assert (found.status, found.rating) == (CaseStatus.CLOSED, Rating.SATISFIED)

        # /my lists the followed case, marked, with a timeline that names nobody.
        api_server.send_text(NEIGHBOUR, "/my")
        [page] = await api_server.wait_for_message(NEIGHBOUR)
        assert "👥 following" in page.text
        assert page.button_texts() == [f"{case.number} · Flying-wire e-bike charging 👥"]
        await press(api_server, page, page.callback_data()[0], NEIGHBOUR)
        await until(api_server, lambda: "Progress" in page.text)
        assert "You follow this case" in page.text
        assert "you started following it" in page.text
        assert "your rating · unsatisfied" in page.text
        assert "王晓霞" not in page.text
        assert page.button_texts() == ["« Back to the list"]
        # The filer's timeline shows the co-reporter without a name.
        own = await open_timeline(api_server, FILER)
        assert "又有居民反映同一问题" in own.text and "同报居民评价 · 不满意" in own.text
        assert "Li" not in own.text

    async def test_reopening_and_transfer_are_told_without_the_filers_prompt(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        case = await follow_first_case(app, api_server)
        assert case.id is not None
        async with transaction(app.factory) as session:
            await cases.answer(
                session,
                app.district,
                case_id=case.id,
                department="cgzf",
                actor=cases.Person(STAFF, "赵工", "zh-Hans"),
                text="已处理",
                photos=[],
                now=app.clock.now(),
            )
            await closure.rate(
                session,
                app.district,
                case_id=case.id,
                resident_id=FILER,
                rating=Rating.UNSATISFIED,
                now=app.clock.now(),
            )
        before = len(api_server.messages(NEIGHBOUR))
        app.sender.wake()
        await until(
            api_server, lambda: "was not satisfied" in (texts(api_server, NEIGHBOUR) or [""])[-1]
        )
        acknowledged, answer, reopened = api_server.messages(NEIGHBOUR)[before:]
        assert "has acknowledged it" in acknowledged.text  # answering implies acknowledging
        assert "已处理" in answer.text
        assert reopened.text == (
            f"🔁 The resident who filed {case.number} was not satisfied; it has gone back to "
            "Urban Management and Law Enforcement Bureau."
        )
        # The rating question, queued behind the co-reporter's chat pace, was for an answer the
        # filer rated meanwhile: it is dropped, not sent.
        assert all(m.button_texts() == [] for m in api_server.messages(NEIGHBOUR)[before:])
        # A rating button of that answer (an old client, a forged press) does not act on the
        # case once its state moved on.
        moved_on = await press(api_server, answer, f"r1:{case.id}:s", NEIGHBOUR, force=True)
        assert moved_on.text.startswith(f"The answer to {case.number} has already been rated")
        async with transaction(app.factory) as session:
            events = await session.scalars(
                select(CaseEvent.kind).where(col(CaseEvent.case_id) == case.id)
            )
            assert "co_rated" not in events.all()


# -- /bundle ------------------------------------------------------------------------------------


async def bundle_command(api_server: BotAPIServer, text: str, chat_id: int = XINHUA) -> BotMessage:
    """Send a command in a group; returns the bot's next message there."""
    before = len(api_server.messages(chat_id))
    api_server.send_text(STAFF, text, chat_id=chat_id)
    await until(api_server, lambda: api_server.messages(chat_id)[before:])
    return api_server.messages(chat_id)[before]


class TestBundle:
    async def test_a_bundle_of_five_is_handled_once_and_closes_all_five(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        filed = []
        for index, resident in enumerate(RESIDENTS):
            # Far apart, so no resident is offered another's case.
            at = (KANGLE[0] + index * 0.01, KANGLE[1])
            filed.append(await file_case(app, api_server, resident=resident, at=at))
        lead, *members = filed
        numbers = " ".join(case.number for case in filed)
        preview = await bundle_command(api_server, f"/bundle {numbers.lower()}")
        assert preview.text.startswith("🧺 打包办理：以下案件并入 HB-000001")
        assert "HB-000001 · 飞线充电 · 已吹哨，待应哨 （主案）" in preview.text
        assert preview.button_texts() == ["✅ 确认打包", "❌ 取消"]
        assert all(c.status is CaseStatus.DISPATCHED for c in await rows(app))

        await press(api_server, preview, preview.callback_data()[0], STAFF, chat_id=XINHUA)
        await until(api_server, lambda: "已打包" in preview.text)
        assert "HB-000002, HB-000003, HB-000004, HB-000005 并入 HB-000001" in preview.text
        assert "共 5 位居民反映" in preview.text and preview.callback_data() == []
        for member, resident in zip(members, RESIDENTS[1:], strict=True):
            [told] = await api_server.wait_for_message(resident)
            assert told.text.startswith(f"🧺 您反映的 {member.number} 已与同类问题一起并入")
        await settled(app)
        for member in members:
            member_card = card_of(api_server, member)
            assert "已并入 HB-000001 一并办理" in (member_card.caption or "")
            assert member_card.callback_data() == []
        lead_card = card_of(api_server, lead)
        assert "共 5 位居民反映" in (lead_card.caption or "")
        after = await rows(app)
        assert [c.status for c in after] == [CaseStatus.DISPATCHED] + [CaseStatus.BUNDLED] * 4
        assert {c.bundle_id for c in after} == {lead.id}
        assert after[0].reporters == 5
        pending = [e for e in await rows(app, Escalation) if e.state is EscalationState.PENDING]
        assert {e.case_id for e in pending} == {lead.id}  # one bundle, one ladder

        # The bundle escalates once: an hour later only the lead is reminded.
        clock = app.clock
        assert isinstance(clock, ManualClock)
        clock.advance(timedelta(hours=1, minutes=1))
        await jobs.escalate_due_cases(
            factory=app.factory, clock=clock, district=app.district, on_commit=app.sender.wake
        )
        await settled(app)
        reminders = [m.text for m in api_server.messages(CGZF) if (m.text or "").startswith("⏰")]
        assert reminders and all("HB-000001" in text for text in reminders)

        # Answered once (which acknowledges): every resident is told, and asked to rate.
        api_server.send_text(
            STAFF, "五处飞线已全部拆除", chat_id=CGZF, reply_to=lead_card.message_id
        )
        for resident in RESIDENTS:
            acknowledged, answer, question = await api_server.wait_for_message(resident, count=3)
            assert acknowledged.text.startswith("🔔 HB-000001：城市管理综合执法局 已应哨")
            assert "五处飞线已全部拆除" in answer.text
            assert question.button_texts()[0] == "😊 满意"
        await settled(app)
        filer_question = api_server.messages(FILER)[-1]
        await press(api_server, filer_question, filer_question.callback_data()[1], FILER)

        told, _comment_prompt = await api_server.wait_for_message(FILER, count=2)
        assert told.text == "🏁 HB-000001 已办结，感谢您的评价！"
        closed = await rows(app)
        assert [c.status for c in closed] == [CaseStatus.CLOSED] * 5
        assert {c.rating for c in closed} == {Rating.BASICALLY}
        for resident in RESIDENTS[1:]:
            [told] = await api_server.wait_for_message(resident)
            assert told.text == "🏁 您关注的 HB-000001 已办结。"

    async def test_an_unrated_lead_closes_its_bundle(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        lead = await file_case(app, api_server)
        member = await file_case(app, api_server, resident=RESIDENTS[1], at=None, address="别处")
        preview = await bundle_command(
            api_server, f"/bundle {lead.number}, {member.number}", CENTER
        )
        await press(api_server, preview, preview.callback_data()[0], STAFF, chat_id=CENTER)
        await api_server.wait_for_message(RESIDENTS[1])
        staff = cases.Person(STAFF, "赵工", "zh-Hans")
        await answer(app, lead, by=staff, text="已处理", department="cgzf")
        clock = app.clock
        assert isinstance(clock, ManualClock)
        clock.advance(timedelta(hours=73))
        run = {"factory": app.factory, "clock": clock, "district": app.district}
        assert await jobs.close_unrated_cases(**run, on_commit=app.sender.wake) == 1
        assert [(c.status, c.rating) for c in await rows(app)] == [
            (CaseStatus.CLOSED, Rating.UNRATED)
        ] * 2
        await until(
            api_server, lambda: "🏁 您关注的 HB-000001 已办结。" in texts(api_server, RESIDENTS[1])
        )

    async def test_a_report_near_a_bundled_case_is_offered_the_bundles_lead(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        lead = await file_case(app, api_server)
        member = await file_case(app, api_server, resident=RESIDENTS[1], at=NORTH_1_KM)
        preview = await bundle_command(api_server, f"/bundle {lead.number} {member.number}")
        await press(api_server, preview, preview.callback_data()[0], STAFF, chat_id=XINHUA)
        await api_server.wait_for_message(RESIDENTS[1])  # bundled into the lead
        near_member = (NORTH_1_KM[0] + 40 / 111_195, NORTH_1_KM[1])
        summary = await report_to_summary(api_server, NEIGHBOUR, at=near_member)
        offer = await confirm(api_server, summary, NEIGHBOUR)
        assert lead.number in offer.text and member.number not in offer.text
        assert data_with(offer, ":follow:").endswith(f":{lead.id}")
        # The member's resident already follows the lead: their new report is filed at once.
        summary = await report_to_summary(api_server, RESIDENTS[1], at=near_member)
        receipt = await confirm(api_server, summary, RESIDENTS[1])
        assert "HB-000003" in receipt.text

    async def test_following_a_case_bundled_since_the_offer_follows_its_lead(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        lead = await file_case(app, api_server, at=NORTH_1_KM)
        member = await file_case(app, api_server, resident=RESIDENTS[1])
        summary = await report_to_summary(api_server, NEIGHBOUR, at=NORTH_40_M)
        offer = await confirm(api_server, summary, NEIGHBOUR)
        assert member.number in offer.text
        preview = await bundle_command(api_server, f"/bundle {lead.number} {member.number}")
        await press(api_server, preview, preview.callback_data()[0], STAFF, chat_id=XINHUA)
        await until(api_server, lambda: "已打包" in preview.text)
        await press(api_server, offer, data_with(offer, ":follow:"), NEIGHBOUR)
        [following] = await api_server.wait_for_message(NEIGHBOUR)
        assert following.text.startswith(f"👥 You now follow {lead.number}")
        assert (await reload(app, lead)).reporters == 3

    async def test_unknown_closed_and_too_few_numbers_are_named_and_change_nothing(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        first = await file_case(app, api_server)
        second = await file_case(app, api_server, resident=RESIDENTS[1], at=None, address="别处")
        await withdraw(app, second)
        refused = await bundle_command(
            api_server, f"/bundle {first.number} HB-000099 {second.number} 垃圾"
        )
        assert refused.text == (
            "❌ 没有打包，以下案件不能打包：\n· 没有这些案件：HB-000099, 垃圾\n"
            f"· 已办结或已撤回：{second.number}"
        )
        usage = await bundle_command(api_server, f"/bundle {first.number}")
        assert usage.text.startswith("用法：/bundle")
        elsewhere = await bundle_command(api_server, f"/bundle {first.number} HB-000002", CGZF)
        assert elsewhere.text == "请在街道或综治中心的工作群里使用 /bundle。"
        assert [(c.status, c.bundle_id) for c in await rows(app)] == [
            (CaseStatus.DISPATCHED, None),
            (CaseStatus.WITHDRAWN, None),
        ]

    async def test_a_case_already_in_a_bundle_is_named(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        first = await file_case(app, api_server)
        second = await file_case(app, api_server, resident=RESIDENTS[1], at=None, address="别处")
        # Waiting for 三审 in the street office, and for assignment in the center.
        third = await file_case(app, api_server, resident=RESIDENTS[2], category="other")
        fourth = await file_case(app, api_server, resident=RESIDENTS[3], category=None)
        preview = await bundle_command(api_server, f"/bundle {first.number} {second.number}")
        await press(api_server, preview, preview.callback_data()[0], STAFF, chat_id=XINHUA)
        await until(api_server, lambda: "已打包" in preview.text)
        refused = await bundle_command(api_server, f"/bundle {third.number} {second.number}")
        assert refused.text.endswith(f"· 已在其他打包中：{second.number}")

        # The lead may take more cases; their triage and center cards say where they went.
        command = f"/bundle {first.number} {third.number} {fourth.number}"
        more = await bundle_command(api_server, command, CENTER)
        await press(api_server, more, more.callback_data()[0], STAFF, chat_id=CENTER)
        await until(api_server, lambda: "共 4 位居民反映" in more.text)
        await settled(app)
        for chat_id, case in ((XINHUA, third), (CENTER, fourth)):
            # The card: its first line is its title with the case number.
            card = next(
                m
                for m in api_server.messages(chat_id)
                if (m.text or "").startswith("【") and case.number in (m.text or "").split("\n")[0]
            )
            assert "🧺 已并入 HB-000001 一并办理" in card.text
            assert card.callback_data() == []
            if chat_id == XINHUA:  # the triage card's title follows its state
                assert card.text.startswith(f"【已打包】{case.number}")
        assert [c.status for c in await rows(app)] == [CaseStatus.DISPATCHED] + [
            CaseStatus.BUNDLED
        ] * 3

    async def test_a_non_member_cannot_bundle_and_a_decided_proposal_is_stale(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        first = await file_case(app, api_server)
        second = await file_case(app, api_server, resident=RESIDENTS[1], at=None, address="别处")
        preview = await bundle_command(api_server, f"/bundle {first.number} {second.number}")
        confirm_data, cancel_data = preview.callback_data()
        api_server.add_member(XINHUA, OUTSIDER)
        api_server.remove_member(XINHUA, OUTSIDER)
        refused = await press(api_server, preview, confirm_data, OUTSIDER, chat_id=XINHUA)
        assert (refused.text, refused.show_alert) == ("只有本群成员或管理员可以打包案件。", True)
        # Pressed in another unit's group, the proposal is stale.
        other = api_server.send_text(STAFF, "x", chat_id=CGZF)
        stale = await press(
            api_server,
            BotMessage(0, CGZF, other["message_id"], "", {}, 0, 0),
            confirm_data,
            STAFF,
            chat_id=CGZF,
            force=True,
        )
        assert stale.text == "这张卡片已失效。"
        assert [c.status for c in await rows(app)] == [CaseStatus.DISPATCHED] * 2

        await press(api_server, preview, cancel_data, STAFF, chat_id=XINHUA)
        await until(api_server, lambda: "没有打包" in preview.text)
        again = await press(api_server, preview, confirm_data, STAFF, chat_id=XINHUA, force=True)
        assert again.text == "这张卡片已失效。"
        assert [(c.status, c.bundle_id) for c in await rows(app)] == [
            (CaseStatus.DISPATCHED, None)
        ] * 2
