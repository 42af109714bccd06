"""The district file: loading, validation errors that point at key and line, and the read API."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path

import pydantic
import pytest

from bot.district import (
    EXAMPLE_DISTRICT_PATH,
    CategoryKind,
    Department,
    DepartmentKind,
    District,
    DistrictError,
    GovernanceCenter,
    Role,
    StreetOffice,
    load_district,
    parse_district,
    resolve_district_path,
)
from bot.district.locate import _KeyLines  # the most fragile internal piece, tested directly

REPO_ROOT = Path(__file__).resolve().parent.parent

# The smallest valid district; tests append to it or replace parts of it.
HEAD = """\
[district]
names = { "zh-Hans" = "海勃湾区", en = "Haibowan District" }
case_prefix = "HB"
default_language = "zh-Hans"
timezone = "Asia/Shanghai"

[governance_center]
names = { "zh-Hans" = "综治中心", en = "Governance Center" }
chat_id = -1001000000001
"""

CGZF = """
[[departments]]
code = "cgzf"
names = { "zh-Hans" = "城市管理综合执法局", en = "Urban Management Bureau" }
chat_id = -1001000000021
"""

FLYING_WIRE = """
[[categories]]
code = "flying_wire"
names = { "zh-Hans" = "飞线充电", en = "Flying-wire e-bike charging" }
kind = "report"
department = "cgzf"
"""

MINIMAL = HEAD + CGZF + FLYING_WIRE

MARK = "# <-"


def marked_line(text: str, nth: int = 1) -> int:
    """1-based line of the nth line carrying the ``# <-`` marker."""
    lines = [number for number, line in enumerate(text.splitlines(), 1) if MARK in line]
    return lines[nth - 1]


def load_text(tmp_path: Path, text: str, **kwargs: object) -> District:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return load_district(path, **kwargs)  # type: ignore[arg-type]


def district_error(tmp_path: Path, text: str, **kwargs: object) -> DistrictError:
    with pytest.raises(DistrictError) as caught:
        load_text(tmp_path, text, **kwargs)
    return caught.value


def only_problem(tmp_path: Path, text: str, **kwargs: object) -> DistrictError:
    error = district_error(tmp_path, text, **kwargs)
    assert len(error.problems) == 1, str(error)
    return error


class TestExampleFile:
    def test_example_file_loads(self) -> None:
        district = load_district(REPO_ROOT / "config.example.toml")

        assert district.case_prefix == "HB"
        assert district.names.get("zh-Hans") == "海勃湾区"
        assert district.names.get("en") == "Haibowan District"
        assert district.default_language == "zh-Hans"
        assert str(district.tzinfo) == "Asia/Shanghai"
        assert {office.code for office in district.street_offices} == {"xinhua", "xinhuaxi"}

    def test_example_path_is_the_shipped_file(self) -> None:
        assert EXAMPLE_DISTRICT_PATH == REPO_ROOT / "config.example.toml"
        assert EXAMPLE_DISTRICT_PATH.is_file()

    def test_example_covers_every_kind_of_unit_and_category(self) -> None:
        district = load_district(EXAMPLE_DISTRICT_PATH)

        assert {d.kind for d in district.departments} == set(DepartmentKind)
        assert {c.kind for c in district.categories} == set(CategoryKind)
        for role in Role:
            assert district.people_with_role(role), role
        assert district.supervision is not None
        assert district.volunteers.chat_id is not None

    def test_example_names_are_complete_in_every_language(self) -> None:
        district = load_district(EXAMPLE_DISTRICT_PATH)
        assert district.supervision is not None
        names = [district.names, district.governance_center.names, district.supervision.names]
        names += [office.names for office in district.street_offices]
        names += [department.names for department in district.departments]
        names += [category.names for category in district.categories]

        for unit_names in names:
            assert set(unit_names.texts) == {"zh-Hans", "en", "mn-Mong"}, unit_names

    def test_example_other_category_waits_for_triage(self) -> None:
        district = load_district(EXAMPLE_DISTRICT_PATH)
        other = district.category("other")

        assert other is not None
        assert other.triage is True
        assert other.department is not None
        assert district.department(other.department) is not None

    def test_minimal_district_loads_with_defaults(self, tmp_path: Path) -> None:
        district = load_text(tmp_path, MINIMAL)

        assert district.supervision is None
        assert district.volunteers.chat_id is None
        assert district.street_offices == ()
        assert district.people == ()
        department = district.department("cgzf")
        assert department is not None
        assert department.kind is DepartmentKind.DEPARTMENT
        category = district.category("flying_wire")
        assert category is not None
        assert category.triage is False


