"""Contract: the simulator answers like the recorded real RunSignUp responses in ../shared.

For each recorded file, the simulator's answer to the same endpoint must have the same wrapper,
every key the fixture has (recursively) and the same JSON type per key (a fixture null matches
anything). Schemas of our side are merged over every race/event the partners can reach, so a
type that the simulator produces only sometimes still counts. Error fixtures must match byte
for byte.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sim_helpers import REAL, Schema, load, mismatches, real_fixtures

from rsu.simulator import SimulatorServer, World, WorldConfig
from rsu.simulator.testing import api_get

CONFIG = WorldConfig(
    seed=3,
    partners=3,
    races_per_partner=4,
    events_per_race=(1, 3),
    registrations_per_event=(40, 120),
)

# The query each recording was made with (from the fixtures README).
RACE_DETAIL_1649 = {
    "future_events_only": "T",
    "race_links": "T",
    "include_waiver": "T",
    "include_participant_caps": "T",
    "include_addons": "T",
    "race_headings": "T",
}
PARTICIPANTS = {"include_questions": "T", "sort": "registration_id ASC", "results_per_page": 2500}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(World.generate(CONFIG)) as server:
        yield server


def _all_races(sim: SimulatorServer) -> Iterator[tuple[Any, int]]:
    for cred in sim.world.credentials:
        for race_id in sim.world.race_ids(cred.timing_partner_id):
            yield cred, race_id


def _schema_races_list(sim: SimulatorServer) -> tuple[Schema, list[Any]]:
    schema, bodies = Schema(), []
    for cred in sim.world.credentials:
        body = api_get(sim, cred, "/Rest/races").json()
        bodies.append(body)
        schema.add(body)
    return schema, bodies


def _schema_race_detail(sim: SimulatorServer, params: dict[str, str]) -> tuple[Schema, list[Any]]:
    schema, bodies = Schema(), []
    for cred, race_id in _all_races(sim):
        body = api_get(sim, cred, f"/Rest/race/{race_id}", **params).json()
        bodies.append(body)
        schema.add(body)
    return schema, bodies


def _schema_participants(sim: SimulatorServer) -> tuple[Schema, list[Any]]:
    schema, bodies = Schema(), []
    for cred, race_id in _all_races(sim):
        for event_id in sim.world.event_ids(race_id):
            path = f"/Rest/race/{race_id}/participants"
            body = api_get(sim, cred, path, event_id=event_id, **PARTICIPANTS).json()
            bodies.append(body)
            schema.add(body)
    return schema, bodies


def _error_body(sim: SimulatorServer, code: int) -> requests.Response:
    world = sim.world
    cred = world.credentials[0]
    race_id = world.race_ids(cred.timing_partner_id)[0]
    event_id = world.event_ids(race_id)[0]
    if code == 201:
        return api_get(sim, cred, "/Rest/race/9999999")
    if code == 301:
        return api_get(sim, cred, f"/Rest/race/{race_id}/participants", event_id=9999999)
    if code == 7:
        other = world.credentials[1]
        return api_get(sim, other, f"/Rest/race/{race_id}/participants", event_id=event_id)
    if code == 6:
        headers = {"Authorization": "Bearer not-a-real-token"}
        return requests.get(
            sim.base_url + "/Rest/races", params={"format": "json"}, headers=headers, timeout=10
        )
    raise AssertionError(f"no trigger for error {code}")


def test_fixtures_present_or_skip() -> None:
    files = real_fixtures()
    assert len(files) >= 10, f"expected the recorded fixtures in {REAL}"


@pytest.mark.parametrize(
    "name",
    sorted(p.name for p in REAL.glob("*.json")) if REAL.is_dir() else ["<absent>"],
)
def test_contract(sim: SimulatorServer, name: str) -> None:
    files = {p.name: p for p in real_fixtures()}
    path: Path = files[name]
    fixture = load(path)
    if name.startswith("error-"):
        code = int(name.split("-")[1])
        resp = _error_body(sim, code)
        assert resp.status_code == 200
        assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
        assert resp.content == path.read_bytes().strip()
        return
    if name.startswith("races-list"):
        schema, bodies = _schema_races_list(sim)
    elif name.startswith("race-detail"):
        schema, bodies = _schema_race_detail(sim, RACE_DETAIL_1649 if "1649" in name else {})
    elif name.startswith("participants"):
        schema, bodies = _schema_participants(sim)
    else:
        pytest.fail(f"no simulator endpoint is mapped to fixture {name}; add one to this test")
    # same wrapper: top-level type, and for objects the same top-level keys
    for body in bodies:
        assert type(body) is type(fixture)
        if isinstance(fixture, dict):
            assert set(body) == set(fixture)
    assert mismatches(fixture, schema) == []


def test_php_slash_escapes_like_raw_output(sim: SimulatorServer) -> None:
    cred = sim.world.credentials[0]
    race_id = sim.world.race_ids(cred.timing_partner_id)[0]
    raw = api_get(sim, cred, f"/Rest/race/{race_id}").content
    assert b'"next_date":"' in raw
    assert b"\\/" in raw and b"/20" not in raw.replace(b"\\/", b"")


def test_schema_checker_can_fail() -> None:
    ours = Schema().add({"a": 1, "b": [{"c": "x"}]})
    assert mismatches({"a": "1"}, ours) == ["$.a: fixture has string, simulator sent ['int']"]
    assert mismatches({"b": [{"d": 1}]}, ours) == ["$.b[0].d: key missing in simulator output"]
    assert mismatches({"a": None, "b": [{"c": None}]}, ours) == []
