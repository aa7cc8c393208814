"""Recorded real input end to end: the responses in ``../shared/fixtures/runsignup/real/`` are
served byte for byte by the simulator's replay mode, ``rsu sync`` runs against them, and the
projected tables hold exactly what RunSignUp said (races, events, registration periods and fees,
and the recorded error responses as errors)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fetch_helpers import seed_credentials
from typer.testing import CliRunner

from rsu.cli.main import app
from rsu.journal import Journal
from rsu.simulator import Credential, ReplayServer

REAL = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "runsignup" / "real"


def _exchange(path: str, body_file: str | None = None, body: str | None = None, **query: str):
    item: dict[str, Any] = {"method": "GET", "path": path, "query": {"format": "json", **query}}
    if body_file is not None:
        item["body_file"] = str(REAL / body_file)
    else:
        item["body"] = body
    return item


def _empty_removed(event_id: int) -> str:
    # No recorded removed-participants response exists; this is the documented empty shape.
    return json.dumps([{"event": {"event_id": event_id, "participants": []}}])


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    return write_manifest(tmp_path)


def write_manifest(tmp_path: Path) -> Path:
    """A ReplayServer manifest of the recorded responses (skips the test when they are absent)."""
    if not REAL.is_dir():
        pytest.skip(f"recorded RunSignUp responses not found at {REAL} (../shared is absent)")
    exchanges = [
        _exchange("/Rest/races", "races-list-no-events-2018.json"),
        _exchange("/Rest/race/1649", "race-detail-1649-events-periods.json"),
        _exchange("/Rest/race/85675", "race-detail-85675-events-trimmed.json"),
        _exchange("/Rest/race/16404", "error-201-race-not-found.json"),
        # race 1649: the key has no access to its participants
        _exchange("/Rest/race/1649/participants", "error-7-permission-denied.json"),
        _exchange("/Rest/race/1649/removed-participants", "error-7-permission-denied.json"),
        # race 85675: one real page, one unknown event, one event without access
        _exchange(
            "/Rest/race/85675/participants",
            "participants-page-event-661702-trimmed.json",
            event_id="661702",
        ),
        _exchange(
            "/Rest/race/85675/participants", "error-301-event-not-found.json", event_id="661703"
        ),
        _exchange(
            "/Rest/race/85675/participants", "error-7-permission-denied.json", event_id="661817"
        ),
    ]
    for event_id in (661702, 661703, 661817):
        exchanges.append(
            _exchange(
                "/Rest/race/85675/removed-participants",
                body=_empty_removed(event_id),
                event_id=str(event_id),
            )
        )
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"exchanges": exchanges}))
    return path


def test_sync_of_recorded_real_responses(manifest: Path, tmp_path: Path) -> None:
    db = tmp_path / "rsu.db"
    seed_credentials(db, [Credential(4242, "api_key", "recorded-key", "recorded-secret")])
    with ReplayServer(manifest) as replay:
        result = CliRunner().invoke(
            app,
            [
                "sync",
                "--db",
                str(db),
                "--base-url",
                replay.base_url,
                "--race",
                "1649",
                "--race",
                "85675",
                "--race",
                "16404",
                "--max-rps",
                "0",
                "--backoff",
                "0",
                "--log-file",
                str(tmp_path / "sync.log"),
                "--summary-file",
                str(tmp_path / "summary.json"),
            ],
        )
    # errors were recorded, so the sync says so
    assert result.exit_code == 1, result.output

    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    races = {r["race_id"]: r for r in conn.execute("SELECT * FROM runsignup_races")}
    # the races list (3 races) and both race details
    assert set(races) == {16404, 32827, 29128, 1649, 85675}
    r1649 = races[1649]
    assert r1649["timing_partner_id"] == 4242
    assert r1649["name"] == "10k Turkey Trek & 2k Turkey Toddle"
    assert r1649["timezone"] == "America/Denver"
    assert r1649["next_date"] == "2017-11-18"
    assert r1649["is_registration_open"] == 1
    assert r1649["zipcode"] == "80007"
    assert races[16404]["name"] == " Chilly Cheeks 10 Mile, 5Mile, 5K, 1 Mile and Virtual Run"
    assert races[16404]["fb_page_id"] == "chillycheeks5K"
    assert races[85675]["next_date"] == "2023-02-10"

    events = {e["event_id"]: e for e in conn.execute("SELECT * FROM runsignup_events")}
    assert set(events) == {139165, 139166, 661702, 661703, 661817}
    trek = events[139165]
    assert trek["distance"] == "10K"
    assert trek["start_time_utc"] == "2017-11-18T16:00:00Z"  # 09:00 in Denver (MST)
    assert trek["require_dob"] == 1
    periods = json.loads(trek["registration_periods"])
    assert [p["race_fee"] for p in periods] == [3500, 4000, 4500]
    assert {p["processing_fee"] for p in periods} == {380}
    toddle_fees = [p["race_fee"] for p in json.loads(events[139166]["registration_periods"])]
    assert toddle_fees == [2000, 2500, 2500]
    assert events[139166]["giveaway"] == "Children's t-shirt option"
    assert events[661702]["end_time"].startswith("2023-02-11T18:00")  # ends the next day

    # the recorded error responses are sync_history errors with RunSignUp's code and message
    errors = {
        (r["race_id"], r["event_id"], r["endpoint"]): (r["error_code"], r["reason"])
        for r in conn.execute("SELECT * FROM sync_history WHERE status = 'error'")
    }
    assert errors[(1649, 139165, "participants")] == (7, "RunSignUp error 7: Permission Denied")
    assert errors[(1649, 139166, "removed_participants")] == (
        7,
        "RunSignUp error 7: Permission Denied",
    )
    assert errors[(85675, 661703, "participants")] == (301, "RunSignUp error 301: Event not found.")
    assert errors[(85675, 661817, "participants")] == (7, "RunSignUp error 7: Permission Denied")
    assert errors[(16404, None, "race")] == (201, "RunSignUp error 201: Race not found.")
    # the real page has no registration_id (its source trimmed it): the listing cannot be
    # paged nor trusted, so it is an error naming the missing field, and no row is invented
    code, reason = errors[(85675, 661702, "participants")]
    assert code is None and "registration_id" in reason  # NULL: RunSignUp sent no code
    assert conn.execute("SELECT COUNT(*) FROM runsignup_participants").fetchone()[0] == 0
    # the listings that did work are successes (removed-participants of race 85675)
    ok = conn.execute(
        "SELECT COUNT(*) FROM sync_history WHERE status = 'success' AND race_id = 85675 "
        "AND endpoint = 'removed_participants'"
    ).fetchone()[0]
    assert ok == 3
    conn.close()

    with Journal.open(db) as j:
        assert j.verify().ok
        # byte-exact audit trail: the journaled body is the recorded file
        pages = [
            r
            for r in j.find(kind="response_received", event_id=661702)
            if r.event.endpoint == "participants"  # type: ignore[union-attr]
        ]
        body = j.body(pages[0].body_sha256 or "")
    # valid JSON of an unexpected shape is not retried: asking again gets the same answer
    assert len(pages) == 1
    assert body == (REAL / "participants-page-event-661702-trimmed.json").read_bytes()
