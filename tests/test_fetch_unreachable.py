"""A dead API: the run's circuit breaker stops sending every partner's requests after 3
consecutive requests without any HTTP response, records every skipped scope as failed, and a
later fetch completes the data."""

from __future__ import annotations

from pathlib import Path

from fetch_helpers import fast_options, journaled_ids, non_empty, seed_credentials, world_ids

from rsu.fetcher import run_fetch
from rsu.fetcher.report import NullProgress
from rsu.journal import FetchFailed, Journal, ListingCompleted, RequestFailed
from rsu.simulator import SimulatorServer, World, WorldConfig

CONFIG = WorldConfig(
    seed=21,
    partners=2,
    races_per_partner=2,
    events_per_race=(3, 3),
    registrations_per_event=(5, 10),
)
SKIP_REASON = "RunSignUp unreachable after 3 consecutive requests without an answer"
MAX_ATTEMPTS = 4


class StopAfterFirstEvent(NullProgress):
    """Stops the simulator as soon as the first race's two listings are journaled."""

    def __init__(self, sim: SimulatorServer) -> None:
        self.sim = sim
        self.stopped = False

    def advance(self, kind: str, n: int = 1) -> None:
        if kind == "events" and not self.stopped:
            self.stopped = True
            self.sim.stop()


def test_dead_api_trips_breaker_then_next_fetch_completes(tmp_path: Path) -> None:
    world = World.generate(CONFIG)
    db = tmp_path / "rsu.db"
    seed_credentials(db, world.credentials)
    pids = sorted(world.partner_ids)
    options = fast_options("", tmp_path, concurrency=1, max_attempts=MAX_ATTEMPTS)
    with SimulatorServer(world) as sim:
        options.base_url = sim.base_url
        progress = StopAfterFirstEvent(sim)
        result = run_fetch(db, options, progress)
    assert progress.stopped
    assert result.exit_code == 1
    with Journal.open(db) as j:
        assert j.verify().ok
        run = result.run_id
        attempts = [r for r in j.find(kind="request_failed", run_id=run)]
        failed = [r for r in j.find(kind="fetch_failed", run_id=run)]
        listings = [r.event for r in j.find(kind="listing_completed", run_id=run)]
    # 2 partners x 2 races x 2 listings (a race's 3 events in one call); only the first race's
    # two were read
    assert len(listings) == 8
    assert all(isinstance(e, ListingCompleted) and len(e.covered_events) == 3 for e in listings)
    assert sum(1 for e in listings if isinstance(e, ListingCompleted) and not e.ok) == 6
    # exactly 3 requests were tried in all (each with every attempt), the rest skipped
    assert len(attempts) == 3 * MAX_ATTEMPTS
    assert all(
        isinstance(r.event, RequestFailed) and r.event.error_class == "ConnectionError"
        for r in attempts
    )
    events = [r.event for r in failed]
    assert all(isinstance(e, FetchFailed) for e in events)
    real = [e for e in events if isinstance(e, FetchFailed) and e.attempts]
    skipped_by = {
        pid: [
            r.event
            for r in failed
            if r.timing_partner_id == pid and isinstance(r.event, FetchFailed)
            if not r.event.attempts
        ]
        for pid in pids
    }
    assert [e.attempts for e in real] == [MAX_ATTEMPTS] * 3
    assert {e.error_msg for s in skipped_by.values() for e in s} == {f"skipped: {SKIP_REASON}"}
    for pid, skipped in skipped_by.items():
        group = [line for line in result.failures if line.startswith(f"partner {pid}: skipped ")]
        assert len(group) == (1 if skipped else 0)
        if skipped:
            assert group[0].startswith(f"partner {pid}: skipped {len(skipped)} request")
            assert group[0].endswith(f"): {SKIP_REASON}")
    # 3 real failure lines + one grouped line per partner with skipped requests
    assert len(result.failures) == 3 + sum(1 for s in skipped_by.values() if s)
    assert result.counts["skipped_requests"] == len(failed) - 3
    assert any(e.endswith(SKIP_REASON) for f in result.summary["failed_syncs"] for e in f["errors"])

    with SimulatorServer(world) as sim:
        again = run_fetch(db, fast_options(sim.base_url, tmp_path))
    assert again.exit_code == 0, again.failures
    assert non_empty(journaled_ids(db)) == non_empty(world_ids(world))
    removed = journaled_ids(db, "removed_participants")
    assert non_empty(removed) == non_empty(world_ids(world, removed=True))
    with Journal.open(db) as j:
        assert j.verify().ok
