"""The Open311 GeoReport v2 API, over HTTP against the running service: an integrating system
(the 12345 hotline of config.example.toml) files a case that reaches the department's group
like a resident's, follows it as the department acts, and is refused with the spec's error
bodies; residents' cases are listed without who filed them; photos come through the bot.
Also the district file's ``[[integrations]]``."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select
from sqlmodel import col

from bot.app import Whistle
from bot.clock import ManualClock
from bot.db import transaction
from bot.district import DistrictError, parse_district
from bot.services import closure
from bot.testserver import BotAPIServer
from models import Case, CaseStatus, OutboxMessage, OutboxStatus
from tests.casework import ask_for_help, file_photo_report, withdraw
from tests.conftest import AppFactory, settled, start_with_residents

KEY = "example-12345-key-replace-me"  # the hotline's key in config.example.toml
RESIDENT = 7600
CLERK, OTHER_CLERK = 9601, 9602
CENTER = -1001000000001
CGZF, SCJG = -1001000000021, -1001000000022
SCRATCH = -1006666
PHOTO = b"\xff\xd8\xff\xe0" + b"open311-photo" * 8
CALLER = {"first_name": "张", "last_name": "三丰", "phone": "13912345678", "email": "z@ex.cn"}


@pytest.fixture
async def world(api_server: BotAPIServer, make_app: AppFactory) -> Whistle:
    api_server.create_group(CENTER, "综治中心", members=[CLERK])
    api_server.create_group(CGZF, "城管执法局", members=[CLERK])
    api_server.create_group(SCJG, "市场监管局", members=[OTHER_CLERK])
    api_server.create_group(SCRATCH, "Scratch", members=[RESIDENT])
    return await start_with_residents(
        api_server, make_app, {RESIDENT: "王晓霞"}, center=CENTER, env={"WEB_ENABLED": True}
    )


@pytest.fixture
async def http() -> Any:
    async with aiohttp.ClientSession() as session:
        yield session


def url(app: Whistle, path: str) -> str:
    return f"http://127.0.0.1:{app.web_port}/open311/v2{path}"


async def call(
    http: aiohttp.ClientSession, method: str, address: str, **kwargs: Any
) -> tuple[int, Any]:
    async with http.request(method, address, **kwargs) as response:
        assert response.content_type == "application/json"
        return response.status, await response.json()


async def post(app: Whistle, http: aiohttp.ClientSession, **fields: Any) -> tuple[int, Any]:
    return await call(http, "POST", url(app, "/requests.json"), data=fields)


async def get(app: Whistle, http: aiohttp.ClientSession, path: str, **params: str) -> Any:
    status, body = await call(http, "GET", url(app, path), params=params)
    assert status == 200, body
    return body


async def resident_report(app: Whistle, api_server: BotAPIServer, **values: Any) -> Case:
    """A resident's photo report of a flying wire, filed through the service layer."""
    return await file_photo_report(
        app, api_server, resident=RESIDENT, scratch=SCRATCH, photo=PHOTO, **values
    )


async def outbox_chats(app: Whistle) -> list[tuple[int, str]]:
    async with app.factory() as session:
        rows = await session.execute(select(col(OutboxMessage.chat_id), col(OutboxMessage.status)))
        return [(int(chat), str(status)) for chat, status in rows]


def assert_no_personal_data(body: Any) -> None:
    # Without the server's address, whose port could contain any digits.
    text = re.sub(r"https?://[^/\"]+", "", json.dumps(body, ensure_ascii=False))
    for value in (*CALLER.values(), "三丰", "王晓霞", str(RESIDENT)):
        assert value not in text


