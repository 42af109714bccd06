"""The district file: who and what one Whistle deployment serves.

This package owns the district description that an administrator writes in TOML (see
``config.example.toml``): the district itself, its governance center (综治中心), the supervision
chat (纪委监委 "阳光+"), street offices (镇/街道), departments and communities, case categories and
the people who hold roles.  It loads the file, validates it into frozen pydantic models and turns
every problem into a :class:`DistrictError` that names the offending key *and* its line, because
the person fixing the file is a district administrator, not a Python programmer.

The read API (``District.department()``, ``District.unit_by_chat()`` …) is what the rest of the bot
uses; nothing else should walk the raw TOML.

The package, by what each file holds: ``fields`` (value types and enums), ``schema`` (the models
and the read API), ``checks`` (whole-document checks on the raw TOML), ``messages`` (errors in
words an administrator can act on), ``locate`` (the line of a key in the TOML text), ``errors``
(the error that carries every problem) and ``loading`` (reading and validating a file). Import
from ``bot.district`` itself.
"""

from __future__ import annotations

from bot.district.errors import DistrictError, DistrictProblem
from bot.district.fields import (
    CASE_NUMBER_DIGITS,
    DEFAULT_LANGUAGES,
    EXAMPLE_DISTRICT_PATH,
    Audience,
    CategoryKind,
    DepartmentKind,
    Role,
    Task,
)
from bot.district.loading import load_district, parse_district, resolve_district_path
from bot.district.schema import (
    Bundling,
    Category,
    Department,
    District,
    DistrictInfo,
    GovernanceCenter,
    Integration,
    LadderStep,
    Merchant,
    Names,
    Offer,
    Points,
    Reports,
    StaffMember,
    StreetOffice,
    Supervision,
    Unit,
    Volunteers,
)
from models.case import CardColour  # the card a rung shows is the one a case keeps

__all__ = [
    "CASE_NUMBER_DIGITS",
    "DEFAULT_LANGUAGES",
    "EXAMPLE_DISTRICT_PATH",
    "Audience",
    "Bundling",
    "CardColour",
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
    "LadderStep",
    "Merchant",
    "Names",
    "Offer",
    "Points",
    "Reports",
    "Role",
    "StaffMember",
    "StreetOffice",
    "Supervision",
    "Task",
    "Unit",
    "Volunteers",
    "load_district",
    "parse_district",
    "resolve_district_path",
]
