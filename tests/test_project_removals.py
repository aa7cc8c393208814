"""Removals (refund, transfer, deferral, missing from a complete listing), failed listings,
error rows in sync_history, and the ``rsu project`` command."""

from __future__ import annotations

from project_helpers import (
    Builder,
    j,
    new_journal,
    participants_body,
    registration,
    removed_body,
    removed_registration,
    rows,
)
from typer.testing import CliRunner

from rsu.cli.main import app
from rsu.projector import project

RACE, EV = 100, 11
T0 = 1_700_000_000  # 2023-11-14T22:13:20Z


def _state(conn):
    return {
        r["registration_id"]: (r["removed_at"], r["removed_reason"], r["new_registration_id"])
        for r in rows(conn, "SELECT * FROM runsignup_participants")
    }


def _seed(b: Builder, ids=range(1, 7)):
    b.run_started()
    b.listing(RACE, EV, [participants_body(EV, [registration(i, EV) for i in ids])])


def test_refund_transfer_deferral():
    jn = new_journal()
    b = Builder(jn)
    _seed(b)
    b.listing(
        RACE,
        EV,
        [
            removed_body(
                EV,
                [
                    removed_registration(1, EV, "cleared", None, T0),
                    removed_registration(2, EV, "removed", None, T0 + 60),
                    removed_registration(3, EV, "transferred", 9001, T0 + 120),
                    removed_registration(4, EV, "deferred", None, T0 + 180),
                ],
            )
        ],
        endpoint="removed_participants",
    )
    result = project(jn.db)
    assert result.exit_code == 0
    assert _state(jn.db.conn) == {
        1: ("2023-11-14T22:13:20Z", "cleared", None),
        2: ("2023-11-14T22:14:20Z", "removed", None),
        3: ("2023-11-14T22:15:20Z", "transferred", 9001),
        4: ("2023-11-14T22:16:20Z", "deferred", None),
        5: (None, None, None),
        6: (None, None, None),
    }
    # the removed row's fields merge into the stored registration: absent keys kept
    r3 = rows(jn.db.conn, "SELECT * FROM runsignup_participants WHERE registration_id = 3")[0]
    assert (r3["first_name"], r3["email"], r3["amount_paid"]) == (
        "Gone",
        "runner3@example.com",
        3880,
    )
    assert r3["registration_date"] == "2023-01-02T03:04:05-05:00"
    hist = rows(
        jn.db.conn,
        "SELECT endpoint, status, num_removed, num_changed FROM sync_history ORDER BY source_seq",
    )
    assert hist == [
        {"endpoint": "participants", "status": "success", "num_removed": 0, "num_changed": 0},
        {
            "endpoint": "removed_participants",
            "status": "success",
            "num_removed": 4,
            "num_changed": 4,
        },
    ]


def test_complete_listing_retires_missing_and_reappearance_restores():
    jn = new_journal()
    b = Builder(jn)
    _seed(b)
    b.listing(
        RACE,
        EV,
        [
            participants_body(EV, [registration(i, EV) for i in (1, 2, 3)]),
            participants_body(EV, [registration(5, EV)]),
        ],
    )
    result = project(jn.db)
    assert result.rows_upserted == 6 + 2  # the 6 seeded, then the 2 retired (1-3, 5 unchanged)
    state = _state(jn.db.conn)
    assert state[4] == ("2024-01-01T00:00:06Z", "missing_from_listing", None)
    assert state[6] == ("2024-01-01T00:00:06Z", "missing_from_listing", None)
    assert {k for k, v in state.items() if v[0] is None} == {1, 2, 3, 5}
    hist = rows(
        jn.db.conn, "SELECT num_removed, num_unchanged FROM sync_history ORDER BY source_seq"
    )
    assert hist[-1] == {"num_removed": 2, "num_unchanged": 4}
    # registration 4 comes back (incremental listing): active again
    b.listing(RACE, EV, [participants_body(EV, [registration(4, EV, version=1)])], complete=False)
    project(jn.db)
    assert _state(jn.db.conn)[4] == (None, None, None)
    assert _state(jn.db.conn)[6][1] == "missing_from_listing"