class TestSyntaxErrors:
    def test_invalid_value_reports_its_line(self, tmp_path: Path) -> None:
        text = HEAD + "\n[[departments]]\ncode = \n"

        error = only_problem(tmp_path, text)

        assert error.line == 12
        assert error.key is None
        assert error.message.startswith("TOML syntax error: Invalid value")
        assert str(error).startswith(f"{tmp_path / 'config.toml'}:12: TOML syntax error")

    def test_repeated_key_reports_the_second_line(self, tmp_path: Path) -> None:
        text = MINIMAL + 'department = "cgzf"  # <-\n'

        error = only_problem(tmp_path, text)

        assert error.line == marked_line(text)
        assert "Cannot overwrite a value" in error.message

    def test_unterminated_string_points_at_the_last_line(self, tmp_path: Path) -> None:
        text = MINIMAL + '\n[[people]]\nname = """王主任\n\n'

        error = only_problem(tmp_path, text)

        assert error.line == len(text.splitlines())
        assert "Unterminated string" in error.message

    def test_syntax_error_column_is_kept_in_the_message(self) -> None:
        with pytest.raises(DistrictError) as caught:
            parse_district('a = 1\nb = "x" "y"\n', path="config.toml")

        assert str(caught.value) == (
            "config.toml:2: TOML syntax error: Expected newline or end of document after a "
            "statement (column 9)"
        )


