"""The summary's participant counts are registrations read, each once per listing, even when a
several-event listing must ask again to prove a short page complete (tryout2)."""

from __future__ import annotations

import json
from pathlib import Path

from fetch_helpers import fast_options, seeded_world, world_ids

from rsu.fetcher import run_fetch
from rsu.journal import Journal, ListingCompleted
from rsu.simulator import SimulatorServer


def test_a_several_event_continuation_does_not_count_rows_twice(tmp_path: Path) -> None:
    world, db = seeded_world(
        tmp_path,
        seed=2,
        partners=1,
        races_per_partner=1,
        events_per_race=(3, 3),
        registrations_per_event=(60, 80),
    )
    with SimulatorServer(world) as sim:
        result = run_fetch(db, fast_options(sim.base_url, tmp_path))
    assert result.exit_code == 0, result.failures
    expected = world_ids(world)
    with Journal.open(db) as j:
        listings = [r.event for r in j.find(kind="listing_completed")]
    participants = [
        e for e in listings if isinstance(e, ListingCompleted) and e.endpoint == "participants"
    ]
    # the case under test: one listing of 3 events that needed more pages to end
    assert [(len(e.event_ids), e.pages) for e in participants] == [(3, 3)]
    registrations = sum(len(ids) for ids in expected.values())
    assert result.counts["participants"] == registrations
    summary = json.loads((tmp_path / "runsignup_sync_summary.json").read_text())
    assert summary["total_participants"] == registrations
