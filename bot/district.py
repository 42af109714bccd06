"""The district file: who and what one Whistle deployment serves.

This module owns the district description that an administrator writes in TOML (see
``config.example.toml``): the district itself, its governance center (综治中心), the supervision
chat (纪委监委 "阳光+"), street offices (镇/街道), departments and communities, case categories and
the people who hold roles.  It loads the file, validates it into frozen pydantic models and turns
every problem into a :class:`DistrictError` that names the offending key *and* its line, because
the person fixing the file is a district administrator, not a Python programmer.

The read API (``District.department()``, ``District.unit_by_chat()`` …) is what the rest of the bot
uses; nothing else should walk the raw TOML.
"""

from __future__ import annotations

import difflib
import hmac
import re
import tomllib
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final, Self, TypeAlias, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from bot.i18n import available_languages

__all__ = [
    "DEFAULT_LANGUAGES",
    "EXAMPLE_DISTRICT_PATH",
    "Bundling",
    "Category",
    "CategoryKind",
    "Department",
    "DepartmentKind",
    "District",
    "DistrictError",
    "DistrictInfo",
    "DistrictProblem",
    "GovernanceCenter",
    "Integration",
    "Merchant",
    "Names",
    "Offer",
    "Person",
    "Points",
    "Reports",
    "Role",
    "StreetOffice",
    "Supervision",
    "Unit",
    "Volunteers",
    "load_district",
    "parse_district",
    "resolve_district_path",
]

# The languages a district file may name: those with a catalogue in locales/.
DEFAULT_LANGUAGES: Final[tuple[str, ...]] = available_languages()
EXAMPLE_DISTRICT_PATH: Final[Path] = Path(__file__).resolve().parent.parent / "config.example.toml"

# A pydantic loc, and the same path as the line locator records it.
Loc: TypeAlias = tuple[str | int, ...]

_CODE_RE: Final = re.compile(r"[a-z0-9_]{1,32}")
_CASE_PREFIX_RE: Final = re.compile(r"[A-Za-z0-9]{1,6}")
CASE_NUMBER_DIGITS: Final = 6


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Field types
# --------------------------------------------------------------------------------------------


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


_R = TypeVar("_R", bound="LadderStep")


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


def _check_positive(value: str) -> str:
    if parse_duration(value) <= timedelta(0):
        raise _invalid("duration_positive", f"{value!r} must be longer than zero")
    return value


def _check_rungs_ordered(rungs: tuple[_R, ...]) -> tuple[_R, ...]:
    for index in range(1, len(rungs)):
        if rungs[index].offset <= rungs[index - 1].offset:
            raise _invalid(
                "ladder_order",
                f"rung {index} ({rungs[index].when}) must come later than rung "
                f"{index - 1} ({rungs[index - 1].when}): list rungs in time order",
            )
    return rungs


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


class CardColour(StrEnum):
    NONE = "none"
    YELLOW = "yellow"
    RED = "red"


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


def _check_clock_time(value: str) -> str:
    try:
        time.fromisoformat(value)
    except ValueError:
        raise _invalid("time_format", f"{value!r} is not a time like '08:30'") from None
    return value


def _check_iso_date(value: str) -> str:
    try:
        date.fromisoformat(value)
    except ValueError:
        raise _invalid("date_format", f"{value!r} is not a date like '2026-10-01'") from None
    return value


class WorkingHours(_Frozen):
    """Office hours for the ladder's clocks: off by default, as in the seed (the clock runs
    around the clock). When on, only working time counts towards a rung."""

    enabled: StrictBool = False
    days: Annotated[tuple[Annotated[str, Strict()], ...], AfterValidator(_check_no_duplicates)] = (
        "mon",
        "tue",
        "wed",
        "thu",
        "fri",
    )
    start: Annotated[str, Strict(), AfterValidator(_check_clock_time)] = "08:30"
    end: Annotated[str, Strict(), AfterValidator(_check_clock_time)] = "17:30"
    holidays: tuple[Annotated[str, Strict(), AfterValidator(_check_iso_date)], ...] = ()
    # Weekend days worked in exchange for a holiday (调休).
    extra_workdays: tuple[Annotated[str, Strict(), AfterValidator(_check_iso_date)], ...] = ()

    @model_validator(mode="after")
    def _check(self) -> Self:
        unknown = [day for day in self.days if day not in _DAYS]
        if unknown:
            raise _invalid("day_unknown", f"unknown day {unknown[0]!r}: use {', '.join(_DAYS)}")
        if time.fromisoformat(self.end) <= time.fromisoformat(self.start):
            raise _invalid("hours_order", f"end {self.end!r} must be after start {self.start!r}")
        return self

    def is_workday(self, day: date) -> bool:
        iso = day.isoformat()
        if iso in self.extra_workdays:
            return True
        return iso not in self.holidays and _DAYS[day.weekday()] in self.days

    def add(self, start: datetime, offset: timedelta, tz: ZoneInfo) -> datetime:
        """``start`` plus ``offset`` of working time (plain time when off)."""
        if not self.enabled or offset <= timedelta(0):
            return start + offset
        opens, closes = time.fromisoformat(self.start), time.fromisoformat(self.end)
        moment = start.astimezone(tz)
        remaining = offset
        for _ in range(3660):  # ten years of days: a calendar with no workday is refused
            day = moment.date()
            if self.is_workday(day):
                day_open = datetime.combine(day, opens, tz)
                day_close = datetime.combine(day, closes, tz)
                moment = max(moment, day_open)
                if moment < day_close:
                    available = day_close - moment
                    if remaining <= available:
                        return (moment + remaining).astimezone(start.tzinfo)
                    remaining -= available
            moment = datetime.combine(day + timedelta(days=1), opens, tz)
        raise ValueError("the working-hours calendar has no working time")