class TestFieldErrors:
    def test_wrong_type_names_key_and_line(self, tmp_path: Path) -> None:
        text = MINIMAL.replace("chat_id = -1001000000021", 'chat_id = "-1001000000021"  # <-')

        error = only_problem(tmp_path, text)

        assert error.key == "departments[0].chat_id"
        assert error.line == marked_line(text)
        assert error.message == "expected an integer, got '-1001000000021'"

    def test_boolean_is_not_an_integer(self, tmp_path: Path) -> None:
        text = HEAD.replace("chat_id = -1001000000001", "chat_id = true  # <-") + CGZF
        text += FLYING_WIRE

        error = only_problem(tmp_path, text)

        assert error.key == "governance_center.chat_id"
        assert error.line == marked_line(text)

    def test_unknown_key_suggests_the_close_name(self, tmp_path: Path) -> None:
        text = MINIMAL.replace("chat_id = -1001000000021", "chatid = -1001000000021  # <-")

        error = only_problem(tmp_path, text)

        assert error.key == "departments[0].chatid"
        assert error.line == marked_line(text)
        assert error.message == "unknown key 'chatid' (did you mean 'chat_id'?)"

    def test_unknown_key_lists_the_allowed_keys(self, tmp_path: Path) -> None:
        text = MINIMAL.replace('kind = "report"', 'kind = "report"\ncolour = "red"  # <-')

        error = only_problem(tmp_path, text)

        assert error.key == "categories[0].colour"
        assert error.line == marked_line(text)
        assert "allowed here: code, names, kind, department, triage" in error.message

    def test_unknown_table_points_at_its_header(self, tmp_path: Path) -> None:
        text = MINIMAL + "\n[emergency]  # <-\nphone = 110\n"

        error = only_problem(tmp_path, text)

        assert error.key == "emergency"
        assert error.line == marked_line(text)

    def test_missing_required_key_points_at_its_table_header(self, tmp_path: Path) -> None:
        text = MINIMAL + (
            "\n[[departments]]  # <-\n"
            'names = { "zh-Hans" = "市场监督管理局" }\n'
            "chat_id = -1001000000022\n"
        )

        error = only_problem(tmp_path, text)

        assert error.key == "departments[1].code"
        assert error.line == marked_line(text)
        assert error.message == "missing required key 'code'"

    def test_missing_required_key_in_a_plain_table(self, tmp_path: Path) -> None:
        text = MINIMAL.replace('timezone = "Asia/Shanghai"\n', "")

        error = only_problem(tmp_path, text)

        assert error.key == "district.timezone"
        assert error.line == 1

    def test_missing_required_table_has_no_line(self, tmp_path: Path) -> None:
        text = MINIMAL.replace("[governance_center]", "[supervision]")

        error = only_problem(tmp_path, text)

        assert error.key == "governance_center"
        assert error.line is None
        assert error.message == "missing required table [governance_center]"
        assert str(error) == (
            f"{tmp_path / 'config.toml'}: governance_center: "
            "missing required table [governance_center]"
        )

    def test_bad_timezone(self, tmp_path: Path) -> None:
        text = MINIMAL.replace('"Asia/Shanghai"', '"Asia/Shanghia"  # <-')

        error = only_problem(tmp_path, text)

        assert error.key == "district.timezone"
        assert error.line == marked_line(text)
        assert "unknown time zone 'Asia/Shanghia'" in error.message

    @pytest.mark.parametrize("prefix", ["HB-1", "HAIBOWAN", "", "海区"])
    def test_bad_case_prefix(self, tmp_path: Path, prefix: str) -> None:
        text = MINIMAL.replace('case_prefix = "HB"', f'case_prefix = "{prefix}"  # <-')

        error = only_problem(tmp_path, text)

        assert error.key == "district.case_prefix"
        assert error.line == marked_line(text)
        assert "1–6 ASCII letters or digits" in error.message

    @pytest.mark.parametrize("code", ["CGZF", "cg-zf", "a" * 33, "城管"])
    def test_bad_code(self, tmp_path: Path, code: str) -> None:
        text = MINIMAL.replace('code = "flying_wire"', f'code = "{code}"  # <-')

        error = only_problem(tmp_path, text)

        assert error.key == "categories[0].code"
        assert error.line == marked_line(text)

    @pytest.mark.parametrize(("chat_id", "message"), [(0, "cannot be 0"), (5, "not a group")])
    def test_chat_ids_must_be_negative_group_ids(
        self, tmp_path: Path, chat_id: int, message: str
    ) -> None:
        text = MINIMAL.replace("chat_id = -1001000000021", f"chat_id = {chat_id}  # <-")

        error = only_problem(tmp_path, text)

        assert error.key == "departments[0].chat_id"
        assert error.line == marked_line(text)
        assert message in error.message

    def test_person_ids_are_positive(self, tmp_path: Path) -> None:
        text = (
            MINIMAL + '\n[[people]]\ntelegram_id = -5  # <-\nname = "王主任"\nroles = ["admin"]\n'
        )

        error = only_problem(tmp_path, text)

        assert error.key == "people[0].telegram_id"
        assert error.line == marked_line(text)

    def test_unknown_role_points_at_the_array_item(self, tmp_path: Path) -> None:
        text = MINIMAL + (
            "\n[[people]]\n"
            "telegram_id = 1001\n"
            'name = "王主任"\n'
            "roles = [\n"
            '  "admin",\n'
            '  "boss",  # <-\n'
            "]\n"
        )

        error = only_problem(tmp_path, text)

        assert error.key == "people[0].roles[1]"
        assert error.line == marked_line(text)
        assert error.message == (
            "expected 'admin', 'center_head', 'leader' or 'supervisor', got 'boss'"
        )

    @pytest.mark.parametrize(
        ("roles", "message"), [("[]", "at least one"), ('["admin", "admin"]', "listed twice")]
    )
    def test_roles_are_non_empty_without_duplicates(
        self, tmp_path: Path, roles: str, message: str
    ) -> None:
        text = (
            MINIMAL + f'\n[[people]]\ntelegram_id = 1001\nname = "王主任"\nroles = {roles}  # <-\n'
        )

        error = only_problem(tmp_path, text)

        assert error.key == "people[0].roles"
        assert error.line == marked_line(text)
        assert message in error.message

    def test_unknown_kind(self, tmp_path: Path) -> None:
        text = MINIMAL.replace('kind = "report"', 'kind = "complaint"  # <-')

        error = only_problem(tmp_path, text)

        assert error.key == "categories[0].kind"
        assert error.line == marked_line(text)
        assert error.message == "expected 'report', 'say' or 'help', got 'complaint'"

    def test_blank_name(self, tmp_path: Path) -> None:
        text = MINIMAL.replace(
            'names = { "zh-Hans" = "飞线充电", en = "Flying-wire e-bike charging" }',
            'names = { "zh-Hans" = " ", en = "Flying-wire e-bike charging" }  # <-',
        )

        error = only_problem(tmp_path, text)

        assert error.key == "categories[0].names.zh-Hans"
        assert error.line == marked_line(text)
        assert error.message == "must not be empty"


