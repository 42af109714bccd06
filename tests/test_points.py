"""Points: crediting confirmed help within the caps (none for self-dealing), the ledger and
/points, /top, the shop and redemption codes, /redeem at the merchant, /adjust, the refund of
expired codes, and the races that must leave one winner and no negative balance."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import Whistle
from bot.clock import ManualClock
from bot.db import SessionFactory, transaction
from bot.district import District, parse_district
from bot.services import cases, points, volunteers
from bot.services.errors import UserError
from bot.testserver import BotAPIServer
from models import (
    Case,
    CaseKind,
    CaseStatus,
    EntryKind,
    HelpRequest,
    HelpStage,
    OfferStock,
    PointEntry,
    Redemption,
    Volunteer,
    VolunteerStatus,
)
from scheduler import jobs
from tests.conftest import EXAMPLE_DISTRICT, AppFactory, say, settled

ADMIN = 100000002  # 张晓燕, an admin in config.example.toml
SHOPKEEPER = 100000021  # staff of kangle_market
BARBER = 100000023  # staff of xinhua_barber
HELPER = 8101
OTHER_HELPER = 8102
RESIDENT = 7400
STRANGER = 8999
NOW = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)  # Monday 09:00 in Asia/Shanghai
HOUR = timedelta(hours=1)


# -- helpers ----------------------------------------------------------------------------------


async def add_volunteer(
    factory: SessionFactory,
    user_id: int,
    *,
    community: str = "kangle",
    contact: str | None = None,
    name: str | None = None,
    status: VolunteerStatus = VolunteerStatus.APPROVED,
    language: str = "zh-Hans",
) -> None:
    async with transaction(factory) as session:
        session.add(
            Volunteer(
                user_id=user_id,
                display_name=name or f"志愿者{user_id}",
                first_name=f"热心人{user_id}",  # never shown: the registered name is
                language=language,
                community=community,
                skills=["代购"],
                contact=contact,
                status=status,
                registered_at=NOW,
            )
        )


async def add_case(
    factory: SessionFactory,
    *,
    resident: int = RESIDENT,
    contact: str | None = None,
    skills: list[str] | None = None,
    when: datetime = NOW,
) -> Case:
    async with transaction(factory) as session:
        case = Case(
            kind=CaseKind.HELP,
            status=CaseStatus.PUBLISHED,
            resident_id=resident,
            resident_language="zh-Hans",
            resident_name="王晓霞",
            contact=contact,
            description="帮忙买药",
            created_at=when,
            updated_at=when,
        )
        session.add(case)
        await session.flush()
        assert case.id is not None
        case.number = f"HB-{case.id:06d}"
        session.add(HelpRequest(case_id=case.id, skills=skills or [], progress=HelpStage.DONE))
    return case


async def credit(
    factory: SessionFactory,
    district: District,
    case: Case,
    *,
    volunteer: int = HELPER,
    now: datetime = NOW,
    auto: bool = False,
) -> int:
    async with transaction(factory) as session:
        return await points.credit_help(
            session, district, case=case, volunteer_id=volunteer, now=now, auto=auto
        )


async def give(factory: SessionFactory, user_id: int, amount: int, when: datetime = NOW) -> None:
    """Points out of thin air for a test: an admin's adjustment."""
    async with transaction(factory) as session:
        session.add(
            PointEntry(
                user_id=user_id,
                kind=EntryKind.ADJUST,
                points=amount,
                reason="test",
                by_id=ADMIN,
                at=when,
            )
        )


async def earned(
    factory: SessionFactory, user_id: int, amount: int, at: datetime = NOW, **values: Any
) -> None:
    """``user_id`` earned ``amount`` points for help at ``at``; ``values`` name the case and
    the resident helped where a test needs them."""
    async with transaction(factory) as session:
        session.add(
            PointEntry(
                user_id=user_id, kind=EntryKind.EARN, points=amount, reason="help", at=at, **values
            )
        )


async def balance(factory: SessionFactory, user_id: int) -> int:
    async with factory() as session:
        return await points.balance(session, user_id)