class TestFilingAndFollowing:
    async def test_a_hotline_request_is_whistled_and_followed_through_the_department(
        self, world: Whistle, api_server: BotAPIServer, http: aiohttp.ClientSession
    ) -> None:
        status, body = await post(
            world,
            http,
            api_key=KEY,
            service_code="flying_wire",
            description="康乐小区5号楼楼道飞线充电",
            lat="39.6731",
            long="106.8254",
            address_string="康乐小区5号楼",
            **CALLER,
        )
        assert status == 201
        assert body == [
            {
                "service_request_id": "HB-000001",
                "service_notice": "已吹哨至城市管理综合执法局",
                "account_id": None,
            }
        ]

        # The card reaches the department's group like a resident's, showing the hotline.
        card, location = await api_server.wait_for_message(CGZF, count=2)
        assert "HB-000001" in card.text and "飞线充电" in card.text
        assert "来源：经由12345 热线" in card.text and "反映人" not in card.text
        assert location.method == "sendLocation"
        for value in CALLER.values():
            assert value not in card.text
        assert card.button_texts() == ["✅ 应哨", "📝 答卷", "↪️ 退回"]

        [request] = await get(world, http, "/requests/HB-000001.json")
        assert request["status"] == "open"
        assert request["status_notes"] == "已吹哨，等待部门应哨"
        assert request["agency_responsible"] == "城市管理综合执法局"
        assert request["service_code"] == "flying_wire" and request["service_name"] == "飞线充电"
        assert request["address"] == "康乐小区5号楼"
        assert (request["lat"], request["long"]) == (39.6731, 106.8254)
        assert request["requested_datetime"] == "2026-01-05T09:00:00+08:00"
        assert request["media_url"] is None
        assert_no_personal_data(request)
        [english] = await get(world, http, "/requests/HB-000001.json", locale="en")
        assert english["agency_responsible"] == "Urban Management and Law Enforcement Bureau"
        assert english["status_notes"] == "whistled to the department, awaiting acknowledgement"

        # 应哨 in the group: the API shows it.
        world.clock.advance(timedelta(minutes=20))  # type: ignore[attr-defined]
        api_server.press_button(CLERK, card.message_id, card.callback_data()[0], chat_id=CGZF)
        await api_server.wait_for(lambda _s: "已应哨" in (api_server.messages(CGZF)[0].text))
        [request] = await get(world, http, "/requests/hb-000001.json")
        assert (request["status"], request["status_notes"]) == ("open", "部门已应哨，正在办理")
        assert request["updated_datetime"] == "2026-01-05T09:20:00+08:00"

        # 答卷 by reply; then it closes unrated, as nobody in Telegram is asked to rate.
        api_server.send_text(CLERK, "已拆除飞线", chat_id=CGZF, reply_to=card.message_id)
        await api_server.wait_for(lambda _s: "已答卷" in (api_server.messages(CGZF)[0].text))
        [request] = await get(world, http, "/requests/HB-000001.json")
        assert request["status_notes"] == "部门已答卷，等待评价"
        world.clock.advance(timedelta(hours=73))  # type: ignore[attr-defined]
        async with transaction(world.factory) as session:
            await closure.close_unrated(session, world.district, now=world.clock.now())
        [request] = await get(world, http, "/requests/HB-000001.json")
        assert (request["status"], request["status_notes"]) == ("closed", "已办结")
        assert_no_personal_data(request)

        # Nobody was messaged about the case except the groups; nothing failed.
        await settled(world)
        chats = await outbox_chats(world)
        assert {chat for chat, _ in chats} <= {CGZF, CENTER, RESIDENT}
        assert [chat for chat, _ in chats].count(RESIDENT) == 1  # the /start greeting only
        assert all(status == OutboxStatus.DELIVERED for _, status in chats)
        async with world.factory() as session:
            case = await session.scalar(select(Case))
        assert case is not None and case.source == "open311:hotline_12345"
        assert case.rating is not None and case.rating.value == "unrated"

    async def test_json_body_media_only_and_triage_notice(
        self, world: Whistle, api_server: BotAPIServer, http: aiohttp.ClientSession
    ) -> None:
        status, body = await call(
            http,
            "POST",
            url(world, "/requests.json"),
            json={
                "api_key": KEY,
                "service_code": "suggestion",
                "media_url": "https://hotline.example.org/recordings/42.jpg",
                "address_id": "A-1029",
            },
        )
        assert status == 201
        [filed] = body
        # A post with no department waits for the governance center.
        assert filed["service_notice"] == "等待海勃湾区社会治安综合治理中心研判分派"
        [card] = await api_server.wait_for_message(CENTER)
        assert "（见附件）" in card.text and "hotline.example.org/recordings/42.jpg" in card.text
        assert "来源：经由12345 热线" in card.text
        [request] = await get(world, http, f"/requests/{filed['service_request_id']}.json")
        assert request["media_url"] == "https://hotline.example.org/recordings/42.jpg"
        assert request["agency_responsible"] == "海勃湾区社会治安综合治理中心"
        assert request["status_notes"] == "待分派"
        assert request["address"] == "#A-1029"