class Bundling(_Frozen):
    """打包: when a new photo report is offered an open case of the same category to follow
    instead — filed within ``window_days`` and within ``distance_m`` metres of it (or at the
    same address, when the reports have no coordinates)."""

    distance_m: Annotated[int, Strict(), Field(ge=1, le=10_000)] = 250
    window_days: Annotated[int, Strict(), Field(ge=1, le=365)] = 30


class Intake(_Frozen):
    """How many cases (reports, posts and help requests together) one resident may file an
    hour; more are refused with a clear message."""

    per_hour: Annotated[int, Strict(), Field(ge=1, le=1000)] = 10


class Privacy(_Frozen):
    """Resident data of cases closed more than ``retention_days`` ago is removed (name,
    contact, door, description, photos, exact place); the case stays in the statistics.
    Absent: kept."""

    retention_days: Annotated[int, Strict(), Field(ge=1, le=36500)] | None = None


ClockTime = Annotated[str, Strict(), AfterValidator(_check_clock_time)]


class Reports(_Frozen):
    """Scheduled reports (日通报、周分析、月调度), at local times of the district: daily with
    yesterday's figures and today's overdue cases, weekly on Mondays (last week, a chart and
    the departments' league table), monthly on the 1st (last month, with cards and reopens).
    A time left out (or set to "") turns that report off. They go to the governance center's
    group, to the leaders in private (``leaders``) and to any further group in ``chats``."""

    daily: ClockTime | None = "08:00"
    weekly: ClockTime | None = "08:30"
    monthly: ClockTime | None = "09:00"
    leaders: StrictBool = True
    chats: Annotated[tuple[GroupChatId, ...], AfterValidator(_check_no_duplicates)] = ()

    @model_validator(mode="before")
    @classmethod
    def _blank_is_off(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: (None if v == "" else v) for k, v in data.items()}
        return data


class LadderStep(_Frozen):
    """What a rung does: the card it shows, who it tells, the task it sets."""

    card: CardColour = CardColour.NONE
    notify: Annotated[tuple[Audience, ...], AfterValidator(_check_no_duplicates)] = (
        Audience.DEPARTMENT,
    )
    task: Task | None = None

    @property
    def offset(self) -> timedelta:
        raise NotImplementedError

    @property
    def when(self) -> str:
        raise NotImplementedError


class Rung(LadderStep):
    """One step of the card ladder (亮牌), counted from the whistle."""

    after: Annotated[str, Strict(), AfterValidator(_check_offset)]

    @property
    def offset(self) -> timedelta:
        return parse_duration(self.after)

    @property
    def when(self) -> str:
        return f"after = {self.after!r}"


class DeadlineRung(LadderStep):
    """A step of the deadline ladder, counted from an agreed completion deadline: negative
    offsets come before it (a reminder), positive ones after (overdue cards)."""

    at: Annotated[str, Strict(), AfterValidator(_check_duration)]

    @property
    def offset(self) -> timedelta:
        return parse_duration(self.at)

    @property
    def when(self) -> str:
        return f"at = {self.at!r}"


# The seed's rule (seed 001): a reminder at the whistle; at 1 h a second reminder, a yellow
# card and the center head phones the chief; at 4 h a third reminder, a red card and the leader
# in charge is told; at 15 h the case goes to the supervision platform.
DEFAULT_LADDER: Final = (
    Rung(after="0m"),
    Rung(after="1h", card=CardColour.YELLOW, notify=(Audience.DEPARTMENT, Audience.CENTER_HEAD),
         task=Task.CALL_CHIEF),
    Rung(after="4h", card=CardColour.RED, notify=(Audience.DEPARTMENT, Audience.LEADER)),
    Rung(after="15h", card=CardColour.RED, notify=(Audience.SUPERVISION, Audience.CENTER)),
)  # fmt: skip

# For acknowledged cases with an agreed deadline: a reminder the day before, an overdue notice
# at the deadline, then a yellow and a red card.
DEFAULT_DEADLINE_LADDER: Final = (
    DeadlineRung(at="-1d"),
    DeadlineRung(at="0m", notify=(Audience.DEPARTMENT, Audience.CENTER)),
    DeadlineRung(at="1d", card=CardColour.YELLOW,
                 notify=(Audience.DEPARTMENT, Audience.CENTER_HEAD), task=Task.CALL_CHIEF),
    DeadlineRung(at="3d", card=CardColour.RED, notify=(Audience.DEPARTMENT, Audience.LEADER)),
)  # fmt: skip


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