async def entries(factory: SessionFactory, user_id: int | None = None) -> list[PointEntry]:
    async with factory() as session:
        query = select(PointEntry).order_by(PointEntry.id)  # type: ignore[arg-type]
        if user_id is not None:
            query = query.where(PointEntry.user_id == user_id)  # type: ignore[arg-type]
        return list((await session.scalars(query)).all())


async def taken(factory: SessionFactory, merchant: str, offer: str) -> int:
    async with factory() as session:
        row = await session.get(OfferStock, (merchant, offer))
        return row.taken if row else 0


async def redemptions(factory: SessionFactory) -> list[Redemption]:
    async with factory() as session:
        return list((await session.scalars(select(Redemption))).all())


def key_of(district: District, merchant: str, offer: str) -> tuple[str, int]:
    shop = district.merchant(merchant)
    assert shop is not None
    item = shop.offer(offer)
    assert item is not None
    return points.offer_key(shop, item), item.price


async def redeem(
    factory: SessionFactory,
    district: District,
    user_id: int,
    merchant: str = "kangle_market",
    offer: str = "rice",
    now: datetime = NOW,
) -> Redemption:
    key, price = key_of(district, merchant, offer)
    async with transaction(factory) as session:
        return await points.redeem(
            session, district, user_id=user_id, key=key, price=price, now=now
        )


async def rice_code(world: Whistle) -> str:
    """HELPER, a volunteer given 30 points, redeems them for a bag of rice: the code."""
    await add_volunteer(world.factory, HELPER)
    await give(world.factory, HELPER, 30)
    return (await redeem(world.factory, world.district, HELPER)).code


# -- crediting --------------------------------------------------------------------------------


