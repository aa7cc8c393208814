"""``rsu journal`` commands through typer's CliRunner."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsu.cli.main import app
from rsu.journal import Journal, ResponseReceived, RunFinished, RunStarted, sha256_hex
from rsu.journal.runlock import RunLock

runner = CliRunner()

RAW = b'[{"event":{"event_id":11,"participants":[]},"participants":[{"bib_num":"007"}]}]\r\n\xff'
ERROR = b'{"error":{"error_code":201,"error_msg":"Race not found."}}'


def rsu(*args: str | Path, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args], env=env)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A journal file with: 1 run_started (partner 3), 2 participants page 1 (RAW, partner 3, race
    7, event 11), 3 race error (ERROR, partner 4, race 8), 4 run_finished."""
    path = tmp_path / "rsu.db"
    with Journal.open(path) as j:
        j.append(RunStarted(mode="full"), run_id="r1", timing_partner_id=3)
        j.append(
            ResponseReceived(
                endpoint="participants",
                path="/Rest/race/7/participants",
                status=200,
                body_size=len(RAW),
                page=1,
            ),
            RAW,
            run_id="r1",
            timing_partner_id=3,
            race_id=7,
            event_id=11,
        )
        j.append(
            ResponseReceived(endpoint="race", path="/Rest/race/8", status=200, cursor=555),
            ERROR,
            run_id="r1",
            timing_partner_id=4,
            race_id=8,
        )
        j.append(RunFinished(status="ok"), run_id="r1")
    return path


def _lines(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()]


def test_log_lines(db: Path) -> None:
    res = rsu("journal", "log", "--db", db)
    assert res.exit_code == 0, res.output
    rows = _lines(res.stdout)
    assert [r[0] for r in rows] == ["1", "2", "3", "4"]
    assert [r[2] for r in rows] == [
        "run_started",
        "response_received",
        "response_received",
        "run_finished",
    ]
    assert rows[0][3:] == ["partner=3", "race=-", "event=-", "mode=full"]
    assert rows[1][3:] == [
        "partner=3",
        "race=7",
        "event=11",
        "participants",
        "HTTP",
        "200",
        str(len(RAW)),
        "B",
        "page",
        "1",
    ]
    assert " ".join(rows[2][3:]) == (
        f"partner=4 race=8 event=- race HTTP 200 {len(ERROR)} B after 555 "
        "RSU error 201: Race not found."
    )
    assert rows[3][3:] == ["partner=-", "race=-", "event=-", "status=ok"]


@pytest.mark.parametrize(
    ("args", "seqs"),
    [
        (["--kind", "response_received"], ["2", "3"]),
        (["--partner", "3"], ["1", "2"]),
        (["--race", "8"], ["3"]),
        (["--run", "r1"], ["1", "2", "3", "4"]),
        (["--run", "nope"], []),
        (["--since", "2000-01-01"], ["1", "2", "3", "4"]),
        (["--since", "2999-01-01T00:00:00+02:00"], []),
        (["--limit", "2"], ["1", "2"]),
        (["--limit", "2", "--newest-first"], ["4", "3"]),
        (["--kind", "response_received", "--partner", "4"], ["3"]),
    ],
)
def test_log_filters(db: Path, args: list[str], seqs: list[str]) -> None:
    res = rsu("journal", "log", "--db", db, *args)
    assert res.exit_code == 0, res.output
    assert [r[0] for r in _lines(res.stdout)] == seqs


def test_log_json(db: Path) -> None:
    res = rsu("journal", "log", "--db", db, "--json", "--race", "7")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert len(data) == 1
    assert {k: data[0][k] for k in ("seq", "kind", "timing_partner_id", "race_id", "event_id")} == {
        "seq": 2,
        "kind": "response_received",
        "timing_partner_id": 3,
        "race_id": 7,
        "event_id": 11,
    }
    assert data[0]["body_sha256"] == sha256_hex(RAW)
    assert data[0]["event"]["page"] == 1
    assert json.loads(rsu("journal", "log", "--db", db, "--json", "--run", "x").stdout) == []


@pytest.mark.parametrize("args", [["--kind", "nope"], ["--since", "yesterday"], ["--limit", "0"]])
def test_log_usage_errors(db: Path, args: list[str]) -> None:
    assert rsu("journal", "log", "--db", db, *args).exit_code == 2


@pytest.mark.parametrize(
    "cmd", [["log"], ["show", "1"], ["show", "1", "--body"], ["verify"], ["stats"]]
)
def test_read_commands_need_an_existing_db(tmp_path: Path, cmd: list[str]) -> None:
    missing = tmp_path / "missing.db"
    res = rsu("journal", *cmd, "--db", missing)
    assert res.exit_code == 2
    assert "does not exist" in res.stderr
    assert not missing.exists()


