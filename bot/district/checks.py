"""Whole-document checks on the raw TOML, before the models see it: languages, codes, required
sections, references between units, chat ids, points, merchants, integrations."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final, TypeAlias

from pydantic import (
    BaseModel,
    ValidationError,
)
from pydantic_core import InitErrorDetails

from bot.district.fields import (
    _CODE_RE,
    DEFAULT_LANGUAGES,
    CategoryKind,
    DepartmentKind,
    Loc,
    _invalid,
)
from bot.district.messages import _format_key, _friendly_message

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


def _reraisable(exc: ValidationError, root: type[BaseModel]) -> Iterator[InitErrorDetails]:
    """The errors of validating ``root``, reworded for the person fixing the file."""
    for error in exc.errors():
        loc = _unbind_names_loc(error["loc"])
        message = _friendly_message(root, error["type"], loc, error["msg"], error.get("input"))
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


def _repeats(
    items: Iterator[tuple[int, Mapping[str, Any]]], field: str, kinds: Any = str
) -> Iterator[tuple[int, object, int]]:
    """``(index, value, first)`` for each item whose ``field`` (of ``kinds``, never a bool)
    repeats an earlier item's: ``first`` is the index of the item that used it first."""
    seen: dict[object, int] = {}
    for index, item in items:
        value = item.get(field)
        if not isinstance(value, kinds) or isinstance(value, bool):
            continue
        if value in seen:
            yield index, value, seen[value]
        else:
            seen[value] = index


def _check_unique(
    data: Mapping[str, Any], section: str, field: str, message: str, report: _Report
) -> None:
    for index, value, first in _repeats(_items(data, section), field, str | int):
        report(
            (section, index, field),
            "duplicate_" + field,
            f"{message} {value!r} (first used by {_format_key((section, first))})",
        )


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
        for position, code, first in _repeats(_items(merchant, "offers"), "code"):
            report(
                ("merchants", index, "offers", position, "code"),
                "duplicate_code",
                f"duplicate offer code {code!r} (first used by "
                f"{_format_key(('merchants', index, 'offers', first))})",
            )


def _check_integrations(data: Mapping[str, Any], report: _Report) -> None:
    _check_unique(data, "integrations", "code", "duplicate integration code", report)
    # Keys identify the system filing a case, so two systems cannot share one; the message
    # names where the key was first used, never the key.
    for index, _key, first in _repeats(_items(data, "integrations"), "api_key"):
        report(
            ("integrations", index, "api_key"),
            "duplicate_api_key",
            f"this api_key is already used by integrations[{first}]; "
            "every integrating system needs its own key",
        )