class TestNames:
    def test_name_missing_default_language(self, tmp_path: Path) -> None:
        text = MINIMAL.replace(
            'names = { "zh-Hans" = "城市管理综合执法局", en = "Urban Management Bureau" }',
            'names = { en = "Urban Management Bureau" }  # <-',
        )

        error = only_problem(tmp_path, text)

        assert error.key == "departments[0].names"
        assert error.line == marked_line(text)
        assert error.message == "names must include the default language 'zh-Hans'"

    def test_unknown_language_points_at_the_key_in_the_inline_table(self, tmp_path: Path) -> None:
        text = MINIMAL.replace(
            'en = "Urban Management Bureau" }',
            'en = "Urban Management Bureau", fr = "Police municipale" }  # <-',
        )

        error = only_problem(tmp_path, text)

        assert error.key == "departments[0].names.fr"
        assert error.line == marked_line(text)
        assert error.message == "unknown language 'fr' (supported: en, mn-Mong, zh-Hans)"

    def test_names_as_a_sub_table(self, tmp_path: Path) -> None:
        text = MINIMAL + (
            "\n[[departments]]\n"
            'code = "water"\n'
            "[departments.names]\n"
            '"zh-Hans" = "供水公司"\n'
            "en = 5  # <-\n"
        )

        error = only_problem(tmp_path, text)

        assert error.key == "departments[1].names.en"
        assert error.line == marked_line(text)
        assert error.message == "expected a string, got 5"

    def test_sub_table_missing_default_language_points_at_its_header(self, tmp_path: Path) -> None:
        text = MINIMAL + (
            "\n[[departments]]\n"
            'code = "water"\n'
            "[departments.names]  # <-\n"
            'en = "Water Supply Company"\n'
        )

        error = only_problem(tmp_path, text)

        assert error.key == "departments[1].names"
        assert error.line == marked_line(text)

    def test_names_must_be_a_table(self, tmp_path: Path) -> None:
        text = MINIMAL.replace(
            'names = { "zh-Hans" = "飞线充电", en = "Flying-wire e-bike charging" }',
            'names = "飞线充电"  # <-',
        )

        error = only_problem(tmp_path, text)

        assert error.key == "categories[0].names"
        assert error.line == marked_line(text)
        assert error.message == "expected a table, got '飞线充电'"

    def test_default_language_must_be_supported(self, tmp_path: Path) -> None:
        text = MINIMAL.replace('default_language = "zh-Hans"', 'default_language = "mn"  # <-')

        error = only_problem(tmp_path, text)

        assert error.key == "district.default_language"
        assert error.line == marked_line(text)
        assert error.message == "unsupported language 'mn' (supported: en, mn-Mong, zh-Hans)"

    def test_supported_languages_are_a_parameter(self, tmp_path: Path) -> None:
        text = MINIMAL.replace('en = "Haibowan District"', 'mn = "Хайбовань"')

        district = load_text(tmp_path, text, languages=("zh-Hans", "en", "mn"))

        assert district.names.get("mn") == "Хайбовань"
        assert district.languages == ("zh-Hans", "en", "mn")
        error = district_error(tmp_path, text, languages=("zh-Hans",))
        assert [p.key for p in error.problems] == [
            "district.names.mn",
            "governance_center.names.en",
            "departments[0].names.en",
            "categories[0].names.en",
        ]

    def test_default_language_other_than_chinese(self, tmp_path: Path) -> None:
        text = MINIMAL.replace('default_language = "zh-Hans"', 'default_language = "en"')
        text = text.replace(
            '{ "zh-Hans" = "飞线充电", en = "Flying-wire e-bike charging" }',
            '{ "zh-Hans" = "飞线充电" }  # <-',
        )

        error = only_problem(tmp_path, text)

        assert error.key == "categories[0].names"
        assert error.line == marked_line(text)
        assert error.message == "names must include the default language 'en'"

    def test_get_falls_back_to_the_default_language(self) -> None:
        district = load_district(EXAMPLE_DISTRICT_PATH)
        kangle = district.department("kangle")

        assert kangle is not None
        assert kangle.names.get("en") == "Kangle Community"
        assert kangle.names.get("zh-Hans") == "康乐社区"
        assert kangle.names.get("mn") == "康乐社区"
        assert kangle.names.get() == "康乐社区"
        assert str(kangle.names) == "康乐社区"