def test_failed_or_incomplete_listing_removes_nobody():
    jn = new_journal()
    b = Builder(jn)
    _seed(b)
    # throttled on page 2: ok=False, the first page alone must not retire anyone
    b.listing(
        RACE,
        EV,
        [participants_body(EV, [registration(1, EV)])],
        fail_after=j({"error": {"error_code": 14, "error_msg": "Request throttled."}}),
        error_code=14,
    )
    # an incremental listing is never complete
    b.listing(RACE, EV, [participants_body(EV, [registration(2, EV)])], complete=False)
    # a "complete" listing whose page cannot be projected (truncated body accepted)
    b.listing(RACE, EV, [b'[{"event":{"event_id":11},"participants":[{"registration_id":1'])
    result = project(jn.db)
    assert set(_state(jn.db.conn).values()) == {(None, None, None)}
    hist = rows(
        jn.db.conn, "SELECT status, error_code, reason FROM sync_history ORDER BY source_seq"
    )
    assert hist[1] == {"status": "error", "error_code": 14, "reason": "Request throttled."}
    assert hist[2]["status"] == "success"
    assert hist[3]["status"] == "error"
    assert hist[3]["reason"].startswith("page 1: ") and "body is not JSON" in hist[3]["reason"]
    assert result.new_errors == 2 and result.exit_code == 1
    # the failed attempt's error body changed nothing
    assert len(_state(jn.db.conn)) == 6


def test_error_bodies_5xx_and_fetch_failed():
    jn = new_journal()
    b = Builder(jn)
    _seed(b, ids=[1])
    # a retried race request: HTML 503, then an error body, then success -> one success, no error
    b.response("race", b"<html>503 Service Unavailable</html>", race_id=RACE, status=503)
    b.response(
        "race", j({"error": {"error_code": 14, "error_msg": "Request throttled."}}), race_id=RACE
    )
    b.response("race", b'{"race":{"race_id":100,"name":"Tru', race_id=RACE)
    b.response("race", j({"race": {"race_id": RACE, "name": "Real"}}), race_id=RACE)
    # an abandoned request
    b.fetch_failed("race", 555, code=201, msg="Race not found.")
    b.fetch_failed("races", None, code=None, msg="", http_status=502)
    b.fetch_failed("participants", RACE, code=7, msg="Permission Denied")  # covered by listing
    result = project(jn.db)
    assert rows(jn.db.conn, "SELECT race_id, name FROM runsignup_races") == [
        {"race_id": 100, "name": "Real"}
    ]
    errs = rows(
        jn.db.conn,
        "SELECT endpoint, race_id, event_id, status, error_code, http_status, "
        "reason FROM sync_history WHERE status = 'error' ORDER BY source_seq",
    )
    assert errs == [
        {
            "endpoint": "race",
            "race_id": 555,
            "event_id": None,
            "status": "error",
            "error_code": 201,
            "http_status": 200,
            "reason": "Race not found.",
        },
        {
            "endpoint": "races",
            "race_id": None,
            "event_id": None,
            "status": "error",
            "error_code": None,
            "http_status": 502,
            "reason": "HTTP 502",
        },
    ]
    assert rows(jn.db.conn, "SELECT COUNT(*) AS c FROM projection_errors") == [{"c": 0}]
    assert result.new_errors == 2
    # run twice: nothing changes, no new errors
    again = project(jn.db)
    assert (again.events, again.rows_upserted, again.new_errors, again.exit_code) == (0, 0, 0, 0)


def test_tenant_isolation():
    jn = new_journal()
    for tp in (1, 2):
        b = Builder(jn, tp=tp, run_id=f"run-{tp}")
        b.listing(RACE, EV, [participants_body(EV, [registration(1, EV, version=tp)])])
    b = Builder(jn, tp=2, run_id="run-3")
    b.listing(RACE, EV, [participants_body(EV, [registration(2, EV)])])
    project(jn.db)
    got = rows(
        jn.db.conn,
        "SELECT timing_partner_id, registration_id, removed_reason, race_fee "
        "FROM runsignup_participants ORDER BY 1, 2",
    )
    assert got == [
        {"timing_partner_id": 1, "registration_id": 1, "removed_reason": None, "race_fee": 4000},
        {
            "timing_partner_id": 2,
            "registration_id": 1,
            "removed_reason": "missing_from_listing",
            "race_fee": 4500,
        },
        {"timing_partner_id": 2, "registration_id": 2, "removed_reason": None, "race_fee": 3500},
    ]


def test_cli_project(tmp_path):
    db = tmp_path / "rsu.db"
    jn = new_journal(db)
    b = Builder(jn)
    _seed(b, ids=[1, 2])
    b.fetch_failed("race", 555, code=201, msg="Race not found.")
    jn.close()
    runner = CliRunner()
    res = runner.invoke(app, ["project", "--db", str(db), "--batch-size", "2"])
    assert res.exit_code == 1, res.output
    assert "projected: 5 journal events, 2 rows upserted, 1 new errors, checkpoint 5" in res.output
    res = runner.invoke(app, ["project", "--db", str(db)])
    assert res.exit_code == 0
    assert "projected: 0 journal events, 0 rows upserted, 0 new errors, checkpoint 5" in res.output
    res = runner.invoke(app, ["project", "--db", str(db), "--rebuild"])
    assert res.exit_code == 0, res.output
    assert "rebuilt: 5 journal events, 2 rows upserted, 0 new errors, checkpoint 5" in res.output
