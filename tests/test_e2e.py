"""End to end: fetch + project against the simulator, twice with changes in between; the tables
must then equal the simulator's world exactly. Also ``rsu status`` exit codes."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fetch_helpers import fast_options, fetch_and_project, seed_credentials, world_registrations
from project_helpers import participant_rows
from typer.testing import CliRunner

from rsu.cli.main import app
from rsu.fetcher import run_fetch
from rsu.journal import Journal, ResponseReceived
from rsu.projector import project
from rsu.projector.reports import StatusReport, sync_status
from rsu.simulator import Faults, SimulatorServer, World, WorldConfig

FAULTS = Faults(seed=5, http_5xx=0.05, throttle=0.05, truncated=0.03)
#: The world's clock starts today so its races are upcoming, as on a real race week.
TODAY = int(datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp())


def _world() -> World:
    return World.generate(
        WorldConfig(
            seed=11,
            partners=2,
            races_per_partner=2,
            events_per_race=(1, 3),
            registrations_per_event=(30, 200),
            start_epoch=TODAY,
        )
    )


def _table_state(db: Path) -> tuple[dict[tuple[int, int, int], tuple], dict]:
    """(active: (race, event, reg) -> (bib, first, last), removed: key -> (reason, new_id))."""
    active = participant_rows(db, "bib_num", "first_name", "last_name")
    removed = participant_rows(db, "removed_reason", "new_registration_id", removed=True)
    return active, removed


def _world_state(world: World) -> tuple[dict[tuple[int, int, int], tuple], dict]:
    active = {}
    for key, row in world_registrations(world).items():
        bib = row.get("bib_num")
        user = row.get("user") or {}
        active[key] = (
            None if bib is None else str(bib),
            user.get("first_name"),
            user.get("last_name"),
        )
    removed = {
        key: (row["removed_reason"], row.get("new_registration_id"))
        for key, row in world_registrations(world, removed=True).items()
    }
    return active, removed


def _sync(db: Path, sim: SimulatorServer, tmp_path: Path, **opts: object) -> tuple[int, int]:
    return fetch_and_project(db, sim.base_url, tmp_path, **opts)


@dataclass
class Synced:
    """A small world already fetched and projected once, its simulator still serving."""

    world: World
    db: Path
    sim: SimulatorServer
    tmp: Path

    def fetch(self, **opts: object) -> int:
        """One more fetch (no project) against the running simulator; its exit code."""
        return run_fetch(self.db, fast_options(self.sim.base_url, self.tmp, **opts)).exit_code

    def status(self, **kw: Any) -> StatusReport:
        conn = sqlite3.connect(self.db)
        try:
            return sync_status(conn, max_age_seconds=3600, **kw)
        finally:
            conn.close()


@pytest.fixture
def synced(tmp_path: Path) -> Iterator[Synced]:
    world = _world()
    db = tmp_path / "rsu.db"
    seed_credentials(db, world.credentials)
    with SimulatorServer(world) as sim:
        assert _sync(db, sim, tmp_path) == (0, 0)
        yield Synced(world, db, sim, tmp_path)


def test_two_runs_with_changes_end_equal_to_the_world(tmp_path: Path) -> None:
    world = _world()
    db = tmp_path / "rsu.db"
    seed_credentials(db, world.credentials)
    with SimulatorServer(world, faults=FAULTS) as sim:
        assert _sync(db, sim, tmp_path) == (0, 0)
        first_active, _ = _table_state(db)
        assert first_active == _world_state(world)[0]

        changes = world.advance(new=25, edits=15, refunds=3, transfers=3, deferrals=3)
        kinds = {c.kind for c in changes}
        assert {"new", "edit", "refund", "transfer", "deferral"} <= kinds
        assert _sync(db, sim, tmp_path) == (0, 0)

    active, removed = _table_state(db)
    want_active, want_removed = _world_state(world)
    assert active == want_active
    assert removed == want_removed
    # the changes really reached the tables (not only an equal count)
    transferred = [c for c in changes if c.kind == "transfer"]
    for c in transferred:
        assert removed[(c.race_id, c.event_id, c.registration_id)] == (
            "transferred",
            c.new_registration_id,
        )
    with Journal.open(db) as j:
        report = j.verify()
    assert report.ok, report.problems
    result = CliRunner().invoke(app, ["journal", "verify", "--db", str(db)])
    assert result.exit_code == 0 and "OK" in result.output


def test_status_exits_1_for_a_failing_partner_and_0_when_all_fresh(tmp_path: Path) -> None:
    world = _world()
    db = tmp_path / "rsu.db"
    good, bad = world.credentials
    seed_credentials(db, [good])
    runner = CliRunner()
    with SimulatorServer(world) as sim:
        assert _sync(db, sim, tmp_path) == (0, 0)
        fresh = runner.invoke(app, ["status", "--db", str(db), "--max-age", "3600"])
        assert fresh.exit_code == 0, fresh.output

        # the second partner's key is wrong: its sync fails (code 6) while the first one's works
        broken = type(bad)(bad.timing_partner_id, bad.auth, bad.principal, "wrong-secret")
        seed_credentials(db, [broken])
        assert _sync(db, sim, tmp_path) == (1, 1)
        failing = runner.invoke(app, ["status", "--db", str(db), "--max-age", "3600", "--json"])
    assert failing.exit_code == 1, failing.output
    conn = sqlite3.connect(db)
    report = sync_status(conn, max_age_seconds=3600)
    conn.close()
    by_partner = {p.timing_partner_id: p for p in report.partners}
    assert by_partner[bad.timing_partner_id].failing
    assert "Key authentication failed" in (by_partner[bad.timing_partner_id].last_error or "")
    assert not by_partner[good.timing_partner_id].failing
    assert all(not r.stale for r in by_partner[good.timing_partner_id].races)


def test_status_flags_a_race_with_an_upcoming_event_that_stopped_syncing(
    synced: Synced,
) -> None:
    now = datetime.now(UTC)
    assert synced.status(now=now).ok
    later = synced.status(now=now + timedelta(hours=2))
    assert not later.ok
    stale = [r for p in later.partners for r in p.races if r.stale]
    assert stale and all(r.next_event_utc is not None for r in stale)


@pytest.mark.parametrize("args", [["status"], ["history"], ["project"], ["sync"], ["fetch"]])
def test_commands_refuse_a_missing_database(tmp_path: Path, args: list[str]) -> None:
    missing = tmp_path / "nope.db"
    result = CliRunner().invoke(app, [*args, "--db", str(missing)])
    assert result.exit_code == 2
    assert "does not exist" in result.output
    assert not missing.exists()


@pytest.mark.parametrize("args", [["status"], ["history"], ["project"]])
def test_commands_refuse_a_file_that_is_not_sqlite(tmp_path: Path, args: list[str]) -> None:
    bogus = tmp_path / "notes.db"
    bogus.write_text("these are my race notes, not a database\n")
    result = CliRunner().invoke(app, [*args, "--db", str(bogus)])
    assert result.exit_code == 1
    assert "not a database" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert bogus.read_text() == "these are my race notes, not a database\n"


def test_sync_honours_rsu_db_and_rsu_base_url(tmp_path: Path) -> None:
    world = _world()
    db = tmp_path / "elsewhere.db"
    seed_credentials(db, world.credentials)
    with SimulatorServer(world) as sim:
        result = CliRunner().invoke(
            app,
            ["sync", "--all-races", "--max-rps", "0", "--log-file", str(tmp_path / "l.log")],
            env={"RSU_DB": str(db), "RSU_BASE_URL": sim.base_url},
        )
    assert result.exit_code == 0, result.output
    active, _ = _table_state(db)
    assert active == _world_state(world)[0]
    help_text = CliRunner().invoke(app, ["sync", "--help"], env={"COLUMNS": "200"}).output
    assert "RSU_DB" in help_text and "Registrations per page" in help_text


def test_a_truncated_journal_is_reported_not_silently_skipped(synced: Synced) -> None:
    db = synced.db
    conn = sqlite3.connect(db)
    last = conn.execute("SELECT MAX(seq) FROM journal").fetchone()[0]
    conn.execute("DROP TRIGGER journal_no_delete")
    conn.execute("DELETE FROM journal WHERE seq > ?", (last - 10,))
    conn.commit()
    conn.close()
    assert synced.fetch() == 0
    projected = project(db)
    assert projected.exit_code == 1
    assert projected.rebuilt
    assert any("journal was truncated, rewritten or replaced" in m for m in projected.messages)
    with Journal.open(db) as j:
        problems = j.verify().problems
        # after the rebuild every row points at the journal event it really came from
        conn = sqlite3.connect(db)
        seqs = {
            r[0] for r in conn.execute("SELECT DISTINCT source_seq FROM runsignup_participants")
        }
        conn.close()
        for seq in seqs:
            ev = j.get(seq).event
            assert isinstance(ev, ResponseReceived)
            assert ev.endpoint in ("participants", "removed_participants")
    assert ("schema", "trigger journal_no_delete is missing: the journal is not append-only") in (
        problems
    )
    assert _table_state(db)[0] == _world_state(synced.world)[0]
    assert project(db).exit_code == 0  # healed: the checkpoint matches the journal again


def test_status_flags_journal_events_left_unprojected(synced: Synced) -> None:
    synced.world.advance(new=5)
    assert synced.fetch() == 0  # and no project
    fresh = synced.status(now=datetime.now(UTC))
    # at once, not only after --max-age (issue 9)
    assert fresh.unprojected_events > 0 and fresh.projection_stale and not fresh.ok
    assert fresh.problems()[0].startswith(f"{fresh.unprojected_events} journal events recorded")


def test_status_strict_flags_a_race_whose_newest_sync_failed(synced: Synced) -> None:
    # every 4th request of each credential is throttled (error 14), and nothing is retried:
    # auth check and races list pass, some race or event listings fail
    synced.sim.set_faults(Faults(seed=3, throttle_every=4))
    assert synced.fetch(max_attempts=1) == 1
    project(synced.db)
    lenient, strict = synced.status(), synced.status(strict=True)
    failed = [r for p in strict.partners for r in p.races if r.last_attempt_ok is False]
    assert failed, "the faulty run left no failed race"
    assert lenient.ok  # the last success is still within --max-age
    assert not strict.ok
    assert any("newest sync failed" in line for line in strict.problems())