class TestCrossReferences:
    def test_duplicate_department_code(self, tmp_path: Path) -> None:
        text = MINIMAL + (
            '\n[[departments]]\ncode = "scjg"\nnames = { "zh-Hans" = "市场监督管理局" }\n'
            '\n[[departments]]\ncode = "cgzf"  # <-\nnames = { "zh-Hans" = "城管二队" }\n'
        )

        error = only_problem(tmp_path, text, languages=("zh-Hans", "en"))

        assert error.key == "departments[2].code"
        assert error.line == marked_line(text)
        assert error.message == "duplicate department code 'cgzf' (first used by departments[0])"

    def test_error_string_names_file_line_and_key(self) -> None:
        text = MINIMAL + '\n[[departments]]\ncode = "cgzf"\nnames = { "zh-Hans" = "城管" }\n'

        with pytest.raises(DistrictError) as caught:
            parse_district(text, path="config.toml")

        assert str(caught.value) == (
            f"config.toml:{len(text.splitlines()) - 1}: departments[1].code: "
            "duplicate department code 'cgzf' (first used by departments[0])"
        )

    def test_street_office_and_department_share_one_code_space(self, tmp_path: Path) -> None:
        text = MINIMAL + (
            '\n[[street_offices]]\ncode = "cgzf"  # <-\nnames = { "zh-Hans" = "新华街道" }\n'
        )

        error = only_problem(tmp_path, text)

        # Street offices come first in the code space whatever the order in the file.
        assert error.key == "departments[0].code"
        assert error.line == text.splitlines().index('code = "cgzf"') + 1
        assert "already used by street_offices[0]" in error.message

    def test_duplicate_category_code(self, tmp_path: Path) -> None:
        text = MINIMAL + FLYING_WIRE.replace('code = "flying_wire"', 'code = "flying_wire"  # <-')

        error = only_problem(tmp_path, text)

        assert error.key == "categories[1].code"
        assert error.line == marked_line(text)
        assert (
            error.message == "duplicate category code 'flying_wire' (first used by categories[0])"
        )

    def test_duplicate_telegram_id(self, tmp_path: Path) -> None:
        person = '\n[[people]]\ntelegram_id = 1001{mark}\nname = "王主任"\nroles = ["admin"]\n'
        text = MINIMAL + person.format(mark="") + person.format(mark="  # <-")

        error = only_problem(tmp_path, text)

        assert error.key == "people[1].telegram_id"
        assert error.line == marked_line(text)

    def test_dangling_category_department(self, tmp_path: Path) -> None:
        text = MINIMAL.replace('department = "cgzf"', 'department = "cgfz"  # <-')

        error = only_problem(tmp_path, text)

        assert error.key == "categories[0].department"
        assert error.line == marked_line(text)
        assert error.message == "unknown department 'cgfz' (did you mean 'cgzf'?)"

    def test_category_cannot_name_a_street_office(self, tmp_path: Path) -> None:
        text = MINIMAL.replace('department = "cgzf"', 'department = "xinhua"  # <-')
        text += '\n[[street_offices]]\ncode = "xinhua"\nnames = { "zh-Hans" = "新华街道" }\n'

        error = only_problem(tmp_path, text)

        assert error.key == "categories[0].department"
        assert "street office" in error.message

    def test_dangling_street_office(self, tmp_path: Path) -> None:
        text = MINIMAL.replace(
            "chat_id = -1001000000021", 'chat_id = -1001000000021\nstreet_office = "xinhua"  # <-'
        )

        error = only_problem(tmp_path, text)

        assert error.key == "departments[0].street_office"
        assert error.line == marked_line(text)
        assert error.message == "unknown street office 'xinhua'"

    def test_dangling_person_department_points_at_the_array_item(self, tmp_path: Path) -> None:
        text = MINIMAL + (
            '\n[[people]]\ntelegram_id = 1001\nname = "王主任"\nroles = ["admin"]\n'
            'departments = [\n  "cgzf",\n  "gongan",  # <-\n]\n'
        )

        error = only_problem(tmp_path, text)

        assert error.key == "people[0].departments[1]"
        assert error.line == marked_line(text)

    def test_community_needs_a_street_office(self, tmp_path: Path) -> None:
        text = MINIMAL + (
            '\n[[departments]]  # <-\ncode = "kangle"\nnames = { "zh-Hans" = "康乐社区" }\n'
            'kind = "community"\n'
        )

        error = only_problem(tmp_path, text)

        assert error.key == "departments[1].street_office"
        assert error.line == marked_line(text)

    def test_only_communities_have_volunteer_groups(self, tmp_path: Path) -> None:
        text = MINIMAL.replace(
            "chat_id = -1001000000021",
            "chat_id = -1001000000021\nvolunteer_chat_id = -100104  # <-",
        )

        error = only_problem(tmp_path, text)

        assert error.key == "departments[0].volunteer_chat_id"
        assert error.line == marked_line(text)

    def test_report_category_needs_a_department(self, tmp_path: Path) -> None:
        text = MINIMAL + (
            '\n[[categories]]  # <-\ncode = "noise"\nnames = { "zh-Hans" = "噪音扰民" }\n'
            'kind = "report"\n'
        )

        error = only_problem(tmp_path, text)

        assert error.key == "categories[1].department"
        assert error.line == marked_line(text)

    def test_help_category_has_no_department(self, tmp_path: Path) -> None:
        text = MINIMAL + (
            '\n[[categories]]\ncode = "errands"\nnames = { "zh-Hans" = "代购" }\n'
            'kind = "help"\ndepartment = "cgzf"  # <-\n'
        )

        error = only_problem(tmp_path, text)

        assert error.key == "categories[1].department"
        assert error.line == marked_line(text)

    def test_say_category_may_omit_the_department(self, tmp_path: Path) -> None:
        text = (
            MINIMAL
            + '\n[[categories]]\ncode = "praise"\nnames = { "zh-Hans" = "表扬" }\nkind = "say"\n'
        )

        district = load_text(tmp_path, text)

        assert [c.code for c in district.categories_of_kind("say")] == ["praise"]

    def test_repeated_chat_id_between_departments(self, tmp_path: Path) -> None:
        text = MINIMAL + (
            '\n[[departments]]\ncode = "scjg"\nnames = { "zh-Hans" = "市场监督管理局" }\n'
            "chat_id = -1001000000021  # <-\n"
        )

        error = only_problem(tmp_path, text)

        assert error.key == "departments[1].chat_id"
        assert error.line == marked_line(text)
        assert "already used by departments[0].chat_id" in error.message

    def test_repeated_chat_id_between_center_and_volunteers(self, tmp_path: Path) -> None:
        text = MINIMAL + "\n[volunteers]\nchat_id = -1001000000001  # <-\n"

        error = only_problem(tmp_path, text)

        assert error.key == "volunteers.chat_id"
        assert error.line == marked_line(text)
        assert "governance_center.chat_id" in error.message

    def test_at_least_one_department(self, tmp_path: Path) -> None:
        text = HEAD + FLYING_WIRE.replace('department = "cgzf"\n', "")
        text = text.replace('kind = "report"', 'kind = "say"')

        error = district_error(tmp_path, text)

        # Problems without a line come last.
        assert [(p.key, p.line) for p in error.problems] == [
            ("categories", 11),
            ("departments", None),
        ]

    def test_at_least_one_report_category(self, tmp_path: Path) -> None:
        text = HEAD + CGZF + FLYING_WIRE.replace('kind = "report"', 'kind = "say"')

        error = only_problem(tmp_path, text)

        assert error.key == "categories"
        assert error.line == text.splitlines().index("[[categories]]") + 1