class TestRetries:
    async def test_a_retry_with_the_same_idempotency_key_files_nothing_new(
        self, world: Whistle, api_server: BotAPIServer, http: aiohttp.ClientSession
    ) -> None:
        fields = {
            "api_key": KEY,
            "service_code": "flying_wire",
            "description": "康乐小区5号楼楼道飞线充电",
            "address_string": "康乐小区5号楼",
        }

        async def filed(key: str, **extra: str) -> tuple[int, str, Any]:
            async with http.post(
                url(world, "/requests.json"),
                data={**fields, **extra},
                headers={"Idempotency-Key": key},
            ) as response:
                body = await response.json()
                return response.status, response.headers.get("Idempotent-Replayed", ""), body

        first = await filed("call-20260105-0001")
        # The hotline timed out and sent it again (even several times at once).
        again = await filed("call-20260105-0001")
        racing = await asyncio.gather(*(filed("call-20260105-0002") for _ in range(5)))
        other = await filed("call-20260105-0003", description="另一通电话")

        assert first[:2] == (201, "") and first[2][0]["service_request_id"] == "HB-000001"
        assert again == (201, "true", first[2])
        numbers = {body[0]["service_request_id"] for _status, _replayed, body in racing}
        assert numbers == {"HB-000002"}
        assert [replayed for _s, replayed, _b in racing].count("") == 1  # one filed it
        assert other[2][0]["service_request_id"] == "HB-000003"
        await settled(world)
        async with world.factory() as session:
            assert len((await session.scalars(select(Case))).all()) == 3
        cards = [m for m in api_server.messages(CGZF) if "康乐小区5号楼楼道飞线充电" in m.content]
        assert len(cards) == 2  # HB-000001 and HB-000002, one card each

    async def test_a_malformed_key_is_refused_with_the_spec_error_body(
        self, world: Whistle, http: aiohttp.ClientSession
    ) -> None:
        for key in ("", "x" * 129, "带中文的键", "with space"):
            async with http.post(
                url(world, "/requests.json"),
                data={"api_key": KEY, "service_code": "flying_wire", "description": "飞线",
                      "lat": "39.6", "long": "106.8"},
                headers={"Idempotency-Key": key},
            ) as response:  # fmt: skip
                assert response.status == 400, key
                [error] = await response.json()
            assert error == {"code": 400, "description": "字段 Idempotency-Key 的值无效"}
        async with world.factory() as session:
            assert (await session.scalars(select(Case))).all() == []