class Names(_Frozen):
    """A unit's name in each configured language.

    In the file this is a plain table (``names = { "zh-Hans" = "…", en = "…" }``); the district
    default language is bound in while the whole district is validated, so ``get`` can fall back.
    """

    default_language: str
    texts: dict[str, Text]

    def get(self, language: str | None = None) -> str:
        if language is not None and language in self.texts:
            return self.texts[language]
        return self.texts[self.default_language]

    @property
    def default(self) -> str:
        return self.texts[self.default_language]

    def __str__(self) -> str:
        return self.default

    def __hash__(self) -> int:
        # Frozen models hash their fields; a dict field would make every unit unhashable.
        return hash((self.default_language, tuple(sorted(self.texts.items()))))

    @model_serializer
    def _as_in_file(self) -> dict[str, str]:
        # Dump the way the file writes names, so a dumped district validates again.
        return dict(self.texts)


Latitude = Annotated[float, Strict(), Field(ge=-90, le=90)]
Longitude = Annotated[float, Strict(), Field(ge=-180, le=180)]
Corner = tuple[Latitude, Longitude]


def _check_outline(corners: tuple[Corner, ...]) -> tuple[Corner, ...]:
    if len(corners) < 3:
        raise _invalid(
            "outline_too_short",
            f"an outline needs at least 3 [latitude, longitude] corners, not {len(corners)}",
        )
    return corners


