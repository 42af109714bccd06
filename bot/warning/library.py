"""The dispute keyword library (矛盾纠纷关键词库, seed 003): loading, validation and scoring.

The library is a TOML file under version control (``bot/warning/keywords.toml``, or the file
named by ``WHISTLE_KEYWORDS``). Each category has names in every UI language, a risk level
(1 low, 2 medium, 3 high), a threshold and weighted words per language. A text *hits* a
category when the weights of the distinct words it contains add up to the threshold; a word
found only inside a longer word of the same category counts once, as the longer one
(``要跳楼`` does not also add ``跳楼``).

Every problem in the file is reported with the file, line and the entry's full key, e.g.
``keywords.toml:57: categories.violence.words.zh-Hans."砍死他": weight must be …``, so that
whoever edits the file can fix it; a file with problems is never half-used.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeAlias

from bot.warning.matcher import PREFIX_MARK, Matcher, Pattern, normalize

DEFAULT_KEYWORDS_PATH: Final = Path(__file__).resolve().parent / "keywords.toml"
LANGUAGES: Final[tuple[str, ...]] = ("zh-Hans", "en")
LEVELS: Final = (1, 2, 3)
MAX_WEIGHT: Final = 10
MAX_THRESHOLD: Final = 100
MAX_WORD: Final = 50
CATEGORY_KEYS: Final = ("names", "level", "threshold", "words")

_CODE_RE: Final = re.compile(r"[a-z0-9_]{1,32}")
_BARE_KEY_RE: Final = re.compile(r"[A-Za-z0-9_-]+")

Loc: TypeAlias = tuple[str, ...]


# -- errors -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LibraryProblem:
    path: str
    line: int | None
    key: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class LibraryError(ValueError):
    """The library cannot be used; ``problems`` lists everything found, in file order."""

    def __init__(self, problems: Sequence[LibraryProblem]) -> None:
        if not problems:
            raise ValueError("LibraryError needs at least one problem")
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


# -- the library ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Keyword:
    category: str
    word: str  # as written in the file; a trailing * makes it a prefix
    language: str
    weight: int


@dataclass(frozen=True)
class RiskCategory:
    code: str
    names: Mapping[str, str]
    level: int
    threshold: int
    keywords: tuple[Keyword, ...]

    def name(self, language: str) -> str:
        return self.names.get(language) or next(iter(self.names.values()))


@dataclass(frozen=True, slots=True)
class Hit:
    """A keyword found at ``start:end`` of the normalised text."""

    keyword: Keyword
    start: int
    end: int


@dataclass(frozen=True)
class CategoryScore:
    category: RiskCategory
    score: int
    keywords: tuple[Keyword, ...]  # the distinct words that counted, in order of appearance

    @property
    def is_hit(self) -> bool:
        return self.score >= self.category.threshold


@dataclass(frozen=True)
class Assessment:
    """What a text contains: every keyword occurrence and the score of each category found,
    strongest first (hits before near misses, then by risk level and score)."""

    hits: tuple[Hit, ...]
    scores: tuple[CategoryScore, ...]

    @property
    def flagged(self) -> tuple[CategoryScore, ...]:
        return tuple(score for score in self.scores if score.is_hit)

    @property
    def top(self) -> CategoryScore | None:
        """The category a case is flagged with, or None when no category reaches its
        threshold."""
        return self.scores[0] if self.scores and self.scores[0].is_hit else None


class KeywordLibrary:
    """The validated library with its automaton, built once; immutable."""

    def __init__(self, categories: Iterable[RiskCategory], *, source: str = "<keywords>") -> None:
        self.categories: tuple[RiskCategory, ...] = tuple(categories)
        self.source = source
        self._by_code = {category.code: category for category in self.categories}
        self._matcher: Matcher[Keyword] = Matcher(
            Pattern(keyword.word, keyword)
            for category in self.categories
            for keyword in category.keywords
        )

    def __len__(self) -> int:
        """How many weighted words the library holds."""
        return len(self._matcher)

    def category(self, code: str) -> RiskCategory | None:
        return self._by_code.get(code)

    def assess(self, text: str) -> Assessment:
        _normal, matches = self._matcher.find_all(text)
        hits = tuple(Hit(m.pattern.payload, m.start, m.end) for m in matches)
        found: dict[str, list[Hit]] = {}
        for hit in hits:
            found.setdefault(hit.keyword.category, []).append(hit)
        scores = [self._score(self._by_code[code], group) for code, group in found.items()]
        # sort() is stable, also reversed: ties keep the order of first appearance.
        scores.sort(key=lambda s: (s.is_hit, s.category.level, s.score), reverse=True)
        return Assessment(hits=hits, scores=tuple(scores))

    @staticmethod
    def _score(category: RiskCategory, hits: list[Hit]) -> CategoryScore:
        counted: dict[str, Keyword] = {}
        for hit in hits:
            inside_longer = any(
                other.start <= hit.start
                and hit.end <= other.end
                and other.end - other.start > hit.end - hit.start
                for other in hits
            )
            if not inside_longer:
                counted.setdefault(hit.keyword.word, hit.keyword)
        keywords = tuple(counted.values())
        return CategoryScore(category, sum(k.weight for k in keywords), keywords)


class EarlyWarning:
    """The library in use and the file it is (re)loaded from; held by the application and
    handed to handlers as workflow data, so a reload is seen by the next update."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.library = load_library(path)

    def reload(self) -> KeywordLibrary:
        """Load the file again; on any problem the library in use stays and the error is
        raised."""
        self.library = load_library(self.path)
        return self.library


