"""No journal event can stop the projector (issue 9): a value that does not fit a column (ids and
numbers >= 2**63, float ids, epochs past year 9999), JSON nested too deeply to decode, or any other
failure while applying one event goes to ``projection_errors`` with a reason, ``sync_history`` gets
an error row, the checkpoint moves on, everything else is projected and ``rsu project`` exits 1."""

from __future__ import annotations

import pytest
from project_helpers import (
    Builder,
    j,
    new_journal,
    participants_body,
    race_obj,
    registration,
    rows,
)
from typer.testing import CliRunner

from rsu.cli.main import app
from rsu.journal import JournalError
from rsu.projector import apply, project

RACE, EV = 100, 11
BIG = 2**63


def _ids(conn):
    return [r[0] for r in conn.execute("SELECT registration_id FROM runsignup_participants")]


def _errors(conn):
    return [
        (r["seq"], r["item"], r["reason"])
        for r in rows(conn, "SELECT seq, item, reason FROM projection_errors ORDER BY seq, item")
    ]


def _history(conn):
    return [
        (r["endpoint"], r["status"], r["race_id"], r["reason"])
        for r in rows(conn, "SELECT * FROM sync_history ORDER BY source_seq")
    ]


def _checkpoint(conn):
    return conn.execute("SELECT value FROM projector_state WHERE name = 'checkpoint'").fetchone()[0]


def _bad_row(bad: dict) -> dict:
    return {**registration(2, EV), **bad}


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ({"registration_id": BIG}, "integer out of range: 9223372036854775808"),
        ({"registration_id": 1e300}, "integer out of range: a 301-digit number"),
        ({"registration_id": str(10**20)}, "integer out of range: 100000000000000000000"),
        ({"event_id": BIG}, "integer out of range: 9223372036854775808"),
        ({"last_modified": 10**20}, "registration 2: timestamp out of range: 10000000000000000"),
        ({"last_modified": BIG - 1}, "registration 2: timestamp out of range: 92233720368547"),
        ({"age": BIG}, "registration 2: integer out of range: 9223372036854775808"),
        ({"team_id": -(BIG + 1)}, "registration 2: integer out of range: -9223372036854775809"),
        ({"amount_paid": "$100000000000000000.00"}, "registration 2: money amount out of range"),
        ({"user": {"user_id": BIG}}, "registration 2: integer out of range: 9223372036854775808"),
    ],
)
def test_value_that_does_not_fit_is_a_row_error_and_the_rest_is_projected(bad, why):
    jn = new_journal()
    b = Builder(jn)
    b.run_started()
    page = participants_body(EV, [registration(1, EV), _bad_row(bad), registration(3, EV)])
    done = b.listing(RACE, EV, [page])
    b.race(j({"race": race_obj(RACE)}), RACE)
    last = b.run_finished()
    result = project(jn.db)
    conn = jn.db.conn
    assert result.exit_code == 1
    assert result.checkpoint == last == _checkpoint(conn)
    assert sorted(_ids(conn)) == [1, 3]
    [(seq, item, reason)] = _errors(conn)
    assert (seq, item) == (done - 1, 2)
    assert reason.startswith(why), reason
    assert [h[:3] for h in _history(conn)] == [("participants", "error", RACE)]
    assert conn.execute("SELECT race_id FROM runsignup_races").fetchall() == [(RACE,)]
    # a rebuild meets the same event and gets the same tables, never a traceback
    again = project(jn.db, rebuild=True)
    assert again.checkpoint == last
    assert sorted(_ids(conn)) == [1, 3]
    assert len(_errors(conn)) == 1


def _deep(depth: int) -> bytes:
    return b'[{"event":{"event_id":11},"participants":[' + b"[" * depth + b"]" * depth + b"]}]"