def test_db_from_env(db: Path) -> None:
    res = rsu("journal", "stats", env={"RSU_DB": str(db)})
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[0] == "events: 4 (last seq 4)"


def test_show_json(db: Path) -> None:
    res = rsu("journal", "show", "2", "--db", db)
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["seq"] == 2
    assert data["run_id"] == "r1"
    assert data["body_sha256"] == sha256_hex(RAW)
    assert len(data["hash"]) == 64 and len(data["prev_hash"]) == 64
    assert data["event"]["kind"] == "response_received"
    assert data["event"]["path"] == "/Rest/race/7/participants"


def test_show_body_is_byte_exact(db: Path) -> None:
    res = rsu("journal", "show", "2", "--body", "--db", db)
    assert res.exit_code == 0, res.output
    assert res.stdout_bytes == RAW


def test_show_body_of_event_without_body(db: Path) -> None:
    res = rsu("journal", "show", "1", "--body", "--db", db)
    assert res.exit_code == 1
    assert res.stdout_bytes == b""
    assert "event 1 (run_started) has no body" in res.stderr


def test_show_unknown_seq(db: Path) -> None:
    res = rsu("journal", "show", "99", "--db", db)
    assert res.exit_code == 1
    assert "no journal event with seq 99" in res.stderr


def test_verify_ok_and_broken(db: Path) -> None:
    res = rsu("journal", "verify", "--db", db)
    assert (res.exit_code, res.stdout) == (0, "OK: 4 events, 2 blobs, chain intact\n")
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER journal_no_update")
    conn.execute("DROP TRIGGER journal_no_delete")
    conn.execute("UPDATE journal SET race_id = 9 WHERE seq = 2")
    conn.execute("DELETE FROM journal WHERE seq = 3")
    conn.commit()
    conn.close()
    res = rsu("journal", "verify", "--db", db)
    assert res.exit_code == 1
    assert res.stdout.splitlines() == [
        "BROKEN seq 2: hash mismatch: row was altered",
        "BROKEN seq 4: seq gap: expected 3, found 4",
        "BROKEN seq 4: prev_hash does not match previous row",
        "BROKEN schema: trigger journal_no_update is missing: the journal is not append-only",
        "BROKEN schema: trigger journal_no_delete is missing: the journal is not append-only",
    ]
    assert "5 problem(s)" in res.stderr


def test_stats(db: Path) -> None:
    res = rsu("journal", "stats", "--db", db)
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[:5] == [
        "events: 4 (last seq 4)",
        "  response_received  2",
        "  run_finished       1",
        "  run_started        1",
        "distinct bodies: 2",
    ]
    assert lines[5] == f"body bytes received: {len(RAW) + len(ERROR)} B (0.00 MB)"
    assert lines[6] == f"body bytes unique:   {len(RAW) + len(ERROR)} B (0.00 MB)"
    assert lines[8].startswith("dedup ratio: 1.00x  compression ratio: ")