class TestRefusals:
    async def test_keys_services_and_required_fields_with_the_spec_error_body(
        self, world: Whistle, http: aiohttp.ClientSession
    ) -> None:
        good = {
            "api_key": KEY,
            "service_code": "flying_wire",
            "description": "飞线",
            "lat": "39.6",
            "long": "106.8",
        }

        async def refused(fields: dict[str, str], code: int, **kwargs: Any) -> str:
            status, body = await call(
                http, "POST", url(world, "/requests.json"), data=fields, **kwargs
            )
            assert status == code
            [error] = body
            assert set(error) == {"code", "description"} and error["code"] == code
            return str(error["description"])

        assert await refused({**good, "api_key": "wrong-key-0000000000"}, 403) == (
            "api_key 缺失或无效"
        )
        without_key = {k: v for k, v in good.items() if k != "api_key"}
        assert await refused(without_key, 403) == "api_key 缺失或无效"
        assert await refused({**good, "service_code": "no_such"}, 404) == "没有这个服务：no_such"
        # Help requests are for volunteers, not a service here.
        assert await refused({**good, "service_code": "errands"}, 404) == "没有这个服务：errands"
        without_code = {k: v for k, v in good.items() if k != "service_code"}
        assert await refused(without_code, 400) == "缺少必填字段：service_code"
        assert await refused({**good, "description": ""}, 400) == ("需要 description 或 media_url")
        nowhere = {k: v for k, v in good.items() if k not in ("lat", "long")}
        assert await refused(nowhere, 400) == (
            "需要位置：lat 和 long，或 address_string，或 address_id"
        )
        assert await refused({**good, "lat": "north"}, 400) == "字段 lat 的值无效"
        assert await refused({**good, "long": ""}, 400) == "缺少必填字段：long"
        assert await refused({**good, "description": "长" * 1001}, 400) == (
            "描述最多 1000 字，您发送了 1001 字，请精简后重新发送。"
        )
        english = {"Accept-Language": "fr;q=0.9, en;q=0.8"}
        assert await refused(without_key, 403, headers=english) == (
            "api_key is missing or not valid"
        )

        status, body = await call(http, "GET", url(world, "/services/no_such.json"))
        assert (status, body) == (404, [{"code": 404, "description": "没有这个服务：no_such"}])
        status, body = await call(http, "GET", url(world, "/requests/HB-999999.json"))
        assert (status, body) == (
            404,
            [{"code": 404, "description": "没有这个服务请求：HB-999999"}],
        )
        status, body = await call(
            http, "GET", url(world, "/requests.json"), params={"start_date": "yesterday"}
        )
        assert status == 400 and body[0]["description"] == "字段 start_date 的值无效"
        async with world.factory() as session:
            assert (await session.scalars(select(Case))).all() == []

    async def test_services_in_the_language_asked_for(
        self, world: Whistle, http: aiohttp.ClientSession
    ) -> None:
        services = await get(world, http, "/services.json")
        codes = [s["service_code"] for s in services]
        assert "flying_wire" in codes and "suggestion" in codes
        assert "errands" not in codes and "hospital_escort" not in codes  # help: volunteers
        flying = next(s for s in services if s["service_code"] == "flying_wire")
        assert flying == {
            "service_code": "flying_wire",
            "service_name": "飞线充电",
            "description": "飞线充电",
            "metadata": False,
            "type": "realtime",
            "keywords": "report",
            "group": "问题反映",
        }
        english = await get(world, http, "/services.json", locale="en")
        suggestion = next(s for s in english if s["service_code"] == "suggestion")
        assert suggestion["service_name"] == "Suggestion"
        assert suggestion["group"] == "Comments and suggestions"
        definition = await get(world, http, "/services/flying_wire.json")
        assert definition == {"service_code": "flying_wire", "attributes": []}


class TestListing:
    async def test_filters_media_and_no_personal_data(
        self, world: Whistle, api_server: BotAPIServer, http: aiohttp.ClientSession
    ) -> None:
        clock: ManualClock = world.clock  # type: ignore[assignment]
        photo_case = await resident_report(world, api_server)  # HB-000001, day 0
        clock.advance(timedelta(days=2))
        status, _ = await post(
            world,
            http,
            api_key=KEY,
            service_code="food_safety",
            description="过期食品",
            address_string="新华街12号",
            **CALLER,
        )  # HB-000002, day 2
        assert status == 201
        clock.advance(timedelta(days=2))
        withdrawn = await resident_report(world, api_server)  # HB-000003, day 4
        await withdraw(world, withdrawn)
        help_request = await ask_for_help(
            world,
            resident=RESIDENT,
            description="需要人帮忙买菜",
            community="kangle",
            door="3号楼2单元501",
        )  # HB-000004: a help request, never listed
        assert help_request.status is CaseStatus.PUBLISHED

        def numbers(found: list[dict[str, Any]]) -> list[str]:
            return [item["service_request_id"] for item in found]

        everything = await get(world, http, "/requests.json")
        assert numbers(everything) == ["HB-000003", "HB-000002", "HB-000001"]  # newest first
        assert_no_personal_data(everything)
        assert "3号楼2单元501" not in json.dumps(everything, ensure_ascii=False)
        assert numbers(await get(world, http, "/requests.json", status="open")) == [
            "HB-000002",
            "HB-000001",
        ]
        closed = await get(world, http, "/requests.json", status="closed")
        assert numbers(closed) == ["HB-000003"]
        assert closed[0]["status_notes"] == "已撤回"
        assert numbers(await get(world, http, "/requests.json", service_code="food_safety")) == [
            "HB-000002"
        ]
        in_window = await get(
            world,
            http,
            "/requests.json",
            start_date="2026-01-06T00:00:00+08:00",
            end_date="2026-01-08T12:00:00Z",
        )
        assert numbers(in_window) == ["HB-000002"]
        by_ids = await get(
            world, http, "/requests.json", service_request_id="HB-000001,HB-000004,HB-000003"
        )
        assert numbers(by_ids) == ["HB-000003", "HB-000001"]
        status, _body = await call(http, "GET", url(world, "/requests/HB-000004.json"))
        assert status == 404
        # Long after: the default window is the last 90 days.
        clock.advance(timedelta(days=100))
        assert await get(world, http, "/requests.json") == []

        # The resident's photo, fetched through the bot at the listed media_url.
        media_url = next(i for i in everything if i["service_request_id"] == "HB-000001")[
            "media_url"
        ]
        assert media_url == f"http://127.0.0.1:{world.web_port}/open311/v2/media/HB-000001.jpg"
        async with http.get(media_url) as response:
            assert response.status == 200 and response.content_type == "image/jpeg"
            assert await response.read() == PHOTO
        async with http.get(url(world, "/media/HB-000002.jpg")) as response:
            assert response.status == 404  # no photo
        assert photo_case.number == "HB-000001"

    async def test_media_urls_use_the_public_base_url(
        self, api_server: BotAPIServer, make_app: AppFactory, http: aiohttp.ClientSession
    ) -> None:
        api_server.create_group(SCRATCH, "Scratch", members=[RESIDENT])
        api_server.add_user(RESIDENT, first_name="王晓霞")
        app = await make_app(
            env={"WEB_ENABLED": True, "WEB_PUBLIC_URL": "https://whistle.example.org/"}
        )
        await resident_report(app, api_server)
        [request] = await get(app, http, "/requests/HB-000001.json")
        assert request["media_url"] == (
            "https://whistle.example.org/open311/v2/media/HB-000001.jpg"
        )


