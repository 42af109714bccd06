"""Decoding Bot API request parameters from any of the encodings Telegram accepts.

Owns ``Params``: query-string arguments merged with an ``application/json``,
``application/x-www-form-urlencoded`` or ``multipart/form-data`` body (aiogram uses the
latter, with complex values as JSON strings and files as extra parts referenced by
``attach://name``), plus tdlib-compatible conversions of those raw values.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_request import FileField

from .errors import ApiError, bad_request


@dataclass
class UploadedFile:
    """A file part of a multipart request."""

    field: str
    filename: str
    content_type: str
    data: bytes


class Params:
    """Request arguments with the value conversions tdlib applies to them."""

    def __init__(
        self, values: dict[str, Any] | None = None, files: dict[str, UploadedFile] | None = None
    ) -> None:
        self.values: dict[str, Any] = dict(values or {})
        self.files: dict[str, UploadedFile] = dict(files or {})

    @classmethod
    async def from_request(cls, request: web.Request) -> Params:
        values: dict[str, Any] = dict(request.query)
        files: dict[str, UploadedFile] = {}
        if request.method == "POST" and request.can_read_body:
            content_type = request.content_type
            if content_type == "application/json":
                try:
                    body = await request.json()
                except ValueError as exc:
                    raise bad_request("can't parse JSON encoded request") from exc
                if not isinstance(body, dict):
                    raise bad_request("can't parse JSON encoded request")
                values.update(body)
            elif content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
                form = await request.post()
                for key, item in form.items():
                    if isinstance(item, FileField):
                        files[key] = UploadedFile(
                            key,
                            item.filename or key,
                            item.content_type or "application/octet-stream",
                            item.file.read(),
                        )
                    else:
                        values[key] = item
        return cls(values, files)

    def has(self, name: str) -> bool:
        return self.string(name) != ""

    def raw(self, name: str) -> Any:
        return self.values.get(name)

    def string(self, name: str) -> str:
        """The argument as tdlib sees it: a string, empty when missing."""
        value = self.values.get(name)
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str):
            return value
        if isinstance(value, int | float):
            return str(value)
        return json.dumps(value, ensure_ascii=False)

    def optional_string(self, name: str) -> str | None:
        value = self.string(name)
        return value if value else None

    def integer(
        self, name: str, default: int = 0, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        text = self.string(name).strip()
        if not text:
            return default
        # td::to_integer reads an optional sign and leading digits and ignores the rest.
        match = re.match(r"[+-]?\d+", text)
        value = int(match.group(0)) if match else 0
        if minimum is not None:
            value = max(minimum, value)
        if maximum is not None:
            value = min(maximum, value)
        return value

    def number(self, name: str) -> float:
        try:
            return float(self.string(name).strip() or 0.0)
        except ValueError:
            return 0.0

    def boolean(self, name: str) -> bool:
        return self.string(name).strip().lower() in ("true", "yes", "1")

    def json(self, name: str, error: str) -> Any:
        """A JSON-typed argument; ``error`` is Telegram's 'Can't parse ...' text for it."""
        value = self.values.get(name)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except ValueError as exc:
            raise ApiError(400, f"Bad Request: {error}") from exc

    def file(self, name: str) -> UploadedFile | None:
        return self.files.get(name)

    def loggable(self) -> dict[str, Any]:
        """Arguments for the request log, with uploads summarised instead of embedded."""
        out: dict[str, Any] = {}
        for key, value in self.values.items():
            out[key] = value
        for key, upload in self.files.items():
            out[key] = {
                "upload": upload.filename,
                "content_type": upload.content_type,
                "size": len(upload.data),
            }
        return out
