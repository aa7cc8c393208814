"""``rsu status`` counts staleness from when a race became due by the cadence, not from its last
success: a race synced once a day is not stale an hour after its sync (found by a new user:
`status --max-age 1h` alarmed for every race more than a day out)."""

from __future__ import annotations

from datetime import timedelta

from project_helpers import Builder, j, new_journal, participants_body, race_obj, registration

from rsu.cli.ops_cmd import race_due_since
from rsu.fetcher.cadence import DEFAULT_CADENCE_SPEC, parse_cadence
from rsu.projector import project
from rsu.projector.reports import parse_utc, sync_status

CADENCE = parse_cadence(DEFAULT_CADENCE_SPEC)
EV = 11


def _synced_race(tmp_path, start_local: str):
    """A journal with one synced race whose event starts at ``start_local`` (Denver time)."""
    jn = new_journal(tmp_path / "rsu.db")
    race = race_obj(100, event_ids=(EV,))
    race["events"][0]["start_time"] = start_local
    b = Builder(jn)
    b.run_started()
    b.race(j({"race": race}), 100)
    b.listing(100, EV, [participants_body(EV, [registration(1, EV)])])
    b.run_finished()
    project(jn.db)
    return jn


def _stale(jn, after: timedelta, max_age: float, *, cadence: bool = True) -> bool:
    first = sync_status(jn.db.conn, max_age_seconds=max_age)
    last = parse_utc(first.partners[0].races[0].last_success)
    report = sync_status(
        jn.db.conn,
        max_age_seconds=max_age,
        now=last + after,
        due_since=(lambda r: race_due_since(r, CADENCE)) if cadence else None,
    )
    (race,) = report.partners[0].races
    assert race.next_event_utc is not None  # an upcoming event: staleness applies
    return race.stale


def test_a_race_months_away_is_stale_only_once_overdue_by_its_daily_cadence(tmp_path):
    jn = _synced_race(tmp_path, "06/01/2024 09:00")  # ~5 months after the sync: every 24 h
    ten_minutes = 600.0
    assert not _stale(jn, timedelta(minutes=20), ten_minutes)
    assert _stale(jn, timedelta(minutes=20), ten_minutes, cadence=False)  # the old rule
    assert not _stale(jn, timedelta(hours=24, minutes=5), ten_minutes)
    assert _stale(jn, timedelta(hours=24, minutes=11), ten_minutes)


def test_a_race_within_a_day_is_stale_once_an_hour_overdue_by_more_than_max_age(tmp_path):
    jn = _synced_race(tmp_path, "01/01/2024 20:00")  # the same day: every hour
    ten_minutes = 600.0
    assert not _stale(jn, timedelta(minutes=30), ten_minutes)
    assert _stale(jn, timedelta(hours=1, minutes=11), ten_minutes)
