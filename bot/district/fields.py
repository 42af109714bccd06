"""The district file's field types: codes, chat and user ids, durations, times, the enums
(roles, unit kinds, card colours) and the checks each value passes on its own."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Strict,
)
from pydantic_core import PydanticCustomError

from bot.i18n import available_languages

# The languages a district file may name: those with a catalogue in locales/.
DEFAULT_LANGUAGES: Final[tuple[str, ...]] = available_languages()
EXAMPLE_DISTRICT_PATH: Final[Path] = (
    Path(__file__).resolve().parent.parent.parent / "config.example.toml"
)

# A pydantic loc, and the same path as the line locator records it.
Loc: TypeAlias = tuple[str | int, ...]

_CODE_RE: Final = re.compile(r"[a-z0-9_]{1,32}")
_CASE_PREFIX_RE: Final = re.compile(r"[A-Za-z0-9]{1,6}")
CASE_NUMBER_DIGITS: Final = 6


def _invalid(error_type: str, message: str) -> PydanticCustomError:
    # The message goes in as context so that braces in user values are never template fields.
    return PydanticCustomError(error_type, "{message}", {"message": message})


def _check_code(value: str) -> str:
    if not _CODE_RE.fullmatch(value):
        raise _invalid(
            "code_format", f"code {value!r} must be 1–32 characters of a–z, digits and _"
        )
    return value


def _check_case_prefix(value: str) -> str:
    if not _CASE_PREFIX_RE.fullmatch(value):
        raise _invalid(
            "case_prefix_format",
            f"case prefix {value!r} must be 1–6 ASCII letters or digits, like 'HB'",
        )
    return value


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise _invalid(
            "timezone_unknown",
            f"unknown time zone {value!r} (use an IANA name such as 'Asia/Shanghai')",
        ) from None
    return value


def _check_group_chat_id(value: int) -> int:
    if value == 0:
        raise _invalid("chat_id_zero", "a chat id cannot be 0")
    if value > 0:
        # Positive ids are private chats with one user; units always work in groups.
        raise _invalid(
            "chat_id_not_group",
            f"{value} is not a group chat id: group ids are negative, like -1001234567890",
        )
    return value


def _check_user_id(value: int) -> int:
    if value <= 0:
        raise _invalid(
            "telegram_id_not_positive", f"a Telegram user id is a positive integer, not {value}"
        )
    return value


def _check_not_blank(value: str) -> str:
    if not value.strip():
        raise _invalid("blank", "must not be empty")
    return value


def _check_no_duplicates(values: tuple[Any, ...]) -> tuple[Any, ...]:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise _invalid("duplicate_item", f"{str(value)!r} is listed twice")
        seen.add(value)
    return values


def _check_not_empty(values: tuple[Any, ...]) -> tuple[Any, ...]:
    if not values:
        raise _invalid("empty", "must list at least one value")
    return values


_DURATION_RE = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?")


def parse_duration(value: str) -> timedelta:
    """``"90m"``, ``"1h"``, ``"1h30m"``, ``"2d"``; a leading ``-`` means before."""
    text = value.strip().lower()
    sign = -1 if text.startswith("-") else 1
    match = _DURATION_RE.fullmatch(text.lstrip("-+"))
    if not text.lstrip("-+") or match is None or not any(match.groups()):
        raise _invalid(
            "duration_format", f"{value!r} is not a duration like '0m', '90m', '1h', '1h30m', '2d'"
        )
    days, hours, minutes = (int(g or 0) for g in match.groups())
    return sign * timedelta(days=days, hours=hours, minutes=minutes)


def _check_offset(value: str) -> str:
    if parse_duration(value) < timedelta(0):
        raise _invalid("offset_negative", f"offset {value!r} must not be negative")
    return value


# TOML already has exact types, so scalars are strict: `chat_id = true` must not become 1.
Code = Annotated[str, Strict(), AfterValidator(_check_code)]
GroupChatId = Annotated[int, Strict(), AfterValidator(_check_group_chat_id)]
UserId = Annotated[int, Strict(), AfterValidator(_check_user_id)]
Text = Annotated[str, Strict(), AfterValidator(_check_not_blank)]
StrictBool = Annotated[bool, Strict()]


class Role(StrEnum):
    ADMIN = "admin"
    CENTER_HEAD = "center_head"  # 综治中心主任: gets the "phone the chief" tasks
    LEADER = "leader"  # 分管领导: told at the red card
    SUPERVISOR = "supervisor"  # 纪委监委 "阳光+" supervision


class DepartmentKind(StrEnum):
    DEPARTMENT = "department"
    COMMUNITY = "community"
    UTILITY = "utility"
    POLICE = "police"


class CategoryKind(StrEnum):
    REPORT = "report"  # 随手拍即报
    SAY = "say"  # 我有话说
    HELP = "help"  # 邻里互助


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Audience(StrEnum):
    """Who a rung of the card ladder tells."""

    DEPARTMENT = "department"  # a reminder replying to the card in the department's group
    CENTER = "center"  # the governance center's group
    CENTER_HEAD = "center_head"  # privately, everyone with that role
    LEADER = "leader"  # privately, the leaders in charge
    SUPERVISION = "supervision"  # the supervision chat, with the case's full timeline


class Task(StrEnum):
    CALL_CHIEF = "call_chief"  # the center head phones the department's chief and records it


_DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _iso_format(
    parse: Callable[[str], object], error_type: str, like: str
) -> Callable[[str], str]:
    """A check that a value is written as ``parse`` reads it (``like``: an example, for the
    message)."""

    def check(value: str) -> str:
        try:
            parse(value)
        except ValueError:
            raise _invalid(error_type, f"{value!r} is not {like}") from None
        return value

    return check


_check_clock_time = _iso_format(time.fromisoformat, "time_format", "a time like '08:30'")
_check_iso_date = _iso_format(date.fromisoformat, "date_format", "a date like '2026-10-01'")