def test_import_participants(tmp_path: Path) -> None:
    good = tmp_path / "page1.json"
    good.write_bytes(RAW[:-3] + b"\n")
    bad = tmp_path / "broken.json"
    bad.write_bytes(RAW)  # \xff: not valid JSON, still imported byte-exact
    dup = tmp_path / "page1-again.json"
    dup.write_bytes(good.read_bytes())
    db = tmp_path / "new.db"
    res = rsu(
        "journal", "import", good, bad, dup, "--endpoint", "participants",
        "--race-id", "7", "--event-id", "11", "--partner", "3", "--db", db,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert res.stderr.count("warning:") == 1
    assert f"warning: {bad}: not valid JSON" in res.stderr
    with Journal.open(db) as j:
        rows = [r for b in j.read() for r in b]
        assert [r.kind for r in rows] == [
            "run_started",
            "response_received",
            "response_received",
            "response_received",
            "run_finished",
        ]
        run_id = rows[0].run_id
        assert run_id is not None and run_id.startswith("import-")
        assert len(run_id) == len("import-") + 32
        assert {r.run_id for r in rows} == {run_id}
        assert rows[0].event == RunStarted(
            mode="import",
            scope={
                "endpoint": "participants",
                "files": [str(good), str(bad), str(dup)],
                "timing_partner_id": 3,
                "race_id": 7,
                "event_id": 11,
            },
            tool_version=rows[0].event.tool_version,  # type: ignore[union-attr]
        )
        assert rows[1].event == ResponseReceived(
            endpoint="participants",
            path="/Rest/race/7/participants",
            query={"event_id": "11"},
            status=200,
            content_type="application/json",
            body_sha256=sha256_hex(good.read_bytes()),
            body_size=good.stat().st_size,
            race_id=7,
            event_id=11,
        )
        assert [(r.timing_partner_id, r.race_id, r.event_id) for r in rows[1:4]] == [(3, 7, 11)] * 3
        assert j.body(rows[2].body_sha256 or "") == RAW
        assert rows[1].body_sha256 == rows[3].body_sha256
        assert rows[4].event == RunFinished(
            status="ok",
            counts={
                "files": 3,
                "warnings": 1,
                "bytes_received": 2 * good.stat().st_size + len(RAW),
            },
        )
        assert j.stats().blobs == 2
        assert j.verify().ok
    assert rsu("journal", "show", "3", "--body", "--db", db).stdout_bytes == RAW


@pytest.mark.parametrize(
    ("endpoint", "ids", "path"),
    [
        ("races", [], "/Rest/races"),
        ("race", ["--race-id", "5"], "/Rest/race/5"),
        (
            "removed_participants",
            ["--race-id", "5", "--event-id", "6"],
            "/Rest/race/5/removed-participants",
        ),
    ],
)
def test_import_paths(tmp_path: Path, endpoint: str, ids: list[str], path: str) -> None:
    f = tmp_path / "r.json"
    f.write_bytes(ERROR)
    db = tmp_path / "rsu.db"
    res = rsu("journal", "import", f, "--endpoint", endpoint, *ids, "--partner", "3", "--db", db)
    assert res.exit_code == 0, res.output
    assert "RunSignUp error (code 201: Race not found.)" in res.stderr
    with Journal.open(db) as j:
        ev = j.get(2).event
        assert isinstance(ev, ResponseReceived)
        assert (ev.endpoint, ev.path, ev.status) == (endpoint, path, 200)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--endpoint", "events"], "unknown endpoint"),
        (["--endpoint", "race", "--partner", "3"], "needs --race-id"),
        (["--endpoint", "participants", "--race-id", "1", "--partner", "3"], "needs --event-id"),
        (
            ["--endpoint", "removed_participants", "--event-id", "1", "--partner", "3"],
            "needs --race-id",
        ),
        (["--endpoint", "races", "--race-id", "1"], "takes no --race-id"),
        (["--endpoint", "race", "--race-id", "1", "--event-id", "2"], "takes no --event-id"),
        ([], "--endpoint"),
        (["--endpoint", "races"], "endpoint races needs --partner"),
        (["--endpoint", "race", "--race-id", "1"], "endpoint race needs --partner"),
        (
            ["--endpoint", "participants", "--race-id", "1", "--event-id", "2"],
            "endpoint participants needs --partner",
        ),
        (
            ["--endpoint", "removed_participants", "--race-id", "1", "--event-id", "2"],
            "endpoint removed_participants needs --partner",
        ),
    ],
)
def test_import_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    f = tmp_path / "r.json"
    f.write_bytes(ERROR)
    db = tmp_path / "rsu.db"
    res = rsu("journal", "import", f, *args, "--db", db)
    assert res.exit_code == 2
    assert message in res.stderr
    assert not db.exists()


def test_import_waits_for_no_run_and_exits_75_while_one_holds_the_db(tmp_path: Path) -> None:
    f = tmp_path / "r.json"
    f.write_bytes(ERROR)
    db = tmp_path / "rsu.db"
    args = ("journal", "import", f, "--endpoint", "races", "--partner", "3", "--db", db)
    with RunLock.acquire(db, "rsu sync"):
        res = rsu(*args)
    assert res.exit_code == 75, res.output
    assert "another rsu run" in res.stderr
    assert not db.exists()  # nothing imported, no database created
    assert rsu(*args).exit_code == 0  # the lock is free again
    with Journal.open(db) as j:
        assert [r.kind for b in j.read() for r in b] == [
            "run_started",
            "response_received",
            "run_finished",
        ]


def test_import_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    res = rsu(
        "journal",
        "import",
        tmp_path / "nope.json",
        "--endpoint",
        "races",
        "--db",
        tmp_path / "x.db",
    )
    assert res.exit_code == 2
    assert not (tmp_path / "x.db").exists()


def test_every_journal_command_has_help() -> None:
    for cmd in ("log", "show", "verify", "stats", "import"):
        res = rsu("journal", cmd, "--help")
        assert res.exit_code == 0, cmd
        assert "--db" in res.stdout, cmd
