"""The fetcher against the simulator: completeness under faults, big events, bad keys,
incremental runs, scope options and the journal contract."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import pytest
from fetch_helpers import (
    SMALL,
    fast_options,
    journaled_ids,
    non_empty,
    seed_credentials,
    seeded_world,
    world_ids,
)

from rsu.fetcher import run_fetch
from rsu.fetcher.report import PlainProgress, run_mode
from rsu.journal import (
    FetchFailed,
    Journal,
    ListingCompleted,
    RequestFailed,
    ResponseReceived,
    RunFinished,
    RunStarted,
)
from rsu.simulator import (
    Credential,
    Faults,
    LoopbackServer,
    SimulatorServer,
    World,
    WorldConfig,
)
from rsu.simulator.api import SimulatorApp
from rsu.simulator.wire import Request, Response

FAULTS = Faults(
    seed=1,
    http_5xx=0.1,
    throttle=0.05,
    truncated=0.05,
    html_error=0.02,
    drop_connection=0.02,
)


def test_complete_data_under_faults(tmp_path: Path) -> None:
    world, db = seeded_world(
        tmp_path,
        seed=1,
        partners=3,
        races_per_partner=3,
        events_per_race=(1, 3),
        registrations_per_event=(50, 400),
    )
    with SimulatorServer(world, faults=FAULTS) as sim:
        result = run_fetch(db, fast_options(sim.base_url, tmp_path, page_size=100))
        faults_seen = {r.fault for r in sim.requests if r.fault}
    assert result.exit_code == 0, result.failures
    assert {"http_5xx", "throttle", "truncated"} <= faults_seen
    assert result.counts["retries"] > 0
    expected = world_ids(world)
    assert journaled_ids(db) == non_empty(expected)
    assert result.counts["participants"] == sum(len(v) for v in expected.values())
    assert journaled_ids(db, "removed_participants") == non_empty(world_ids(world, removed=True))
    with Journal.open(db) as j:
        assert j.verify().ok
        listings = [r.event for r in j.find(kind="listing_completed")]
        assert all(isinstance(e, ListingCompleted) and e.complete and e.ok for e in listings)
        # one listing per race and listing kind, covering exactly the race's events
        assert len(listings) == 2 * 9
        covered = sorted(e for ev in listings for e in ev.covered_events)  # type: ignore[union-attr]
        assert covered == sorted(2 * [e for _, e in expected])
        # every attempt is journaled: response_received + request_failed == requests
        kinds = j.stats().events_by_kind
        assert (
            kinds["response_received"] + kinds.get("request_failed", 0)
            == (result.counts["requests"])
        )
        # page_seqs point at this listing's successful pages
        for e in listings:
            assert isinstance(e, ListingCompleted)
            for seq in e.page_seqs:
                page = j.get(seq).event
                assert isinstance(page, ResponseReceived)
                assert page.listing_id == e.listing_id and page.status == 200
    summary = json.loads((tmp_path / "runsignup_sync_summary.json").read_text())
    assert summary["total_participants"] == result.counts["participants"]
    assert summary["total_races"] == 9
    assert summary["total_events"] == len(expected)
    assert summary["timing_partners_synced"] == 3
    assert summary["failed_syncs"] == []
    assert summary["run_id"] == result.run_id
    for key in ("requests", "retries", "bytes_received", "new_bodies", "duration_seconds"):
        assert key in summary


def test_event_with_6000_registrations(tmp_path: Path) -> None:
    world = World.generate(
        WorldConfig(seed=5, partners=1, races_per_partner=1, events_per_race=(1, 1))
    )
    race_id = world.race_ids(world.partner_ids[0])[0]
    big = world.add_event(race_id, registrations=6000)
    db = tmp_path / "rsu.db"
    seed_credentials(db, world.credentials)
    with SimulatorServer(world) as sim:
        result = run_fetch(db, fast_options(sim.base_url, tmp_path))
        part_requests = [r for r in sim.requests if r.path.endswith("/participants")]
    assert result.exit_code == 0
    assert journaled_ids(db)[(race_id, big)] == set(world.active_registrations(race_id, big))
    big_pages = [r for r in part_requests if str(big) in r.query["event_id"].split(",")]
    # the race's two events in one call, then the big event's own keyset pages from its last id
    assert next(r.query["event_id"] for r in part_requests) == ",".join(
        map(str, world.event_ids(race_id))
    )
    assert len(big_pages) == 3
    assert all(int(r.query["results_per_page"]) <= 2500 for r in part_requests)
    assert all(r.query["sort"] == "registration_id ASC" for r in part_requests)
    assert all(r.query["format"] == "json" for r in sim.requests)
    with Journal.open(db) as j:
        listing = next(
            r.event
            for r in j.find(kind="listing_completed", race_id=race_id)
            if isinstance(r.event, ListingCompleted) and r.event.endpoint == "participants"
        )
    assert isinstance(listing, ListingCompleted)
    active = sum(len(world.active_registrations(race_id, e)) for e in world.event_ids(race_id))
    assert len(world.active_registrations(race_id, big)) > 5000
    assert listing.rows == active and listing.pages == 3 and listing.complete
    assert listing.covered_events == world.event_ids(race_id)


def test_bad_key_partner_fails_others_complete(tmp_path: Path) -> None:
    world = World.generate(SMALL)
    bad = world.credentials[1]
    creds = [
        c
        if c is not bad
        else Credential(c.timing_partner_id, c.auth, c.principal, "0" * len(c.secret))
        for c in world.credentials
    ]
    db = tmp_path / "rsu.db"
    seed_credentials(db, creds)
    with SimulatorServer(world) as sim:
        result = run_fetch(db, fast_options(sim.base_url, tmp_path))
        auth_attempts = [r for r in sim.requests if r.auth == bad.auth]
    assert result.exit_code == 1
    assert len(auth_attempts) == 1  # error 6 is never retried
    expected = non_empty(world_ids(world))
    bad_races = set(world.race_ids(bad.timing_partner_id))
    good = {k: v for k, v in expected.items() if k[0] not in bad_races}
    assert journaled_ids(db) == good
    with Journal.open(db) as j:
        failed = j.find(kind="fetch_failed")
        assert len(failed) == 1
        ev = failed[0].event
        assert isinstance(ev, FetchFailed)
        assert (ev.endpoint, ev.error_code, ev.attempts) == ("auth_check", 6, 1)
        assert failed[0].timing_partner_id == bad.timing_partner_id
        fin = j.find(kind="run_finished")[-1].event
        assert isinstance(fin, RunFinished) and fin.status == "failed"
        assert fin.counts["failed_partners"] == 1
    summary = json.loads((tmp_path / "runsignup_sync_summary.json").read_text())
    assert [f["timing_partner_id"] for f in summary["failed_syncs"]] == [bad.timing_partner_id]
    assert "code 6" in summary["failed_syncs"][0]["errors"][0]


def _run_ids(db: Path) -> list[str]:
    with Journal.open(db) as j:
        return [r.run_id for r in j.find(kind="run_started") if r.run_id]


def test_incremental_journals_exactly_the_changes(tmp_path: Path) -> None:
    world = World.generate(SMALL)
    db = tmp_path / "rsu.db"
    seed_credentials(db, world.credentials)
    with SimulatorServer(world) as sim:
        first = run_fetch(db, fast_options(sim.base_url, tmp_path, overlap_seconds=0))
        assert first.exit_code == 0
        before = world.now
        changes = world.advance(new=12, edits=6, refunds=3, transfers=2, deferrals=2, seconds=600)
        assert {c.kind for c in changes} == {"new", "edit", "refund", "transfer", "deferral"}
        second = run_fetch(db, fast_options(sim.base_url, tmp_path, overlap_seconds=0))
        incr = [r for r in sim.requests if "modified_after_timestamp" in r.query]
    assert second.exit_code == 0
    assert incr  # the second run used cursors
    run2 = _run_ids(db)[-1]
    changed_active = {
        k: {i for i, row in world.active_registrations(*k).items() if row["last_modified"] > before}
        for k in world_ids(world)
    }
    changed_removed = {
        k: {
            i
            for i, row in world.removed_registrations(*k).items()
            if row["last_modified_ts"] > before
        }
        for k in world_ids(world)
    }
    got_active = journaled_ids(db, "participants", run2)
    got_removed = journaled_ids(db, "removed_participants", run2)
    assert non_empty(got_active) == non_empty(changed_active)
    assert non_empty(got_removed) == non_empty(changed_removed)
    # and the changes the simulator reported are in there
    new_ids = {c.registration_id for c in changes if c.kind == "new"}
    assert new_ids <= set().union(*got_active.values())
    gone = {c.registration_id for c in changes if c.kind in ("refund", "transfer", "deferral")}
    assert gone <= set().union(*got_removed.values())
    with Journal.open(db) as j:
        started = j.find(kind="run_started", run_id=run2)[0].event
        assert isinstance(started, RunStarted) and started.mode == "incremental"
        listings = [r.event for r in j.find(kind="listing_completed", run_id=run2)]
    part = [e for e in listings if isinstance(e, ListingCompleted) and e.endpoint == "participants"]
    assert part and all(e.mode == "incremental" and not e.complete for e in part)
    # a removed listing that never saw a row has no cursor yet, so it is read completely again
    for e in listings:
        assert isinstance(e, ListingCompleted)
        if e.mode == "full":
            assert e.endpoint == "removed_participants"
            assert not world_ids(world, removed=True)[(e.race_id, e.event_id)] - gone


def test_run_without_changes_stores_no_new_bodies(tmp_path: Path) -> None:
    world = World.generate(SMALL)
    db = tmp_path / "rsu.db"
    seed_credentials(db, world.credentials)
    with SimulatorServer(world) as sim:
        assert run_fetch(db, fast_options(sim.base_url, tmp_path)).exit_code == 0
        # the first incremental run re-reads the 10 s overlap window (new bodies)
        assert run_fetch(db, fast_options(sim.base_url, tmp_path)).exit_code == 0
        with Journal.open(db) as j:
            blobs = j.stats().blobs
        third = run_fetch(db, fast_options(sim.base_url, tmp_path))
    assert third.exit_code == 0
    assert third.counts["new_bodies"] == 0
    with Journal.open(db) as j:
        assert j.stats().blobs == blobs


def test_full_flag_and_full_every(tmp_path: Path) -> None:
    world = World.generate(SMALL)
    db = tmp_path / "rsu.db"
    seed_credentials(db, world.credentials)
    with SimulatorServer(world) as sim:
        run_fetch(db, fast_options(sim.base_url, tmp_path))
        sim.clear_requests()
        forced = run_fetch(db, fast_options(sim.base_url, tmp_path, full=True))
        assert not any("modified_after_timestamp" in r.query for r in sim.requests)
        sim.clear_requests()
        aged = run_fetch(db, fast_options(sim.base_url, tmp_path, full_every=0.0))
        assert not any("modified_after_timestamp" in r.query for r in sim.requests)
    assert forced.counts["complete_listings"] == forced.counts["listings"] > 0
    assert aged.counts["complete_listings"] == aged.counts["listings"]
    with Journal.open(db) as j:
        modes = [
            r.event.mode for r in j.find(kind="run_started") if isinstance(r.event, RunStarted)
        ]
    assert modes == ["incremental", "full", "incremental"]


def test_scope_partner_race_and_test_flag(tmp_path: Path) -> None:
    world = World.generate(SMALL)
    db = tmp_path / "rsu.db"
    seed_credentials(db, world.credentials)
    p0, p1 = sorted(world.partner_ids)[:2]
    race = world.race_ids(p1)[0]
    with SimulatorServer(world) as sim:
        r1 = run_fetch(db, fast_options(sim.base_url, tmp_path, test=True))
        assert {k[0] for k in journaled_ids(db)} == set(world.race_ids(p0))
        r2 = run_fetch(db, fast_options(sim.base_url, tmp_path, race_ids=(race,), full=True))
        r3 = run_fetch(db, fast_options(sim.base_url, tmp_path, partner_ids=(p1,), full=True))
    assert (r1.counts["races"], r2.counts["races"]) == (len(world.race_ids(p0)), 1)
    assert r3.counts["races"] == len(world.race_ids(p1))
    assert r3.summary["timing_partners_synced"] == 1


def test_date_window_is_sent(tmp_path: Path) -> None:
    from datetime import date

    world = World.generate(SMALL)
    db = tmp_path / "rsu.db"
    seed_credentials(db, world.credentials)
    with SimulatorServer(world) as sim:
        result = run_fetch(
            db, fast_options(sim.base_url, tmp_path, all_races=False, today=date(2026, 1, 1))
        )
        listing = [r for r in sim.requests if r.path == "/Rest/races" and "events" in r.query]
    assert {(r.query["start_date"], r.query["end_date"]) for r in listing} == {
        ("2025-12-02", "2027-01-01")
    }
    assert all(r.query["only_partner_races"] == "T" for r in listing)
    assert result.counts["races"] == sum(len(world.race_ids(p)) for p in world.partner_ids)


def test_races_listing_pages(tmp_path: Path) -> None:
    world = World.generate(
        WorldConfig(seed=9, partners=1, races_per_partner=5, registrations_per_event=(5, 10))
    )
    db = tmp_path / "rsu.db"
    seed_credentials(db, world.credentials)
    with SimulatorServer(world) as sim:
        result = run_fetch(db, fast_options(sim.base_url, tmp_path, races_page_size=2))
        pages = [r.query["page"] for r in sim.requests if r.query.get("events") == "T"]
    assert pages == ["1", "2", "3"]
    assert result.counts["races"] == 5


def test_connection_refused_is_journaled_and_fails(tmp_path: Path) -> None:
    world = World.generate(SMALL)
    db = tmp_path / "rsu.db"
    seed_credentials(db, world.credentials[:1])
    with SimulatorServer(world) as sim:
        url = sim.base_url
    result = run_fetch(db, fast_options(url, tmp_path, max_attempts=2))
    assert result.exit_code == 1
    with Journal.open(db) as j:
        attempts = [r.event for r in j.find(kind="request_failed")]
        assert [isinstance(a, RequestFailed) and a.final for a in attempts] == [False, True]
        failed = j.find(kind="fetch_failed")[0].event
        assert isinstance(failed, FetchFailed)
        assert failed.http_status is None and failed.attempts == 2


@pytest.mark.parametrize("kind", ["http_429", "error_14"])
def test_throttling_is_retried(tmp_path: Path, kind: str) -> None:
    world = World.generate(SMALL)
    db = tmp_path / "rsu.db"
    seed_credentials(db, world.credentials[:1])
    faults = Faults(seed=2, throttle_every=3, throttle_http_429=kind == "http_429", retry_after_s=1)
    with SimulatorServer(world, faults=faults) as sim:
        result = run_fetch(db, fast_options(sim.base_url, tmp_path))
        throttled = [r for r in sim.requests if r.fault == "throttle"]
    assert result.exit_code == 0
    assert throttled and result.counts["retries"] >= len(throttled)
    pid = world.credentials[0].timing_partner_id
    expected = {k: v for k, v in non_empty(world_ids(world)).items() if k[0] in world.race_ids(pid)}
    assert journaled_ids(db) == expected


NOT_LISTED = (
    "race 999999 was not in any partner's race list; "
    "pass --partner ID to ask RunSignUp for it directly"
)


def test_requested_race_no_partner_has_is_a_failure(tmp_path: Path) -> None:
    world = World.generate(SMALL)
    db = tmp_path / "rsu.db"
    seed_credentials(db, world.credentials)
    race = world.race_ids(sorted(world.partner_ids)[1])[0]
    with SimulatorServer(world) as sim:
        alone = run_fetch(db, fast_options(sim.base_url, tmp_path, race_ids=(999999,)))
        mixed = run_fetch(db, fast_options(sim.base_url, tmp_path, race_ids=(race, 999999)))
        asked = {r.path for r in sim.requests}
    assert (alone.exit_code, alone.status, alone.counts["races"]) == (1, "failed", 0)
    assert alone.failures == [NOT_LISTED]
    assert alone.summary["failed_syncs"] == [{"timing_partner_id": None, "errors": [NOT_LISTED]}]
    assert alone.counts["failed_partners"] == 0 and alone.counts["failed_races"] == 1
    assert (mixed.exit_code, mixed.counts["races"], mixed.failures) == (1, 1, [NOT_LISTED])
    assert "/Rest/race/999999" not in asked


def _failing_races_listing(world: World):
    """The simulator, except that every races listing (``events=T``) answers HTTP 502."""
    inner = SimulatorApp(world)

    def app(req: Request) -> Response:
        if req.path == "/Rest/races" and req.query.get("events") == "T":
            return Response(502, b"<html>502 Bad Gateway</html>", "text/html")
        return inner(req)

    return app


def test_failed_races_listing_is_reported_as_failed(tmp_path: Path) -> None:
    world = World.generate(SMALL)
    db = tmp_path / "rsu.db"
    seed_credentials(db, world.credentials[:1])
    pid = world.credentials[0].timing_partner_id
    notes = io.StringIO()
    with LoopbackServer(_failing_races_listing(world)) as server:
        result = run_fetch(
            db, fast_options(server.base_url, tmp_path, max_attempts=2), PlainProgress(notes)
        )
    assert result.exit_code == 1
    assert notes.getvalue().splitlines() == [
        f"partner {pid}: races listing failed (HTTP 502); 0 races read"
    ]
    assert result.failures == [f"partner {pid}: races: HTTP 502"]
    log = (tmp_path / "runsignup_sync.log").read_text()
    assert f"partner {pid}: races listing failed (HTTP 502); 0 races read" in log
    assert f"partner {pid}: 0 races" not in log


def test_ctrl_c_is_journaled_and_summarised_as_interrupted(tmp_path: Path) -> None:
    from rsu.fetcher.report import NullProgress

    class CtrlC(NullProgress):
        def advance(self, kind: str, n: int = 1) -> None:
            if kind == "races":
                raise KeyboardInterrupt

    world = World.generate(SMALL)
    db = tmp_path / "rsu.db"
    seed_credentials(db, world.credentials)
    with SimulatorServer(world) as sim, pytest.raises(KeyboardInterrupt):
        run_fetch(db, fast_options(sim.base_url, tmp_path, concurrency=1), CtrlC())
    summary = json.loads((tmp_path / "runsignup_sync_summary.json").read_text())
    assert (summary["status"], summary["exit_code"], summary["interrupted"]) == (
        "interrupted",
        130,
        True,
    )
    # interrupted in the first partner's race listing: no partner synced (was: every partner)
    assert summary["timing_partners_synced"] == 0
    with Journal.open(db) as j:
        assert j.verify().ok
        finished = j.find(kind="run_finished")[-1].event
    assert isinstance(finished, RunFinished) and finished.status == "interrupted"
    assert "interrupted by the operator" in finished.failures


def test_an_edit_made_while_a_long_listing_runs_is_fetched_next_time(tmp_path: Path) -> None:
    """A row on page 1 edited while later pages are read has a last_modified below the newest one
    seen on the last page; the next incremental listing must still ask for it."""
    from rsu.fetcher.report import NullProgress
    from rsu.projector import project

    world = World.generate(
        WorldConfig(
            seed=4,
            partners=1,
            races_per_partner=1,
            events_per_race=(1, 1),
            registrations_per_event=(1, 1),
        )
    )
    race_id = world.race_ids(world.partner_ids[0])[0]
    big = world.add_event(race_id, registrations=3000)
    db = tmp_path / "rsu.db"
    seed_credentials(db, world.credentials)

    with SimulatorServer(world) as sim:

        class EditWhileListing(NullProgress):
            changes: list = []  # noqa: RUF012

            def advance(self, kind: str, n: int = 1) -> None:
                first_page_served = any(
                    r.path.endswith("/participants") and r.query.get("event_id") == str(big)
                    for r in sim.requests
                )
                if kind == "pages" and first_page_served and not self.changes:
                    self.changes = world.advance(
                        new=0, edits=40, refunds=0, transfers=0, deferrals=0, race_ids=[race_id]
                    )
                    self.changes += world.advance(
                        new=5, edits=0, refunds=0, transfers=0, deferrals=0, race_ids=[race_id]
                    )

        progress = EditWhileListing()
        options = fast_options(
            sim.base_url, tmp_path, page_size=1000, concurrency=1, overlap_seconds=0
        )
        assert run_fetch(db, options, progress).exit_code == 0
        assert len(progress.changes) == 45
        assert run_fetch(db, options).exit_code == 0  # incremental
        assert project(db).exit_code == 0

    conn = sqlite3.connect(db)
    rows = {
        r[0]: (r[1], r[2])
        for r in conn.execute(
            "SELECT registration_id, first_name, last_name FROM runsignup_participants "
            "WHERE event_id = ? AND removed_at IS NULL",
            (big,),
        )
    }
    conn.close()
    want = {
        reg: ((row.get("user") or {}).get("first_name"), (row.get("user") or {}).get("last_name"))
        for reg, row in world.active_registrations(race_id, big).items()
    }
    assert rows == want


def test_summary_mode_says_what_the_run_read(tmp_path: Path) -> None:
    """The first-ever run said ``"mode": "incremental"`` though no listing had a cursor and every
    one was read completely: the summary now names what was read, the journal keeps the request."""
    world = World.generate(SMALL)
    db = tmp_path / "rsu.db"
    seed_credentials(db, world.credentials)
    summary_file = tmp_path / "runsignup_sync_summary.json"
    seen = []
    with SimulatorServer(world) as sim:
        for full in (False, False, True):
            assert run_fetch(db, fast_options(sim.base_url, tmp_path, full=full)).exit_code == 0
            summary = json.loads(summary_file.read_text())
            seen.append((summary["mode"], summary["listings"] > 0, summary["incremental_listings"]))
    assert [(mode, some) for mode, some, _ in seen] == [
        ("full", True),
        ("incremental", True),
        ("full", True),
    ]
    assert seen[0][2] == seen[2][2] == 0 < seen[1][2]
    with Journal.open(db) as j:
        modes = [
            r.event.mode for r in j.find(kind="run_started") if isinstance(r.event, RunStarted)
        ]
    assert modes == ["incremental", "incremental", "full"]  # what was asked for


@pytest.mark.parametrize(
    ("requested", "listings", "incremental", "mode"),
    [
        ("incremental", 8, 0, "full"),
        ("incremental", 8, 8, "incremental"),
        ("incremental", 8, 3, "incremental"),
        ("full", 8, 0, "full"),
        ("incremental", 0, 0, "incremental"),
        ("full", 0, 0, "full"),
    ],
)
def test_run_mode(requested: str, listings: int, incremental: int, mode: str) -> None:
    counts = {"listings": listings, "incremental_listings": incremental}
    assert run_mode(requested, counts) == mode