class DistrictInfo(_Frozen):
    names: Names
    case_prefix: Annotated[str, Strict(), AfterValidator(_check_case_prefix)]
    default_language: Annotated[str, Strict()]
    timezone: Annotated[str, Strict(), AfterValidator(_check_timezone)]
    # Hours a resident has to rate an answer before the case closes as unrated.
    rating_hours: Annotated[int, Strict(), Field(ge=1, le=24 * 30)] = 72
    # The district's boundary as [latitude, longitude] corners, for the dashboard's map of
    # open cases (drawn offline); without it the map fits the cases themselves.
    outline: Annotated[tuple[Corner, ...], AfterValidator(_check_outline)] | None = None

    @property
    def tzinfo(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class GovernanceCenter(_Frozen):
    """综治中心: receives every escalation, dispatches and supervises."""

    names: Names
    chat_id: GroupChatId | None = None


class Supervision(_Frozen):
    """纪委监委 "阳光+" platform: where a case lands after 15 h without acknowledgement."""

    names: Names
    chat_id: GroupChatId | None = None


class Volunteers(_Frozen):
    chat_id: GroupChatId | None = None
    # What volunteers can offer, chosen at /volunteer (plain names, shown as they are).
    skills: tuple[str, ...] = ()
    # An unclaimed help request is announced again (a reply to its card) after
    # ``reannounce_after``; when still unclaimed ``office_after`` later, the community office
    # is told. After Done, a requester who does not answer within ``confirm_after`` is taken
    # to have been helped (marked as such).
    reannounce_after: Annotated[str, Strict(), AfterValidator(_check_positive)] = "30m"
    office_after: Annotated[str, Strict(), AfterValidator(_check_positive)] = "30m"
    confirm_after: Annotated[str, Strict(), AfterValidator(_check_positive)] = "48h"

    @property
    def reannounce_delay(self) -> timedelta:
        return parse_duration(self.reannounce_after)

    @property
    def office_delay(self) -> timedelta:
        return parse_duration(self.office_after)

    @property
    def confirm_delay(self) -> timedelta:
        return parse_duration(self.confirm_after)


class Points(_Frozen):
    """积分: what a confirmed help request earns its volunteer, the caps that keep points
    honest, and how long a redemption code stays valid."""

    # Points for one help request confirmed as helped; ``by_skill`` overrides it when the
    # request asks for a skill (the highest of the skills asked for).
    per_request: Annotated[int, Strict(), Field(ge=0, le=10_000)] = 10
    by_skill: dict[str, Annotated[int, Strict(), Field(ge=0, le=10_000)]] = Field(
        default_factory=dict
    )
    # At most this many points a volunteer earns in one local day, and from one requester in
    # any seven days.
    daily_cap: Annotated[int, Strict(), Field(ge=1, le=100_000)] = 50
    pair_weekly_cap: Annotated[int, Strict(), Field(ge=1, le=100_000)] = 30
    code_valid_days: Annotated[int, Strict(), Field(ge=1, le=365)] = 7

    def __hash__(self) -> int:
        return hash((self.per_request, tuple(sorted(self.by_skill.items())), self.daily_cap))

    def for_skills(self, skills: Iterable[str]) -> int:
        """Points a request asking for ``skills`` is worth."""
        priced = [self.by_skill[skill] for skill in skills if skill in self.by_skill]
        return max(priced) if priced else self.per_request


class Offer(_Frozen):
    """One merchant's offer for points. ``stock`` absent means unlimited; ``valid_until`` is
    the last day it can be redeemed (in the district's time zone)."""

    code: Code
    names: Names
    price: Annotated[int, Strict(), Field(ge=1, le=1_000_000)]
    description: Names | None = None
    stock: Annotated[int, Strict(), Field(ge=0, le=1_000_000)] | None = None
    valid_until: date | None = None


class Merchant(_Frozen):
    """A partner merchant (爱心商家): its staff check redemption codes with /redeem."""

    code: Code
    names: Names
    telegram_ids: Annotated[
        tuple[UserId, ...], AfterValidator(_check_not_empty), AfterValidator(_check_no_duplicates)
    ]
    offers: tuple[Offer, ...] = ()

    def offer(self, code: str) -> Offer | None:
        return next((offer for offer in self.offers if offer.code == code), None)


_MIN_API_KEY: Final = 16


def _check_api_key(value: str) -> str:
    # The key itself is never repeated in a message: error output ends up in logs.
    if len(value) < _MIN_API_KEY or any(char.isspace() for char in value):
        raise _invalid(
            "api_key_format",
            f"an api_key needs at least {_MIN_API_KEY} characters and no spaces "
            "(e.g. from `openssl rand -hex 24`)",
        )
    return value


class Integration(_Frozen):
    """A system that files and follows cases through the Open311 API (the 12345 hotline …),
    with the key it sends as ``api_key``. Its cases show its name instead of a resident's."""

    code: Code
    names: Names
    api_key: Annotated[str, Strict(), AfterValidator(_check_api_key)] = Field(repr=False)


class StreetOffice(_Frozen):
    """镇(街道): triages and whistles."""

    code: Code
    names: Names
    chat_id: GroupChatId | None = None


class Department(_Frozen):
    """部门/单位, including communities (社区), utilities and police stations."""

    code: Code
    names: Names
    chat_id: GroupChatId | None = None
    kind: DepartmentKind = DepartmentKind.DEPARTMENT
    street_office: Code | None = None
    volunteer_chat_id: GroupChatId | None = None
    # Words in a case that suggest this department should assist (triage proposes it).
    keywords: tuple[Text, ...] = ()


class Category(_Frozen):
    code: Code
    names: Names
    kind: CategoryKind
    department: Code | None = None
    triage: StrictBool = False
    # Which street office triages it (三审); the governance center when left out.
    triage_by: Code | None = None


class Person(_Frozen):
    """Someone with a role in the district, or staff of departments (``departments`` alone:
    they may sign in to the dashboard for those departments' cases)."""

    telegram_id: UserId
    name: Text
    # Validated before the roles, which may be left empty by department staff.
    departments: Annotated[tuple[Code, ...], AfterValidator(_check_no_duplicates)] = ()
    roles: Annotated[tuple[Role, ...], AfterValidator(_check_no_duplicates)] = Field(
        default=(), validate_default=True
    )

    @field_validator("roles")
    @classmethod
    def _roles_or_departments(
        cls, roles: tuple[Role, ...], info: ValidationInfo
    ) -> tuple[Role, ...]:
        if not roles and not info.data.get("departments"):
            raise _invalid(
                "empty",
                "must list at least one role, or the person's departments (department staff)",
            )
        return roles

    def has_role(self, role: Role | str) -> bool:
        return role in self.roles


Unit: TypeAlias = Department | StreetOffice | GovernanceCenter


class District(_Frozen):
    """A validated district file; build it with :func:`load_district` or :func:`parse_district`."""

    district: DistrictInfo
    governance_center: GovernanceCenter
    supervision: Supervision | None = None
    volunteers: Volunteers = Field(default_factory=Volunteers)
    street_offices: tuple[StreetOffice, ...] = ()
    departments: tuple[Department, ...] = ()
    categories: tuple[Category, ...] = ()
    people: tuple[Person, ...] = ()
    ladder: Annotated[
        tuple[Rung, ...], AfterValidator(_check_not_empty), AfterValidator(_check_rungs_ordered)
    ] = DEFAULT_LADDER
    deadline_ladder: Annotated[tuple[DeadlineRung, ...], AfterValidator(_check_rungs_ordered)] = (
        DEFAULT_DEADLINE_LADDER
    )
    working_hours: WorkingHours = Field(default_factory=WorkingHours)
    bundling: Bundling = Field(default_factory=Bundling)
    intake: Intake = Field(default_factory=Intake)
    privacy: Privacy = Field(default_factory=Privacy)
    reports: Reports = Field(default_factory=Reports)
    points: Points = Field(default_factory=Points)
    merchants: tuple[Merchant, ...] = ()
    integrations: tuple[Integration, ...] = ()

    _languages: tuple[str, ...] = PrivateAttr(default=DEFAULT_LANGUAGES)
    _street_offices: dict[str, StreetOffice] = PrivateAttr(default_factory=dict)
    _departments: dict[str, Department] = PrivateAttr(default_factory=dict)
    _categories: dict[str, Category] = PrivateAttr(default_factory=dict)
    _people: dict[int, Person] = PrivateAttr(default_factory=dict)
    _units_by_chat: dict[int, Unit] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _validate_document(
        cls, data: Any, handler: ModelWrapValidatorHandler[Self], info: ValidationInfo
    ) -> Self:
        # Checks that span the whole document (unique codes, references, languages) run on the
        # raw data even when field validation fails, so one run reports every problem.
        if not isinstance(data, Mapping):
            return handler(data)
        languages = _languages_from(info.context)
        default_language = _raw_default_language(data, languages)
        errors: list[InitErrorDetails] = []
        district: Self | None = None
        try:
            district = handler(_bind_names(data, default_language))
        except ValidationError as exc:
            errors.extend(_reraisable(exc))
        for loc, error_type, message in _document_problems(data, languages):
            errors.append(
                InitErrorDetails(
                    type=_invalid(error_type, message),
                    loc=loc,
                    input=None,
                )
            )
        if errors or district is None:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return district

    def model_post_init(self, context: Any) -> None:
        self._languages = _languages_from(context)
        self._street_offices = {office.code: office for office in self.street_offices}
        self._departments = {department.code: department for department in self.departments}
        self._categories = {category.code: category for category in self.categories}
        self._people = {person.telegram_id: person for person in self.people}
        units: dict[int, Unit] = {}
        if self.governance_center.chat_id is not None:
            units[self.governance_center.chat_id] = self.governance_center
        for office in self.street_offices:
            if office.chat_id is not None:
                units[office.chat_id] = office
        for department in self.departments:
            if department.chat_id is not None:
                units[department.chat_id] = department
        self._units_by_chat = units

    # -- district-wide facts ------------------------------------------------------------------

    @property
    def names(self) -> Names:
        return self.district.names

    @property
    def case_prefix(self) -> str:
        return self.district.case_prefix

    @property
    def default_language(self) -> str:
        return self.district.default_language

    @property
    def tzinfo(self) -> ZoneInfo:
        return self.district.tzinfo

    @property
    def languages(self) -> tuple[str, ...]:
        """The languages the file was validated against (``load_district(languages=...)``)."""
        return self._languages

    def case_number(self, sequence: int) -> str:
        """``HB-000123``: the prefix and the zero-padded sequence number."""
        if sequence < 0:
            raise ValueError(f"case sequence must not be negative, got {sequence}")
        return f"{self.case_prefix}-{sequence:0{CASE_NUMBER_DIGITS}d}"

    # -- lookups (None when absent: codes stored in old cases may outlive the file) ------------

    def department(self, code: str) -> Department | None:
        return self._departments.get(code)

    def category(self, code: str) -> Category | None:
        return self._categories.get(code)

    def categories_of_kind(self, kind: CategoryKind | str) -> tuple[Category, ...]:
        return tuple(category for category in self.categories if category.kind == kind)

    def street_office(self, code: str) -> StreetOffice | None:
        return self._street_offices.get(code)

    def departments_in(self, street_office: str) -> tuple[Department, ...]:
        """Departments (mostly communities) that belong to the given street office."""
        return tuple(d for d in self.departments if d.street_office == street_office)

    def person(self, telegram_id: int) -> Person | None:
        return self._people.get(telegram_id)

    def people_with_role(self, role: Role | str) -> tuple[Person, ...]:
        return tuple(person for person in self.people if role in person.roles)

    def people_of_department(self, code: str) -> tuple[Person, ...]:
        return tuple(person for person in self.people if code in person.departments)

    def merchant(self, code: str) -> Merchant | None:
        return next((merchant for merchant in self.merchants if merchant.code == code), None)

    def integration(self, code: str) -> Integration | None:
        return next((item for item in self.integrations if item.code == code), None)

    def integration_by_key(self, api_key: str) -> Integration | None:
        """The integration whose key this is; every key is compared in constant time."""
        found = None
        for item in self.integrations:
            if hmac.compare_digest(item.api_key.encode(), api_key.encode()):
                found = item
        return found

    def merchants_of(self, telegram_id: int) -> tuple[Merchant, ...]:
        """The merchants whose staff include this person (who may check their codes)."""
        return tuple(m for m in self.merchants if telegram_id in m.telegram_ids)

    def unit_by_chat(self, chat_id: int) -> Unit | None:
        """The department, street office or governance center working in this group chat."""
        return self._units_by_chat.get(chat_id)

    def communities(self) -> tuple[Department, ...]:
        return tuple(d for d in self.departments if d.kind == DepartmentKind.COMMUNITY)

    def volunteer_chat_ids(self) -> frozenset[int]:
        """Every volunteer group: the district's and the communities' own."""
        chats = {d.volunteer_chat_id for d in self.departments} | {self.volunteers.chat_id}
        return frozenset(chat for chat in chats if chat is not None)

    def volunteer_chat_for(self, department: str | None = None) -> int | None:
        """The volunteer group for help requests: the community's own, else the district's."""
        unit = self.department(department) if department is not None else None
        if unit is not None and unit.volunteer_chat_id is not None:
            return unit.volunteer_chat_id
        return self.volunteers.chat_id

    def configured_chat_ids(self) -> tuple[int, ...]:
        """Every group chat the file names, e.g. to check the bot's rights at start-up."""
        candidates: list[int | None] = [
            self.governance_center.chat_id,
            self.supervision.chat_id if self.supervision is not None else None,
            self.volunteers.chat_id,
        ]
        candidates += [office.chat_id for office in self.street_offices]
        for department in self.departments:
            candidates += [department.chat_id, department.volunteer_chat_id]
        candidates += list(self.reports.chats)
        return tuple(chat_id for chat_id in candidates if chat_id is not None)


# --------------------------------------------------------------------------------------------
# Whole-document checks on the raw TOML data
# --------------------------------------------------------------------------------------------

_NAMED_TABLES: Final = ("district", "governance_center", "supervision")
_NAMED_ARRAYS: Final = ("street_offices", "departments", "categories", "integrations")


def _languages_from(context: Any) -> tuple[str, ...]:
    if isinstance(context, Mapping):
        languages = context.get("languages")
        if languages:
            return tuple(languages)
    return DEFAULT_LANGUAGES


def _raw_default_language(data: Mapping[str, Any], languages: tuple[str, ...]) -> str | None:
    table = data.get("district")
    value = table.get("default_language") if isinstance(table, Mapping) else None
    return value if isinstance(value, str) and value in languages else None


def _items(data: Mapping[str, Any], section: str) -> Iterator[tuple[int, Mapping[str, Any]]]:
    value = data.get(section)
    if isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, Mapping):
                yield index, item