class TestCrediting:
    async def test_confirmed_help_earns_per_request_and_by_skill(
        self, factory: SessionFactory, district: District
    ) -> None:
        await add_volunteer(factory, HELPER)
        assert await balance(factory, HELPER) == 0  # nothing before the confirmation
        plain = await add_case(factory, resident=7401)
        escort = await add_case(factory, resident=7402, skills=["代购", "陪诊"])
        assert await credit(factory, district, plain) == 10
        assert await credit(factory, district, escort) == 15
        rows = await entries(factory, HELPER)
        assert [(r.kind, r.points, r.case_id, r.counterparty_id) for r in rows] == [
            (EntryKind.EARN, 10, plain.id, 7401),
            (EntryKind.EARN, 15, escort.id, 7402),
        ]
        assert all(r.by_id == r.counterparty_id and not r.auto for r in rows)
        assert await balance(factory, HELPER) == 25

    async def test_points_only_when_the_requester_confirms_helped(
        self, factory: SessionFactory, district: District
    ) -> None:
        """As the help flow will call it: in the transaction that closes the request."""
        await add_volunteer(factory, HELPER)
        async with transaction(factory) as session:
            case = await cases.submit(
                session,
                district,
                resident=cases.Person(RESIDENT, "王晓霞", "zh-Hans"),
                now=NOW,
                draft=cases.Draft(kind=CaseKind.HELP, description="帮忙买药", address="3号楼"),
            )
            assert case.id is not None
            case_id = case.id

        async def finish() -> None:
            async with transaction(factory) as session:
                await volunteers.claim(session, district, case_id=case_id, user_id=HELPER, now=NOW)
                await volunteers.progress(
                    session, district, case_id=case_id, user_id=HELPER, action="done", now=NOW
                )

        async def confirm(helped: bool) -> None:
            async with transaction(factory) as session:
                await volunteers.confirm(
                    session,
                    district,
                    case_id=case_id,
                    resident_id=RESIDENT,
                    answer="y" if helped else "n",
                    now=NOW,
                )

        await finish()
        assert await balance(factory, HELPER) == 0  # done is not yet helped
        await confirm(helped=False)
        assert await balance(factory, HELPER) == 0
        await finish()
        await confirm(helped=True)  # closing as helped credits the volunteer
        assert await balance(factory, HELPER) == 10
        async with transaction(factory) as session:
            closed = await session.get(Case, case_id)
            assert closed is not None and closed.status is CaseStatus.CLOSED
            # Crediting the same request again gives nothing.
            assert (
                await points.credit_help(
                    session, district, case=closed, volunteer_id=HELPER, now=NOW, auto=False
                )
                == 0
            )
        assert await balance(factory, HELPER) == 10

    async def test_a_request_earns_once(self, factory: SessionFactory, district: District) -> None:
        await add_volunteer(factory, HELPER)
        case = await add_case(factory)
        assert await credit(factory, district, case) == 10
        assert await credit(factory, district, case) == 0
        assert await balance(factory, HELPER) == 10

    async def test_automatic_credit_is_marked(
        self, factory: SessionFactory, district: District
    ) -> None:
        await add_volunteer(factory, HELPER)
        case = await add_case(factory)
        assert await credit(factory, district, case, auto=True) == 10
        [row] = await entries(factory, HELPER)
        assert row.auto and row.by_id is None

    async def test_daily_cap_resets_at_local_midnight(
        self, factory: SessionFactory, district: District
    ) -> None:
        await add_volunteer(factory, HELPER)
        got = []
        for index in range(4):  # 15 each, from different requesters: 15, 15, 15, then 5
            case = await add_case(factory, resident=7500 + index, skills=["维修"])
            got.append(await credit(factory, district, case, now=NOW + timedelta(hours=index)))
        assert got == [15, 15, 15, 5]
        case = await add_case(factory, resident=7600)
        assert await credit(factory, district, case, now=NOW + timedelta(hours=6)) == 0
        # 16:00 UTC is midnight in Shanghai: a new day.
        midnight = datetime(2026, 1, 5, 16, 0, tzinfo=UTC)
        case = await add_case(factory, resident=7601)
        assert await credit(factory, district, case, now=midnight - timedelta(minutes=1)) == 0
        case = await add_case(factory, resident=7602)
        assert await credit(factory, district, case, now=midnight) == 10
        assert await balance(factory, HELPER) == 60

    async def test_pair_cap_counts_seven_days(
        self, factory: SessionFactory, district: District
    ) -> None:
        await add_volunteer(factory, HELPER)
        got = []
        for day in range(4):  # one a day keeps the daily cap out of it: 10, 10, 10, 0
            case = await add_case(factory)
            got.append(await credit(factory, district, case, now=NOW + timedelta(days=day)))
        assert got == [10, 10, 10, 0]
        # Another requester still earns; the first one again only after a week.
        other = await add_case(factory, resident=7777)
        assert await credit(factory, district, other, now=NOW + timedelta(days=3)) == 10
        case = await add_case(factory)
        assert await credit(factory, district, case, now=NOW + timedelta(days=7, hours=1)) == 10
        assert await balance(factory, HELPER) == 50

    async def test_pair_cap_credits_the_remainder(self, factory: SessionFactory) -> None:
        text = EXAMPLE_DISTRICT.read_text(encoding="utf-8").replace(
            "pair_weekly_cap = 30", "pair_weekly_cap = 25"
        )
        district = parse_district(text)
        await add_volunteer(factory, HELPER)
        got = []
        for day in range(3):
            case = await add_case(factory)
            got.append(await credit(factory, district, case, now=NOW + timedelta(days=day)))
        assert got == [10, 10, 5]

    @pytest.mark.parametrize(
        ("resident", "case_contact", "volunteer_contact"),
        [
            (HELPER, None, None),  # the requester is the volunteer
            (RESIDENT, "@Li_Helper", "@li_helper"),  # the same contact, any case
            (RESIDENT, " @li_helper", "@LI_HELPER"),
        ],
    )
    async def test_self_dealing_earns_nothing(
        self,
        factory: SessionFactory,
        district: District,
        resident: int,
        case_contact: str | None,
        volunteer_contact: str | None,
    ) -> None:
        await add_volunteer(factory, HELPER, contact=volunteer_contact)
        case = await add_case(factory, resident=resident, contact=case_contact)
        assert await credit(factory, district, case) == 0
        assert await entries(factory) == []

    async def test_different_contacts_earn(
        self, factory: SessionFactory, district: District
    ) -> None:
        await add_volunteer(factory, HELPER, contact="@li_helper")
        case = await add_case(factory, contact="@wang")
        assert await credit(factory, district, case) == 10

    async def test_unknown_volunteer_earns_nothing(
        self, factory: SessionFactory, district: District
    ) -> None:
        case = await add_case(factory)
        assert await credit(factory, district, case, volunteer=STRANGER) == 0
        assert await entries(factory) == []


