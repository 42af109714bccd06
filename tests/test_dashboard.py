"""The web dashboard: signing in with /dashboard, who sees what, links and sessions that end.

The service runs with its web server against the Bot API test server. Cases are filed through
the service layer (a report whistled to 城管, one acknowledged, one answered with a photo, one
for 市场监管); people sign in the way they would: they send /dashboard to the bot and open the
link from its reply. The browser test drives headless Chromium (Playwright) and saves a
screenshot of the overview; the access tests use a plain HTTP client.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import struct
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.app import Whistle
from bot.clock import ManualClock
from bot.dashboard.map import draw
from bot.dashboard.queries import MapCase
from bot.db import transaction
from bot.district import District, DistrictError, parse_district
from bot.services import cases
from bot.testserver import BotAPIServer
from models import (
    Case,
    CaseKind,
    DashboardSession,
    EntryKind,
    LoginLink,
    PointEntry,
    Volunteer,
    VolunteerStatus,
)
from scheduler.jobs import prune_dashboard
from tests.casework import posted_photo, submit
from tests.conftest import EXAMPLE_DISTRICT, AppFactory, settled

LEADER = 100000003  # 赵志刚, leader in charge (district-wide)
SCJG_CLERK = 100000007  # 周立新, 市场监管局 staff (department scope)
RESIDENT = 7101
STAFF = 7201
SCRATCH = -1009999  # a group the bot does not work in: a source of photo file ids
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
BROWSER = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
LINK = re.compile(r"https?://\S+/dashboard/login\?token=[A-Za-z0-9_-]+")


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A real image (the dashboard's <img> must load it), made without any image library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@dataclass
class World:
    app: Whistle
    server: BotAPIServer
    clock: ManualClock
    cases: dict[str, Case]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.app.web_port}{path}"


def photo_id(server: BotAPIServer, data: bytes) -> str:
    return posted_photo(server, STAFF, SCRATCH, data)


async def file_case(world: World, category: str, description: str, **values: Any) -> Case:
    """王晓霞 reports a problem of ``category``."""
    draft = cases.Draft(kind=CaseKind.REPORT, category=category, description=description, **values)
    return await submit(world.app, draft, resident=RESIDENT)


STAFF_PERSON = cases.Person(STAFF, "赵工", "zh-Hans")


@pytest.fixture
async def world(api_server: BotAPIServer, make_app: AppFactory, district: District) -> World:
    api_server.add_user(RESIDENT, first_name="王晓霞", language_code="zh-hans")
    api_server.add_user(STAFF, first_name="赵工")
    api_server.add_user(LEADER, first_name="志刚", language_code="zh-hans")
    api_server.add_user(SCJG_CLERK, first_name="立新", language_code="en")
    for chat_id in district.configured_chat_ids():
        api_server.create_group(chat_id, f"group {chat_id}", members=[STAFF])
    api_server.create_group(SCRATCH, "scratch", members=[STAFF])
    clock = ManualClock()
    app = await make_app(clock=clock, env={"WEB_ENABLED": True})
    w = World(app, api_server, clock, {})
    api_server.send_text(RESIDENT, "/start")  # so that the bot may write to the resident
    await api_server.wait_for_message(RESIDENT)
    resident_photo = photo_id(api_server, png(64, 48, (200, 60, 40)))
    proof = photo_id(api_server, png(80, 60, (40, 140, 70)))
    w.cases["waiting"] = await file_case(
        w, "flying_wire", "楼道飞线充电", photos=[resident_photo],
        latitude=39.70, longitude=106.83, address="康乐小区3号楼",
    )  # fmt: skip
    w.cases["acknowledged"] = await file_case(
        w, "clutter", "楼道堆放杂物", photos=[resident_photo], latitude=39.66, longitude=106.80
    )
    w.cases["answered"] = await file_case(
        w, "road_damage", "人行道破损", photos=[resident_photo], latitude=39.62, longitude=106.85
    )
    w.cases["scjg"] = await file_case(
        w, "food_safety", "小吃店卫生差 <script>alert(1)</script>", photos=[resident_photo]
    )
    district_ = app.district
    async with transaction(app.factory) as session:
        for key in ("acknowledged", "answered"):
            await cases.acknowledge(
                session,
                district_,
                case_id=w.cases[key].id or 0,
                department="cgzf",
                actor=STAFF_PERSON,
                now=clock.now(),
            )
        await cases.answer(
            session,
            district_,
            case_id=w.cases["answered"].id or 0,
            department="cgzf",
            actor=STAFF_PERSON,
            text="已修补人行道",
            photos=[proof],
            now=clock.now(),
        )
    app.sender.wake()
    clock.advance(timedelta(minutes=1))  # the statistics count what happened before now
    return w


async def ask(world: World, user: int, text: str) -> str:
    """Send a text to the bot in a private chat; the text of its reply."""
    await settled(world.app)  # what the bot sent before is not the reply
    before = len(world.server.messages(user))
    world.server.send_text(user, text)
    await world.server.wait_for(lambda s: len(s.messages(user)) > before)
    return world.server.messages(user)[before].text or ""


async def sign_in_link(world: World, user: int) -> str:
    """Send /dashboard to the bot in a private chat; the link from its reply."""
    reply = await ask(world, user, "/dashboard")
    found = LINK.search(reply)
    assert found, reply
    return found.group(0)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # The server is an IP address: aiohttp keeps cookies of IP hosts only when told to.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def open_link(http: aiohttp.ClientSession, link: str) -> aiohttp.ClientResponse:
    """What a browser does with the link: load the page, then post the token it holds."""
    async with http.get(link) as page:
        if page.status != 200:
            return page
        token = re.search(r'name="token" value="([^"]+)"', await page.text())
    assert token is not None
    async with http.post(
        link.split("?", 1)[0], data={"token": token.group(1)}, allow_redirects=True
    ) as signed_in:
        await signed_in.read()
        return signed_in


async def page_text(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url) as response:
        return response.status, await response.text()


# -- the browser ----------------------------------------------------------------------------


def _browser_missing() -> str | None:
    if not Path(BROWSER).exists():
        return f"{BROWSER} is not installed"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed"
    return None


def need_browser() -> None:
    """Skip the test when Chromium or playwright is missing; with WHISTLE_REQUIRE_BROWSER=1
    (as in CI) fail it instead."""
    missing = _browser_missing()
    if missing is not None:
        if os.environ.get("WHISTLE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"the browser test is required but {missing}")
        pytest.skip(f"browser test skipped: {missing}")


@contextlib.asynccontextmanager
async def browser_page(width: int = 1280, height: int = 900) -> AsyncIterator[Any]:
    """A page of headless Chromium set to Chinese (the test is skipped or failed as
    :func:`need_browser` says when there is no browser)."""
    need_browser()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=BROWSER, args=CHROMIUM_ARGS)
        try:
            yield await browser.new_page(
                viewport={"width": width, "height": height}, locale="zh-CN"
            )
        finally:
            await browser.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_leader_signs_in_from_the_bot_and_sees_the_district(
    world: World, http: aiohttp.ClientSession
) -> None:
    need_browser()

    started = time.perf_counter()
    link = await sign_in_link(world, LEADER)
    waiting = world.cases["waiting"]
    answered = world.cases["answered"]
    async with browser_page() as page:
        await page.goto(link)
        await page.wait_for_url("**/dashboard")
        assert await page.locator("h1").inner_text() == "一屏感知"
        assert await page.locator("#open-total").inner_text() == "4"
        assert await page.locator("#today-total").inner_text() == "4"
        status = await page.locator("#by-status").inner_text()
        assert "已吹哨，待应哨\t2" in status  # the 城管 case waiting and the 市场监管 one
        assert "已应哨，办理中\t1" in status and "已答卷，待评价\t1" in status
        near = await page.locator("#near-rungs").inner_text()
        assert waiting.number in near and "黄牌" in near
        # Counting down (by the server's clock) to the yellow card an hour after the whistle.
        assert re.search(r"\b(0:59:00|0:58:[0-5]\d)\b", near), near
        assert await page.locator("svg.map circle").count() == 3  # the located cases
        # 城管 has three cases this month, two acknowledged within the hour, one answered;
        # nothing rated yet. Each rate's definition stands beside it.
        cgzf = await page.locator("#rates tr", has_text="城市管理综合执法局").inner_text()
        assert "66.7%" in cgzf and "2/3" in cgzf
        assert "33.3%" in cgzf and "1/3" in cgzf
        assert "—" in cgzf  # satisfaction: no rating to divide by
        rates = await page.locator("#rates").inner_text()
        assert "响应率＝" in rates and "解决率＝" in rates and "满意率＝" in rates
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "dashboard-overview.png"
        await page.screenshot(path=str(shot), full_page=True)
        print(f"\ndashboard overview screenshot: {shot}")

        await page.click(f"text={waiting.number}")
        await page.wait_for_url(f"**/dashboard/cases/{waiting.number}")
        await page.goto(world.url(f"/dashboard/cases/{answered.number}"))
        assert answered.number in await page.locator("h1").inner_text()
        timeline = await page.locator("#timeline").inner_text()
        for step in ("居民提交", "吹哨", "应哨", "答卷"):
            assert step in timeline
        assert "已修补人行道" in await page.locator("#content").inner_text()
        assert "城市管理综合执法局" in await page.locator("#messages").inner_text()
        loaded = await page.wait_for_function(
            """() => [...document.querySelectorAll('#content .photos img')]
                   .every(img => img.complete && img.naturalWidth > 0)
               && document.querySelectorAll('#content .photos img').length === 2"""
        )
        assert await loaded.json_value()
        widths = await page.eval_on_selector_all(
            "#content .photos img", "imgs => imgs.map(img => img.naturalWidth)"
        )
        assert widths == [64, 80]  # the resident's photo and the proof of the fix
        await page.set_viewport_size({"width": 390, "height": 844})  # a phone
        await page.screenshot(path=str(ARTIFACTS / "dashboard-case-phone.png"), full_page=True)
    print(f"browser test: {time.perf_counter() - started:.1f} s")


# -- access ---------------------------------------------------------------------------------


class TestAccess:
    async def test_a_department_login_sees_only_its_own_cases(
        self, world: World, http: aiohttp.ClientSession
    ) -> None:
        signed_in = await open_link(http, await sign_in_link(world, SCJG_CLERK))
        assert signed_in.status == 200
        other, own = world.cases["answered"], world.cases["scjg"]

        status, text = await page_text(http, world.url(f"/dashboard/cases/{other.number}"))
        assert status == 403 and "another department" in text  # the clerk reads English
        status, _ = await page_text(
            http, world.url(f"/dashboard/cases/{other.number}/photos/answer/0")
        )
        assert status == 403
        status, _ = await page_text(
            http, world.url(f"/dashboard/cases/{other.number}/photos/report/0")
        )
        assert status == 403

        status, text = await page_text(http, world.url(f"/dashboard/cases/{own.number}"))
        assert status == 200 and "小吃店卫生差 &lt;script&gt;alert(1)&lt;/script&gt;" in text
        assert "<script>alert" not in text
        async with http.get(world.url(f"/dashboard/cases/{own.number}/photos/report/0")) as photo:
            assert photo.status == 200 and photo.content_type == "image/png"
        status, text = await page_text(http, world.url("/dashboard/cases"))
        assert own.number in text
        assert all(world.cases[k].number not in text for k in ("waiting", "answered"))
        status, text = await page_text(http, world.url("/dashboard"))
        assert re.search(r'id="open-total">1<', text)
        assert "Market Regulation Administration" in text  # its own rates…
        assert "Urban Management" not in text  # …and nobody else's

    async def test_an_expired_link_is_refused(
        self, world: World, http: aiohttp.ClientSession
    ) -> None:
        link = await sign_in_link(world, LEADER)
        world.clock.advance(timedelta(minutes=11))
        async with http.get(link) as page:
            assert page.status == 410
            assert "已过期" in await page.text()
        token = link.split("token=", 1)[1]
        async with http.post(link.split("?")[0], data={"token": token}) as refused:
            assert refused.status == 410
            assert "Set-Cookie" not in refused.headers
        status, _ = await page_text(http, world.url("/dashboard"))
        assert status == 401

    async def test_a_link_works_once_even_when_used_twice_at_once(
        self, world: World, http: aiohttp.ClientSession
    ) -> None:
        link = await sign_in_link(world, LEADER)
        token = link.split("token=", 1)[1]
        target = link.split("?")[0]

        async def use() -> tuple[int, bool]:
            async with (
                aiohttp.ClientSession() as own,
                own.post(target, data={"token": token}, allow_redirects=False) as response,
            ):
                return response.status, "Set-Cookie" in response.headers

        results = sorted(await asyncio.gather(use(), use()))
        assert results == [(303, True), (410, False)]
        async with http.get(link) as again:
            assert again.status == 410
            assert "已经用过" in await again.text()
        async with world.app.factory() as session:
            sessions = await session.scalar(select(func.count()).select_from(DashboardSession))
        assert sessions == 1

    async def test_a_resident_is_refused_and_gets_no_link(self, world: World) -> None:
        reply = await ask(world, RESIDENT, "/dashboard")
        assert "网页看板仅供" in reply
        assert "token=" not in reply
        async with world.app.factory() as session:
            links = await session.scalar(select(func.count()).select_from(LoginLink))
        assert links == 0

    async def test_staff_who_started_the_bot_find_dashboard_in_their_menu(
        self, world: World, make_app: AppFactory
    ) -> None:
        await sign_in_link(world, LEADER)  # the leader has talked to the bot
        await world.app.stop()
        await make_app(clock=world.clock, env={"WEB_ENABLED": True})
        menu = [c["command"] for c in world.server.effective_commands(LEADER)]
        assert "dashboard" in menu and "report" in menu
        assert "dashboard" not in [c["command"] for c in world.server.effective_commands(RESIDENT)]

    async def test_a_session_ends_after_twelve_hours_and_on_sign_out(
        self, world: World, http: aiohttp.ClientSession
    ) -> None:
        now = world.clock.now()
        async with transaction(world.app.factory) as session:
            session.add(
                Volunteer(
                    user_id=7301,
                    display_name="热心的小明",
                    first_name="小明",
                    language="zh-Hans",
                    community="kangle",
                    status=VolunteerStatus.APPROVED,
                    registered_at=now,
                )
            )
            session.add(PointEntry(user_id=7301, kind=EntryKind.EARN, points=15, at=now))
        await open_link(http, await sign_in_link(world, LEADER))
        status, text = await page_text(http, world.url("/dashboard/volunteers"))
        assert status == 200 and "志愿者与积分" in text
        assert re.search(r"<span>热心的小明</span> <span class=\"muted\">康乐社区</span>", text)
        assert "15 分" in text
        world.clock.advance(timedelta(hours=11, minutes=59))
        assert (await page_text(http, world.url("/dashboard")))[0] == 200
        world.clock.advance(timedelta(minutes=2))
        status, text = await page_text(http, world.url("/dashboard"))
        assert status == 401 and "/dashboard" in text

        await open_link(http, await sign_in_link(world, LEADER))
        assert (await page_text(http, world.url("/dashboard")))[0] == 200
        async with http.post(world.url("/dashboard/logout")) as signed_out:
            assert signed_out.status == 200
        assert (await page_text(http, world.url("/dashboard")))[0] == 401

        # A month on, who signed in when is forgotten.
        world.clock.advance(timedelta(days=31))
        assert await prune_dashboard(factory=world.app.factory, clock=world.clock) == 4
        async with world.app.factory() as session:
            for table in (DashboardSession, LoginLink):
                assert await session.scalar(select(func.count()).select_from(table)) == 0

    async def test_a_forged_or_foreign_cookie_is_not_a_session(
        self, world: World, http: aiohttp.ClientSession
    ) -> None:
        for value in ("", "abc", "abc.def", "x" * 400):
            async with (
                aiohttp.ClientSession(cookies={"whistle_dashboard": value}) as forged,
                forged.get(world.url("/dashboard")) as response,
            ):
                assert response.status == 401


# -- the map and the outline ------------------------------------------------------------------


def located(number: str, latitude: float, longitude: float) -> MapCase:
    return MapCase(1, number, latitude, longitude, "dispatched", "none", "noise")


def test_the_map_fits_the_cases_when_the_district_has_no_outline() -> None:
    north, south = located("HB-000001", 39.70, 106.80), located("HB-000002", 39.60, 106.90)
    drawing = draw(None, [north, south])
    assert drawing is not None and drawing.outline is None
    first, second = drawing.dots
    assert first.y < second.y and first.x < second.x  # north is up, east is right
    for dot in drawing.dots:
        assert 0 < dot.x < drawing.width and 0 < dot.y < drawing.height
    assert draw(None, []) is None  # nothing to draw
    assert draw(None, [north]) is not None  # one case still gets a frame


def test_the_outline_frames_the_map_and_must_have_three_corners(district: District) -> None:
    corners = district.district.outline
    assert corners is not None and len(corners) >= 3  # the example district has one
    drawing = draw(corners, [located("HB-000001", 39.70, 106.83)])
    assert drawing is not None and drawing.outline is not None
    assert len(drawing.outline.split()) == len(corners)
    example = EXAMPLE_DISTRICT.read_text(encoding="utf-8")
    outline = re.compile(r"^outline = \[.*?^\]$", re.MULTILINE | re.DOTALL)
    assert outline.search(example)
    two = outline.sub("outline = [[39.8, 106.7], [39.6, 106.9]]", example)
    with pytest.raises(DistrictError, match=r"district\.outline: an outline needs at least 3"):
        parse_district(two)
    flipped = outline.sub("outline = [[39.8, true], [1, 2], [3, 4]]", example)
    with pytest.raises(DistrictError, match=r"district\.outline\[0\]\[1\]: expected a number"):
        parse_district(flipped)
