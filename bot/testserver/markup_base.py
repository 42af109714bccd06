"""Byte-level helpers shared by the markup parsers (ported from tdlib's C++ loops).

Owns the NUL-terminated view of the input (tdlib reads one byte past the end and sees 0)
and the output buffer that counts UTF-16 units while bytes are appended.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .entities import EntityParseError

SPACE = frozenset(b" \t\r\n\0\v")


def is_alpha(c: int) -> bool:
    return ord("a") <= (c | 0x20) <= ord("z")


def is_digit(c: int) -> bool:
    return ord("0") <= c <= ord("9")


def is_hex(c: int) -> bool:
    return is_digit(c) or ord("a") <= (c | 0x20) <= ord("f")


class ByteText:
    """NUL-terminated byte view, so look-ahead past the end reads 0 like tdlib's C strings."""

    def __init__(self, text: str) -> None:
        self.data = text.encode("utf-8")
        self.size = len(self.data)

    def __getitem__(self, i: int) -> int:
        return self.data[i] if i < self.size else 0


@dataclass
class ByteOut:
    buf: bytearray = field(default_factory=bytearray)
    utf16: int = 0

    def push_byte(self, c: int) -> None:
        # Count a UTF-16 unit per UTF-8 lead byte, two for 4-byte sequences (surrogate pairs).
        if (c & 0xC0) != 0x80:
            self.utf16 += 2 if c >= 0xF0 else 1
        self.buf.append(c)

    def push_code(self, code: int) -> None:
        self.utf16 += 2 if code > 0xFFFF else 1
        self.buf += chr(code).encode("utf-8", "surrogatepass")

    def text(self) -> str:
        try:
            return self.buf.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EntityParseError(
                "Text contains invalid Unicode characters after decoding HTML entities, "
                "check for unmatched surrogate code units"
            ) from exc