def _names_locations(data: Mapping[str, Any]) -> Iterator[tuple[Loc, Any]]:
    for section in _NAMED_TABLES:
        table = data.get(section)
        if isinstance(table, Mapping) and "names" in table:
            yield (section, "names"), table["names"]
    for section in _NAMED_ARRAYS:
        for index, item in _items(data, section):
            if "names" in item:
                yield (section, index, "names"), item["names"]
    for index, merchant in _items(data, "merchants"):
        if "names" in merchant:
            yield ("merchants", index, "names"), merchant["names"]
        for position, offer in _items(merchant, "offers"):
            for key in ("names", "description"):
                if key in offer:
                    yield ("merchants", index, "offers", position, key), offer[key]


def _bind_names(data: Mapping[str, Any], default_language: str | None) -> dict[str, Any]:
    """Copy of ``data`` with every names table turned into ``Names`` input."""
    bound = dict(data)
    language = default_language or ""

    def bind(table: Mapping[str, Any], key: str = "names") -> Mapping[str, Any]:
        names = table.get(key)
        if not isinstance(names, Mapping):
            return table
        return {**table, key: {"default_language": language, "texts": dict(names)}}

    def bind_merchant(merchant: Mapping[str, Any]) -> Mapping[str, Any]:
        offers = merchant.get("offers")
        if isinstance(offers, list):
            offers = [
                bind(bind(offer), "description") if isinstance(offer, Mapping) else offer
                for offer in offers
            ]
            merchant = {**merchant, "offers": offers}
        return bind(merchant)

    for section in _NAMED_TABLES:
        if isinstance(bound.get(section), Mapping):
            bound[section] = bind(bound[section])
    for section in _NAMED_ARRAYS:
        if isinstance(bound.get(section), list):
            bound[section] = [
                bind(item) if isinstance(item, Mapping) else item for item in bound[section]
            ]
    if isinstance(bound.get("merchants"), list):
        bound["merchants"] = [
            bind_merchant(item) if isinstance(item, Mapping) else item
            for item in bound["merchants"]
        ]
    return bound


