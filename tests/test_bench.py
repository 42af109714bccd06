"""The benchmark command (``python -m bench``) at tiny sizes: it runs, files what it says it
files, and writes its table and JSON. The figures themselves are not checked (no timing
assertions); only that they are there and positive."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import intake, mini_app
from bench.__main__ import main


async def test_intake_files_one_case_per_report(database_url: str) -> None:
    figures = await intake.measure(database_url, cases=3, profile_cases=1, warm_cases=1)

    result = figures.to_dict()
    assert result["cases"] == 3
    assert result["updates"] == 3 * intake.UPDATES_PER_CASE
    # Warm-up, timed and profiled reports: each one case, with its audit events and messages.
    assert result["rows"]["cases"] == 4
    assert result["rows"]["case_events"] >= 2 * 4  # submitted, dispatched
    assert result["rows"]["outbox"] > 4
    assert result["cases_per_second"] > 0
    assert result["baseline_cases_per_second"] > 0
    assert result["ratio"] > 0
    assert result["statements_per_case"] > 0
    assert result["profile"] and sum(result["layers"].values()) > 0.99


def test_the_command_prints_a_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["--quick", "--only", "intake,scan,keywords", "--no-postgres", "--results", str(tmp_path)]
    )

    assert code == 0
    latest = json.loads((tmp_path / "latest.json").read_text(encoding="utf-8"))
    [dated] = tmp_path.glob("bench-*.json")
    assert json.loads(dated.read_text(encoding="utf-8")) == latest
    assert (tmp_path / "intake-profile-sqlite.txt").read_text(encoding="utf-8")

    assert latest["intake"]["sqlite"]["cases"] > 0
    assert latest["intake"]["sqlite"]["ratio"] > 0
    scan = latest["scan"]["sqlite"]
    # Both scans fire the same rungs; only the open cases around them differ.
    assert scan["rungs_fired"] == {"small": scan["due_rungs"], "large": scan["due_rungs"]}
    assert scan["large_open_cases"] > scan["small_open_cases"]
    assert scan["small_median_seconds"] > 0 and scan["ratio"] > 0
    assert latest["keywords"]["texts_per_second"] > 0

    figures = [row["figure"] for row in latest["table"]]
    assert any(f.startswith("intake, SQLite") for f in figures)
    assert any(f.startswith("scan, SQLite") for f in figures)
    assert any(f.startswith("keywords") for f in figures)
    assert {row["result"] for row in latest["table"]} <= {"pass", "FAIL", "—"}
    printed = capsys.readouterr().out
    assert "intake, SQLite" in printed and "target" in printed


def test_durability_measures_both_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--quick", "--only", "durability", "--no-postgres", "--results", str(tmp_path)])

    assert code == 0
    latest = json.loads((tmp_path / "latest.json").read_text(encoding="utf-8"))
    found = latest["durability"]
    assert set(found["commit_ms"]) == {"full", "normal"}
    assert all(ms > 0 for ms in found["commit_ms"].values())
    assert all(rate > 0 for rate in found["intake_cases_per_second"].values())
    assert found["commit_ratio_full_to_normal"] > 0
    printed = capsys.readouterr().out
    assert "durability, SQLite: ms per commit" in printed
    assert "durability, SQLite: intake cases/s" in printed


async def test_a_report_filed_in_the_mini_app_costs_two_bot_api_calls(database_url: str) -> None:
    """The budget behind the Mini App's bench figure: a one-photo report filed in the form
    costs the department's card (its photo with the card as caption) and the chat's receipt,
    nothing else; the same report through the chat dialog costs the dialog's messages, its
    edits and its button answers besides."""
    figures = await mini_app.measure(database_url, residents=2)

    assert figures.app.reports == figures.chat.reports == 2
    assert dict(figures.app.calls) == {"sendPhoto": 2, "sendMessage": 2}
    assert figures.chat.calls["sendPhoto"] == 2  # the same card
    assert figures.chat.calls["answerCallbackQuery"] == 4  # category and Confirm presses
    assert figures.chat.per_report > figures.app.per_report
