"""The playground: ``python -m bot`` without a token, its clock, and the whole loop driven in
the page by a headless browser."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.district import District
from bot.playground.clock import PlaygroundClock
from bot.playground.runner import Playground
from bot.playground.web import PlaygroundWeb
from tests.conftest import EXAMPLE_DISTRICT, make_settings
from tests.test_dashboard import ARTIFACTS, browser_page, need_browser, png
from tests.test_process import run_bot, service_env
from tests.test_webapp import fill_and_submit

CGZF, SCJG, VOLUNTEERS = -1001000000021, -1001000000022, -1001000000003


# -- the clock ------------------------------------------------------------------------------


def test_the_clock_runs_fast_and_jumps_forward_only() -> None:
    real = [datetime(2026, 3, 2, 1, 0, tzinfo=UTC)]
    clock = PlaygroundClock(real=lambda: real[0])
    assert clock.now() == real[0] and clock.speed == 1
    real[0] += timedelta(seconds=10)
    assert clock.now() == datetime(2026, 3, 2, 1, 0, 10, tzinfo=UTC)
    clock.set_speed(60)
    real[0] += timedelta(seconds=10)  # ten seconds at 60× are ten minutes
    assert clock.now() == datetime(2026, 3, 2, 1, 10, 10, tzinfo=UTC)
    clock.jump_to(datetime(2026, 3, 2, 5, 0, tzinfo=UTC))
    assert clock.now() == datetime(2026, 3, 2, 5, 0, tzinfo=UTC)
    clock.jump_to(datetime(2026, 3, 1, tzinfo=UTC))  # never back
    assert clock.now() == datetime(2026, 3, 2, 5, 0, tzinfo=UTC)
    clock.set_speed(1)
    real[0] += timedelta(seconds=30)
    assert clock.now() == datetime(2026, 3, 2, 5, 0, 30, tzinfo=UTC)
    with pytest.raises(ValueError):
        clock.set_speed(0)


# -- python -m bot without a token ------------------------------------------------------------


async def test_python_m_bot_without_a_token_serves_the_playground(tmp_path: Path) -> None:
    env = service_env(WHISTLE_CONFIG=str(EXAMPLE_DISTRICT))
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    env["PYTHONPATH"] = str(EXAMPLE_DISTRICT.parent)
    process = await run_bot("--port", "0", env=env, cwd=tmp_path)
    assert process.stdout is not None
    try:
        url = None
        output = ""
        while url is None:
            line = (await asyncio.wait_for(process.stdout.readline(), timeout=60)).decode()
            assert line, f"the playground stopped: {output}"
            output += line
            found = re.search(r"http://127\.0\.0\.1:\d+/", line)
            url = found.group(0) if found else None
        assert "BOT_TOKEN is not set: starting the playground" in output
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as response:
                assert response.status == 200
                assert "吹哨体验场" in await response.text()
            async with http.get(url + "api/state") as response:
                state = await response.json()
        titles = [chat["title"] for chat in state["chats"]]
        assert "居民私聊" in titles and "城市管理综合执法局" in titles
        assert "BOT_TOKEN" in state["strings"]["real-bot"]
        assert (tmp_path / "data" / "playground.db").exists()
        # "Start over": a fresh world, where the resident's last words are gone.
        async with aiohttp.ClientSession() as http:
            said = {"user_id": 7001, "chat_id": 7001, "text": "还在吗"}
            async with http.post(url + "api/send", json=said) as response:
                assert (await response.json())["ok"]
            async with http.get(url + "api/history?chat_id=7001") as response:
                texts = [m.get("text") for m in (await response.json())["messages"]]
            assert "还在吗" in texts
            async with http.post(url + "api/reset", json={}) as response:
                assert (await response.json())["ok"]
            async with http.get(url + "api/history?chat_id=7001") as response:
                texts = [m.get("text") for m in (await response.json())["messages"]]
            assert "还在吗" not in texts and "/start" in texts
    finally:
        process.send_signal(2)  # Ctrl+C
        await asyncio.wait_for(process.wait(), timeout=30)
    assert process.returncode == 0


# -- the page in a browser --------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running_playground(
    tmp_path: Path, district: District, postgres: str | None = None
) -> AsyncIterator[PlaygroundWeb]:
    """The playground and its page, on its own SQLite file or on a PostgreSQL database."""
    settings = make_settings("http://unused", "sqlite+aiosqlite:///unused.db")
    ground = Playground(
        settings=settings, district=district, data_dir=tmp_path, database_url=postgres
    )
    web = PlaygroundWeb(ground, port=0)
    await ground.start()
    await web.start()
    try:
        yield web
    finally:
        await web.stop()
        await ground.stop()


@pytest.fixture
async def playground(tmp_path: Path, district: District) -> AsyncIterator[PlaygroundWeb]:
    async with running_playground(tmp_path, district) as web:
        yield web


async def test_the_whole_loop_in_the_page(playground: PlaygroundWeb) -> None:
    need_browser()
    from playwright.async_api import Page
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    started = time.perf_counter()
    ARTIFACTS.mkdir(exist_ok=True)
    photo = ARTIFACTS / "playground-upload.png"
    photo.write_bytes(png(96, 64, (200, 90, 40)))

    async def bot_count(page: Page) -> int:
        return int(await page.locator("#messages .msg.bot").count())

    async def step(page: Page, action: Any) -> None:
        """Do something and wait for the bot's next message in the open chat."""
        before = await bot_count(page)
        await action()
        await page.wait_for_function(
            "n => document.querySelectorAll('#messages .msg.bot').length > n", arg=before
        )

    async def say(page: Page, text: str) -> None:
        async def send() -> None:
            await page.fill("#text", text)
            await page.click("#send")

        await step(page, send)

    async def press(page: Page, label: str) -> None:
        button = page.locator("#messages .inline button", has_text=label).last
        await step(page, button.click)

    async def key(page: Page, label: str) -> None:
        await step(page, page.locator("#keyboard button", has_text=label).click)

    async def open_chat(page: Page, selector: str) -> None:
        await page.click(f".chat-tab{selector}")
        await page.wait_for_function("() => !document.querySelector('#messages .empty')")

    async with browser_page() as page:
        missing_files: list[str] = []
        page.on(
            "response",
            lambda response: (
                missing_files.append(response.url) if response.status == 404 else None
            ),
        )
        page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await page.goto(playground.url)
        await page.wait_for_selector("body[data-ready='1']")
        assert await page.locator("#chat-title").inner_text() == "居民私聊"
        assert await page.locator("#member option:checked").inner_text() == "王晓霞"
        await page.locator("#messages .msg.bot", has_text="王晓霞，您好").wait_for()

        # 随手拍 with a photo from the file picker, a description, a category, an address.
        await key(page, "随手拍")
        await step(page, lambda: page.set_input_files("#photo", str(photo)))
        await page.locator("#messages .msg.mine img").wait_for()
        await say(page, "楼道里有人飞线充电")
        await press(page, "飞线充电")
        # The bot's hint names what the page shows: 📎, then 位置.
        hint = page.locator("#messages .msg.bot").last
        assert "📎 → 位置" in await hint.inner_text()
        assert await page.locator("#attach").inner_text() == "📎"
        assert not await page.locator("#location-open").is_visible()
        await page.click("#attach")
        assert "位置" in await page.locator("#location-open").inner_text()
        await page.click("#location-open")
        assert await page.locator("#location-panel").is_visible()
        await page.click("#location-cancel")
        await say(page, "康乐小区3号楼北侧")
        await press(page, "确认提交")
        receipt = page.locator("#messages .msg.bot", has_text="HB-000001").last
        assert "城市管理综合执法局" in await receipt.inner_text()
        await page.screenshot(path=str(ARTIFACTS / "playground-resident.png"))

        # The department acknowledges and answers by replying to the card.
        await open_chat(page, f"[data-chat-id='{CGZF}']")
        card = page.locator("#messages .msg.bot", has_text="HB-000001").first
        await card.locator("img").wait_for()
        assert await card.locator(".inline button").all_inner_texts() == [
            "✅ 应哨",
            "📝 答卷",
            "↪️ 退回",
        ]
        await card.locator(".inline button", has_text="应哨").click()
        await page.locator("#messages .msg.bot", has_text="已应哨").first.wait_for()
        await card.locator(".reply").click()
        assert "HB-000001" in await page.locator("#reply-text").inner_text()
        await page.fill("#text", "已拆除飞线，加装充电桩")
        await page.click("#send")
        await page.locator("#messages .msg.mine .quote", has_text="HB-000001").wait_for()
        await page.screenshot(path=str(ARTIFACTS / "playground-department.png"))

        # The resident sees the answer and rates it.
        await open_chat(page, "[data-key='residents']")
        await page.locator("#messages .msg.bot", has_text="已拆除飞线").wait_for()
        await press(page, "😊 满意")
        await page.locator("#messages .msg.bot", has_text="已办结").last.wait_for()

        # 邻里互助: the resident asks, a volunteer claims it by replying in the group.
        await key(page, "邻里互助")
        await say(page, "陪我去医院复查")
        await press(page, "新华社区")
        await say(page, "新华西街道")
        await press(page, "跳过")
        await say(page, "下周一")
        await press(page, "选好了")
        await press(page, "同意")
        await press(page, "确认提交")
        await open_chat(page, f"[data-chat-id='{VOLUNTEERS}']")
        assert await page.locator("#member option:checked").inner_text() == "张热心"
        help_card = page.locator("#messages .msg.bot", has_text="陪我去医院复查").last
        await help_card.locator(".reply").click()
        await page.fill("#text", "我来")
        await page.click("#send")
        await open_chat(page, "[data-key='volunteers-private']")
        details = page.locator("#messages .msg.bot", has_text="陪我去医院复查").last
        await details.locator(".inline button", has_text="我在路上").wait_for()
        await page.screenshot(path=str(ARTIFACTS / "playground-volunteer.png"))

        # Another resident's report nobody acknowledges: jumping the clock shows the
        # yellow card on the department's card.
        await open_chat(page, "[data-key='residents']")
        await page.select_option("#member", "7002")
        await page.locator("#messages .msg.bot", has_text="李明，您好").wait_for()
        await key(page, "随手拍")
        await step(page, lambda: page.set_input_files("#photo", str(photo)))
        await say(page, "小区门口饭店卖过期食品")
        await press(page, "食品安全")
        await say(page, "新华路18号")
        await press(page, "确认提交")
        await page.locator("#messages .msg.bot", has_text="HB-000003").last.wait_for()
        await open_chat(page, f"[data-chat-id='{SCJG}']")
        card = page.locator("#messages .msg.bot", has_text="HB-000003").first
        await card.wait_for()
        assert "黄牌" not in await card.inner_text()
        before = await page.locator("#clock-now").inner_text()
        server = playground.playground.server

        def shown() -> int:
            """Messages sent and edits made, in every chat."""
            return sum(1 + len(m.edits) for m in server.messages())

        for _ in range(8):
            seen = shown()
            await page.click("#jump")
            toast = page.locator("#toast", has_text="已跳到")
            await toast.wait_for()
            # Every press changes something someone sees.
            await server.wait_for(lambda _s, seen=seen: shown() > seen)
            # The toast writes the moment the way the clock does.
            jumped = (await toast.inner_text()).removeprefix("已跳到").strip()
            assert re.fullmatch(r"\d{4}年\d{1,2}月\d{1,2}日 \d{2}:\d{2}:\d{2}", jumped)
            try:
                await card.filter(has_text="🟨 黄牌").wait_for(timeout=3000)
                break
            except PlaywrightTimeout:
                continue  # the next due time was something else
        assert "🟨 黄牌" in await card.inner_text()
        assert await page.locator("#clock-now").inner_text() != before
        await page.screenshot(path=str(ARTIFACTS / "playground-yellow-card.png"))

        # Messages are stamped with the simulated time the header shows.
        await open_chat(page, "[data-key='residents']")
        await say(page, "/help")
        # The help itself (the chat's history may still be arriving when the wait ends).
        helped = page.locator("#messages .msg.bot", has_text="/forgetme").last
        await helped.wait_for()
        clock = await page.locator("#clock-now").inner_text()
        stamp = await helped.locator("time").inner_text()
        assert stamp[:5] in clock, (stamp, clock)

        # The next due time, reached while the residents' tab is open (the red card's
        # reminder, or a scheduled report, whichever the day's hour brings first), lands in
        # a group that is not open: its tab shows it as unread.
        seen = shown()
        await page.click("#jump")
        await server.wait_for(lambda _s: shown() > seen)
        await page.locator(".chat-tab[data-chat-id] .badge").first.wait_for()

        # Starting over leaves no stale badge: each group's count is what it holds (a
        # private tab counts the chats of everyone it stands for, one shown at a time).
        assert await page.locator(".chat-tab[data-chat-id] .badge").count() > 0
        await page.click("#reset")
        await page.locator("#messages .msg.bot", has_text="李明，您好").wait_for()
        await page.locator("#messages .msg.mine", has_text="/help").wait_for(state="detached")
        tabs = page.locator(".chat-tab[data-chat-id]")
        for index in range(await tabs.count()):
            tab = tabs.nth(index)
            badge = tab.locator(".badge")
            if await badge.count():
                count = int(await badge.inner_text())
                await tab.click()
                await page.wait_for_function(
                    "n => document.querySelectorAll('#messages .msg.bot').length >= n",
                    arg=count,
                )
        assert missing_files == []  # the favicon too
    print(f"playground browser test: {time.perf_counter() - started:.1f} s")