def _reraisable(exc: ValidationError) -> Iterator[InitErrorDetails]:
    for error in exc.errors():
        loc = _unbind_names_loc(error["loc"])
        message = _friendly_message(error["type"], loc, error["msg"], error.get("input"))
        yield InitErrorDetails(
            type=_invalid(error["type"], message),
            loc=loc,
            input=error.get("input"),
        )


def _unbind_names_loc(loc: Loc) -> Loc:
    # ('departments', 2, 'names', 'texts', 'en') is 'en' inside `names` in the file.
    parts = list(loc)
    for index in range(len(parts) - 1):
        if parts[index] == "names" and parts[index + 1] == "texts":
            del parts[index + 1]
            break
    return tuple(parts)


def _document_problems(
    data: Mapping[str, Any], languages: tuple[str, ...]
) -> list[tuple[Loc, str, str]]:
    problems: list[tuple[Loc, str, str]] = []

    def report(loc: Loc, error_type: str, message: str) -> None:
        problems.append((loc, error_type, message))

    _check_languages(data, languages, report)
    _check_codes(data, report)
    _check_required_sections(data, report)
    _check_references(data, report)
    _check_chat_ids(data, report)
    _check_points(data, report)
    _check_merchants(data, report)
    _check_integrations(data, report)
    return problems


_Report: TypeAlias = Callable[[Loc, str, str], None]


def _check_languages(data: Mapping[str, Any], languages: tuple[str, ...], report: _Report) -> None:
    supported = ", ".join(languages)
    table = data.get("district")
    raw_default = table.get("default_language") if isinstance(table, Mapping) else None
    if isinstance(raw_default, str) and raw_default not in languages:
        report(
            ("district", "default_language"),
            "language_unsupported",
            f"unsupported language {raw_default!r} (supported: {supported})",
        )
    default_language = _raw_default_language(data, languages)
    for loc, names in _names_locations(data):
        if not isinstance(names, Mapping):
            continue
        for language in names:
            if language not in languages:
                report(
                    (*loc, language),
                    "language_unsupported",
                    f"unknown language {language!r} (supported: {supported})",
                )
        if default_language is not None and default_language not in names:
            report(
                loc,
                "names_default_missing",
                f"names must include the default language {default_language!r}",
            )


