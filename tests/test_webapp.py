"""The Mini App's API over HTTP against the running service: launch data signed as Telegram
signs it (computed here from Telegram's documentation, not with the code under test), a photo
report filed in one form reaching the department's group with its photos uploaded through the
Bot API, and everything refused that should be: missing, forged, altered and stale launch
data, oversized and non-image uploads, a second submission of the same form."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import pytest
from PIL import Image
from sqlalchemy import func, select

from bot.app import Whistle
from bot.clock import ManualClock
from bot.db import transaction
from bot.services import privacy
from bot.testserver import BotAPIServer
from models import Case, CaseStatus, PhotoUpload, WebAppDraft
from tests.conftest import TOKEN, AppFactory, settled, start_with_residents
from tests.test_dashboard import ARTIFACTS, browser_page, need_browser, png

RESIDENT = 7700
CENTER = -1001000000001
CGZF = -1001000000021  # 城市管理综合执法局: flying-wire reports go there
MAX_AGE_MINUTES = 60


def launch_data(
    user_id: int = RESIDENT,
    *,
    auth_date: int,
    token: str = TOKEN,
    first_name: str = "王晓霞",
    language_code: str = "zh-hans",
) -> str:
    """``initData`` as Telegram builds it: the fields sorted by key and joined with newlines,
    signed with HMAC-SHA256 under the key HMAC-SHA256("WebAppData", bot token)."""
    user = {"id": user_id, "first_name": first_name, "language_code": language_code}
    fields = {
        "auth_date": str(auth_date),
        "query_id": "AAHdF6IQAAAAAN0XohDhrOrc",
        "user": json.dumps(user, ensure_ascii=False, separators=(",", ":")),
    }
    check = "\n".join(f"{key}={value}" for key, value in sorted(fields.items()))
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    fields["hash"] = hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()
    return urlencode(fields)


def photo_bytes(kind: str = "JPEG", size: tuple[int, int] = (64, 48), **save: Any) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(out, kind, **save)
    return out.getvalue()


def jpeg_with_location() -> bytes:
    """A camera's JPEG: EXIF naming the camera and where the photo was taken."""
    image = Image.new("RGB", (80, 60), (20, 140, 90))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x8825] = {1: "N", 2: (39.0, 54.0, 27.0), 3: "E", 4: (116.0, 23.0, 5.0)}  # GPS
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    return out.getvalue()


@pytest.fixture
async def world(api_server: BotAPIServer, make_app: AppFactory) -> Whistle:
    api_server.create_group(CENTER, "综治中心", members=[])
    api_server.create_group(CGZF, "城管执法局", members=[])
    return await start_with_residents(
        api_server,
        make_app,
        {RESIDENT: "王晓霞"},
        center=CENTER,
        env={"WEB_ENABLED": True, "WEBAPP_MAX_AGE_MINUTES": MAX_AGE_MINUTES},
    )


@pytest.fixture
async def http() -> Any:
    async with aiohttp.ClientSession() as session:
        yield session


class MiniApp:
    """The app as a resident's Telegram client runs it: every call signed with its launch
    data."""

    def __init__(self, app: Whistle, http: aiohttp.ClientSession, init_data: str) -> None:
        self.base = f"http://127.0.0.1:{app.web_port}/app"
        self.http = http
        self.headers = {"Authorization": f"tma {init_data}"}

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.http.request(
            method, self.base + path, headers=self.headers, **kwargs
        ) as response:
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.read()

    async def upload(self, content: bytes, filename: str = "photo.jpg") -> tuple[int, Any]:
        form = aiohttp.FormData()
        form.add_field("photo", content, filename=filename, content_type="image/jpeg")
        return await self.call("POST", "/api/photos", data=form)


def now_of(app: Whistle) -> int:
    return int(app.clock.now().timestamp())


async def count(app: Whistle, model: Any) -> int:
    async with app.factory() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def form(photos: list[str], **fields: Any) -> dict[str, Any]:
    return {
        "submission": str(uuid.uuid4()),
        "kind": "report",
        "description": "楼道里有人飞线充电，晚上很危险",
        "category": "flying_wire",
        "photos": photos,
        "latitude": 39.9087,
        "longitude": 116.3975,
        "address": "康乐小区5号楼",
        "anonymous": False,
        "share_contact": False,
        "contact": "",
        **fields,
    }