class TestManyProblems:
    TEXT = """\
[district]
names = { "zh-Hans" = "海勃湾区" }
case_prefix = "HB-"
default_language = "zh-Hans"
timezone = "Mars/Olympus"

[governance_center]
names = { "zh-Hans" = "综治中心" }
chat_id = -1001000000001

[[departments]]
code = "cgzf"
names = { "zh-Hans" = "城管" }
chat_id = -1001000000001

[[departments]]
code = "cgzf"
names = { "zh-Hans" = "市场监管", fr = "Marché" }
chat_id = "-1001000000022"

[[categories]]
code = "flying_wire"
names = { "zh-Hans" = "飞线充电" }
kind = "report"
department = "cgzfx"
"""

    def test_every_problem_is_reported_in_file_order(self, tmp_path: Path) -> None:
        error = district_error(tmp_path, self.TEXT)

        assert [(p.line, p.key) for p in error.problems] == [
            (3, "district.case_prefix"),
            (5, "district.timezone"),
            (14, "departments[0].chat_id"),
            (17, "departments[1].code"),
            (18, "departments[1].names.fr"),
            (19, "departments[1].chat_id"),
            (25, "categories[0].department"),
        ]

    def test_first_problem_is_the_error_itself(self, tmp_path: Path) -> None:
        error = district_error(tmp_path, self.TEXT)

        assert (error.line, error.key) == (3, "district.case_prefix")
        assert error.path == tmp_path / "config.toml"
        assert error.message == error.problems[0].message

    def test_string_shows_one_problem_per_line(self) -> None:
        with pytest.raises(DistrictError) as caught:
            parse_district(self.TEXT, path="config.toml")

        lines = str(caught.value).splitlines()
        assert len(lines) == 7
        assert lines[0].startswith("config.toml:3: district.case_prefix: case prefix 'HB-'")
        assert lines[-1] == (
            "config.toml:25: categories[0].department: unknown department 'cgzfx' "
            "(did you mean 'cgzf'?)"
        )

    def test_district_error_is_a_value_error(self) -> None:
        assert issubclass(DistrictError, ValueError)


