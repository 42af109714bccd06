"""Finding many keywords in one pass over a text: an Aho–Corasick automaton.

Texts and keywords are normalised the same way before matching (NFKC, so full-width letters
and digits typed on a Chinese keyboard become ASCII; case folded; curly apostrophes
straightened; runs of white space made one space), so Latin text matches case-insensitively
and Chinese needs no word segmentation. A keyword that begins or ends with a letter or digit
of an alphabetic script matches only at a word boundary there (``kill`` is not found in
``skills``); a trailing ``*`` lifts the end boundary (``threaten*`` finds ``threatened``).

Nothing here knows about categories or weights: a pattern carries an opaque payload.
"""

from __future__ import annotations

import re
import unicodedata
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Match", "Matcher", "Pattern", "is_word_char", "normalize"]

T = TypeVar("T")

PREFIX_MARK = "*"
_SPACES = re.compile(r"\s+")
_STRAIGHTEN = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})


def normalize(text: str) -> str:
    """The form both texts and keywords are matched in."""
    folded = unicodedata.normalize("NFKC", text).casefold().translate(_STRAIGHTEN)
    return _SPACES.sub(" ", folded)


def is_word_char(char: str) -> bool:
    """A letter or digit of a script that separates words with spaces (not CJK)."""
    return char.isalnum() and unicodedata.east_asian_width(char) not in ("W", "F")


@dataclass(frozen=True, slots=True)
class Pattern(Generic[T]):
    """One keyword as written (``*`` at the end for a prefix) and what it stands for."""

    text: str
    payload: T

    @property
    def is_prefix(self) -> bool:
        return self.text.endswith(PREFIX_MARK)

    @property
    def key(self) -> str:
        """The normalised text the automaton looks for."""
        return normalize(self.text.removesuffix(PREFIX_MARK).strip())


@dataclass(frozen=True, slots=True)
class Match(Generic[T]):
    """A pattern found at ``text[start:end]`` of the *normalised* text."""

    start: int
    end: int
    pattern: Pattern[T]


@dataclass(frozen=True, slots=True)
class _Output(Generic[T]):
    length: int
    pattern: Pattern[T]
    start_bound: bool
    end_bound: bool


class Matcher(Generic[T]):
    """All occurrences of all patterns, overlapping ones included, in time linear in the
    text's length plus the number of occurrences."""

    def __init__(self, patterns: Iterable[Pattern[T]]) -> None:
        self._goto: list[dict[str, int]] = [{}]
        outputs: list[list[_Output[T]]] = [[]]
        self.size = 0
        for pattern in patterns:
            key = pattern.key
            if not key:
                raise ValueError(f"pattern {pattern.text!r} is empty once normalised")
            node = 0
            for char in key:
                following = self._goto[node].get(char)
                if following is None:
                    following = len(self._goto)
                    self._goto[node][char] = following
                    self._goto.append({})
                    outputs.append([])
                node = following
            outputs[node].append(
                _Output(
                    length=len(key),
                    pattern=pattern,
                    start_bound=is_word_char(key[0]),
                    end_bound=is_word_char(key[-1]) and not pattern.is_prefix,
                )
            )
            self.size += 1
        self._fail = [0] * len(self._goto)
        # Breadth first, so a node's failure target is complete before the node is used; each
        # node's outputs then include those of its failure chain (shorter suffixes).
        queue = deque(self._goto[0].values())
        while queue:
            node = queue.popleft()
            for char, child in self._goto[node].items():
                queue.append(child)
                fallback = self._fail[node]
                while fallback and char not in self._goto[fallback]:
                    fallback = self._fail[fallback]
                target = self._goto[fallback].get(char, 0)
                self._fail[child] = target if target != child else 0
                outputs[child].extend(outputs[self._fail[child]])
        self._outputs: list[tuple[_Output[T], ...]] = [tuple(found) for found in outputs]

    def __len__(self) -> int:
        return self.size

    def find_all(self, text: str) -> tuple[str, list[Match[T]]]:
        """The normalised text and every match in it, in order of their end."""
        normal = normalize(text)
        goto, fail, outputs = self._goto, self._fail, self._outputs
        found: list[Match[T]] = []
        node = 0
        for index, char in enumerate(normal):
            while node and char not in goto[node]:
                node = fail[node]
            node = goto[node].get(char, 0)
            if outputs[node]:
                end = index + 1
                for output in outputs[node]:
                    start = end - output.length
                    if output.start_bound and start > 0 and is_word_char(normal[start - 1]):
                        continue
                    if output.end_bound and end < len(normal) and is_word_char(normal[end]):
                        continue
                    found.append(Match(start, end, output.pattern))
        return normal, found