async def test_a_photo_report_filed_in_one_form_reaches_the_department(
    world: Whistle, api_server: BotAPIServer, http: aiohttp.ClientSession
) -> None:
    app = MiniApp(world, http, launch_data(auth_date=now_of(world)))
    status, offered = await app.call("GET", "/api/form")
    assert status == 200
    assert offered["lang"] == "zh-Hans" and offered["draft"] is None
    assert {"code": "flying_wire", "name": "飞线充电", "kind": "report"} in offered["categories"]
    assert [kind["name"] for kind in offered["kinds"]] == ["随手拍", "我有话说"]

    uploaded = []
    for content in (jpeg_with_location(), photo_bytes("PNG"), photo_bytes("WEBP")):
        status, body = await app.upload(content)
        assert status == 201, body
        uploaded.append(body["id"])
    # What the bot keeps is a fresh JPEG: no camera, no place.
    status, kept = await app.call("GET", f"/api/photos/{uploaded[0]}")
    assert status == 200
    with Image.open(io.BytesIO(kept)) as image:
        assert image.format == "JPEG" and not image.getexif()

    # The draft survives closing the app.
    # Anonymous, but the department may call back: the card shows the number, not the name.
    filled = form(uploaded, anonymous=True, share_contact=True, contact="13800000000")
    assert (await app.call("PUT", "/api/draft", json=filled))[0] == 200
    reopened = MiniApp(world, http, launch_data(auth_date=now_of(world)))
    assert (await reopened.call("GET", "/api/form"))[1]["draft"] == filled

    status, filed = await reopened.call("POST", "/api/submit", json=filled)
    assert status == 201, filed
    number = filed["number"]
    world.sender.wake()
    # The department's card, with the three photos the bot uploaded to Telegram.
    await api_server.wait_for(
        lambda s: any(number in (m.text or "") for m in s.messages(CGZF)), 30, description="card"
    )
    [card] = [m for m in api_server.messages(CGZF) if number in (m.text or "")]
    assert "飞线充电" in (card.text or "")
    assert "13800000000" in (card.text or "") and "王晓霞" not in (card.text or "")
    photos = [m for m in api_server.messages(CGZF) if m.photo]
    assert len(photos) == 3
    assert all(api_server.file(m.photo[-1]) is not None for m in photos)
    # The chat gets one receipt with the number.
    [receipt] = await api_server.wait_for_message(RESIDENT)
    assert number in receipt.text
    await settled(world)
    async with world.factory() as session:
        case = await session.scalar(select(Case).where(Case.number == number))  # type: ignore[arg-type]
        assert case is not None and case.status is CaseStatus.DISPATCHED
        # Telegram has the photos now: the case names them by their file ids.
        assert case.photos == [m.photo[-1] for m in photos]
        assert await session.get(WebAppDraft, RESIDENT) is None


async def test_launch_data_missing_forged_altered_or_stale_is_refused(
    world: Whistle, http: aiohttp.ClientSession
) -> None:
    now = now_of(world)
    signed = launch_data(auth_date=now)
    altered = signed.replace(f"%22id%22%3A{RESIDENT}", f"%22id%22%3A{RESIDENT + 1}")
    assert altered != signed
    refused = {
        "missing": "",
        "forged": launch_data(auth_date=now, token="123456:another-bot-token"),
        "altered": altered,
        "stale": launch_data(auth_date=now - MAX_AGE_MINUTES * 60 - 5),
    }
    for name, data in refused.items():
        app = MiniApp(world, http, data)
        for method, path, kwargs in (
            ("GET", "/api/form", {}),
            ("PUT", "/api/draft", {"json": form([])}),
            ("POST", "/api/submit", {"json": form([], kind="say")}),
        ):
            status, body = await app.call(method, path, **kwargs)
            assert status == 401, (name, path)
            assert "重新打开" in body["error"], (name, body)
        status, _ = await app.upload(photo_bytes())
        assert status == 401, name
    assert (await count(world, WebAppDraft), await count(world, PhotoUpload)) == (0, 0)
    assert await count(world, Case) == 0

    # The same launch data, still fresh, works; once older than the window it no longer does.
    app = MiniApp(world, http, signed)
    assert (await app.call("GET", "/api/form"))[0] == 200
    assert isinstance(world.clock, ManualClock)
    world.clock.advance(timedelta(minutes=MAX_AGE_MINUTES + 1))
    assert (await app.call("GET", "/api/form"))[0] == 401


