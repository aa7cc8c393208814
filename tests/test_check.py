"""``rsu check``: a race built to hold each problem class finds each; a clean race passes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from export_helpers import (
    CLEAN,
    MARATHON,
    RACE,
    RELAY,
    add_participant,
    make_db,
    person,
    set_participant,
)
from typer.testing import CliRunner

from rsu.cli.main import app
from rsu.export.check import age_on

PROBLEMS = [
    person(701, MARATHON, gender=None),
    person(702, MARATHON, dob=None, age=30),
    person(703, MARATHON, dob=None, age=None),
    person(704, MARATHON, dob="1990-04-05", age=35),
    person(705, MARATHON, bib_num="20"),
    person(706, RELAY, bib_num="20"),
    person(707, RELAY, bib_num="31", team_id=30, team_name="Bolt", team_type="Relay"),
    person(708, RELAY, bib_num="32", team_id=30, team_name="Bolt", team_type="Relay"),
    person(709, MARATHON, bib_num="A12"),
    person(710, MARATHON, chip_num="C" * 41),
    person(711, MARATHON, first_name=" Ann"),
    person(712, MARATHON, last_name="Van  Dyke"),
]


def check(db: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["check", "--db", str(db), "--race", str(RACE), *args])


def findings(res: Any) -> list[tuple[str, str, int]]:
    doc = json.loads(res.stdout)
    return [(f["severity"], f["problem"], f["registration_id"]) for f in doc["findings"]]


def test_a_clean_race_passes(tmp_path: Path) -> None:
    db = make_db(tmp_path / "rsu.db", CLEAN)
    for args in ((), ("--for", "raceresult"), ("--for", "mylaps")):
        res = check(db, *args)
        assert res.exit_code == 0, res.stdout
        assert "4 registrations, 0 errors, 0 warnings: ready for timing" in res.stdout
    res = check(db, "--json")
    assert res.exit_code == 0
    assert json.loads(res.stdout) == {
        "timing_partner_id": 7,
        "race_id": RACE,
        "target": None,
        "registrations": 4,
        "last_export_id": None,
        "ok": True,
        "errors": 0,
        "warnings": 0,
        "findings": [],
    }


def test_each_problem_class_is_found(tmp_path: Path) -> None:
    db = make_db(tmp_path / "rsu.db", CLEAN + PROBLEMS)
    res = check(db, "--json", "--for", "raceresult")
    assert res.exit_code == 1
    assert findings(res) == [
        ("error", "bib_target", 709),
        ("error", "chip_target", 710),
        ("error", "duplicate_bib", 705),
        ("error", "duplicate_bib", 706),
        ("error", "missing_dob", 703),
        ("error", "missing_gender", 701),
        ("error", "team_bib_missing", 707),
        ("error", "team_bib_missing", 708),
        ("warning", "age_mismatch", 704),
        ("warning", "missing_dob", 702),
        ("warning", "name_whitespace", 711),
        ("warning", "name_whitespace", 712),
    ]
    details = {
        (f["problem"], f["registration_id"]): f["detail"]
        for f in json.loads(res.stdout)["findings"]
    }
    assert details[("bib_target", 709)] == "RACE RESULT: bib 'A12' is not a whole number"
    assert details[("duplicate_bib", 705)] == "bib 20 is also on registration(s) 706"
    assert details[("age_mismatch", 704)] == "age 35, but born 1990-04-05 is 36 on 2026-05-03"
    assert details[("name_whitespace", 712)] == "last name 'Van  Dyke' has stray whitespace"
    assert details[("team_bib_missing", 707)] == "relay team 'Bolt' has no team bib"


def test_a_bib_with_surrounding_spaces_is_the_same_bib(tmp_path: Path) -> None:
    """RunSignUp sent ``" 12 "`` on one registration and ``"12"`` on another: timing software
    trims both to bib 12, so they are a duplicate; a blank bib is no bib."""
    rows = [
        person(801, MARATHON, bib_num=" 12 "),
        person(802, MARATHON, bib_num="12"),
        person(803, MARATHON, bib_num=" "),
        person(804, MARATHON, bib_num="  "),
    ]
    db = make_db(tmp_path / "rsu.db", rows)
    res = check(db, "--json")
    doc = json.loads(res.stdout)
    dupes = sorted(
        (f["registration_id"], f["detail"])
        for f in doc["findings"]
        if f["problem"] == "duplicate_bib"
    )
    assert dupes == [
        (801, "bib 12 is also on registration(s) 802"),
        (802, "bib 12 is also on registration(s) 801"),
    ]
    assert res.exit_code == 1


def test_registrations_added_and_removed_after_the_last_export(tmp_path: Path) -> None:
    db = make_db(tmp_path / "rsu.db", CLEAN)
    res = CliRunner().invoke(
        app, ["export", "--db", str(db), "--race", str(RACE), "--format", "csv"]
    )
    assert res.exit_code == 0
    add_participant(db, person(713, MARATHON, bib_num="713"))
    set_participant(db, 501, removed_at="2026-04-02T00:00:00Z", removed_reason="removed")
    res = check(db, "--json")
    assert res.exit_code == 1
    assert findings(res) == [
        ("error", "added_after_export", 713),
        ("warning", "removed_after_export", 501),
    ]
    assert json.loads(res.stdout)["last_export_id"] == 1
    # the last export of another format does not count for --for
    assert check(db, "--for", "raceresult").exit_code == 0


def test_an_as_of_export_is_not_the_last_export(tmp_path: Path) -> None:
    """``rsu export --as-of T`` replays the past (here: before any registration); it is not what
    the timing software holds, so ``check`` and ``--since last`` keep comparing with the export
    before it (was: every registration "added after export")."""
    import sqlite3
    from dataclasses import replace

    from rsu.export import record

    db = make_db(tmp_path / "rsu.db", CLEAN)
    out = tmp_path / "start.csv"
    res = CliRunner().invoke(
        app, ["export", "--db", str(db), "--race", str(RACE), "--format", "csv", "-o", str(out)]
    )
    assert res.exit_code == 0, res.output
    conn = sqlite3.connect(db)
    first = record.last_export(conn, 7, RACE)
    assert first is not None
    past = replace(first, as_of="2020-01-01T00:00:00Z", journal_seq=0, row_count=0)
    record.save_export(conn, past, [])
    assert record.last_export(conn, 7, RACE) == first
    assert record.last_export(conn, 7, RACE, "csv", ()) == first
    conn.close()
    res = check(db, "--json")
    assert (res.exit_code, json.loads(res.stdout)["last_export_id"]) == (0, first.export_id)


def test_the_table_shows_data_as_text_never_markup(tmp_path: Path) -> None:
    db = make_db(
        tmp_path / "rsu.db", [person(801, MARATHON, gender=None, first_name="[bold red]X[/]")]
    )
    res = check(db)
    assert res.exit_code == 1
    assert "[bold red]X[/]" in res.stdout
    assert "missing_gender" in res.stdout
    assert "1 registrations, 1 errors, 0 warnings: NOT ready for timing" in res.stdout


def test_unknown_race_or_target_is_a_usage_error(tmp_path: Path) -> None:
    db = make_db(tmp_path / "rsu.db", CLEAN)
    assert check(db, "--for", "excel").exit_code == 2
    res = CliRunner().invoke(app, ["check", "--db", str(db), "--race", "9"])
    assert res.exit_code == 2
    assert "race 9 is not in the database" in res.stderr


@pytest.mark.parametrize(
    ("dob", "day", "age"),
    [
        ("1990-05-03", "2026-05-03", 36),
        ("1990-05-04", "2026-05-03", 35),
        ("2000-02-29", "2026-02-28", 25),
        ("x", "2026-01-01", None),
    ],
)
def test_age_on(dob: str, day: str, age: int | None) -> None:
    assert age_on(dob, day) == age
