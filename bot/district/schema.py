"""The district file's schema: frozen pydantic models of the district, its units, categories,
ladders, people, volunteers, points and integrations, and the read API the bot uses."""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Final, Self, TypeAlias, TypeVar
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
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
from pydantic_core import InitErrorDetails

from bot.district.checks import (
    _bind_names,
    _document_problems,
    _languages_from,
    _raw_default_language,
    _reraisable,
)
from bot.district.fields import (
    _DAYS,
    CASE_NUMBER_DIGITS,
    DEFAULT_LANGUAGES,
    Audience,
    CategoryKind,
    Code,
    DepartmentKind,
    GroupChatId,
    Role,
    StrictBool,
    Task,
    Text,
    UserId,
    _check_case_prefix,
    _check_clock_time,
    _check_iso_date,
    _check_no_duplicates,
    _check_not_empty,
    _check_offset,
    _check_timezone,
    _Frozen,
    _invalid,
    parse_duration,
)
from models.case import CardColour  # the card a rung shows is the one a case keeps

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


class StaffMember(_Frozen):
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
    people: tuple[StaffMember, ...] = ()
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
    _people: dict[int, StaffMember] = PrivateAttr(default_factory=dict)
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
            errors.extend(_reraisable(exc, cls))
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

    def person(self, telegram_id: int) -> StaffMember | None:
        return self._people.get(telegram_id)

    def people_with_role(self, role: Role | str) -> tuple[StaffMember, ...]:
        return tuple(person for person in self.people if role in person.roles)

    def people_of_department(self, code: str) -> tuple[StaffMember, ...]:
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