async def test_oversized_and_non_image_uploads_are_refused_with_a_reason(
    world: Whistle, http: aiohttp.ClientSession
) -> None:
    app = MiniApp(world, http, launch_data(auth_date=now_of(world)))
    too_big = photo_bytes() + b"\0" * (10 * 2**20)
    status, body = await app.upload(too_big)
    assert status == 413 and "最多 10 MB" in body["error"]
    for content, filename in (
        (b"%PDF-1.7 not a photo", "scan.jpg"),
        (photo_bytes("GIF"), "moving.gif"),
        (photo_bytes()[:40], "cut-off.jpg"),
    ):
        status, body = await app.upload(content, filename)
        assert status == 415, filename
        assert "JPEG、PNG 或 WebP" in body["error"]
    assert await count(world, PhotoUpload) == 0


async def test_a_form_sent_twice_files_one_case(
    world: Whistle, api_server: BotAPIServer, http: aiohttp.ClientSession
) -> None:
    app = MiniApp(world, http, launch_data(auth_date=now_of(world)))
    status, body = await app.upload(photo_bytes())
    assert status == 201
    filled = form([body["id"]])
    # A double tap: the second request leaves before the first is answered.
    first, second = await asyncio.gather(
        app.call("POST", "/api/submit", json=filled), app.call("POST", "/api/submit", json=filled)
    )
    assert sorted([first[0], second[0]]) == [200, 201]
    assert first[1]["number"] == second[1]["number"]
    # A retry after a lost answer, later, finds the same case too.
    status, again = await app.call("POST", "/api/submit", json=filled)
    assert (status, again["number"]) == (200, first[1]["number"])
    assert await count(world, Case) == 1
    world.sender.wake()
    await settled(world)
    receipts = [m for m in api_server.messages(RESIDENT) if first[1]["number"] in (m.text or "")]
    assert len(receipts) == 1


async def test_a_form_without_what_it_needs_changes_nothing(
    world: Whistle, http: aiohttp.ClientSession
) -> None:
    app = MiniApp(world, http, launch_data(auth_date=now_of(world)))
    status, body = await app.upload(photo_bytes())
    key = body["id"]
    cases = {
        "no photo": (form([]), "至少一张照片"),
        "no place": (form([key], latitude=None, longitude=None, address=""), "地图"),
        "someone else's photo": (form(["0" * 32]), "不在草稿里"),
        "a point off the globe": (form([key], latitude=123.0), "表单内容有误"),
        "a category of another kind": (form([key], category="suggestion"), "类别"),
    }
    for name, (filled, said) in cases.items():
        status, body = await app.call("POST", "/api/submit", json=filled)
        assert status == 400, name
        assert said in body["error"], (name, body)
    assert await count(world, Case) == 0


async def test_the_menu_opens_the_form_in_the_residents_language(
    api_server: BotAPIServer, make_app: AppFactory
) -> None:
    api_server.create_group(CENTER, "综治中心", members=[])
    address = "https://whistle.example.org/app/"
    await start_with_residents(
        api_server, make_app, {RESIDENT: "王晓霞"}, center=CENTER, env={"WEBAPP_URL": address}
    )
    greeting = [m for m in api_server.messages(RESIDENT) if m.buttons()][-1]
    [opens] = [b for b in greeting.buttons() if "web_app" in b]
    assert opens == {"text": "📝 一张表填报", "web_app": {"url": address + "?lang=zh-Hans"}}
    await api_server.wait_for(
        lambda s: s.menu_button(RESIDENT)["type"] == "web_app", 30, description="menu button"
    )
    assert api_server.menu_button(RESIDENT) == {
        "type": "web_app",
        "text": "📝 一张表填报",
        "web_app": {"url": address + "?lang=zh-Hans"},
    }


async def test_without_a_mini_app_address_the_menu_stays_as_it_was(
    api_server: BotAPIServer, make_app: AppFactory
) -> None:
    api_server.create_group(CENTER, "综治中心", members=[])
    await start_with_residents(api_server, make_app, {RESIDENT: "王晓霞"}, center=CENTER)
    greeting = [m for m in api_server.messages(RESIDENT) if m.buttons()][-1]
    assert not any("web_app" in b for b in greeting.buttons())
    assert "📷 随手拍" in greeting.button_texts()
    assert api_server.calls("setChatMenuButton") == []