class TestLineLocator:
    def test_every_path_of_a_tricky_document_has_its_line(self) -> None:
        text = (Path(__file__).parent / "district_files" / "tricky.toml").read_text("utf-8")

        def paths(value: object, prefix: tuple[str | int, ...]) -> Iterator[tuple[str | int, ...]]:
            items: Iterable[tuple[str | int, object]] = ()
            if isinstance(value, dict):
                items = value.items()
            elif isinstance(value, list):
                items = enumerate(value)
            for part, child in items:
                yield (*prefix, part)
                yield from paths(child, (*prefix, part))

        located = _KeyLines(text).lines

        assert set(located) == set(paths(tomllib.loads(text), ()))
        assert located[("a", "b", "c.d")] == 3
        assert located[("ml2",)] == 19
        assert located[("e",)] == 21
        assert located[("tab", "sub", "k", 1)] == 26
        assert located[("aot", 0, "inner", "y")] == 31
        assert located[("aot", 1, "list", 1, "last")] == 40

    def test_multiline_strings_and_arrays_do_not_shift_lines(self, tmp_path: Path) -> None:
        text = MINIMAL + (
            "\n[[departments]]\n"
            'code = "water"\n'
            "[departments.names]\n"
            '"zh-Hans" = """供水公司 \\"""\n'
            "[[departments]]\n"
            'code = "fake" # not a key\n'
            '"""\n'
            "en = '''Water\n"
            "]] still the string # not a comment\n"
            "'''\n"
            "\n[[people]]\n"
            "telegram_id = 1001\n"
            "name = 'O\"Brien # \\' # literal string\n"
            'roles = [ "admin", # comment with ] and "\n'
            '  "leader", ]\n'
            'departments = ["water", "cgzf"]  # ] "\n'
            'extra = { nested = { "quoted.key" = 1 } }  # <-\n'
        )

        error = only_problem(tmp_path, text)

        assert error.key == "people[0].extra"
        assert error.line == marked_line(text)

    def test_dotted_keys_and_quoted_keys(self, tmp_path: Path) -> None:
        text = MINIMAL.replace(
            'names = { "zh-Hans" = "城市管理综合执法局", en = "Urban Management Bureau" }',
            'names."zh-Hans" = "城市管理综合执法局"\nnames . \'en\' = 7  # <-',
        )

        error = only_problem(tmp_path, text)

        assert error.key == "departments[0].names.en"
        assert error.line == marked_line(text)

    def test_array_of_inline_tables(self, tmp_path: Path) -> None:
        # Top-level keys must come before the first table, so the array leads the file.
        text = (
            "departments = [\n"
            '  { code = "cgzf", names = { "zh-Hans" = "城管" } },\n'
            '  { code = "cgzf", names = { "zh-Hans" = "城管" } },  # <-\n'
            "]\n"
            "\n" + HEAD + FLYING_WIRE
        )

        error = only_problem(tmp_path, text)

        assert error.key == "departments[1].code"
        assert error.line == marked_line(text)

    def test_windows_line_endings_and_byte_order_mark(self, tmp_path: Path) -> None:
        text = MINIMAL.replace('department = "cgzf"', 'department = "nope"  # <-')
        path = tmp_path / "config.toml"
        path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())

        with pytest.raises(DistrictError) as caught:
            load_district(path)

        assert caught.value.key == "categories[0].department"
        assert caught.value.line == marked_line(text)


