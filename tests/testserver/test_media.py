"""Uploads, downloads, file ids, albums and URL photos over real multipart HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import (
    BufferedInputFile,
    InputMediaAudio,
    InputMediaDocument,
    InputMediaLivePhoto,
    InputMediaPhoto,
    InputMediaVideo,
)
from aiohttp import web

from bot.testserver import BotAPIServer

from .conftest import USER

AlbumItem = (
    InputMediaAudio | InputMediaDocument | InputMediaLivePhoto | InputMediaPhoto | InputMediaVideo
)


def png(width: int, height: int) -> bytes:
    header = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
    return header + width.to_bytes(4, "big") + height.to_bytes(4, "big") + b"\x08\x02pixels"


def jpeg(width: int, height: int) -> bytes:
    sof = b"\xff\xc0\x00\x11\x08" + height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + sof + b"\x03"


async def test_photo_upload_then_download(
    api_server: BotAPIServer, tg_bot: Bot, user: int
) -> None:
    data = png(1600, 1200)
    sent = await tg_bot.send_photo(user, BufferedInputFile(data, filename="chart.png"))
    assert sent.photo is not None and len(sent.photo) >= 2
    largest = sent.photo[-1]
    assert (largest.width, largest.height) == (1600, 1200)
    assert [(p.width, p.height) for p in sent.photo][2:4] == [(800, 600), (1280, 960)]
    assert (sent.photo[0].width, sent.photo[0].height) == (90, 68)
    assert len({size.file_id for size in sent.photo}) == len(sent.photo)
    file = await tg_bot.get_file(largest.file_id)
    assert file.file_path is not None and file.file_path.startswith("photos/")
    downloaded = await tg_bot.download(largest.file_id)
    assert downloaded is not None and downloaded.read() == data

    # Re-sending by file_id reuses the stored file.
    again = await tg_bot.send_photo(user, largest.file_id, caption="again")
    assert again.photo is not None
    assert [p.file_id for p in again.photo] == [p.file_id for p in sent.photo]
    record = api_server.last_message(user)
    assert record is not None and record.photo[-1] == largest.file_id
    with pytest.raises(TelegramBadRequest, match="wrong file identifier/HTTP URL specified"):
        await tg_bot.send_photo(user, "not-a-file-id")
    with pytest.raises(TelegramBadRequest, match="can't use file of type Photo as Document"):
        await tg_bot.send_document(user, largest.file_id)
    with pytest.raises(TelegramBadRequest, match="invalid file_id"):
        await tg_bot.get_file("nope")


async def test_user_photo_and_document_download(api_server: BotAPIServer, tg_bot: Bot) -> None:
    photo = jpeg(640, 480)
    message = api_server.send_photo(USER, photo, caption="evidence #case")
    assert message["caption_entities"][0]["type"] == "hashtag"
    assert (message["photo"][-1]["width"], message["photo"][-1]["height"]) == (640, 480)
    updates = await tg_bot.get_updates()
    received = updates[0].message
    assert received is not None and received.photo is not None
    downloaded = await tg_bot.download(received.photo[-1].file_id)
    assert downloaded is not None and downloaded.read() == photo

    doc = api_server.send_document(
        USER, b"%PDF-1.4", filename="a.pdf", mime_type="application/pdf"
    )
    file = await tg_bot.get_file(doc["document"]["file_id"])
    assert file.file_path is not None and file.file_path.endswith(".pdf")
    fetched = await tg_bot.download_file(file.file_path)
    assert fetched is not None and fetched.read() == b"%PDF-1.4"


async def test_documents_and_voice(api_server: BotAPIServer, tg_bot: Bot, user: int) -> None:
    sent = await tg_bot.send_document(
        user, BufferedInputFile(b"a,b\n1,2\n", filename="cases.csv"), caption="export"
    )
    assert sent.document is not None
    assert sent.document.file_name == "cases.csv"
    assert sent.document.mime_type == "text/csv"
    assert sent.caption == "export"
    voice = api_server.send_voice(USER, b"OggS....", duration=3)
    assert voice["voice"]["duration"] == 3
    video = api_server.send_video(USER, b"\x00\x00\x00\x18ftypmp42", caption="clip")
    assert video["video"]["mime_type"] == "video/mp4" and video["caption"] == "clip"
    file = await tg_bot.get_file(video["video"]["file_id"])
    assert file.file_path is not None
    fetched = await tg_bot.download_file(file.file_path)
    assert fetched is not None and fetched.read() == b"\x00\x00\x00\x18ftypmp42"
    sticker = api_server.send_sticker(USER, emoji="🔥")
    assert sticker["sticker"]["emoji"] == "🔥"
    location = api_server.send_location(USER, 31.23, 121.47)
    assert location["location"] == {"latitude": 31.23, "longitude": 121.47}
    shared = await tg_bot.send_location(user, 31.2, 121.4)
    assert shared.location is not None and shared.location.latitude == pytest.approx(31.2)


async def test_media_group(api_server: BotAPIServer, tg_bot: Bot, user: int) -> None:
    media: list[AlbumItem] = [
        InputMediaPhoto(media=BufferedInputFile(png(100, 100), filename="1.png"), caption="one"),
        InputMediaPhoto(media=BufferedInputFile(png(200, 100), filename="2.png")),
    ]
    sent = await tg_bot.send_media_group(user, media)
    assert len(sent) == 2
    assert sent[0].media_group_id is not None
    assert sent[0].media_group_id == sent[1].media_group_id
    assert sent[0].caption == "one" and sent[1].caption is None
    records = api_server.sent_in(user)
    assert [r.method for r in records] == ["sendMediaGroup", "sendMediaGroup"]
    with pytest.raises(TelegramBadRequest, match="too many messages to send as an album"):
        await tg_bot.send_media_group(user, [media[0]] * 11)
    with pytest.raises(TelegramBadRequest, match="2-10"):
        await tg_bot.send_media_group(user, [media[0]])
    document = InputMediaDocument(media=BufferedInputFile(b"d", filename="d.txt"))
    mixed: list[AlbumItem] = [document, media[1]]
    with pytest.raises(TelegramBadRequest, match="document can't be mixed"):
        await tg_bot.send_media_group(user, mixed)

    album = api_server.send_media_group(USER, [png(10, 10), png(20, 20)], caption="album")
    assert album[0]["media_group_id"] == album[1]["media_group_id"]
    assert album[0]["caption"] == "album"


@pytest.fixture
async def image_host() -> AsyncIterator[str]:
    async def image(request: web.Request) -> web.Response:
        return web.Response(body=png(300, 200), content_type="image/png")

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<html></html>", content_type="text/html")

    app = web.Application()
    app.add_routes([web.get("/img.png", image), web.get("/page", page)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_photo_by_url(tg_bot: Bot, user: int, image_host: str) -> None:
    sent = await tg_bot.send_photo(user, f"{image_host}/img.png")
    assert sent.photo is not None and sent.photo[-1].width == 300
    with pytest.raises(TelegramBadRequest, match="wrong type of the web page content"):
        await tg_bot.send_photo(user, f"{image_host}/page")
    with pytest.raises(TelegramBadRequest, match="failed to get HTTP URL content"):
        await tg_bot.send_photo(user, f"{image_host}/missing.png")
    with pytest.raises(TelegramBadRequest, match="wrong file identifier/HTTP URL specified"):
        await tg_bot.send_photo(user, "https://example.com/cat.jpg")
