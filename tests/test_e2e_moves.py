"""End to end against the simulator (issue 13): an event change, a race whose access the partner
lost, and an event dropped from its race each end with every runner in exactly one active event,
equal to the simulator's world, and ``rsu status`` naming what happened."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fetch_helpers import fetch_and_project, seed_credentials, world_registrations
from project_helpers import participant_rows
from typer.testing import CliRunner

from rsu.cli.main import app
from rsu.projector.reports import RaceStatus, sync_status
from rsu.simulator import SimulatorServer, World, WorldConfig

TODAY = int(datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp())
NO_CHANGES = {"new": 0, "edits": 0, "refunds": 0, "transfers": 0, "deferrals": 0}


@dataclass
class Sim:
    world: World
    db: Path
    sim: SimulatorServer
    tmp: Path

    def sync(self, **opts: object) -> tuple[int, int]:
        return fetch_and_project(self.db, self.sim.base_url, self.tmp, **opts)

    def active(self) -> dict[tuple[int, int, int], str | None]:
        """(race, event, registration) -> last_name of every active row."""
        return {key: last for key, (last,) in participant_rows(self.db, "last_name").items()}

    def world_active(self, skip_races: tuple[int, ...] = ()) -> dict[tuple[int, int, int], str]:
        return {
            key: (row.get("user") or {}).get("last_name")
            for key, row in world_registrations(self.world).items()
            if key[0] not in skip_races
        }

    def race_status(self, race_id: int) -> RaceStatus:
        conn = sqlite3.connect(self.db)
        try:
            report = sync_status(conn, max_age_seconds=3600)
        finally:
            conn.close()
        return next(r for p in report.partners for r in p.races if r.race_id == race_id)

    def status_cli(self) -> tuple[int, str]:
        result = CliRunner().invoke(
            app, ["status", "--db", str(self.db), "--max-age", "3600"], env={"COLUMNS": "250"}
        )
        return result.exit_code, result.output


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Sim]:
    world = World.generate(
        WorldConfig(
            seed=13,
            partners=2,
            races_per_partner=2,
            events_per_race=(2, 3),
            registrations_per_event=(20, 60),
            start_epoch=TODAY,
        )
    )
    db = tmp_path / "rsu.db"
    seed_credentials(db, world.credentials)
    with SimulatorServer(world) as server:
        s = Sim(world, db, server, tmp_path)
        assert s.sync() == (0, 0)
        assert s.active() == s.world_active()
        yield s


def assert_one_active_event_each(active: dict[tuple[int, int, int], object]) -> None:
    per_registration = Counter((race, reg) for race, _event, reg in active)
    assert per_registration and max(per_registration.values()) == 1


def test_event_changes_move_runners_to_their_new_event(sim: Sim) -> None:
    changes = sim.world.advance(event_changes=6, **NO_CHANGES)
    assert len(changes) == 6 and {c.kind for c in changes} == {"event_change"}
    assert sim.sync() == (0, 0)  # incremental listings: only the new event shows the runner
    active = sim.active()
    assert active == sim.world_active()
    assert_one_active_event_each(active)
    moved = {c.registration_id for c in changes}
    for c in changes:
        assert (c.race_id, c.new_event_id, c.registration_id) in active
    conn = sqlite3.connect(sim.db)
    recorded = conn.execute(
        "SELECT registration_id, from_event_id, to_event_id FROM runsignup_event_changes"
    ).fetchall()
    conn.close()
    # a runner moved twice shows both moves; the first from its original event
    assert {r[0] for r in recorded} == moved
    assert len(recorded) == len(changes)
    race_id = changes[0].race_id
    status = sim.race_status(race_id)
    n = sum(c.race_id == race_id for c in changes)
    assert status.event_changes == n
    assert status.what_happened() == [f"{n} event change{'s' if n > 1 else ''}"]
    code, out = sim.status_cli()
    assert code == 0, out
    assert f"race {race_id} (partner {status.timing_partner_id}): {n} event change" in out


def test_a_race_the_partner_can_no_longer_read_leaves_the_start_lists_and_comes_back(
    sim: Sim,
) -> None:
    pid = sim.world.partner_ids[0]
    race_id = sim.world.race_ids(pid)[0]
    sim.world.revoke_access(race_id)
    assert sim.sync() == (0, 0)  # the race is simply no longer in the partner's list
    active = sim.active()
    assert active == sim.world_active(skip_races=(race_id,))
    assert_one_active_event_each(active)
    status = sim.race_status(race_id)
    assert status.access_lost_reason == "missing_from_race_listing"
    assert status.active == 0 and not status.stale
    code, out = sim.status_cli()
    assert code == 0, out
    assert "access lost" in out and "no longer in the partner's race list" in out

    sim.world.restore_access(race_id)
    assert sim.sync() == (0, 0)
    assert sim.active() == sim.world_active()
    assert sim.race_status(race_id).access_lost_at is None

    # asked for directly, the race answers error 7 (Permission Denied) after earlier successes
    sim.world.revoke_access(race_id)
    fetch_code, project_code = sim.sync(race_ids=(race_id,), partner_ids=(pid,))
    assert (fetch_code, project_code) == (1, 1)  # the run reports the failing race ...
    status = sim.race_status(race_id)
    assert status.access_lost_reason == "permission_denied" and status.active == 0
    code, out = sim.status_cli()  # ... status names it instead of failing
    assert code == 0, out
    assert "Permission Denied" in out
    assert_one_active_event_each(sim.active())


def test_an_event_dropped_from_its_race_is_removed_with_its_registrations(sim: Sim) -> None:
    pid = sim.world.partner_ids[1]
    merged_race, dropped_race = sim.world.race_ids(pid)[:2]
    gone, keep = sim.world.event_ids(merged_race)[:2]
    moved = sim.world.remove_event(merged_race, gone, move_to=keep)  # runners merged into keep
    dropped = sim.world.event_ids(dropped_race)[0]
    lost = sim.world.remove_event(dropped_race, dropped)  # runners gone with their event
    assert moved and lost
    assert sim.sync() == (0, 0)
    active = sim.active()
    assert active == sim.world_active()
    assert_one_active_event_each(active)
    conn = sqlite3.connect(sim.db)
    reasons = dict(
        conn.execute(
            "SELECT registration_id, removed_reason FROM runsignup_participants "
            "WHERE race_id = ? AND event_id = ?",
            (dropped_race, dropped),
        ).fetchall()
    )
    previous = dict(
        conn.execute(
            "SELECT registration_id, previous_event_id FROM runsignup_participants "
            "WHERE race_id = ? AND event_id = ?",
            (merged_race, keep),
        ).fetchall()
    )
    conn.close()
    assert set(reasons) >= set(lost) and {reasons[r] for r in lost} == {"event_removed"}
    assert {previous[r] for r in moved} == {gone}
    assert sim.race_status(dropped_race).what_happened() == [f"event {dropped} removed"]
    assert sim.race_status(merged_race).what_happened() == [
        f"event {gone} removed",
        f"{len(moved)} event changes",
    ]
    code, out = sim.status_cli()
    assert code == 0, out
    assert f"event {dropped} removed" in out


def test_a_race_still_denied_fails_the_first_run_only_then_warns_until_it_answers(
    sim: Sim,
) -> None:
    from fetch_helpers import fast_options

    from rsu.fetcher import run_fetch
    from rsu.projector import project

    pid = sim.world.partner_ids[0]
    race_id = sim.world.race_ids(pid)[0]
    scope = {"race_ids": (race_id,), "partner_ids": (pid,)}
    denied = "RunSignUp error 7: Permission Denied"
    sim.world.revoke_access(race_id)
    first = run_fetch(sim.db, fast_options(sim.sim.base_url, sim.tmp, **scope))
    assert (first.exit_code, first.warnings) == (1, [])
    assert first.failures == [f"partner {pid} race {race_id}: race (code 7): {denied}"]
    assert project(sim.db).exit_code == 1  # the first denial is an error: named, exit 1
    db = sqlite3.connect(sim.db)
    since = db.execute(
        "SELECT access_lost_at FROM runsignup_races WHERE race_id = ?", (race_id,)
    ).fetchone()[0]
    # every later run that gets the same answer warns, without failing (nor asking for listings)
    for _ in range(2):
        previous = db.execute(
            "SELECT MAX(recorded_at) FROM journal WHERE kind = 'fetch_failed' AND race_id = ?",
            (race_id,),
        ).fetchone()[0]
        again = run_fetch(sim.db, fast_options(sim.sim.base_url, sim.tmp, **scope))
        assert (again.exit_code, again.status, again.failures) == (0, "ok", [])
        warning = (
            f"partner {pid} race {race_id}: race (code 7): denied again: {denied} (as in the "
            f"run at {previous[:19]}Z; access lost, see rsu status); its listings are not "
            "asked for until the race answers again"
        )
        assert again.warnings == [warning] and again.summary["warnings"] == [warning]
        assert (again.counts["requests"], again.counts["listings"]) == (3, 0)  # auth, races, race
        assert project(sim.db).exit_code == 0
        status = sim.race_status(race_id)
        assert (status.access_lost_at, status.access_lost_reason) == (since, "permission_denied")
        assert status.warning == f"denied again: {denied} (access lost since {since})"
        code, out = sim.status_cli()
        assert code == 0, out
    strict = CliRunner().invoke(app, ["status", "--db", str(sim.db), "--strict"])
    assert strict.exit_code == 0, strict.output
    # until it changes: the race answers again, then a new denial is an error again
    sim.world.restore_access(race_id)
    assert sim.sync(**scope) == (0, 0)
    assert sim.race_status(race_id).access_lost_at is None
    sim.world.revoke_access(race_id)
    assert sim.sync(**scope) == (1, 1)
    db.close()
