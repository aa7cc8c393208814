"""``sync_history`` tells a warning from a success and an error, and keeps what a failed listing
got from the server (issue 9): a race whose detail lists no events gets a ``warning`` row (also in
``rsu status``); a failed listing keeps its HTTP status; ``error_code`` is NULL when RunSignUp sent
no code."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from fetch_helpers import fast_options, seeded_world
from project_helpers import Builder, j, new_journal, participants_body, race_obj, registration, rows
from typer.testing import CliRunner

from rsu.cli.main import app
from rsu.fetcher import run_fetch
from rsu.journal import Journal, ListingCompleted
from rsu.projector import project
from rsu.projector.reports import sync_status
from rsu.simulator import Faults, SimulatorServer

RACE, EV = 100, 11
NOW = datetime(2024, 1, 1, 1, 0, tzinfo=UTC)


def _history(conn):
    return [
        (r["endpoint"], r["race_id"], r["status"], r["error_code"], r["http_status"], r["reason"])
        for r in rows(conn, "SELECT * FROM sync_history ORDER BY source_seq")
    ]


def test_a_race_whose_detail_lists_no_events_gets_a_warning_row(tmp_path):
    db = tmp_path / "rsu.db"
    jn = new_journal(db)
    b = Builder(jn)
    b.run_started()
    b.race(j({"race": {**race_obj(RACE), "events": []}}), RACE)
    b.race(j({"race": race_obj(7, event_ids=(EV,))}), 7)
    b.listing(7, EV, [participants_body(EV, [registration(1, EV)])])
    b.run_finished()
    result = project(jn.db)
    assert result.exit_code == 0  # a warning is not an error
    assert _history(jn.db.conn) == [
        ("race", RACE, "warning", None, None, "race 100 lists no events: no participants to fetch"),
        ("participants", 7, "success", None, None, None),
    ]
    report = sync_status(jn.db.conn, max_age_seconds=86400, now=NOW)
    assert report.ok, report.problems()
    assert report.warnings() == [
        "race 100 (partner 1): race 100 lists no events: no participants to fetch"
    ]
    assert [(r.race_id, r.warning) for p in report.partners for r in p.races] == [
        (7, None),
        (RACE, "race 100 lists no events: no participants to fetch"),
    ]
    jn.db.conn.close()
    runner = CliRunner()
    shown = runner.invoke(app, ["history", "--db", str(db), "--status", "warning", "--json"])
    assert shown.exit_code == 0, shown.output
    [line] = shown.output.splitlines()
    assert (json.loads(line)["race_id"], json.loads(line)["status"]) == (RACE, "warning")
    status = runner.invoke(app, ["status", "--db", str(db), "--json", "--max-age", str(10**9)])
    assert json.loads(status.output)["warnings"] == report.warnings()


def test_a_failed_listing_keeps_its_http_status_and_no_code_is_null():
    jn = new_journal()
    b = Builder(jn)
    b.run_started()
    for lid, code, http in (("a", None, 503), ("b", 14, 200), ("old", 0, None)):
        b.append(
            ListingCompleted(
                endpoint="participants",
                race_id=RACE,
                event_id=EV,
                listing_id=lid,
                ok=False,
                error_code=code,
                error_msg=f"failed {lid}",
                http_status=http,
            ),
            race_id=RACE,
            event_id=EV,
        )
    b.fetch_failed("races", None, code=0, msg="RunSignUp error 0: no code", http_status=200)
    project(jn.db)
    assert _history(jn.db.conn) == [
        ("participants", RACE, "error", None, 503, "failed a"),
        ("participants", RACE, "error", 14, 200, "failed b"),
        ("participants", RACE, "error", None, None, "failed old"),  # written before issue 9
        ("races", None, "error", None, 200, "RunSignUp error 0: no code"),
    ]


def test_fetch_journals_the_http_status_of_a_failed_listing(tmp_path: Path):
    world, db = seeded_world(
        tmp_path,
        seed=4,
        partners=1,
        races_per_partner=3,
        events_per_race=(1, 2),
        registrations_per_event=(5, 20),
    )
    with SimulatorServer(world, faults=Faults(seed=2, http_5xx=0.25)) as sim:
        run_fetch(db, fast_options(sim.base_url, tmp_path, max_attempts=1, concurrency=1))
    with Journal.open(db) as jn:
        failed = [
            r.event
            for r in jn.find(kind="listing_completed")
            if isinstance(r.event, ListingCompleted) and not r.event.ok
        ]
    assert failed, "no listing failed: pick another fault seed"
    assert {(ev.error_code, ev.http_status) for ev in failed} <= {
        (None, s) for s in (500, 502, 503, 504)
    }
    project(db)
    with Journal.open(db) as jn:
        got = jn.db.conn.execute(
            "SELECT error_code, http_status FROM sync_history WHERE status = 'error' "
            "AND endpoint IN ('participants', 'removed_participants')"
        ).fetchall()
    assert sorted(got) == sorted((None, ev.http_status) for ev in failed)
