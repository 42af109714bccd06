"""Problems in a district file, each naming its key and line, and the error that carries them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class DistrictProblem:
    """One thing wrong with a district file."""

    path: Path
    line: int | None
    key: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else f"{self.path}"
        if self.key:
            return f"{where}: {self.key}: {self.message}"
        return f"{where}: {self.message}"


class DistrictError(ValueError):
    """The district file cannot be used; ``problems`` lists everything found, in file order.

    ``path``, ``line``, ``key`` and ``message`` repeat the first problem so that the common
    single-problem case reads naturally.
    """

    def __init__(self, problems: Sequence[DistrictProblem]) -> None:
        if not problems:
            raise ValueError("DistrictError needs at least one problem")
        self.problems: list[DistrictProblem] = list(problems)
        first = self.problems[0]
        self.path: Path = first.path
        self.line: int | None = first.line
        self.key: str | None = first.key
        self.message: str = first.message
        super().__init__(str(self))

    @classmethod
    def single(
        cls, path: str | Path, message: str, *, line: int | None = None, key: str | None = None
    ) -> DistrictError:
        return cls([DistrictProblem(Path(path), line, key, message)])

    def __str__(self) -> str:
        return "\n".join(str(problem) for problem in self.problems)
