"""``rsu status`` flags projection errors of a partner's newest run and journal events not yet
projected at once, not only after ``--max-age`` (issue 9)."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from project_helpers import Builder, j, new_journal, participants_body, race_obj, registration
from typer.testing import CliRunner

from rsu.cli.main import app
from rsu.journal.runlock import RunLock, run_in_progress
from rsu.projector import project
from rsu.projector.reports import ProjectionErrors, sync_status

RACE, EV = 100, 11
#: Just after the Builder's logical clock (2024-01-01T00:..Z): every sync is fresh.
NOW = datetime(2024, 1, 1, 1, 0, tzinfo=UTC)
DAY = 86400.0


def _run(b: Builder, regs: list[dict]) -> int:
    b.run_started()
    b.race(j({"race": race_obj(RACE, event_ids=(EV,))}), RACE)
    b.listing(RACE, EV, [participants_body(EV, regs)])
    return b.run_finished()


def test_status_flags_projection_errors_of_the_newest_run_at_once(tmp_path):
    db = tmp_path / "rsu.db"
    jn = new_journal(db)
    b = Builder(jn, run_id="run-1")
    _run(b, [registration(1, EV), {**registration(2, EV), "registration_id": 2**63}])
    project(jn.db)
    report = sync_status(jn.db.conn, max_age_seconds=DAY, now=NOW)
    assert report.projection_errors == [
        ProjectionErrors(1, "run-1", 1, 3, "integer out of range: 9223372036854775808")
    ]
    assert not report.ok
    assert report.problems() == [
        "partner 1: 1 projection errors in its newest run run-1 (first: seq 3: integer out of "
        "range: 9223372036854775808); see the projection_errors table",
        "partner 1 is failing: no successful sync yet",  # its only listing failed
    ]
    # the next run reads the listing cleanly: the old run's error is history, not a problem
    b.run_id = "run-2"
    _run(b, [registration(1, EV), registration(2, EV)])
    project(jn.db)
    again = sync_status(jn.db.conn, max_age_seconds=DAY, now=NOW)
    assert again.projection_errors == []
    assert again.ok, again.problems()


def test_status_flags_an_unprojected_journal_at_once(tmp_path):
    db = tmp_path / "rsu.db"
    jn = new_journal(db)
    b = Builder(jn)
    _run(b, [registration(1, EV)])
    project(jn.db)
    assert sync_status(jn.db.conn, max_age_seconds=DAY, now=NOW).ok
    b.run_started()  # a fetch that was not projected (yet), a second ago
    report = sync_status(jn.db.conn, max_age_seconds=DAY, now=NOW)
    assert (report.unprojected_events, report.projection_stale, report.ok) == (1, True, False)
    assert report.problems() == [
        f"1 journal events recorded since {report.unprojected_since} are not projected: run "
        "`rsu project` and check its errors"
    ]
    jn.db.conn.close()
    result = CliRunner().invoke(app, ["status", "--db", str(db), "--max-age", str(10**9)])
    assert result.exit_code == 1
    assert "1 journal events recorded since" in result.output


def test_status_calls_a_partner_past_max_age_stale_not_failing(tmp_path):
    """A partner whose newest sync succeeded, only longer ago than ``--max-age``, is stale: the
    operator must not read it as a failed run (tryout2)."""
    db = tmp_path / "rsu.db"
    jn = new_journal(db)
    b = Builder(jn)
    _run(b, [registration(1, EV)])
    project(jn.db)
    report = sync_status(jn.db.conn, max_age_seconds=60, now=NOW)
    last = report.partners[0].last_success
    assert (report.ok, report.partners[0].failing, report.partners[0].last_error) == (
        False,
        True,
        None,
    )
    assert report.problems() == [
        f"partner 1 is stale: its last successful sync, {last}, is older than --max-age (60 s)"
    ]
    jn.db.conn.close()
    result = CliRunner().invoke(
        app, ["status", "--db", str(db), "--max-age", "60"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 1
    partner_row = next(line for line in result.output.splitlines() if "│ partner " in line)
    assert "STALE" in partner_row and "FAILING" not in partner_row


def test_status_does_not_fail_on_the_journal_tail_of_a_sync_still_running(tmp_path):
    """While an rsu run holds the run lock, the events it journaled are not projected yet by
    design: ``rsu status`` notes the run instead of exiting 1 (a monitor polling during a sync
    got false alarms). Once no run holds the lock, the same tail fails again (tryout2)."""
    db = tmp_path / "rsu.db"
    jn = new_journal(db)
    b = Builder(jn)
    _run(b, [registration(1, EV)])
    project(jn.db)
    b.run_started()  # the running sync's first event, not projected yet
    jn.db.conn.close()
    args = ["status", "--db", str(db), "--max-age", str(10**9)]
    with RunLock.acquire(db, "rsu sync"):
        assert run_in_progress(db) == f"{os.getpid()}: rsu sync"
        during = CliRunner().invoke(app, args, env={"COLUMNS": "300"})
    assert during.exit_code == 0, during.output
    assert f"an rsu run is in progress ({os.getpid()}: rsu sync): its 1 journal events" in (
        during.output
    )
    assert "are not projected: run `rsu project`" not in during.output
    assert run_in_progress(db) is None
    after = CliRunner().invoke(app, args, env={"COLUMNS": "300"})
    assert after.exit_code == 1
    assert "1 journal events recorded since" in after.output
