"""A complete listing retires registrations only with proof that it is complete (issue 9): its
last page is empty, or shorter than a page the server already served. A server that serves fewer
rows per page than the 2,500 asked must not make the fetcher stop after the first page and retire
everyone on the later ones."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from fetch_helpers import fast_options, seeded_world, world_registrations
from project_helpers import participant_rows

from rsu.fetcher import run_fetch
from rsu.fetcher.grouping import next_parts
from rsu.fetcher.paging import PageProof
from rsu.fetcher.shapes import PageInfo
from rsu.journal import Journal, ListingCompleted
from rsu.projector import project
from rsu.simulator import SimulatorServer, World


def test_a_page_ends_a_listing_only_when_empty_or_shorter_than_one_served():
    proof = PageProof()
    # nothing served yet: a page of 10 (asked: 2500) may be a capped full page
    assert [proof.ends(n) for n in (10, 10, 10, 4)] == [False, False, False, True]
    assert proof.served == 10
    assert PageProof().ends(0) is True  # empty always ends
    # fewer rows than RunSignUp's own default page size (50) end a listing at once
    assert PageProof(floor=50).ends(37) is True
    assert PageProof(floor=50).ends(50) is False


def test_several_event_page_is_short_only_below_a_served_page():
    page = PageInfo(rows=12, last_id=40, per_event={1: (7, 40), 2: (5, 33)})
    # asked 2500: under the old rule this page ended both events
    assert next_parts(page, (1, 2), 2500, served=0) == [((1, 2), 40)]
    assert next_parts(page, (1, 2), 2500, served=12) == [((1, 2), 40)]
    assert next_parts(page, (1, 2), 2500, served=13) == []
    assert next_parts(PageInfo(), (1, 2), 2500, served=0) == []
    # more rows than asked: each event is paged on its own, and the page's largest element is a
    # page the server served; the smaller event ended
    per_event = PageInfo(rows=2600, last_id=90, per_event={1: (2500, 90), 2: (100, 50)})
    assert next_parts(per_event, (1, 2), 2500, served=0) == [((1,), 90)]


def _active(db: Path) -> set[tuple[int, int, int]]:
    return set(participant_rows(db))


def _world_active(world: World) -> set[tuple[int, int, int]]:
    return set(world_registrations(world))


@pytest.mark.parametrize(
    ("events_per_call", "reading"), [(1, "per_event"), (100, "per_event"), (100, "total")]
)
def test_a_server_capping_pages_below_the_size_asked_retires_nobody(
    tmp_path: Path, events_per_call: int, reading: str
):
    world, db = seeded_world(
        tmp_path,
        seed=21,
        partners=1,
        races_per_partner=2,
        events_per_race=(1, 3),
        registrations_per_event=(80, 200),
    )
    opts = {"events_per_call": events_per_call, "page_size": 150, "full": True}
    with SimulatorServer(world, multi_event_paging=reading) as sim:
        assert run_fetch(db, fast_options(sim.base_url, tmp_path, **opts)).exit_code == 0
        assert project(db).exit_code == 0
        assert _active(db) == _world_active(world)
        first_run = _last_listings(db)
        # RunSignUp now serves at most 60 rows a page, though 150 are asked
        sim.api.max_page_size = 60
        assert run_fetch(db, fast_options(sim.base_url, tmp_path, **opts)).exit_code == 0
        assert project(db).exit_code == 0
    assert _active(db) == _world_active(world)  # nobody on pages 2.. was retired
    capped = _last_listings(db)
    assert all(ev.complete for ev in capped)
    # every listing of more than 60 rows needed more pages than under no cap
    assert sum(ev.pages for ev in capped) > sum(ev.pages for ev in first_run)
    conn = sqlite3.connect(db)
    try:
        retired = conn.execute(
            "SELECT COUNT(*) FROM runsignup_participants WHERE removed_reason = "
            "'missing_from_listing'"
        ).fetchone()
    finally:
        conn.close()
    assert retired == (0,)


def _last_listings(db: Path) -> list[ListingCompleted]:
    with Journal.open(db) as jn:
        runs = [r.run_id for r in jn.find(kind="run_started")]
        return [
            r.event
            for r in jn.find(kind="listing_completed", run_id=runs[-1])
            if isinstance(r.event, ListingCompleted) and r.event.endpoint == "participants"
        ]


def _lost(db: Path) -> list[tuple[int, str]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT race_id, access_lost_reason FROM runsignup_races "
            "WHERE access_lost_at IS NOT NULL"
        ).fetchall()
    finally:
        conn.close()


def test_a_server_capping_the_races_listing_loses_no_race(tmp_path: Path):
    """60 races, 1000 asked a page, 55 served: page 1 is not the last, the fetcher reads page 2
    and no race (nor its registrations) is taken for gone."""
    world, db = seeded_world(
        tmp_path,
        seed=5,
        partners=1,
        races_per_partner=60,
        events_per_race=(1, 1),
        registrations_per_event=(1, 1),
    )
    with SimulatorServer(world, max_page_size=55) as sim:
        assert run_fetch(db, fast_options(sim.base_url, tmp_path, full=True)).exit_code == 0
        assert project(db).exit_code == 0
        pages = [q for q in sim.requests if q.path == "/Rest/races" and "page" in q.query]
    assert len(pages) == 2
    assert _lost(db) == []
    assert _active(db) == _world_active(world)