def _check_codes(data: Mapping[str, Any], report: _Report) -> None:
    # Street offices and departments share one code space: a case is whistled to "a unit".
    unit_codes: dict[str, Loc] = {}
    for section, noun in (("street_offices", "street office"), ("departments", "department")):
        for index, item in _items(data, section):
            code = item.get("code")
            if not isinstance(code, str):
                continue
            first = unit_codes.get(code)
            if first is None:
                unit_codes[code] = (section, index)
            elif first[0] == section:
                report(
                    (section, index, "code"),
                    "duplicate_code",
                    f"duplicate {noun} code {code!r} (first used by {_format_key(first)})",
                )
            else:
                report(
                    (section, index, "code"),
                    "duplicate_code",
                    f"code {code!r} is already used by {_format_key(first)}; street offices "
                    "and departments need distinct codes",
                )
    _check_unique(data, "categories", "code", "duplicate category code", report)
    _check_unique(data, "people", "telegram_id", "duplicate telegram_id", report)


def _check_required_sections(data: Mapping[str, Any], report: _Report) -> None:
    departments = data.get("departments")
    if departments is None or (isinstance(departments, list) and not departments):
        report(
            ("departments",),
            "departments_missing",
            "the district needs at least one department ([[departments]])",
        )
    categories = data.get("categories")
    if categories is None or isinstance(categories, list):
        kinds = [item.get("kind") for _, item in _items(data, "categories")]
        valid = {kind.value for kind in CategoryKind}
        # A misspelt kind is already reported; "no report category" would only repeat it.
        if all(kind in valid for kind in kinds) and CategoryKind.REPORT.value not in kinds:
            report(
                ("categories",),
                "report_category_missing",
                'the district needs at least one category with kind = "report"',
            )


def _check_unique(
    data: Mapping[str, Any], section: str, field: str, message: str, report: _Report
) -> None:
    seen: dict[object, Loc] = {}
    for index, item in _items(data, section):
        value = item.get(field)
        if not isinstance(value, str | int) or isinstance(value, bool):
            continue
        if value in seen:
            report(
                (section, index, field),
                "duplicate_" + field,
                f"{message} {value!r} (first used by {_format_key(seen[value])})",
            )
        else:
            seen[value] = (section, index)


def _check_references(data: Mapping[str, Any], report: _Report) -> None:
    offices = _codes(data, "street_offices")
    departments = _codes(data, "departments")

    def dangling(loc: Loc, code: object, wanted: str) -> None:
        if not isinstance(code, str) or not _CODE_RE.fullmatch(code):
            return  # a malformed code is reported by field validation already
        hint = ""
        if wanted == "department" and code in offices:
            hint = " (that is a street office; categories and people name departments)"
        else:
            known = departments if wanted == "department" else offices
            close = difflib.get_close_matches(code, sorted(known), n=1)
            if close:
                hint = f" (did you mean {close[0]!r}?)"
        report(loc, "unknown_" + wanted.replace(" ", "_"), f"unknown {wanted} {code!r}{hint}")

    for index, item in _items(data, "departments"):
        office = item.get("street_office")
        if isinstance(office, str) and office not in offices:
            dangling(("departments", index, "street_office"), office, "street office")
        kind = item.get("kind", DepartmentKind.DEPARTMENT.value)
        if kind == DepartmentKind.COMMUNITY and office is None:
            report(
                ("departments", index, "street_office"),
                "community_without_street_office",
                "a community belongs to a street office: set street_office",
            )
        if (
            item.get("volunteer_chat_id") is not None
            and kind != DepartmentKind.COMMUNITY
            and isinstance(kind, str)
        ):
            report(
                ("departments", index, "volunteer_chat_id"),
                "volunteer_chat_not_community",
                f"only communities have their own volunteer group (this unit is a {kind})",
            )

    for index, item in _items(data, "categories"):
        department = item.get("department")
        kind = item.get("kind")
        if kind == CategoryKind.REPORT and department is None:
            report(
                ("categories", index, "department"),
                "report_without_department",
                "a report category needs the department that handles it",
            )
        elif kind == CategoryKind.HELP and department is not None:
            report(
                ("categories", index, "department"),
                "help_with_department",
                "help requests go to volunteers, not to a department: remove this key",
            )
        elif isinstance(department, str) and department not in departments:
            dangling(("categories", index, "department"), department, "department")
        triage_by = item.get("triage_by")
        if isinstance(triage_by, str) and triage_by not in offices:
            dangling(("categories", index, "triage_by"), triage_by, "street office")

    for index, item in _items(data, "people"):
        codes = item.get("departments")
        if isinstance(codes, list):
            for position, code in enumerate(codes):
                if isinstance(code, str) and code not in departments:
                    dangling(("people", index, "departments", position), code, "department")


def _codes(data: Mapping[str, Any], section: str) -> set[str]:
    return {item["code"] for _, item in _items(data, section) if isinstance(item.get("code"), str)}


def _raw_chat_ids(data: Mapping[str, Any]) -> Iterator[tuple[Loc, object]]:
    for section in ("governance_center", "supervision", "volunteers"):
        table = data.get(section)
        if isinstance(table, Mapping) and "chat_id" in table:
            yield (section, "chat_id"), table["chat_id"]
    for section in ("street_offices", "departments"):
        for index, item in _items(data, section):
            for field in ("chat_id", "volunteer_chat_id"):
                if field in item:
                    yield (section, index, field), item[field]


