"""Where a key is in the TOML text: a small line locator, so every problem names its line."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from typing import Final

from bot.district.fields import Loc

_BARE_KEY_CHARS: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
)


class _KeyLines:
    """Line of every table header, key and array item in TOML text that tomllib accepted.

    tomllib reports no positions, so this re-reads the text just far enough to know where each
    path starts.  It trusts the text to be valid TOML and never judges it.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0
        self._line = 1
        self.lines: dict[Loc, int] = {}
        self._array_tables: dict[Loc, int] = {}
        self._scan()

    def find(self, loc: Loc) -> int | None:
        """Line of ``loc``, else of its deepest prefix present in the file."""
        for length in range(len(loc), 0, -1):
            line = self.lines.get(loc[:length])
            if line is not None:
                return line
        return None

    # -- scanning ---------------------------------------------------------------------------

    def _peek(self, length: int = 1) -> str:
        return self._text[self._pos : self._pos + length]

    def _advance(self, count: int = 1) -> None:
        end = min(self._pos + count, len(self._text))
        self._line += self._text.count("\n", self._pos, end)
        self._pos = end

    def _skip_spaces(self) -> None:
        while self._peek() in (" ", "\t"):
            self._advance()

    def _skip_blank(self) -> None:
        """Whitespace, newlines and comments."""
        while self._pos < len(self._text):
            char = self._peek()
            if char in (" ", "\t", "\r", "\n"):
                self._advance()
            elif char == "#":
                self._skip_to_line_end()
            else:
                return

    def _skip_to_line_end(self) -> None:
        end = self._text.find("\n", self._pos)
        self._pos = len(self._text) if end < 0 else end

    def _record(self, path: Loc, line: int) -> None:
        self.lines.setdefault(path, line)

    def _scan(self) -> None:
        table: Loc = ()
        while True:
            self._skip_blank()
            if self._pos >= len(self._text):
                return
            line = self._line
            if self._peek(2) == "[[":
                self._advance(2)
                parts = self._key()
                self._advance(2)
                array = (*self._resolve(parts[:-1]), parts[-1])
                index = self._array_tables.get(array, 0)
                self._array_tables[array] = index + 1
                table = (*array, index)
                self._record_prefixes(table, line)
            elif self._peek() == "[":
                self._advance()
                table = self._resolve(self._key())
                self._advance()
                self._record_prefixes(table, line)
            else:
                self._key_value(table)
            self._skip_to_line_end()

    def _resolve(self, parts: Sequence[str]) -> Loc:
        # In a header, a name that is an array of tables means its latest element.
        path: Loc = ()
        for part in parts:
            path = (*path, part)
            count = self._array_tables.get(path)
            if count:
                path = (*path, count - 1)
        return path

    def _record_prefixes(self, path: Loc, line: int) -> None:
        for length in range(1, len(path) + 1):
            self._record(path[:length], line)

    def _key_value(self, table: Loc) -> None:
        line = self._line
        path = (*table, *self._key())
        for length in range(len(table) + 1, len(path) + 1):
            self._record(path[:length], line)
        self._skip_spaces()
        self._advance()  # '='
        self._skip_spaces()
        self._value(path)

    def _key(self) -> list[str]:
        parts: list[str] = []
        while True:
            self._skip_spaces()
            char = self._peek()
            if char == '"':
                parts.append(self._basic_string())
            elif char == "'":
                start = self._pos + 1
                end = self._text.index("'", start)
                parts.append(self._text[start:end])
                self._advance(end + 1 - self._pos)
            else:
                start = self._pos
                while self._peek() and self._peek() in _BARE_KEY_CHARS:
                    self._advance()
                parts.append(self._text[start : self._pos])
            self._skip_spaces()
            if self._peek() != ".":
                return parts
            self._advance()

    def _basic_string(self) -> str:
        start = self._pos
        self._advance()
        while self._peek() not in ('"', ""):
            self._advance(2 if self._peek() == "\\" else 1)
        self._advance()
        raw = self._text[start : self._pos]
        # Let tomllib decode the escapes so quoted keys match the parsed document exactly.
        decoded = tomllib.loads(f"k = {raw}")["k"]
        return str(decoded)

    def _value(self, path: Loc) -> None:
        if self._peek(3) in ('"""', "'''"):
            self._multiline_string(self._peek(3))
        elif self._peek() == '"':
            self._basic_string()
        elif self._peek() == "'":
            self._advance(self._text.index("'", self._pos + 1) + 1 - self._pos)
        elif self._peek() == "[":
            self._array(path)
        elif self._peek() == "{":
            self._inline_table(path)
        else:
            # Numbers, booleans and dates; a local date-time may contain a space.
            while self._pos < len(self._text) and self._peek() not in (",", "]", "}", "\n", "#"):
                self._advance()

    def _multiline_string(self, delimiter: str) -> None:
        self._advance(3)
        while self._pos < len(self._text):
            if delimiter == '"""' and self._peek() == "\\":
                self._advance(2)
            elif self._peek(3) == delimiter:
                self._advance(3)
                # Up to two quotes right before the delimiter belong to the content.
                for _ in range(2):
                    if self._peek() == delimiter[0]:
                        self._advance()
                return
            else:
                self._advance()

    def _array(self, path: Loc) -> None:
        self._advance()
        index = 0
        while True:
            self._skip_blank()
            if self._peek() in ("]", ""):
                self._advance()
                return
            start = self._pos
            self._record((*path, index), self._line)
            self._value((*path, index))
            index += 1
            self._skip_blank()
            if self._peek() == "," or self._pos == start:
                self._advance()  # also guarantees progress should the text surprise us

    def _inline_table(self, path: Loc) -> None:
        self._advance()
        while True:
            self._skip_blank()
            if self._peek() in ("}", ""):
                self._advance()
                return
            start, line = self._pos, self._line
            key_path = (*path, *self._key())
            for length in range(len(path) + 1, len(key_path) + 1):
                self._record(key_path[:length], line)
            self._skip_spaces()
            self._advance()  # '='
            self._skip_spaces()
            self._value(key_path)
            self._skip_blank()
            if self._peek() == "," or self._pos == start:
                self._advance()