def test_json_nested_1000_levels_is_an_event_error_and_the_next_events_are_projected():
    jn = new_journal()
    b = Builder(jn)
    b.run_started()
    deep = b.listing(RACE, EV, [_deep(1000)]) - 1
    b.listing(RACE, 12, [participants_body(12, [registration(5, 12)])])
    last = b.run_finished()
    result = project(jn.db)
    conn = jn.db.conn
    assert result.exit_code == 1
    assert result.checkpoint == last
    assert _ids(conn) == [5]
    assert _errors(conn) == [(deep, -1, "body is JSON nested too deeply to read")]
    assert _history(conn) == [
        ("participants", "error", RACE, "page 1: body is JSON nested too deeply to read"),
        ("participants", "success", RACE, None),
    ]


def test_race_body_nested_1000_levels_is_an_error_row_and_the_next_race_is_projected():
    jn = new_journal()
    b = Builder(jn)
    b.run_started()
    deep = b.race(b'{"race":{"race_id":5,"events":' + b"[" * 1000 + b"]" * 1000 + b"}}", 5)
    b.race(j({"race": race_obj(7)}), 7)
    last = b.run_finished()
    result = project(jn.db)
    conn = jn.db.conn
    assert (result.exit_code, result.checkpoint) == (1, last)
    assert conn.execute("SELECT race_id FROM runsignup_races").fetchall() == [(7,)]
    assert _errors(conn) == [(deep, -1, "body is JSON nested too deeply to read")]
    assert _history(conn) == [("race", "error", 5, "body is JSON nested too deeply to read")]


def test_race_body_with_an_id_that_does_not_fit_gets_an_error_row():
    jn = new_journal()
    b = Builder(jn)
    b.run_started()
    seq = b.race(
        j({"races": [{"race": race_obj(BIG)}, {"race": race_obj(7)}]}), None, endpoint="races"
    )
    last = b.run_finished()
    result = project(jn.db)
    conn = jn.db.conn
    assert result.exit_code == 1
    assert result.checkpoint == last
    assert conn.execute("SELECT race_id FROM runsignup_races").fetchall() == [(7,)]
    assert _errors(conn) == [(seq, 0, "integer out of range: 9223372036854775808")]
    assert _history(conn) == [
        (
            "races",
            "error",
            None,
            "1 of 2 races could not be projected: integer out of range: 9223372036854775808",
        )
    ]


def test_any_failure_inside_one_event_rolls_it_back_and_the_run_goes_on(monkeypatch):
    """An unforeseen error half-way through an event (after some of its rows were written)
    leaves none of them: the event is rolled back to its SAVEPOINT and recorded."""
    jn = new_journal()
    b = Builder(jn)
    b.run_started()
    two = j({"races": [{"race": race_obj(1)}, {"race": race_obj(2)}]})
    bad = b.race(two, None, endpoint="races")
    good = b.race(j({"race": race_obj(3)}), 3)
    last = b.run_finished()
    real = apply.Applier._race

    def flaky(self, row, tp, race, *more):
        if race["race_id"] == 2:
            raise KeyError("boom")
        return real(self, row, tp, race, *more)

    monkeypatch.setattr(apply.Applier, "_race", flaky)
    result = project(jn.db)
    conn = jn.db.conn
    assert result.exit_code == 1
    assert result.checkpoint == last
    # race 1 was written before race 2 failed: rolled back with its event
    assert conn.execute("SELECT race_id, source_seq FROM runsignup_races").fetchall() == [(3, good)]
    assert _errors(conn) == [(bad, -1, "could not be projected (KeyError): 'boom'")]
    assert _history(conn) == [("races", "error", None, "could not be projected (KeyError): 'boom'")]
    assert result.new_errors == 2
    # projecting again changes nothing and finds no new error
    assert project(jn.db).exit_code == 0