# -- the district file ------------------------------------------------------------------------

DISTRICT = """\
[district]
names = { "zh-Hans" = "海勃湾区" }
case_prefix = "HB"
default_language = "zh-Hans"
timezone = "Asia/Shanghai"

[governance_center]
names = { "zh-Hans" = "综治中心" }

[[departments]]
code = "cgzf"
names = { "zh-Hans" = "城管" }

[[categories]]
code = "flying_wire"
names = { "zh-Hans" = "飞线充电" }
kind = "report"
department = "cgzf"
"""


def integration(code: str, key: str, names: str = '{ "zh-Hans" = "12345 热线" }') -> str:
    return f'\n[[integrations]]\ncode = "{code}"\nnames = {names}\napi_key = "{key}"\n'


class TestIntegrationsInTheDistrictFile:
    def test_keys_find_their_system(self) -> None:
        district = parse_district(
            DISTRICT
            + integration("hotline", "k" * 16)
            + integration("city_app", "a-different-key-42")
        )
        found = district.integration_by_key("a-different-key-42")
        assert found is not None and found.code == "city_app"
        assert district.integration_by_key("k" * 15) is None
        assert district.integration_by_key("") is None
        assert "k" * 16 not in repr(district.integration("hotline"))

    def test_duplicate_key_and_code_are_named_without_the_key(self, tmp_path: Path) -> None:
        text = (
            DISTRICT
            + integration("hotline", "shared-secret-key-1")
            + integration("hotline", "another-secret-key-2")
            + integration("city_app", "shared-secret-key-1")
        )
        with pytest.raises(DistrictError) as caught:
            parse_district(text, path="config.toml")
        problems = [(p.key, p.message) for p in caught.value.problems]
        assert problems == [
            (
                "integrations[1].code",
                "duplicate integration code 'hotline' (first used by integrations[0])",
            ),
            (
                "integrations[2].api_key",
                "this api_key is already used by integrations[0]; every integrating system "
                "needs its own key",
            ),
        ]
        assert "shared-secret" not in str(caught.value)
        lines = text.splitlines()
        assert lines[caught.value.problems[1].line - 1].startswith("api_key")  # type: ignore[operator]

    def test_short_key_and_missing_names(self) -> None:
        text = DISTRICT + integration("hotline", "short key", names='{ en = "Hotline" }')
        with pytest.raises(DistrictError) as caught:
            parse_district(text, path="config.toml")
        problems = {p.key: p.message for p in caught.value.problems}
        assert problems["integrations[0].api_key"] == (
            "an api_key needs at least 16 characters and no spaces "
            "(e.g. from `openssl rand -hex 24`)"
        )
        assert problems["integrations[0].names"] == (
            "names must include the default language 'zh-Hans'"
        )
        assert "short key" not in str(caught.value)