class TestReadApi:
    @pytest.fixture
    def district(self) -> District:
        return load_district(EXAMPLE_DISTRICT_PATH)

    def test_department_and_street_office_by_code(self, district: District) -> None:
        kangle = district.department("kangle")

        assert isinstance(kangle, Department)
        assert kangle.kind is DepartmentKind.COMMUNITY
        assert kangle.street_office == "xinhua"
        office = district.street_office("xinhua")
        assert isinstance(office, StreetOffice)
        assert office.names.get("en") == "Xinhua Subdistrict Office"
        assert district.department("xinhua") is None
        assert district.street_office("kangle") is None
        assert district.department("nope") is None

    def test_departments_in_a_street_office(self, district: District) -> None:
        codes = {d.code for d in district.departments_in("xinhua")}

        assert codes == {"kangle", "xinhua_police"}

    def test_category_lookup_and_kinds(self, district: District) -> None:
        flying_wire = district.category("flying_wire")

        assert flying_wire is not None
        assert flying_wire.kind is CategoryKind.REPORT
        assert flying_wire.department == "cgzf"
        assert district.category("nope") is None
        helps = district.categories_of_kind(CategoryKind.HELP)
        assert [c.code for c in helps] == ["errands", "hospital_escort", "home_repair"]
        assert district.categories_of_kind("say") == district.categories_of_kind(CategoryKind.SAY)
        assert all(c.department is None for c in helps)

    def test_people(self, district: District) -> None:
        head = district.person(100000001)

        assert head is not None
        assert head.has_role(Role.CENTER_HEAD)
        assert district.person(42) is None
        assert [p.telegram_id for p in district.people_with_role("admin")] == [
            100000002,
            100000005,
            100000006,
        ]
        assert district.people_with_role(Role.LEADER)[0].name == "赵志刚"
        assert [p.name for p in district.people_of_department("cgzf")] == ["陈海涛"]

    def test_unit_by_chat(self, district: District) -> None:
        assert isinstance(district.unit_by_chat(-1001000000001), GovernanceCenter)
        street_office = district.unit_by_chat(-1001000000011)
        assert isinstance(street_office, StreetOffice)
        assert street_office.code == "xinhua"
        department = district.unit_by_chat(-1001000000021)
        assert isinstance(department, Department)
        assert department.code == "cgzf"
        # Volunteer and supervision groups are not units that handle cases.
        assert district.unit_by_chat(-1001000000041) is None
        assert district.unit_by_chat(-1001000000002) is None
        assert district.unit_by_chat(-1009999999999) is None

    def test_volunteer_chat_prefers_the_community_group(self, district: District) -> None:
        assert district.volunteer_chat_for("kangle") == -1001000000041
        assert district.volunteer_chat_for("xinhua_community") == -1001000000003
        assert district.volunteer_chat_for() == -1001000000003

    def test_configured_chat_ids_are_unique(self, district: District) -> None:
        chat_ids = district.configured_chat_ids()

        assert len(chat_ids) == len(set(chat_ids))
        assert -1001000000001 in chat_ids
        assert -1001000000041 in chat_ids

    def test_case_number(self, district: District) -> None:
        assert district.case_number(123) == "HB-000123"
        assert district.case_number(1234567) == "HB-1234567"
        with pytest.raises(ValueError, match="negative"):
            district.case_number(-1)

    def test_models_are_frozen_and_hashable(self, district: District) -> None:
        department = district.department("cgzf")
        assert department is not None

        with pytest.raises(pydantic.ValidationError):
            department.code = "other"  # type: ignore[misc]
        assert hash(department) == hash(district.department("cgzf"))
        assert len({*district.departments}) == len(district.departments)

    def test_loading_twice_gives_equal_districts(self, district: District) -> None:
        assert load_district(EXAMPLE_DISTRICT_PATH) == district

    def test_dump_validates_again(self, district: District) -> None:
        dumped = district.model_dump(mode="json")

        assert dumped["departments"][0]["names"] == {
            "zh-Hans": "城市管理综合执法局",
            "en": "Urban Management and Law Enforcement Bureau",
            "mn-Mong": district.departments[0].names.get("mn-Mong"),
        }
        assert District.model_validate(dumped) == district


class TestBundling:
    def test_defaults_when_the_table_is_left_out(self, tmp_path: Path) -> None:
        bundling = load_text(tmp_path, MINIMAL).bundling

        assert (bundling.distance_m, bundling.window_days) == (250, 30)

    def test_values_are_read(self, tmp_path: Path) -> None:
        text = MINIMAL + "\n[bundling]\ndistance_m = 100\nwindow_days = 7\n"

        bundling = load_text(tmp_path, text).bundling

        assert (bundling.distance_m, bundling.window_days) == (100, 7)

    @pytest.mark.parametrize(
        ("line", "key", "message"),
        [
            ("distance_m = 0", "bundling.distance_m", "greater than or equal to 1"),
            ("distance_m = 250.5", "bundling.distance_m", "expected an integer"),
            ("window_days = 400", "bundling.window_days", "less than or equal to 365"),
            ('window_days = "30"', "bundling.window_days", "expected an integer"),
            ("radius = 100", "bundling.radius", "unknown key 'radius'"),
        ],
    )
    def test_bad_values_name_key_and_line(
        self, tmp_path: Path, line: str, key: str, message: str
    ) -> None:
        text = MINIMAL + f"\n[bundling]\n{line}  # <-\n"

        error = only_problem(tmp_path, text)

        assert error.key == key
        assert error.line == marked_line(text)
        assert message in error.message


class TestLoadingAndPaths:
    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(DistrictError) as caught:
            load_district(tmp_path / "absent.toml")

        assert caught.value.line is None
        assert caught.value.message == "district file not found"

    def test_configured_path_is_used(self, tmp_path: Path) -> None:
        path = tmp_path / "haibowan.toml"
        path.write_text(MINIMAL, encoding="utf-8")

        assert resolve_district_path(str(path)) == path

    def test_configured_path_must_exist(self, tmp_path: Path) -> None:
        with pytest.raises(DistrictError, match="not found"):
            resolve_district_path(str(tmp_path / "absent.toml"))

    def test_local_config_toml_comes_next(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        (tmp_path / "config.toml").write_text(MINIMAL, encoding="utf-8")
        monkeypatch.chdir(tmp_path)

        assert resolve_district_path(None) == tmp_path / "config.toml"

    def test_shipped_example_is_the_last_resort(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(tmp_path)

        assert resolve_district_path(None) == EXAMPLE_DISTRICT_PATH
        assert load_district(resolve_district_path(None)).case_prefix == "HB"
