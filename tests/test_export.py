"""``rsu export``: every format against its hand-written expected file, values a target cannot
take, the exports record, ``--since`` change reports (on a hand-built projection)."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from export_helpers import (
    CLEAN,
    DATA,
    MARATHON,
    RACE,
    RELAY,
    add_participant,
    make_db,
    person,
    set_participant,
)
from project_helpers import Builder, new_journal
from typer.testing import CliRunner

from rsu.cli.main import app
from rsu.export.diff import Change, diff
from rsu.export.selection import RemovedRow, start_list

FORMATS = {
    "csv": "csv.csv",
    "json": "json.ndjson",
    "raceresult": "raceresult.csv",
    "opensplittime": "opensplittime.csv",
    "webscorer": "webscorer.txt",
    "mylaps": "mylaps.csv",
}


def export(db: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["export", "--db", str(db), "--race", str(RACE), *args])


def exports_table(db: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM exports ORDER BY export_id")]
    finally:
        conn.close()


@pytest.fixture
def clean_db(tmp_path: Path) -> Path:
    return make_db(tmp_path / "rsu.db", CLEAN)


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_matches_its_expected_file(clean_db: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"out.{fmt}"
    res = export(clean_db, "--format", fmt, "-o", str(out))
    assert res.exit_code == 0, res.stderr
    got = out.read_bytes()
    assert out.stat().st_mode & 0o777 == 0o600  # personal data: private like the database
    expected = (DATA / FORMATS[fmt]).read_text(encoding="utf-8")
    if fmt == "webscorer":  # UTF-16 little endian with BOM, CRLF lines
        assert got[:2] == b"\xff\xfe"
        assert got[2:] == expected.replace("\n", "\r\n").encode("utf-16-le")
    else:
        assert got == expected.encode("utf-8")
    [rec] = exports_table(clean_db)
    assert rec == {
        "export_id": 1,
        "created_utc": rec["created_utc"],
        "timing_partner_id": 7,
        "race_id": RACE,
        "event_ids": "[]",
        "format": fmt,
        "since_export_id": None,
        "as_of": None,
        "journal_seq": 0,
        "row_count": 4,
        "sha256": hashlib.sha256(got).hexdigest(),
        "output": str(out),
    }
    assert f"export 1: 4 rows of race {RACE} as {fmt}" in res.stderr


def test_stdout_and_one_event(clean_db: Path) -> None:
    res = export(clean_db, "--format", "mylaps", "--event", str(RELAY))
    assert res.exit_code == 0, res.stderr
    assert res.stdout == (
        "id,name,bib,chip,gender,birthdate\n"
        "503,Ann Lee,50,,F,2000-01-01\n"
        "504,Bo Lee,50,,X,2001-06-30\n"
    )
    assert exports_table(clean_db)[0]["event_ids"] == f"[{RELAY}]"


def test_removed_registrations_never_appear_and_relay_legs_share_the_team_bib(
    clean_db: Path,
) -> None:
    conn = sqlite3.connect(clean_db)
    try:
        rows = start_list(conn, 7, RACE)
    finally:
        conn.close()
    assert [(r.registration_id, r.bib_num, r.team_bib) for r in rows] == [
        (502, "7", None),
        (501, "12", None),
        (503, "50", "50"),
        (504, "50", "50"),
    ]


BAD = [
    person(601, MARATHON, bib_num="A12"),
    person(602, MARATHON, bib_num="007"),
    person(603, MARATHON, bib_num="603", chip_num="C" * 41),
    person(604, MARATHON, bib_num="604", gender=None, first_name="Kim", last_name="Ng"),
    person(605, MARATHON, bib_num="605", chip_num="E" * 40),
    person(606, MARATHON, bib_num="606", chip_num="F606"),
]


def test_values_raceresult_cannot_take_are_named_and_nothing_is_written(tmp_path: Path) -> None:
    db = make_db(tmp_path / "rsu.db", BAD)
    out = tmp_path / "rr.csv"
    res = export(db, "--format", "raceresult", "-o", str(out))
    assert res.exit_code == 1
    assert res.stderr.splitlines() == [
        "RACE RESULT cannot take: registration 602 (event 1001, First602 Last602): "
        "bib '007' has a leading zero, which a whole-number bib would lose",
        "RACE RESULT cannot take: registration 603 (event 1001, First603 Last603): "
        f"chip '{'C' * 41}' is 41 characters, at most 40 fit",
        "RACE RESULT cannot take: registration 604 (event 1001, Kim Ng): no gender",
        "RACE RESULT cannot take: registration 601 (event 1001, First601 Last601): "
        "bib 'A12' is not a whole number",
        "error: 4 registration(s) hold values RACE RESULT cannot take; nothing was written. "
        "Fix them in RunSignUp and sync, or pass --allow skip-row or --allow blank-value.",
    ]
    assert not out.exists()
    assert exports_table(db) == []


@pytest.mark.parametrize(
    ("bib", "reason"),
    [
        ("123456789", None),
        ("007", "bib '007' has a leading zero, which a whole-number bib would lose"),
        (
            "99999999999999999999999",
            "bib '99999999999999999999999' has more than 9 digits, too many for a whole-number bib",
        ),
        ("\u0661\u0662", "bib '\u0661\u0662' is not a whole number"),
        ("\u00b2", "bib '\u00b2' is not a whole number"),
        (" 12 ", "bib ' 12 ' is not a whole number"),
    ],
)
def test_an_integer_bib_refusal_names_the_real_reason(bib: str, reason: str | None) -> None:
    """A bib of digits that is too long, or of non-ASCII digits, has no leading zero: the
    message must not claim one."""
    from rsu.export.profiles import integer_bib

    assert integer_bib(bib) == reason


def test_allow_skip_row_and_blank_value(tmp_path: Path) -> None:
    db = make_db(tmp_path / "rsu.db", BAD)
    res = export(db, "--format", "mylaps", "--allow", "skip-row")
    assert res.exit_code == 0
    assert (
        res.stdout
        == "id,name,bib,chip,gender,birthdate\n606,First606 Last606,606,F606,F,1990-04-05\n"
    )
    # mylaps: 605's 40-character chip is too long too (at most 16)
    assert [line.split(":")[0] for line in res.stderr.splitlines()[:-1]] == ["skipped"] * 5
    res = export(db, "--format", "raceresult", "--allow", "blank-value")
    assert res.exit_code == 0
    lines = res.stdout.splitlines()
    assert [[*line.split(",")[:4], line.split(",")[8]] for line in lines[1:]] == [
        ["", "Last602", "First602", "F", ""],
        ["603", "Last603", "First603", "F", ""],
        ["604", "Ng", "Kim", "", ""],
        ["605", "Last605", "First605", "F", "E" * 40],
        ["606", "Last606", "First606", "F", "F606"],
        ["", "Last601", "First601", "F", ""],
    ]
    assert "bib_num written empty: registration 601" in res.stderr
    assert [r["row_count"] for r in exports_table(db)] == [1, 6]


def test_usage_errors_exit_2(clean_db: Path) -> None:
    assert export(clean_db, "--format", "excel").exit_code == 2
    res = export(clean_db, "--format", "csv", "--event", "9")
    assert res.exit_code == 2
    assert "event(s) 9 are not in race 100 (its events: 1001, 1002)" in res.stderr
    res = export(clean_db, "--format", "csv", "--since", "last")
    assert res.exit_code == 2
    assert "no earlier csv export of race 100" in res.stderr
    res = export(clean_db, "--format", "csv", "--as-of", "yesterday")
    assert res.exit_code == 2
    assert "not an ISO 8601 time" in res.stderr
    res = CliRunner().invoke(app, ["export", "--db", str(clean_db), "--race", "5", "-f", "csv"])
    assert res.exit_code == 2
    assert "race 5 is not in the database" in res.stderr


def _csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_since_last_reports_every_kind_of_change(clean_db: Path, tmp_path: Path) -> None:
    assert export(clean_db, "--format", "csv", "-o", str(tmp_path / "a.csv")).exit_code == 0
    set_participant(clean_db, 501, bib_num="14", chip_num="ABC999", gender="M", dob="1990-04-06")
    set_participant(clean_db, 502, first_name="Jose", team_name="Club Fast", event_id=RELAY)
    set_participant(clean_db, 503, removed_at="2026-04-02T00:00:00Z", removed_reason="removed")
    set_participant(
        clean_db,
        504,
        removed_at="2026-04-02T00:00:00Z",
        removed_reason="transferred",
        new_registration_id=506,
    )
    add_participant(clean_db, person(506, RELAY, bib_num="51", first_name="Cy"))
    res = export(clean_db, "--format", "csv", "--since", "last", "-o", str(tmp_path / "b.csv"))
    assert res.exit_code == 0, res.stderr
    lines = _csv((tmp_path / "b.csv").read_text(encoding="utf-8"))
    head = ["change", "registration_id", "event_id", "field", "old", "new", "reason"]
    assert lines[0][:9] == [*head, "new_registration_id", "event_name"]
    assert [line[:8] for line in lines[1:]] == [
        ["changed", "501", "1001", "bib_num", "12", "14", "", ""],
        ["changed", "501", "1001", "chip_num", "ABC123", "ABC999", "", ""],
        ["changed", "501", "1001", "gender", "F", "M", "", ""],
        ["changed", "501", "1001", "dob", "1990-04-05", "1990-04-06", "", ""],
        ["changed", "502", "1002", "event_id", "1001", "1002", "", ""],
        ["changed", "502", "1002", "first_name", "José", "Jose", "", ""],
        ["changed", "502", "1002", "team_name", 'Club "Fast"', "Club Fast", "", ""],
        ["removed", "503", "1002", "", "", "", "refund", ""],
        ["removed", "504", "1002", "", "", "", "transfer", "506"],
        ["added", "506", "1002", "", "504", "", "transfer", ""],
    ]
    # the profile's columns carry the current values (empty for a removal)
    assert [line[8:12] for line in lines[1:]][-3:] == [
        ["", "", "", ""],
        ["", "", "", ""],
        ["Relay", "2026-05-03T07:30:00-05:00", "2026-05-03", "51"],
    ]
    recs = exports_table(clean_db)
    assert [(r["export_id"], r["since_export_id"], r["row_count"]) for r in recs] == [
        (1, None, 4),
        (2, 1, 10),
    ]
    # the next --since diffs against everything export 2 covered, not against its change lines
    set_participant(clean_db, 506, last_name="Lee")
    res = export(clean_db, "--format", "csv", "--since", "last")
    assert res.exit_code == 0
    assert [line[:6] for line in _csv(res.stdout)[1:]] == [
        ["changed", "506", "1002", "last_name", "Last506", "Lee"]
    ]
    assert exports_table(clean_db)[-1]["since_export_id"] == 2
    # --since EXPORT_ID diffs against that export
    res = export(clean_db, "--format", "csv", "--since", "1")
    assert len(_csv(res.stdout)) == 11  # header + the same 10 changes as export 2


def test_diff_reasons_deferral_cleared_and_not_selected() -> None:
    before: dict[int, dict[str, Any]] = {
        1: {"event_id": 5},
        2: {"event_id": 5},
        3: {"event_id": 5},
    }
    removed = {
        1: RemovedRow(1, 5, "deferred", None, "2026-04-01T00:00:00Z"),
        2: RemovedRow(2, 5, "cleared", None, "2026-04-01T00:00:00Z"),
    }
    assert diff(before, [], removed) == [
        Change("removed", 1, 5, reason="deferral"),
        Change("removed", 2, 5, reason="cleared"),
        Change("removed", 3, 5, reason="not selected"),
    ]


def test_a_webscorer_change_report_keeps_the_target_encoding(clean_db: Path) -> None:
    assert export(clean_db, "--format", "webscorer", "-o", os.devnull).exit_code == 0
    set_participant(clean_db, 501, bib_num="14")
    res = CliRunner().invoke(
        app,
        [
            "export",
            "--db",
            str(clean_db),
            "--race",
            str(RACE),
            "-f",
            "webscorer",
            "--since",
            "last",
        ],
    )
    assert res.exit_code == 0, res.stderr
    assert res.stdout_bytes[:2] == b"\xff\xfe"
    lines = res.stdout_bytes[2:].decode("utf-16-le").split("\r\n")
    assert lines[0].split("\t")[:8] == [
        "change",
        "registration_id",
        "event_id",
        "field",
        "old",
        "new",
        "reason",
        "new_registration_id",
    ]
    assert lines[1].split("\t") == [
        "changed",
        "501",
        "1001",
        "bib_num",
        "12",
        "14",
        "",
        "",
        "14",
        "Jane",
        "Doe",
        "F",
        "36",
        "",
        "Marathon",
        "ABC123",
        "jane@example.com",
        "501",
    ]
    assert lines[2:] == [""]


def test_a_race_synced_for_two_partners_needs_partner(tmp_path: Path) -> None:
    db = make_db(tmp_path / "rsu.db", CLEAN)
    make_db(db, [person(901, MARATHON)], partner=8)
    res = export(db, "--format", "csv")
    assert res.exit_code == 2
    assert "race 100 is synced for partners [7, 8]: pick one with --partner" in res.stderr
    res = export(db, "--format", "mylaps", "--partner", "8")
    assert res.exit_code == 0
    assert res.stdout.splitlines()[1:] == ["901,First901 Last901,901,,F,1990-04-05"]


def test_a_projection_behind_the_journal_is_named(clean_db: Path) -> None:
    jn = new_journal(clean_db)
    Builder(jn).run_started()
    jn.close()
    res = export(clean_db, "--format", "csv", "-o", os.devnull)
    assert res.exit_code == 0
    assert res.stderr.splitlines()[0] == (
        "warning: the tables reflect journal seq 0 of 1: run `rsu project` to export what was "
        "fetched since"
    )


def test_output_into_a_fifo_is_written_into_never_replaced(clean_db: Path, tmp_path: Path) -> None:
    """``-o /dev/null`` once replaced the device node with a regular file (as root): a path that
    is no regular file is written into; a symlink keeps pointing at its (replaced) target."""
    import stat
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    assert export(clean_db, "--format", "csv", "-o", str(fifo)).exit_code == 0
    reader.join(timeout=30)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert len(received) == 1 and received[0].count(b"\n") > 1

    real = tmp_path / "real.csv"
    real.write_bytes(b"old")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    assert export(clean_db, "--format", "csv", "-o", str(link)).exit_code == 0
    assert link.is_symlink() and link.resolve() == real
    assert real.read_bytes() != b"old" and real.read_bytes().count(b"\n") > 1


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("", "--output {tmp} is a directory; give a file name"),
        ("no/such/out.csv", "--output {tmp}/no/such/out.csv: folder {tmp}/no/such does not exist"),
    ],
)
def test_an_output_that_is_a_directory_or_in_a_missing_folder_is_a_usage_error(
    clean_db: Path, tmp_path: Path, where: str, message: str
) -> None:
    """``-o /tmp`` exited 1 after the export was built, while ``rsu backup -o /tmp`` and
    ``rsu sync --summary-file /tmp`` exit 2 up front: now export does too, recording nothing."""
    res = export(clean_db, "--format", "csv", "-o", str(tmp_path / where))
    assert res.exit_code == 2, res.output
    assert res.stderr.splitlines() == ["error: " + message.format(tmp=tmp_path)]
    conn = sqlite3.connect(clean_db)
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert "exports" not in tables  # refused before the export was even prepared
    assert not (tmp_path / "no").exists()