@pytest.fixture
async def any_playground(
    tmp_path: Path, district: District, database_url: str
) -> AsyncIterator[PlaygroundWeb]:
    """The playground on SQLite (its own file) or on PostgreSQL (the test's database)."""
    postgres = None if database_url.startswith("sqlite") else database_url
    async with running_playground(tmp_path, district, postgres) as web:
        yield web


async def test_a_report_filed_in_the_mini_app_beside_the_chat(
    any_playground: PlaygroundWeb,
) -> None:
    """The resident opens the one-form filing from the menu's web_app button: the playground
    opens the bot's Mini App beside the chat, signed with its own token; photos, a point on
    the district's outline and a category go in one form, and the card reaches the
    department's group."""
    need_browser()

    ARTIFACTS.mkdir(exist_ok=True)
    photo = ARTIFACTS / "mini-app-upload.png"
    photo.write_bytes(png(120, 90, (40, 120, 200)))
    async with browser_page(1400, 900) as page:
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(any_playground.url)
        await page.wait_for_selector("body[data-ready='1']")
        await page.click(".chat-tab[data-key='residents']")
        opener = page.locator("#keyboard button", has_text="一张表填报")
        await opener.click()
        frame = page.frame_locator("#webapp-frame")
        number = await fill_and_submit(frame, photo, "小区东门的路灯坏了一周，晚上很黑")
        await page.screenshot(path=str(ARTIFACTS / "playground-mini-app.png"))

        # The chat gets one receipt with the number; the card reaches the group.
        receipt = page.locator("#messages .msg.bot", has_text=number)
        await receipt.first.wait_for()
        assert await receipt.count() == 1
        await page.click("#webapp-close")
        await page.click(f".chat-tab[data-chat-id='{CGZF}']")
        # (The resident's chat may still be on screen while the group's history arrives.)
        card = page.locator("#messages .msg.bot", has_text="小区东门的路灯坏了一周").last
        await card.wait_for()
        assert number in await card.inner_text()
        assert await page.locator("#messages .msg.bot img").count() >= 1
        assert errors == []