class TestDistrictFile:
    def test_example_has_points_and_merchants(self, district: District) -> None:
        assert district.points.per_request == 10
        assert district.points.for_skills(["陪诊"]) == 15
        assert district.points.for_skills(["代购"]) == 10
        market = district.merchant("kangle_market")
        assert market is not None and SHOPKEEPER in market.telegram_ids
        rice = market.offer("rice")
        assert rice is not None and rice.stock == 20 and rice.price == 30
        assert district.merchants_of(BARBER)[0].code == "xinhua_barber"
        for merchant in district.merchants:
            assert set(merchant.names.texts) == {"zh-Hans", "en", "mn-Mong"}
            for offer in merchant.offers:
                assert set(offer.names.texts) == {"zh-Hans", "en", "mn-Mong"}

    def test_problems_name_their_keys(self) -> None:
        from bot.district import DistrictError

        text = EXAMPLE_DISTRICT.read_text(encoding="utf-8")
        text = text.replace('by_skill = { "陪诊" = 15', 'by_skill = { "跑腿" = 15')
        text = text.replace("price = 5", "price = 0")
        text = text.replace('code = "xinhua_barber"', 'code = "kangle_market"')
        text = text.replace('code = "soap"', 'code = "rice"')
        with pytest.raises(DistrictError) as caught:
            parse_district(text, path="config.toml")
        keys = [problem.key for problem in caught.value.problems]
        assert keys == [
            'points.by_skill."跑腿"',
            "merchants[0].offers[1].code",
            "merchants[0].offers[1].price",
            "merchants[1].code",
        ]
        assert all(problem.line for problem in caught.value.problems)
        assert "unknown skill" in caught.value.problems[0].message


# -- concurrency at the service ---------------------------------------------------------------


class TestRaces:
    async def test_twenty_volunteers_race_for_the_last_item(
        self, factory: SessionFactory, district: District
    ) -> None:
        racers = list(range(9001, 9021))
        for racer in racers:
            await add_volunteer(factory, racer)
            await give(factory, racer, 100)
        async with transaction(factory) as session:
            session.add(OfferStock(merchant="kangle_market", offer="rice", taken=19))

        async def attempt(user_id: int) -> str:
            try:
                await redeem(factory, district, user_id)
            except UserError as error:
                return error.message_id
            return "ok"

        outcomes = await asyncio.gather(*(attempt(racer) for racer in racers))
        assert outcomes.count("ok") == 1
        assert outcomes.count("points.sold-out") == 19
        assert await taken(factory, "kangle_market", "rice") == 20
        [winner_code] = await redemptions(factory)
        spends = [e for e in await entries(factory) if e.kind is EntryKind.SPEND]
        assert [(s.user_id, s.points) for s in spends] == [(winner_code.user_id, -30)]
        for racer in racers:
            expected = 70 if racer == winner_code.user_id else 100
            assert await balance(factory, racer) == expected

    async def test_one_volunteer_cannot_spend_twice(
        self, factory: SessionFactory, district: District
    ) -> None:
        await add_volunteer(factory, HELPER)
        await give(factory, HELPER, 7)

        async def attempt() -> str:
            try:
                await redeem(factory, district, HELPER, offer="soap")
            except UserError as error:
                return error.message_id
            return "ok"

        outcomes = await asyncio.gather(*(attempt() for _ in range(10)))
        assert outcomes.count("ok") == 1
        assert outcomes.count("points.not-enough") == 9
        assert await balance(factory, HELPER) == 2
        assert len(await redemptions(factory)) == 1

    async def test_a_code_checked_twice_at_once_is_used_once(
        self, factory: SessionFactory, district: District
    ) -> None:
        await add_volunteer(factory, HELPER)
        await give(factory, HELPER, 30)
        code = (await redeem(factory, district, HELPER)).code

        async def check(staff: int) -> str:
            try:
                async with transaction(factory) as session:
                    await points.check_code(
                        session, district, staff_id=staff, text=code, lang="zh-Hans", now=NOW
                    )
            except UserError as error:
                return error.message_id
            return "ok"

        outcomes = await asyncio.gather(check(SHOPKEEPER), check(100000022), check(SHOPKEEPER))
        assert sorted(outcomes) == ["ok", "points.code-used", "points.code-used"]