def _check_chat_ids(data: Mapping[str, Any], report: _Report) -> None:
    # One group, one purpose: a message in a group must map back to exactly one unit.
    seen: dict[int, Loc] = {}
    for loc, chat_id in _raw_chat_ids(data):
        if not isinstance(chat_id, int) or isinstance(chat_id, bool):
            continue
        if chat_id in seen:
            report(
                loc,
                "duplicate_chat_id",
                f"chat id {chat_id} is already used by {_format_key(seen[chat_id])}; "
                "every unit needs its own group",
            )
        else:
            seen[chat_id] = loc


def _check_points(data: Mapping[str, Any], report: _Report) -> None:
    points = data.get("points")
    by_skill = points.get("by_skill") if isinstance(points, Mapping) else None
    if not isinstance(by_skill, Mapping):
        return
    volunteers = data.get("volunteers")
    raw_skills = volunteers.get("skills") if isinstance(volunteers, Mapping) else None
    skills = set(raw_skills) if isinstance(raw_skills, list) else set()
    for skill in by_skill:
        if skill not in skills:
            close = difflib.get_close_matches(skill, sorted(skills), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            report(
                ("points", "by_skill", skill),
                "unknown_skill",
                f"unknown skill {skill!r}: list it in [volunteers] skills first{hint}",
            )


def _check_merchants(data: Mapping[str, Any], report: _Report) -> None:
    _check_unique(data, "merchants", "code", "duplicate merchant code", report)
    for index, merchant in _items(data, "merchants"):
        seen: dict[str, int] = {}
        for position, offer in _items(merchant, "offers"):
            code = offer.get("code")
            if not isinstance(code, str):
                continue
            if code in seen:
                report(
                    ("merchants", index, "offers", position, "code"),
                    "duplicate_code",
                    f"duplicate offer code {code!r} (first used by "
                    f"{_format_key(('merchants', index, 'offers', seen[code]))})",
                )
            else:
                seen[code] = position


def _check_integrations(data: Mapping[str, Any], report: _Report) -> None:
    _check_unique(data, "integrations", "code", "duplicate integration code", report)
    # Keys identify the system filing a case, so two systems cannot share one; the message
    # names where the key was first used, never the key.
    seen: dict[str, int] = {}
    for index, item in _items(data, "integrations"):
        key = item.get("api_key")
        if not isinstance(key, str):
            continue
        if key in seen:
            report(
                ("integrations", index, "api_key"),
                "duplicate_api_key",
                f"this api_key is already used by integrations[{seen[key]}]; "
                "every integrating system needs its own key",
            )
        else:
            seen[key] = index


# --------------------------------------------------------------------------------------------
# Messages and keys
# --------------------------------------------------------------------------------------------


def _format_key(loc: Iterable[str | int]) -> str:
    """``('departments', 2, 'code')`` → ``departments[2].code``."""
    key = ""
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        else:
            text = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else f'"{part}"'
            key += f".{text}" if key else text
    return key


def _unwrap(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (types.UnionType, typing.Union):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return _unwrap(args[0]) if len(args) == 1 else annotation
    if origin is tuple:
        return _unwrap(typing.get_args(annotation)[0])
    return annotation


def _model_at(loc: Loc) -> Any:
    """The model or type that the file holds at ``loc`` (used to suggest keys)."""
    current: Any = District
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        current = _unwrap(field.annotation)
    return current


def _friendly_message(error_type: str, loc: Loc, message: str, value: object) -> str:
    if error_type == "missing":
        target = _model_at(loc)
        if len(loc) == 1 and isinstance(target, type) and issubclass(target, BaseModel):
            return f"missing required table [{loc[0]}]"
        return f"missing required key {loc[-1]!r}"
    if error_type == "extra_forbidden":
        name = str(loc[-1])
        parent = _model_at(loc[:-1])
        allowed: list[str] = []
        if isinstance(parent, type) and issubclass(parent, BaseModel):
            allowed = list(parent.model_fields)
        close = difflib.get_close_matches(name, allowed, n=1)
        if close:
            return f"unknown key {name!r} (did you mean {close[0]!r}?)"
        if allowed:
            return f"unknown key {name!r} (allowed here: {', '.join(allowed)})"
        return f"unknown key {name!r}"
    if error_type in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a table, got {_describe(value)}"
    if error_type in ("tuple_type", "list_type"):
        return f"expected an array, got {_describe(value)}"
    if message.startswith("Input should be a valid "):
        noun = message.removeprefix("Input should be a valid ").split(",")[0]
        article = "an" if noun[:1] in "aeiou" else "a"
        return f"expected {article} {noun}, got {_describe(value)}"
    if message.startswith("Input should be "):
        # Enumerations: "Input should be 'report', 'say' or 'help'".
        return f"expected {message.removeprefix('Input should be ')}, got {_describe(value)}"
    return message


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return repr(value)


# --------------------------------------------------------------------------------------------
# Locating keys in the TOML text
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------

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
