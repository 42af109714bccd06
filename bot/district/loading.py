"""Reading the district file: parse, validate, and report every problem at once."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from pydantic import (
    ValidationError,
)

from bot.district.errors import DistrictError, DistrictProblem
from bot.district.fields import DEFAULT_LANGUAGES, EXAMPLE_DISTRICT_PATH
from bot.district.locate import _KeyLines
from bot.district.messages import _format_key
from bot.district.schema import District

_TOML_POSITION_RE: Final = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_TOML_END_RE: Final = re.compile(r"\s*\(at end of document\)$")


def _syntax_problem(path: Path, text: str, exc: tomllib.TOMLDecodeError) -> DistrictProblem:
    message = str(exc)
    match = _TOML_POSITION_RE.search(message)
    if match:
        line: int | None = int(match.group(1))
        detail = f"{_TOML_POSITION_RE.sub('', message)} (column {match.group(2)})"
    elif _TOML_END_RE.search(message):
        line = max(1, len(text.splitlines()))
        detail = f"{_TOML_END_RE.sub('', message)} (at the end of the file)"
    else:
        line, detail = None, message
    return DistrictProblem(path, line, None, f"TOML syntax error: {detail}")


def parse_district(
    text: str,
    *,
    path: str | Path = "<district>",
    languages: Sequence[str] = DEFAULT_LANGUAGES,
) -> District:
    """Validate district TOML given as text; ``path`` only labels the error messages."""
    source = Path(path)
    if not languages:
        raise ValueError("at least one supported language is needed")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DistrictError([_syntax_problem(source, text, exc)]) from None
    try:
        return District.model_validate(data, context={"languages": tuple(languages)})
    except ValidationError as exc:
        try:
            locator: _KeyLines | None = _KeyLines(text)
        except (ValueError, IndexError):
            # Losing line numbers is better than hiding the real problem behind a crash.
            locator = None
        problems: list[DistrictProblem] = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            line = locator.find(loc) if locator is not None else None
            problem = DistrictProblem(source, line, _format_key(loc) or None, error["msg"])
            if problem not in problems:
                problems.append(problem)
        problems.sort(key=lambda p: (p.line is None, p.line or 0))
        raise DistrictError(problems) from None


def load_district(path: str | Path, *, languages: Sequence[str] = DEFAULT_LANGUAGES) -> District:
    """Read and validate a district file; any problem raises :class:`DistrictError`."""
    source = Path(path)
    try:
        # utf-8-sig: files saved by Windows editors often start with a byte-order mark.
        text = source.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DistrictError.single(source, "district file not found") from None
    except UnicodeDecodeError as exc:
        raise DistrictError.single(source, f"the file is not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise DistrictError.single(source, f"cannot read the file: {exc.strerror}") from None
    return parse_district(text, path=source, languages=languages)


def resolve_district_path(configured: str | Path | None) -> Path:
    """Which district file to load.

    An explicitly configured path must exist; otherwise ``config.toml`` in the working
    directory, and failing that the shipped example so a fresh checkout starts.
    """
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise DistrictError.single(path, "district file not found")
        return path
    local = Path.cwd() / "config.toml"
    if local.is_file():
        return local
    return EXAMPLE_DISTRICT_PATH