def test_a_database_failure_is_not_recorded_as_the_events_fault(monkeypatch):
    """Disk full, locked database: the run stops (another helper reports it) and the checkpoint
    does not move past the event."""
    import sqlite3

    jn = new_journal()
    b = Builder(jn)
    b.run_started()
    b.race(j({"race": race_obj(3)}), 3)

    def full(self, row, tp, race, *more):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(apply.Applier, "_race", full)
    with pytest.raises(JournalError) as raised:  # wrapped once, naming the cause
        project(jn.db, batch_size=1)
    assert raised.value.cause == "disk_full"
    assert _checkpoint(jn.db.conn) == 1
    assert _errors(jn.db.conn) == []


def test_rsu_project_exits_1_and_moves_on(tmp_path):
    db = tmp_path / "rsu.db"
    jn = new_journal(db)
    b = Builder(jn)
    b.run_started()
    b.listing(RACE, EV, [participants_body(EV, [_bad_row({"registration_id": BIG})])])
    last = b.run_finished()
    jn.db.conn.close()
    runner = CliRunner()
    first = runner.invoke(app, ["project", "--db", str(db)])
    assert first.exit_code == 1, first.output
    assert f"checkpoint {last}" in first.output
    assert "2 new errors" in first.output  # the row, and its listing's error row
    rebuilt = runner.invoke(app, ["project", "--db", str(db), "--rebuild"])
    assert rebuilt.exit_code == 0, rebuilt.output  # nothing new since the tables it replaces
    assert f"checkpoint {last}" in rebuilt.output


def _null_row(reg_id: int) -> dict:
    """Every key of a registration present and null, but its ids."""
    return {
        k: (v if k in ("registration_id", "event_id") else None)
        for k, v in registration(reg_id, EV).items()
    }


@pytest.mark.parametrize("endpoint", ["participants", "removed_participants"])
def test_a_row_whose_keys_are_all_null_does_not_clear_a_registration(endpoint):
    jn = new_journal()
    b = Builder(jn)
    b.run_started()
    b.listing(RACE, EV, [participants_body(EV, [registration(1, EV), registration(2, EV)])])
    project(jn.db)
    stored = rows(jn.db.conn, "SELECT * FROM runsignup_participants ORDER BY registration_id")
    body = (
        participants_body(EV, [_null_row(1), registration(2, EV, version=1)])
        if endpoint == "participants"
        else j([{"event": {"event_id": EV, "participants": [_null_row(1)]}}])
    )
    page = b.listing(RACE, EV, [body], endpoint=endpoint) - 1
    result = project(jn.db)
    assert result.exit_code == 1
    after = rows(jn.db.conn, "SELECT * FROM runsignup_participants ORDER BY registration_id")
    assert after[0] == stored[0]  # registration 1 unchanged: not cleared, not removed
    assert _errors(jn.db.conn) == [(page, 1, "registration 1: every field is null")]
    if endpoint == "participants":
        assert after[1]["team_name"] == "Team 1"  # the other row of the page is projected


def test_duplicate_keys_the_last_occurrence_wins_everywhere():
    """The rule for a key sent twice in one object: the last one wins, in the fetcher's paging,
    the typed projector path and the generic one (as msgspec decodes)."""
    from rsu.fetcher.shapes import parse

    row = (
        b'{"registration_id":1,"registration_id":2,"bib_num":"A","bib_num":"B",'
        b'"user":{"first_name":"X","first_name":"Y"}}'
    )
    typed_page = b'[{"event":{"event_id":11},"participants":[' + row + b"]}]"
    generic_page = (
        b'[{"event":{"event_id":11},"participants":[' + row + b',{"registration_id":3,"user":[]}]}]'
    )
    info = parse("participants", typed_page)
    assert (info.rows, info.last_id) == (1, 2)
    for body in (typed_page, generic_page):
        jn = new_journal()
        b = Builder(jn)
        b.run_started()
        b.listing(RACE, EV, [body])
        assert project(jn.db).exit_code == 0
        got = jn.db.conn.execute(
            "SELECT registration_id, bib_num, first_name FROM runsignup_participants "
            "ORDER BY registration_id"
        ).fetchall()
        assert got[0] == (2, "B", "Y")
