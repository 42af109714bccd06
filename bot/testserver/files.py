"""Stored files: ids, paths, image sizes and the Bot API objects describing them.

Owns every file that exists in the simulated world, whether a user sent it or the bot uploaded
it.  Each file gets an opaque unique ``file_id``/``file_unique_id`` and a ``file_path`` under
which ``/file/bot<token>/<file_path>`` serves its bytes.  A photo is stored as a set of
``PhotoSize`` entries (Telegram always produces several sizes); all sizes serve the uploaded
bytes because no image processing happens here.
"""

from __future__ import annotations

import mimetypes
import secrets
import struct
from dataclasses import dataclass
from typing import Any

# Telegram's file_id prefixes differ per type; mimicking them keeps ids recognisable in logs.
_ID_PREFIX = {
    "photo": "AgACAgIAAxkBAA",
    "document": "BQACAgIAAxkBAA",
    "voice": "AwACAgIAAxkBAA",
    "audio": "CQACAgIAAxkBAA",
    "video": "BAACAgIAAxkBAA",
    "animation": "CgACAgIAAxkBAA",
    "sticker": "CAACAgIAAxkBAA",
    "video_note": "DQACAgIAAxkBAA",
}
_DIRECTORY = {
    "photo": "photos",
    "document": "documents",
    "voice": "voice",
    "audio": "music",
    "video": "videos",
    "animation": "animations",
    "sticker": "stickers",
    "video_note": "video_notes",
}
# tdlib's names for file types, used in "can't use file of type X as Y".
TYPE_NAMES = {
    "photo": "Photo",
    "document": "Document",
    "voice": "VoiceNote",
    "audio": "Audio",
    "video": "Video",
    "animation": "Animation",
    "sticker": "Sticker",
    "video_note": "VideoNote",
}
# tdlib lets these be re-sent as one another (they are all "document-like" files).
_DOCUMENT_LIKE = {"document", "audio", "video", "animation", "voice", "video_note"}
_PHOTO_BOXES = (90, 320, 800, 1280, 2560)
DEFAULT_PHOTO_SIZE = (800, 600)
MAX_DOWNLOAD_SIZE = 20 * 1024 * 1024


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    kind: str
    data: bytes
    file_path: str
    file_name: str | None = None
    mime_type: str | None = None
    width: int = 0
    height: int = 0
    photo_set: str | None = None

    @property
    def file_size(self) -> int:
        return len(self.data)

    def ids(self) -> dict[str, Any]:
        """What every Bot API object of a file carries: its ids and its size."""
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.file_size,
        }

    def photo_size(self) -> dict[str, Any]:
        return {**self.ids(), "width": self.width, "height": self.height}

    def api_file(self) -> dict[str, Any]:
        """The Bot API ``File`` object returned by getFile."""
        out = self.ids()
        if self.file_size <= MAX_DOWNLOAD_SIZE:
            out["file_path"] = self.file_path
        return out


def compatible(stored_kind: str, wanted_kind: str) -> bool:
    if stored_kind == wanted_kind:
        return True
    return stored_kind in _DOCUMENT_LIKE and wanted_kind in _DOCUMENT_LIKE


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from PNG, GIF, JPEG or WebP headers; ``None`` if unrecognised."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width), int(height)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            pos += 1
            continue
        marker = data[pos + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        # SOF0..SOF15 carry the frame size, except DHT (C4), JPG (C8) and DAC (CC).
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if pos + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return int(width), int(height)
        pos += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return int(width & 0x3FFF), int(height & 0x3FFF)
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    return None


def _scaled(width: int, height: int, box: int) -> tuple[int, int]:
    scale = box / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


class FileStore:
    """All files of the world, addressable by file_id and by file_path."""

    def __init__(self) -> None:
        self._by_id: dict[str, StoredFile] = {}
        self._by_path: dict[str, StoredFile] = {}
        self._photo_sets: dict[str, list[StoredFile]] = {}
        self._counter = 0

    def clear(self) -> None:
        self._by_id.clear()
        self._by_path.clear()
        self._photo_sets.clear()
        self._counter = 0

    def get(self, file_id: str) -> StoredFile | None:
        return self._by_id.get(file_id)

    def by_path(self, path: str) -> StoredFile | None:
        return self._by_path.get(path)

    def add(
        self,
        kind: str,
        data: bytes,
        *,
        file_name: str | None = None,
        mime_type: str | None = None,
        width: int = 0,
        height: int = 0,
        photo_set: str | None = None,
    ) -> StoredFile:
        number = self._counter
        self._counter += 1
        extension = _extension(kind, file_name, mime_type)
        stored = StoredFile(
            file_id=f"{_ID_PREFIX[kind]}{number:X}{secrets.token_urlsafe(30)}",
            file_unique_id=f"AQAD{number:X}{secrets.token_urlsafe(8)}",
            kind=kind,
            data=data,
            file_path=f"{_DIRECTORY[kind]}/file_{number}{extension}",
            file_name=file_name,
            mime_type=mime_type,
            width=width,
            height=height,
            photo_set=photo_set,
        )
        self._by_id[stored.file_id] = stored
        self._by_path[stored.file_path] = stored
        return stored

    def add_photo(self, data: bytes) -> list[StoredFile]:
        """Store an image as the set of sizes Telegram would produce for it."""
        width, height = image_size(data) or DEFAULT_PHOTO_SIZE
        width, height = max(1, width), max(1, height)
        biggest = max(width, height)
        dimensions = [_scaled(width, height, box) for box in _PHOTO_BOXES if box < biggest]
        if biggest > _PHOTO_BOXES[-1]:
            dimensions.append(_scaled(width, height, _PHOTO_BOXES[-1]))
        else:
            dimensions.append((width, height))
        if len(dimensions) < 2:
            # Even tiny images get a thumbnail entry, so there are always at least two sizes.
            dimensions.insert(0, (width, height))
        set_id = secrets.token_hex(8)
        sizes = [
            self.add("photo", data, mime_type="image/jpeg", width=w, height=h, photo_set=set_id)
            for w, h in dimensions
        ]
        self._photo_sets[set_id] = sizes
        return sizes

    def photo_set_of(self, stored: StoredFile) -> list[StoredFile]:
        if stored.photo_set is None:
            return [stored]
        return list(self._photo_sets.get(stored.photo_set, [stored]))


def _extension(kind: str, file_name: str | None, mime_type: str | None) -> str:
    if file_name and "." in file_name:
        return "." + file_name.rsplit(".", 1)[1].lower()
    defaults = {
        "photo": ".jpg",
        "voice": ".oga",
        "sticker": ".webp",
        "video": ".mp4",
        "animation": ".mp4",
        "video_note": ".mp4",
        "audio": ".mp3",
    }
    if kind in defaults:
        return defaults[kind]
    guessed = mimetypes.guess_extension(mime_type) if mime_type else None
    return guessed or ""


def guess_mime(file_name: str | None, fallback: str = "application/octet-stream") -> str:
    if not file_name:
        return fallback
    guessed, _ = mimetypes.guess_type(file_name)
    return guessed or fallback
