"""Replay mode: recorded real responses served byte for byte from a manifest (no copies)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from sim_helpers import REAL, real_fixtures

from rsu.simulator import Exchange, Faults, ReplayServer, load_manifest


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    real_fixtures()  # skips when ../shared is absent
    data = {
        "exchanges": [
            {
                "method": "GET",
                "path": "/Rest/race/85675",
                "query": {"format": "json"},
                "status": 200,
                "headers": {"Content-Type": "application/json; charset=utf-8"},
                "body_file": str(REAL / "race-detail-85675-events-trimmed.json"),
            },
            {
                "method": "GET",
                "path": "/Rest/race/85675/participants",
                "query": {"format": "json"},
                "body_file": str(REAL / "participants-page-event-661702-trimmed.json"),
            },
            {
                "method": "GET",
                "path": "/Rest/race/85675/participants",
                "query": {"format": "json", "event_id": "9999999"},
                "body_file": str(REAL / "error-301-event-not-found.json"),
            },
            {"method": "GET", "path": "/Rest/races", "body": "first"},
            {"method": "GET", "path": "/Rest/races", "body": "second", "status": 503},
        ]
    }
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(data))
    return path


def test_serves_recorded_bytes(manifest: Path) -> None:
    with ReplayServer(manifest) as rp:
        resp = requests.get(rp.base_url + "/rest/race/85675", params={"format": "json"}, timeout=10)
        assert resp.status_code == 200
        assert resp.content == (REAL / "race-detail-85675-events-trimmed.json").read_bytes()
        assert b"\\/" in resp.content  # the PHP escapes survive untouched
        assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
        assert rp.requests[-1].path == "/rest/race/85675"


def test_matches_on_chosen_query_keys_most_specific_first(manifest: Path) -> None:
    with ReplayServer(manifest) as rp:
        url = rp.base_url + "/Rest/race/85675/participants"
        ok = requests.get(
            url, params={"format": "json", "event_id": "661702", "page": "1"}, timeout=10
        )
        err = requests.get(url, params={"format": "json", "event_id": "9999999"}, timeout=10)
        missing = requests.get(url, params={"format": "xml"}, timeout=10)
    assert ok.content == (REAL / "participants-page-event-661702-trimmed.json").read_bytes()
    assert err.json() == {"error": {"error_code": 301, "error_msg": "Event not found."}}
    assert missing.status_code == 404


def test_identical_specs_play_in_order_then_repeat_last(manifest: Path) -> None:
    with ReplayServer(manifest) as rp:
        got = [requests.get(rp.base_url + "/Rest/races", timeout=10) for _ in range(3)]
    assert [(r.status_code, r.text) for r in got] == [
        (200, "first"),
        (503, "second"),
        (503, "second"),
    ]


def test_load_manifest_resolves_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "body.json").write_text('{"races":[]}')
    (tmp_path / "m.json").write_text(
        json.dumps([{"path": "/Rest/races", "body_file": "body.json"}])
    )
    (ex,) = load_manifest(tmp_path / "m.json")
    assert ex == Exchange(method="GET", path="/Rest/races", body_file=str(tmp_path / "body.json"))
    with ReplayServer([ex], faults=Faults(http_5xx=1.0)) as rp:
        assert requests.get(rp.base_url + "/Rest/races", timeout=10).status_code >= 500
        rp.faults = Faults()
        assert requests.get(rp.base_url + "/Rest/races", timeout=10).json() == {"races": []}