async def fill_and_submit(root: Any, photo: Path, description: str) -> str:
    """Fill the Mini App's form as a resident would (a photo from the gallery, the text, a
    category chip, a tap on the district's outline), review it and submit; returns the case
    number the app shows. ``root`` is the page or the frame the app is in."""
    from playwright.async_api import expect

    await root.locator("#kind-report").click()
    await root.locator("#photo-input-gallery").set_input_files(str(photo))
    await root.locator(".thumb").first.wait_for()
    await root.locator("#description").fill(description)
    await root.locator(".category-chip[data-code='road_damage']").click()
    await root.locator("#map svg").click(position={"x": 120, "y": 90})
    await root.locator("#marker").wait_for(state="visible")
    await root.locator("#to-review").click()
    await expect(root.locator("#review")).to_contain_text(description)
    await root.locator("#submit").click()
    await root.locator("#done").wait_for(state="visible")
    number = str(await root.locator("#case-number").inner_text()).strip()
    assert re.fullmatch(r"HB-\d{6}", number), number
    return number


async def test_the_form_in_a_browser_files_a_report(
    world: Whistle, api_server: BotAPIServer
) -> None:
    """The page as Telegram's client opens it (the launch data in the address's fragment),
    filled in headless Chromium; the card reaches the department's group."""
    need_browser()

    ARTIFACTS.mkdir(exist_ok=True)
    photo = ARTIFACTS / "mini-app-form.png"
    photo.write_bytes(png(120, 90, (90, 160, 60)))
    signed = quote(launch_data(auth_date=now_of(world)), safe="")
    address = f"http://127.0.0.1:{world.web_port}/app/?lang=zh-Hans#tgWebAppData={signed}"
    async with browser_page(390, 844) as page:
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(address)
        number = await fill_and_submit(page, photo, "路口的井盖松了，车一过就响")
        await page.screenshot(path=str(ARTIFACTS / "mini-app-done.png"))
        assert errors == []
    world.sender.wake()
    await api_server.wait_for(
        lambda s: any(number in (m.caption or m.text or "") for m in s.messages(CGZF)),
        30,
        description="the card",
    )
    [card] = [m for m in api_server.messages(CGZF) if number in (m.caption or m.text or "")]
    assert "路口的井盖松了" in (card.caption or card.text or "") and card.photo


async def test_drafts_and_unfiled_photos_are_pruned_after_thirty_days(
    world: Whistle, http: aiohttp.ClientSession
) -> None:
    app = MiniApp(world, http, launch_data(auth_date=now_of(world)))
    assert (await app.upload(photo_bytes()))[0] == 201
    assert (await app.call("PUT", "/api/draft", json=form([])))[0] == 200
    for days, left in ((29, (1, 1)), (31, (0, 0))):
        async with transaction(world.factory) as session:
            later = world.clock.now() + timedelta(days=days)
            await privacy.apply_retention(session, world.district, now=later)
        assert (await count(world, WebAppDraft), await count(world, PhotoUpload)) == left, days


async def test_a_threat_in_the_form_alerts_the_center_as_in_the_chat(
    world: Whistle, api_server: BotAPIServer, http: aiohttp.ClientSession
) -> None:
    app = MiniApp(world, http, launch_data(auth_date=now_of(world)))
    status, body = await app.upload(photo_bytes())
    description = "楼道堆满杂物，说了两句，对门扬言要砍死他"
    status, filed = await app.call(
        "POST", "/api/submit", json=form([body["id"]], description=description)
    )
    assert status == 201
    world.sender.wake()
    await api_server.wait_for(
        lambda s: any("矛盾纠纷预警" in (m.text or "") for m in s.messages(CENTER)),
        30,
        description="the alert",
    )
    [alert] = [m for m in api_server.messages(CENTER) if "矛盾纠纷预警" in (m.text or "")]
    assert filed["number"] in alert.text and "类别：暴力威胁" in alert.text
    assert "王晓霞" not in alert.text


async def test_the_dashboard_shows_a_photo_telegram_does_not_have_yet(
    world: Whistle, http: aiohttp.ClientSession
) -> None:
    """Until the card has gone out (Telegram down, say), a photo filed in the form is served
    from what the bot kept, not reported gone."""
    app = MiniApp(world, http, launch_data(auth_date=now_of(world)))
    status, body = await app.upload(photo_bytes())
    assert status == 201
    status, kept = await app.call("GET", f"/api/photos/{body['id']}")
    dashboard = world._build_dashboard()
    assert await dashboard._photo_bytes(f"upload:{body['id']}") == kept
    with pytest.raises(FileNotFoundError):
        await dashboard._photo_bytes("upload:" + "0" * 32)