def resolve_keywords_path(setting: str | None) -> Path:
    return Path(setting) if setting else DEFAULT_KEYWORDS_PATH


# -- loading ----------------------------------------------------------------------------------


def load_library(path: Path, *, languages: Sequence[str] = LANGUAGES) -> KeywordLibrary:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise LibraryError(
            [LibraryProblem(str(path), None, None, f"cannot read: {reason}")]
        ) from error
    return parse_library(text, path=str(path), languages=languages)


_TOML_POSITION_RE: Final = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def parse_library(
    text: str, *, path: str = "<keywords>", languages: Sequence[str] = LANGUAGES
) -> KeywordLibrary:
    """Validate library TOML given as text; ``path`` only labels the error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        match = _TOML_POSITION_RE.search(message)
        line = int(match.group(1)) if match else None
        detail = _TOML_POSITION_RE.sub("", message)
        raise LibraryError(
            [LibraryProblem(path, line, None, f"TOML syntax error: {detail}")]
        ) from error
    checker = _Checker(path, _key_lines(text), tuple(languages))
    categories = checker.library(data)
    if checker.problems:
        checker.problems.sort(key=lambda p: p.line if p.line is not None else 0)
        raise LibraryError(checker.problems)
    return KeywordLibrary(categories, source=path)


class _Checker:
    """Walks the parsed document, collecting every problem instead of stopping at the
    first."""

    def __init__(self, path: str, lines: dict[Loc, int], languages: tuple[str, ...]) -> None:
        self.path = path
        self.lines = lines
        self.languages = languages
        self.problems: list[LibraryProblem] = []

    def problem(self, loc: Loc, message: str) -> None:
        line = next(
            (self.lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in self.lines),
            None,
        )
        self.problems.append(LibraryProblem(self.path, line, _format_key(loc), message))

    def library(self, data: Mapping[str, Any]) -> list[RiskCategory]:
        for key in data:
            if key != "categories":
                self.problem((key,), "unknown key (the file holds only [categories.<code>])")
        table = data.get("categories")
        if not isinstance(table, Mapping) or not table:
            self.problem(("categories",), "no categories: add at least one [categories.<code>]")
            return []
        categories = []
        for code, value in table.items():
            category = self.category(("categories", code), code, value)
            if category is not None:
                categories.append(category)
        return categories

    def category(self, loc: Loc, code: str, value: object) -> RiskCategory | None:
        if not _CODE_RE.fullmatch(code):
            self.problem(loc, "a category code is 1–32 lowercase letters, digits or _")
        if not isinstance(value, Mapping):
            self.problem(loc, "must be a table with names, level, threshold and words")
            return None
        before = len(self.problems)
        for key in value:
            if key not in CATEGORY_KEYS:
                self.problem((*loc, key), f"unknown key (expected {', '.join(CATEGORY_KEYS)})")
        for key in CATEGORY_KEYS:
            if key not in value:
                self.problem(loc, f"{key} is missing")
        names = self.names((*loc, "names"), value.get("names"))
        level = self.integer((*loc, "level"), value.get("level"), LEVELS[0], LEVELS[-1])
        threshold = self.integer((*loc, "threshold"), value.get("threshold"), 1, MAX_THRESHOLD)
        keywords = self.words((*loc, "words"), code, value.get("words"))
        if len(self.problems) > before:
            return None
        assert level is not None and threshold is not None
        return RiskCategory(code, names, level, threshold, keywords)

    def names(self, loc: Loc, value: object) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.problem(loc, 'must be a table such as { "zh-Hans" = "…", en = "…" }')
            return {}
        for language in value:
            if language not in self.languages:
                self.problem((*loc, language), f"unknown language ({', '.join(self.languages)})")
        names: dict[str, str] = {}
        for language in self.languages:
            name = value.get(language)
            if not isinstance(name, str) or not name.strip():
                self.problem((*loc, language), "a name in this language is required")
            else:
                names[language] = name.strip()
        return names

    def integer(self, loc: Loc, value: object, low: int, high: int) -> int | None:
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            self.problem(loc, f"must be a whole number from {low} to {high}, got {value!r}")
            return None
        return value

    def words(self, loc: Loc, code: str, value: object) -> tuple[Keyword, ...]:
        if value is None:
            return ()
        if not isinstance(value, Mapping) or not value:
            self.problem(loc, 'must be tables of words per language: "word" = weight')
            return ()
        keywords: list[Keyword] = []
        seen: dict[str, Loc] = {}
        for language, words in value.items():
            language_loc = (*loc, language)
            if language not in self.languages:
                self.problem(language_loc, f"unknown language ({', '.join(self.languages)})")
                continue
            if not isinstance(words, Mapping):
                self.problem(language_loc, 'must be a table of lines such as "word" = 3')
                continue
            if not words:
                self.problem(language_loc, 'no words: add lines such as "word" = 3')
                continue
            for word, weight in words.items():
                keyword = self.word((*language_loc, word), code, language, word, weight, seen)
                if keyword is not None:
                    keywords.append(keyword)
        return tuple(keywords)

    def word(
        self,
        loc: Loc,
        code: str,
        language: str,
        word: str,
        weight: object,
        seen: dict[str, Loc],
    ) -> Keyword | None:
        body = word.removesuffix(PREFIX_MARK)
        key = normalize(body.strip())
        if not key:
            self.problem(loc, "empty word")
            return None
        if body != body.strip():
            self.problem(loc, "a word must not start or end with spaces")
            return None
        if PREFIX_MARK in body:
            self.problem(loc, f"{PREFIX_MARK} may only end a word (it makes the word a prefix)")
            return None
        if len(key) > MAX_WORD:
            self.problem(loc, f"a word has at most {MAX_WORD} characters")
            return None
        checked = self.integer(loc, weight, 1, MAX_WEIGHT)
        if checked is None:
            return None
        identity = f"{key}{PREFIX_MARK if word.endswith(PREFIX_MARK) else ''}"
        if identity in seen:
            self.problem(loc, f"the same word as {_format_key(seen[identity])}")
            return None
        seen[identity] = loc
        return Keyword(code, word, language, checked)


def _format_key(loc: Iterable[str]) -> str:
    return ".".join(part if _BARE_KEY_RE.fullmatch(part) else f'"{part}"' for part in loc)


# -- where keys are -------------------------------------------------------------------------

_PART = r"""(?:"(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)"""
_KEY_PATH = rf"{_PART}(?:\s*\.\s*{_PART})*"
_HEADER_RE: Final = re.compile(rf"^\s*\[\s*({_KEY_PATH})\s*\]\s*(?:#.*)?$")
_KEY_VALUE_RE: Final = re.compile(rf"^\s*({_KEY_PATH})\s*=")
_PART_RE: Final = re.compile(_PART)


def _key_parts(raw: str) -> Iterator[str]:
    for part in _PART_RE.findall(raw):
        if part.startswith('"'):
            yield str(tomllib.loads(f"k = {part}")["k"])
        elif part.startswith("'"):
            yield part[1:-1]
        else:
            yield part


def _key_lines(text: str) -> dict[Loc, int]:
    """The line of each table header and ``key = value`` line (tomllib gives no positions).

    Reads line by line, which suits this file's shape (headers and one entry per line); a key
    it cannot place is reported at its nearest enclosing table.
    """
    lines: dict[Loc, int] = {}
    table: Loc = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER_RE.match(line)
        if header:
            table = tuple(_key_parts(header.group(1)))
            path = table
        else:
            key_value = _KEY_VALUE_RE.match(line)
            if key_value is None:
                continue
            path = (*table, *_key_parts(key_value.group(1)))
        for length in range(1, len(path) + 1):
            lines.setdefault(path[:length], number)
    return lines
