"""Untrusted text in exports: spreadsheet formulas (``=cmd|' /C calc'!A0``) and control
characters (``ESC [2J``) are values no delimited target takes. ``rsu export`` names each and
writes nothing unless ``--allow`` says how to handle them; ``rsu check --for`` finds the same
through the same profile rule; NDJSON takes control characters, escaped."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from export_helpers import CLEAN, DATA, EVENT_ROWS, MARATHON, RACE, make_db, person
from typer.testing import CliRunner

from rsu.cli.main import app
from rsu.export.profiles import formula_start, is_formula

HOSTILE = [
    person(801, MARATHON, last_name="=cmd|' /C calc'!A0"),
    person(802, MARATHON, first_name="+SUM(1,2)"),
    person(803, MARATHON, team_id=40, team_name="@SUM(A1)", team_type="Club"),
    person(804, MARATHON, last_name="Doe\x1b[2J", city="Austin\u202e"),
    # harmless: a lone dash, a number, a negative number, a phone number
    person(805, MARATHON, last_name="-", street="+1", city="-5", phone="+1 (555) 010-1234"),
]

FORMULA_TAIL = "a spreadsheet would run it as a formula"


def export(db: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["export", "--db", str(db), "--race", str(RACE), *args])


def check_json(db: Path, target: str) -> Any:
    return CliRunner().invoke(
        app, ["check", "--db", str(db), "--race", str(RACE), "--for", target, "--json"]
    )


def exports_count(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM exports").fetchone()[0])
    finally:
        conn.close()


@pytest.fixture
def hostile_db(tmp_path: Path) -> Path:
    return make_db(tmp_path / "rsu.db", HOSTILE)


def test_formulas_and_control_characters_are_named_and_nothing_is_written(
    hostile_db: Path, tmp_path: Path
) -> None:
    out = tmp_path / "rr.csv"
    res = export(hostile_db, "--format", "raceresult", "-o", str(out))
    assert res.exit_code == 1
    who = "RACE RESULT cannot take: registration"
    assert res.stderr.splitlines() == [
        f"{who} 801 (event 1001, First801 =cmd|' /C calc'!A0): "
        f"Lastname \"=cmd|' /C calc'!A0\" starts with '=': {FORMULA_TAIL}",
        f"{who} 802 (event 1001, +SUM(1,2) Last802): "
        f"Firstname '+SUM(1,2)' starts with '+': {FORMULA_TAIL}",
        f"{who} 803 (event 1001, First803 Last803): "
        f"Club '@SUM(A1)' starts with '@': {FORMULA_TAIL}",
        # the escape is shown escaped; the name around it has it replaced (never raw ESC)
        f"{who} 804 (event 1001, First804 Doe\ufffd[2J): "
        "Lastname 'Doe\\x1b[2J' holds control characters (U+001B)",
        f"{who} 804 (event 1001, First804 Doe\ufffd[2J): "
        "City 'Austin\\u202e' holds control characters (U+202E)",
        "error: 4 registration(s) hold values RACE RESULT cannot take; nothing was written. "
        "Fix them in RunSignUp and sync, or pass --allow skip-row or --allow blank-value "
        "(--allow quote-formula for formulas).",
    ]
    assert not out.exists()
    assert exports_count(hostile_db) == 0


@pytest.mark.parametrize(
    ("allow", "expected", "stderr"),
    [
        (
            ["skip-row"],
            "hostile-skip-row.csv",
            ["skipped: registration 801", "skipped: registration 802"]
            + ["skipped: registration 803"]
            + ["skipped: registration 804"] * 2,
        ),
        (
            ["blank-value"],
            "hostile-blank-value.csv",
            [
                "Lastname written empty: registration 801",
                "Firstname written empty: registration 802",
                "Club written empty: registration 803",
                "Lastname written empty: registration 804",
                "City written empty: registration 804",
            ],
        ),
        (
            ["quote-formula", "skip-row"],
            "hostile-quote-formula.csv",
            [
                "Lastname quoted: registration 801",
                "Firstname quoted: registration 802",
                "Club quoted: registration 803",
                "skipped: registration 804",
                "skipped: registration 804",
            ],
        ),
    ],
)
def test_each_allow_choice_writes_exactly_the_expected_file(
    hostile_db: Path, tmp_path: Path, allow: list[str], expected: str, stderr: list[str]
) -> None:
    out = tmp_path / "rr.csv"
    args = [a for choice in allow for a in ("--allow", choice)]
    res = export(hostile_db, "--format", "raceresult", "-o", str(out), *args)
    assert res.exit_code == 0, res.stderr
    assert out.read_bytes() == (DATA / expected).read_bytes()
    named = res.stderr.splitlines()[:-1]
    assert [line[: len(want)] for line, want in zip(named, stderr, strict=True)] == stderr


def test_quote_formula_alone_still_refuses_control_characters(hostile_db: Path) -> None:
    res = export(hostile_db, "--format", "raceresult", "--allow", "quote-formula")
    assert res.exit_code == 1
    assert res.stdout == ""
    assert [line.split(":")[0] for line in res.stderr.splitlines()] == [
        "RACE RESULT cannot take",
        "RACE RESULT cannot take",
        "error",
    ]
    assert "registration 804" in res.stderr and "registration 801" not in res.stderr
    assert exports_count(hostile_db) == 0


def test_skip_row_with_blank_value_is_a_usage_error(hostile_db: Path) -> None:
    res = export(hostile_db, "--format", "csv", "--allow", "skip-row", "--allow", "blank-value")
    assert res.exit_code == 2
    assert "skip-row or blank-value, not both" in res.stderr


# (problem, registration) that each delimited format finds; mylaps writes one ``name`` column
# (first and last): "First801 =cmd..." does not start a cell, and it has no team column.
FOUND = {
    "csv": [
        ("control_character", 804, "last_name"),
        ("control_character", 804, "city"),
        ("spreadsheet_formula", 801, "last_name"),
        ("spreadsheet_formula", 802, "first_name"),
        ("spreadsheet_formula", 803, "team_name"),
    ],
    "raceresult": [
        ("control_character", 804, "Lastname"),
        ("control_character", 804, "City"),
        ("spreadsheet_formula", 801, "Lastname"),
        ("spreadsheet_formula", 802, "Firstname"),
        ("spreadsheet_formula", 803, "Club"),
    ],
    "opensplittime": [
        ("control_character", 804, "last_name"),
        ("control_character", 804, "city"),
        ("spreadsheet_formula", 801, "last_name"),
        ("spreadsheet_formula", 802, "first_name"),
    ],
    "webscorer": [
        ("control_character", 804, "Last name"),
        ("spreadsheet_formula", 801, "Last name"),
        ("spreadsheet_formula", 802, "First name"),
        ("spreadsheet_formula", 803, "Team name"),
    ],
    "mylaps": [
        ("control_character", 804, "name"),
        ("spreadsheet_formula", 802, "name"),
    ],
}


@pytest.mark.parametrize("fmt", FOUND)
def test_export_and_check_find_the_same_in_every_delimited_format(
    hostile_db: Path, tmp_path: Path, fmt: str
) -> None:
    res = check_json(hostile_db, fmt)
    assert res.exit_code == 1
    found = [
        (f["problem"], f["registration_id"], f["detail"].split(": ", 1)[1].split(" ")[0])
        for f in json.loads(res.stdout)["findings"]
    ]
    # the column is the first word of the detail; "Last name" and "First name" are two words
    want = [(p, r, c.split(" ")[0]) for p, r, c in FOUND[fmt]]
    assert found == want
    out = tmp_path / "out"
    res = export(hostile_db, "--format", fmt, "-o", str(out))
    assert res.exit_code == 1
    assert len(res.stderr.splitlines()) == len(FOUND[fmt]) + 1
    assert not out.exists()


def test_check_names_each_class(hostile_db: Path) -> None:
    res = check_json(hostile_db, "raceresult")
    details = {
        (f["problem"], f["registration_id"], f["detail"])
        for f in json.loads(res.stdout)["findings"]
    }
    assert (
        "spreadsheet_formula",
        803,
        f"RACE RESULT: Club '@SUM(A1)' starts with '@': {FORMULA_TAIL}",
    ) in details
    assert (
        "control_character",
        804,
        "RACE RESULT: Lastname 'Doe\\x1b[2J' holds control characters (U+001B)",
    ) in details


def test_json_takes_control_characters_escaped_and_formulas_as_they_are(
    hostile_db: Path,
) -> None:
    res = export(hostile_db, "--format", "json")
    assert res.exit_code == 0, res.stderr
    raw = res.stdout_bytes
    assert b"\x1b" not in raw and "\u202e".encode() not in raw
    rows = [json.loads(line) for line in raw.decode("utf-8").splitlines()]
    assert [(r["first_name"], r["last_name"], r["team_name"], r["city"]) for r in rows] == [
        ("First801", "=cmd|' /C calc'!A0", None, None),
        ("+SUM(1,2)", "Last802", None, None),
        ("First803", "Last803", "@SUM(A1)", None),
        ("First804", "Doe\x1b[2J", None, "Austin\u202e"),
        ("First805", "-", None, "-5"),
    ]
    assert (
        '"last_name":"Doe\\u001b[2J"' in raw.decode() and '"city":"Austin\\u202e"' in raw.decode()
    )


def test_a_hostile_event_name_is_named_on_every_row_of_its_event(tmp_path: Path) -> None:
    events = [dict(EVENT_ROWS[0], name="Marathon\x1b]0;owned\x07"), EVENT_ROWS[1]]
    db = make_db(tmp_path / "rsu.db", CLEAN, events=events)
    res = export(db, "--format", "csv")
    assert res.exit_code == 1
    assert res.stderr.splitlines()[:2] == [
        "CSV cannot take: registration 502 (event 1001, Jos\u00e9 M\u00fcller, Jr.): event_name "
        "'Marathon\\x1b]0;owned\\x07' holds control characters (U+0007, U+001B)",
        "CSV cannot take: registration 501 (event 1001, Jane Doe): event_name "
        "'Marathon\\x1b]0;owned\\x07' holds control characters (U+0007, U+001B)",
    ]
    # skip-row leaves the marathon out; the relay's rows are fine
    res = export(db, "--format", "csv", "--allow", "skip-row")
    assert res.exit_code == 0
    assert [line[:4] for line in res.stdout.splitlines()[1:]] == ["503,", "504,"]
    # mylaps writes no event name: nothing to refuse
    assert export(db, "--format", "mylaps").exit_code == 0


def test_a_tab_in_a_name_is_refused_by_the_tab_separated_target(tmp_path: Path) -> None:
    db = make_db(tmp_path / "rsu.db", [person(901, MARATHON, last_name="Van\tDyke")])
    res = export(db, "--format", "webscorer")
    assert res.exit_code == 1
    assert "Last name 'Van\\tDyke' holds control characters (U+0009)" in res.stderr


def test_a_change_report_checks_its_old_and_new_values(tmp_path: Path) -> None:
    db = make_db(tmp_path / "rsu.db", CLEAN)
    assert export(db, "--format", "csv", "-o", str(tmp_path / "a.csv")).exit_code == 0
    conn = sqlite3.connect(db)
    conn.execute(
        "UPDATE runsignup_participants SET last_name = '=HYPERLINK(\"http://x\")' "
        "WHERE registration_id = 501"
    )
    conn.commit()
    conn.close()
    res = export(db, "--format", "csv", "--since", "last")
    assert res.exit_code == 1
    assert [line.split(": ")[2].split(" ")[0] for line in res.stderr.splitlines()[:-1]] == [
        "last_name"
    ]
    res = export(db, "--format", "csv", "--since", "last", "--allow", "quote-formula")
    assert res.exit_code == 0, res.stderr
    assert [line.split(":")[0] for line in res.stderr.splitlines()[:-1]] == [
        "last_name quoted",  # the row's own column
        "new quoted",  # the change line's new value
    ]
    lines = list(csv.reader(io.StringIO(res.stdout)))
    assert lines[1][:6] == [
        "changed",
        "501",
        "1001",
        "last_name",
        "Doe",
        '\'=HYPERLINK("http://x")',
    ]
    assert lines[1][lines[0].index("last_name")] == '\'=HYPERLINK("http://x")'
    # fixed in RunSignUp: the row is clean now, but the change line's old value is the formula
    conn = sqlite3.connect(db)
    conn.execute("UPDATE runsignup_participants SET last_name = 'Doe' WHERE registration_id = 501")
    conn.commit()
    conn.close()
    res = export(db, "--format", "csv", "--since", "last")
    assert res.exit_code == 1
    assert res.stderr.splitlines()[0] == (
        "CSV cannot take: registration 501 (event 1001, Jane Doe): old "
        "'=HYPERLINK(\"http://x\")' starts with '=': a spreadsheet would run it as a formula"
    )
    res = export(db, "--format", "csv", "--since", "last", "--allow", "blank-value")
    assert res.exit_code == 0, res.stderr
    assert list(csv.reader(io.StringIO(res.stdout)))[1][:6] == [
        "changed",
        "501",
        "1001",
        "last_name",
        "",
        "Doe",
    ]


@pytest.mark.parametrize(
    ("text", "formula"),
    [
        ("-5", False),
        ("+1", False),
        ("-0.5", False),
        ("+1,5", False),
        ("+1 (555) 010-1234", False),
        ("-", False),
        ("Smith-Jones", False),
        ("O'Neil", False),
        ("", False),
        ("=1+1", True),
        ("=cmd|' /C calc'!A0", True),
        ("+SUM(1,2)", True),
        ("-2+3+cmd|' /C calc'!A0", True),
        ("@SUM(A1)", True),
        ("-A1", True),
        ("+1e5", True),
        ("\t=1", True),
        ("\r=1", True),
        # leading blanks and fullwidth forms (U+FF1D U+FF0B U+FF0D U+FF20)
        (" =1+1", True),
        ("  \t @SUM(A1)", True),
        (" -A1", True),
        ("\uff1d1+1", True),
        ("\uff0bSUM(1,2)", True),
        ("\uff0dA1", True),
        ("\uff20SUM(A1)", True),
        (" \uff1dcmd|' /C calc'!A0", True),
        ("  -5", False),
        (" +1 (555) 010-1234", False),
        ("\uff0d5", False),
        ("   ", False),
        (" Smith", False),
    ],
)
def test_what_is_a_formula(text: str, formula: bool) -> None:
    assert is_formula(text) is formula


@pytest.mark.parametrize(
    ("text", "start"),
    [
        ("=1", "="),
        ("  =1", "  ="),
        (" \t@SUM(A1)", " \t@"),
        ("\uff1d1", "\uff1d"),
        (" \uff20SUM(A1)", " \uff20"),
        ("\t-5", "\t"),
        (" -5", ""),
        ("Doe", ""),
    ],
)
def test_the_start_that_makes_a_formula(text: str, start: str) -> None:
    assert formula_start(text) == start


def test_blank_led_and_fullwidth_formulas_are_refused_and_quoted(tmp_path: Path) -> None:
    db = make_db(
        tmp_path / "rsu.db",
        [
            person(811, MARATHON, last_name="  =cmd|' /C calc'!A0"),
            person(812, MARATHON, first_name="\uff0bSUM(1,2)"),
            person(813, MARATHON, team_id=41, team_name=" \uff20SUM(A1)", team_type="Club"),
            person(814, MARATHON, last_name=" Smith", city="  -5"),  # harmless
        ],
    )
    res = export(db, "--format", "raceresult")
    assert res.exit_code == 1
    who = "RACE RESULT cannot take: registration"
    assert res.stderr.splitlines()[:-1] == [
        f"{who} 811 (event 1001, First811   =cmd|' /C calc'!A0): "
        f"Lastname \"  =cmd|' /C calc'!A0\" starts with '  =': {FORMULA_TAIL}",
        f"{who} 812 (event 1001, \uff0bSUM(1,2) Last812): "
        f"Firstname '\uff0bSUM(1,2)' starts with '\uff0b': {FORMULA_TAIL}",
        f"{who} 813 (event 1001, First813 Last813): "
        f"Club ' \uff20SUM(A1)' starts with ' \uff20': {FORMULA_TAIL}",
    ]
    res = export(db, "--format", "raceresult", "--allow", "quote-formula")
    assert res.exit_code == 0, res.stderr
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert [(r["Firstname"], r["Lastname"], r["Club"], r["City"]) for r in rows] == [
        ("First811", "'  =cmd|' /C calc'!A0", "", ""),
        ("'\uff0bSUM(1,2)", "Last812", "", ""),
        ("First813", "Last813", "' \uff20SUM(A1)", ""),
        ("First814", " Smith", "", "  -5"),
    ]


@pytest.mark.parametrize(
    ("text", "codes"),
    [
        ("\x00", ["U+0000"]),
        ("a\x7f", ["U+007F"]),
        ("\x9b2J", ["U+009B"]),  # a one-byte CSI
        ("a\u2028b", ["U+2028"]),
        ("\u061c\u200e\u200f", ["U+061C", "U+200E", "U+200F"]),
        ("\u2066x\u2069", ["U+2066", "U+2069"]),
        ("a\nb\r", ["U+000A", "U+000D"]),
        ("Ja\u200bne\ufeff\xad", ["U+00AD", "U+200B", "U+FEFF"]),
        ("x\U000e0041", ["U+E0041"]),
        ("\U0001f469\u200d\U0001f4bb \u0645\u06cc\u200c\u062e", []),  # the joiners are kept
        ("Jos\u00e9 \u00a0M\u00fcller \u5c71\u7530 \u05db\u05d4\u05df", []),
    ],
)
def test_which_characters_are_control_characters(text: str, codes: list[str]) -> None:
    from rsu.export.profiles import control_characters

    assert control_characters(text) == codes


def test_json_escapes_invisible_format_characters_as_valid_json(tmp_path: Path) -> None:
    name = "Ann\u200b\U000e0041\u200e"
    db = make_db(tmp_path / "rsu.db", [person(807, MARATHON, first_name=name)])
    res = export(db, "--format", "json")
    assert res.exit_code == 0, res.stderr
    assert '"first_name":"Ann\\u200b\\udb40\\udc41\\u200e"' in res.stdout
    assert json.loads(res.stdout)["first_name"] == name


def test_check_json_never_prints_a_raw_bidi_control(tmp_path: Path) -> None:
    db = make_db(tmp_path / "rsu.db", [person(806, MARATHON, first_name="Ann\u202e")])
    res = check_json(db, "csv")
    assert res.exit_code == 1
    assert "\u202e" not in res.stdout
    [finding] = json.loads(res.stdout)["findings"]
    assert (finding["problem"], finding["name"]) == ("control_character", "Ann\u202e Last806")