# -- end to end -------------------------------------------------------------------------------


@pytest.fixture
async def world(api_server: BotAPIServer, make_app: AppFactory) -> Whistle:
    people = {
        ADMIN: "晓燕",
        SHOPKEEPER: "店主",
        BARBER: "理发师",
        HELPER: "小李",
        OTHER_HELPER: "小王",
        RESIDENT: "王晓霞",
        STRANGER: "路人",
    }
    for user_id, name in people.items():
        api_server.add_user(user_id, first_name=name, language_code="zh-hans")
        api_server.send_text(user_id, "/start")
    app = await make_app(clock=ManualClock(NOW))
    for user_id in people:
        await api_server.wait_for_message(user_id)  # the greeting
    return app


async def until(api_server: BotAPIServer, check: Any) -> Any:
    return await api_server.wait_for(lambda _s: check(), timeout=5.0)


class TestLedger:
    async def test_points_appear_after_confirmation_and_sum_to_the_balance(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        await add_volunteer(world.factory, HELPER, name="小李")
        before = await say(api_server, HELPER, "/points")
        assert "我的积分：0" in before.text and "还没有积分记录" in before.text

        case = await add_case(world.factory, skills=["陪诊"])
        async with transaction(world.factory) as session:
            got = await points.credit_help(
                session, world.district, case=case, volunteer_id=HELPER, now=NOW, auto=False
            )
        world.sender.wake()
        [told] = await api_server.wait_for_message(HELPER)
        assert got == 15 and case.number in told.text and "15" in told.text
        assert "余额：15" in told.text
        other = await add_case(world.factory, resident=7401)
        clock = world.clock
        assert isinstance(clock, ManualClock)
        await credit(world.factory, world.district, other, auto=True, now=clock.advance(HOUR))
        world.sender.wake()
        [auto] = await api_server.wait_for_message(HELPER)
        assert "未在期限内答复" in auto.text
        await give(world.factory, HELPER, -5, when=clock.advance(HOUR))

        shown = await say(api_server, HELPER, "/points")
        total = sum(entry.points for entry in await entries(world.factory, HELPER))
        assert total == 20 == await balance(world.factory, HELPER)
        assert f"我的积分：{total}" in shown.text
        assert case.number in shown.text and other.number in shown.text
        assert "自动确认" in shown.text and "2026-01-05 09:00" in shown.text
        assert shown.text.index("调整 -5") < shown.text.index(other.number)  # newest first

    async def test_self_dealing_is_explained(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        await add_volunteer(world.factory, HELPER, contact="@xiaoli")
        case = await add_case(world.factory, contact="@XiaoLi")
        assert await credit(world.factory, world.district, case) == 0
        world.sender.wake()
        [told] = await api_server.wait_for_message(HELPER)
        assert "不计积分" in told.text

    async def test_non_volunteers_are_told(self, world: Whistle, api_server: BotAPIServer) -> None:
        for command in ("/points", "/top", "/shop"):
            reply = await say(api_server, STRANGER, command)
            assert "/volunteer" in reply.text

    async def test_english_volunteer_reads_english(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        api_server.add_user(8300, first_name="Ann", language_code="en")
        await say(api_server, 8300, "/start")
        await add_volunteer(world.factory, 8300, language="en")
        await give(world.factory, 8300, 12)
        shown = await say(api_server, 8300, "/points")
        assert "My points: 12" in shown.text and "adjusted +12" in shown.text


class TestLeaderboard:
    async def test_top_shows_the_community_by_week_and_month(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        factory = world.factory
        # Twelve kangle volunteers earned this week 100, 95, …; HELPER earned least.
        for index in range(12):
            user_id = 9100 + index
            await add_volunteer(factory, user_id, name=f"K{index:02d}")
            case = await add_case(factory, resident=7000 + index)
            await earned(
                factory, user_id, 100 - 5 * index, case_id=case.id, counterparty_id=7000 + index
            )
        await add_volunteer(factory, HELPER, name="小李")
        await add_volunteer(factory, OTHER_HELPER, community="xinhua_community")
        async with transaction(factory) as session:
            # Last month counts for neither board; spending and adjustments are not earnings.
            for user_id, kind, amount, at in (
                (HELPER, EntryKind.EARN, 5, NOW),
                (HELPER, EntryKind.EARN, 500, NOW - timedelta(days=10)),
                (HELPER, EntryKind.ADJUST, 900, NOW),
                (OTHER_HELPER, EntryKind.EARN, 999, NOW),
            ):
                session.add(
                    PointEntry(user_id=user_id, kind=kind, points=amount, reason="x", at=at)
                )
        board = await say(api_server, HELPER, "/top")
        text = board.text
        assert "康乐社区" in text and "本周" in text and "本月" in text
        assert "1. K00 — 100" in text and "10. K09 — 55" in text
        assert "K10" not in text and "热心人" not in text and "999" not in text
        assert "您排第 13 名（5 分）" in text
        assert "志愿者9100" not in text  # first names only

    async def test_week_starts_on_monday(self, world: Whistle, api_server: BotAPIServer) -> None:
        await add_volunteer(world.factory, HELPER, name="小李")
        this_week = NOW - timedelta(hours=2)  # Monday 07:00 local
        last_week = NOW - timedelta(hours=10)  # Sunday 23:00 local
        await earned(world.factory, HELPER, 7, this_week)
        await earned(world.factory, HELPER, 3, last_week)
        text = (await say(api_server, HELPER, "/top")).text
        week, month = text.split("本月")
        assert "1. 小李 — 7" in week and "1. 小李 — 10" in month


class TestShop:
    async def test_shop_redeem_and_check_the_code(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        factory = world.factory
        await add_volunteer(factory, HELPER, name="小李")
        await give(factory, HELPER, 40)
        shop = await say(api_server, HELPER, "/shop")
        assert "余额：40" in shop.text and "剩余 20 份" in shop.text
        assert shop.button_texts() == [
            "兑换 大米一袋（5 公斤）（30 分）",
            "兑换 洗衣皂（5 分）",
            "兑换 理发一次（20 分）",
        ]
        assert all(len(data.encode()) <= 64 for data in shop.callback_data())
        await settled(world)
        api_server.press_button(HELPER, shop.message_id, shop.callback_data()[0])
        [issued] = await api_server.wait_for_message(HELPER)
        assert "大米一袋" in issued.text and "康乐便民超市" in issued.text
        assert "余额 10" in issued.text and "2026-01-12 09:00" in issued.text
        [redemption] = await redemptions(factory)
        assert points.show_code(redemption.code) in issued.text
        assert await balance(factory, HELPER) == 10
        assert await taken(factory, "kangle_market", "rice") == 1

        # Not enough points left for a second bag: refused, nothing changes.
        await settled(world)
        api_server.press_button(HELPER, shop.message_id, shop.callback_data()[0])
        await until(
            api_server,
            lambda: any("积分不足" in (a.text or "") for a in api_server.callback_answers),
        )
        await settled(world)
        assert await balance(factory, HELPER) == 10 and len(await redemptions(factory)) == 1

        # The barber cannot use the market's code; the market's staff can, once.
        spoken = redemption.code.lower()
        spoken = f"{spoken[:3]} {spoken[3:6]}-{spoken[6:]}"
        refused = await say(api_server, BARBER, f"/redeem {spoken}")
        assert "没有这个兑换码" in refused.text
        valid = await say(api_server, SHOPKEEPER, f"/redeem {spoken}")
        assert "有效" in valid.text and "大米一袋" in valid.text and "小李" in valid.text
        [used] = await api_server.wait_for_message(HELPER)
        assert "康乐便民超市" in used.text and "大米一袋" in used.text
        again = await say(api_server, SHOPKEEPER, f"/redeem {redemption.code}")
        assert "已于 2026-01-05 09:00 使用过" in again.text
        [redemption] = await redemptions(factory)
        assert redemption.used_by == SHOPKEEPER

    async def test_expired_code_is_refused_then_refunded(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        factory = world.factory
        code = await rice_code(world)
        clock = world.clock
        assert isinstance(clock, ManualClock)
        clock.advance(timedelta(days=7))
        expired = await say(api_server, SHOPKEEPER, f"/redeem {code}")
        assert "已于 2026-01-12 09:00 过期" in expired.text
        [redemption] = await redemptions(factory)
        assert redemption.used_at is None

        job = {
            "factory": factory,
            "clock": clock,
            "district": world.district,
            "on_commit": world.sender.wake,
        }
        assert await jobs.refund_expired_codes(**job) == 1
        assert await jobs.refund_expired_codes(**job) == 0
        await api_server.wait_for_message(HELPER)  # the code
        [refunded] = await api_server.wait_for_message(HELPER)
        assert "已退还" in refunded.text and "余额 30" in refunded.text
        assert await balance(factory, HELPER) == 30
        assert await taken(factory, "kangle_market", "rice") == 0
        again = await say(api_server, SHOPKEEPER, f"/redeem {code}")
        assert "过期" in again.text

    async def test_offers_past_their_date_or_sold_out_are_not_listed(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        await add_volunteer(world.factory, HELPER)
        async with transaction(world.factory) as session:
            session.add(OfferStock(merchant="kangle_market", offer="rice", taken=20))
        shop = await say(api_server, HELPER, "/shop")
        assert "大米" not in shop.text and len(shop.button_texts()) == 2
        async with transaction(world.factory) as session:
            stock = await session.get(OfferStock, ("kangle_market", "rice"))
            assert stock is not None
            stock.taken = 0
        shop = await say(api_server, HELPER, "/shop")
        assert "大米" in shop.text and "兑换截止：2027-12-31" in shop.text
        clock = world.clock
        assert isinstance(clock, ManualClock)
        clock.set(datetime(2027, 12, 31, 15, 59, tzinfo=UTC))  # 23:59 local, the last day
        assert "大米" in (await say(api_server, HELPER, "/shop")).text
        clock.set(datetime(2027, 12, 31, 16, 0, tzinfo=UTC))
        shop = await say(api_server, HELPER, "/shop")
        assert "大米" not in shop.text and len(shop.button_texts()) == 2

    async def test_twenty_presses_for_the_last_item_one_wins(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        factory = world.factory
        racers = list(range(9201, 9221))
        for racer in racers:
            api_server.add_user(racer, first_name=f"R{racer}", language_code="zh-hans")
            await add_volunteer(factory, racer)
            await give(factory, racer, 100)
        async with transaction(factory) as session:
            session.add(OfferStock(merchant="kangle_market", offer="rice", taken=19))
        shops = {}
        for racer in racers:
            shops[racer] = await say(api_server, racer, "/shop")
        await settled(world)
        world.unit_of_work.most_in_flight = 0
        for racer, shop in shops.items():
            api_server.press_button(racer, shop.message_id, shop.callback_data()[0])
        await until(
            api_server,
            lambda: sum("已兑完" in (a.text or "") for a in api_server.callback_answers) == 19,
        )
        await settled(world)
        assert world.unit_of_work.most_in_flight >= 2  # the presses really raced
        [winner] = await redemptions(factory)
        assert await taken(factory, "kangle_market", "rice") == 20
        spends = [e for e in await entries(factory) if e.kind is EntryKind.SPEND]
        assert [s.user_id for s in spends] == [winner.user_id]
        codes = [m for r in racers for m in api_server.messages(r) if "兑换成功" in (m.text or "")]
        assert len(codes) == 1 and codes[0].chat_id == winner.user_id


class TestRefusals:
    async def test_redeem_by_a_non_merchant_and_malformed_codes_change_nothing(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        factory = world.factory
        code = await rice_code(world)
        world.sender.wake()
        await api_server.wait_for_message(HELPER)  # the code
        reply = await say(api_server, HELPER, f"/redeem {code}")
        assert "只有合作商家" in reply.text
        reply = await say(api_server, STRANGER, f"/redeem {code}")
        assert "只有合作商家" in reply.text
        for bad in ("/redeem", "/redeem 12", "/redeem ABCD-EFG0", "/redeem ABCDEFGHJK"):
            reply = await say(api_server, SHOPKEEPER, bad)
            assert "格式不对" in reply.text, bad
        reply = await say(api_server, SHOPKEEPER, "/redeem ABCD-EFGH")
        assert "没有这个兑换码" in reply.text
        [redemption] = await redemptions(factory)
        assert redemption.used_at is None and redemption.used_by is None
        assert await balance(factory, HELPER) == 0

    async def test_forged_and_stale_redeem_presses(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        await add_volunteer(world.factory, HELPER)
        await give(world.factory, HELPER, 100)
        shop = await say(api_server, HELPER, "/shop")
        await settled(world)
        key, price = key_of(world.district, "kangle_market", "rice")
        for data in (f"pt1:{key}:{price - 29}", "pt1:0000000000:5", "pt1:abc"):
            api_server.press_button(HELPER, shop.message_id, data, force=True)
        await until(
            api_server,
            lambda: sum(a.show_alert for a in api_server.callback_answers) >= 3,
        )
        await settled(world)
        assert await redemptions(world.factory) == []
        assert await balance(world.factory, HELPER) == 100

    async def test_pending_volunteer_cannot_spend(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        await add_volunteer(world.factory, HELPER, status=VolunteerStatus.PENDING)
        await give(world.factory, HELPER, 100)
        with pytest.raises(UserError) as caught:
            await redeem(world.factory, world.district, HELPER)
        assert caught.value.message_id == "points.not-volunteer"


class TestAdjust:
    async def test_admin_adjusts_with_a_reason(
        self, world: Whistle, api_server: BotAPIServer
    ) -> None:
        await add_volunteer(world.factory, HELPER, name="小李")
        done = await say(api_server, ADMIN, f"/adjust {HELPER} +12 补记<上周>的帮助")
        assert "小李" in done.text and "+12" in done.text and "余额 12" in done.text
        [told] = await api_server.wait_for_message(HELPER)
        assert "补记<上周>的帮助" in told.text and "+12" in told.text
        [entry] = await entries(world.factory, HELPER)
        assert entry.kind is EntryKind.ADJUST and entry.by_id == ADMIN
        assert entry.reason == "补记<上周>的帮助"

        refused = await say(api_server, ADMIN, f"/adjust {HELPER} -13 多记了")
        assert "小于 0" in refused.text
        await say(api_server, ADMIN, f"/adjust {HELPER} -12 多记了")
        await api_server.wait_for_message(HELPER)
        assert await balance(world.factory, HELPER) == 0

    @pytest.mark.parametrize(
        ("user", "text", "expected"),
        [
            (HELPER, f"/adjust {HELPER} +5 自己加", "只有管理员"),
            (ADMIN, "/adjust", "用法"),
            (ADMIN, f"/adjust {HELPER} five 理由", "用法"),
            (ADMIN, f"/adjust {HELPER} +5", "用法"),
            (ADMIN, f"/adjust {HELPER} 0 理由", "非零整数"),
            (ADMIN, "/adjust 99999999999999999999 +5 理由", "用法"),
            (ADMIN, f"/adjust {STRANGER} +5 理由", "没有编号为"),
        ],
    )
    async def test_bad_adjustments_change_nothing(
        self, world: Whistle, api_server: BotAPIServer, user: int, text: str, expected: str
    ) -> None:
        await add_volunteer(world.factory, HELPER)
        reply = await say(api_server, user, text)
        assert expected in reply.text
        assert await entries(world.factory) == []


def test_codes_use_an_unambiguous_alphabet() -> None:
    assert not set("01OI") & set(points.CODE_ALPHABET)
    assert points.normalise_code(" abcd-efgh ") == "ABCDEFGH"
    for bad in ("", "ABCDEFG", "ABCDEFGH2", "ABCD EFG0", "ÄBCDEFGH"):
        with pytest.raises(UserError):
            points.normalise_code(bad)
