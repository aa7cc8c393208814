"""One hostile or broken answer fails its own scope only: the other partners are fetched, and the
run always ends with ``run_finished`` and a summary (issue 9)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from fetch_helpers import SMALL, fast_options, journaled_ids, non_empty, seed_credentials, world_ids

from rsu.fetcher import run_fetch
from rsu.fetcher.shapes import PageInfo, ShapeError, parse
from rsu.journal import FetchFailed, Journal, RunFinished
from rsu.projector import project
from rsu.simulator import LoopbackServer, World
from rsu.simulator.api import SimulatorApp
from rsu.simulator.wire import Request, Response

DEEP = b"[" * 1200 + b"]" * 1200
HUGE = 2**63


def _races_body(race_id: object, event_id: object = 1, extra: bytes = b"0") -> bytes:
    race = json.dumps({"race_id": race_id, "events": [{"event_id": event_id}]})
    return b'{"races":[{"race":' + race[:-1].encode() + b',"x":' + extra + b"}}]}"


def _race_body(event_id: object) -> bytes:
    return json.dumps({"race": {"race_id": 1, "events": [{"event_id": event_id}]}}).encode()


def _listing_body(registration_id: object) -> bytes:
    rows = [{"registration_id": registration_id}]
    return json.dumps([{"event": {"event_id": 1}, "participants": rows}]).encode()


#: (name, endpoint, body) of answers that once raised out of ``parse`` and ended the whole run.
POISON = [
    ("deep_json", "races", _races_body(1, extra=DEEP)),
    ("deep_time_field", "races", b'{"races":[{"race":{"race_id":1,"timezone":' + DEEP + b"}}]}"),
    ("5000_digit_race_id", "races", _races_body("9" * 5000)),
    ("race_id_2**63", "races", _races_body(HUGE)),
    ("race_id_10**30", "races", _races_body(10**30)),
    ("event_id_2**63_in_race", "race", _race_body(HUGE)),
    ("unicode_digit_id", "race", _race_body("\u00b2")),
    ("registration_id_2**63", "participants", _listing_body(HUGE)),
]
#: The ones also sent through a whole fetch run.
RUN_POISON = [p for p in POISON if p[0] not in ("deep_time_field", "race_id_10**30")]
IDS = [p[0] for p in POISON]


@pytest.mark.parametrize(("name", "endpoint", "body"), POISON, ids=IDS)
def test_parse_turns_hostile_bodies_into_shape_errors(
    name: str, endpoint: str, body: bytes
) -> None:
    with pytest.raises(ShapeError) as caught:
        parse(endpoint, body)
    assert not caught.value.transient  # asking again would get the same answer
    assert len(str(caught.value)) < 300  # never the 5,000 digits


def test_out_of_range_timestamps_are_ignored_not_used_as_cursor() -> None:
    rows = [
        {"registration_id": 5, "last_modified": 10**20},
        {"registration_id": 6, "last_modified": "1" * 5000},
        {"registration_id": 7, "last_modified": 1700000000},
    ]
    body = json.dumps([{"event": {"event_id": 1}, "participants": rows}]).encode()
    info = parse("participants", body)
    assert isinstance(info, PageInfo)
    assert (info.rows, info.last_id, info.max_last_modified) == (3, 7, 1700000000)


def _poisoning(world: World, victim: int, endpoint: str, body: bytes) -> Callable[..., Response]:
    """The simulator, except that partner ``victim``'s ``endpoint`` answers are ``body``."""
    sim = SimulatorApp(world)
    cred = world.credential_for(victim)
    key = f"bearer:{cred.secret}" if cred.auth == "bearer" else f"{cred.auth}:{cred.principal}"
    victim_races = {f"/Rest/race/{r}" for r in world.race_ids(victim)}

    def app(req: Request) -> Response:
        is_listing = req.path == "/Rest/races" and req.query.get("results_per_page") != "1"
        if req.credential_key() == key and endpoint == "races" and is_listing:
            return Response(200, body)
        if endpoint == "race" and req.path in victim_races:
            return Response(200, body)
        if endpoint == "participants" and any(
            req.path == f"{p}/participants" for p in victim_races
        ):
            return Response(200, body)
        return sim(req)

    return app


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("name", "endpoint", "body"), RUN_POISON, ids=[p[0] for p in RUN_POISON])
def test_one_hostile_answer_fails_one_partner_and_the_run_finishes(
    tmp_path: Path, name: str, endpoint: str, body: bytes
) -> None:
    world = World.generate(SMALL)
    victim = world.credentials[0].timing_partner_id
    others = [c.timing_partner_id for c in world.credentials[1:]]
    db = tmp_path / "rsu.db"
    seed_credentials(db, world.credentials)
    with LoopbackServer(_poisoning(world, victim, endpoint, body)) as api:
        result = run_fetch(db, fast_options(api.base_url, tmp_path, max_attempts=3))
    assert result.exit_code == 1
    assert result.failures, result
    assert all(line.startswith(f"partner {victim}") for line in result.failures), result.failures
    assert not any("internal error" in line for line in result.failures)
    with Journal.open(db) as j:
        finished = [r.event for r in j.find(kind="run_finished")]
        failed = [(r.timing_partner_id, r.event) for r in j.find(kind="fetch_failed")]
        assert j.verify().ok
    assert len(finished) == 1 and isinstance(finished[0], RunFinished)
    assert finished[0].status == "failed"
    assert {pid for pid, _ in failed} == {victim}
    assert all(isinstance(ev, FetchFailed) and ev.attempts == 1 for _, ev in failed)  # no retry
    summary = json.loads((tmp_path / "runsignup_sync_summary.json").read_text())
    assert summary["status"] == "failed"
    # every other partner was fetched completely
    expected = {
        key: ids
        for key, ids in non_empty(world_ids(world)).items()
        if key[0] in {r for p in others for r in world.race_ids(p)}
    }
    got = journaled_ids(db)
    assert {k: v for k, v in got.items() if k in expected} == expected


@pytest.mark.timeout(120)
def test_unexpected_exception_in_one_scope_is_a_failed_scope(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rsu.fetcher.walk import Walker

    world = World.generate(SMALL)
    cred = world.credentials[0]
    victim = cred.timing_partner_id
    bad_race = world.race_ids(victim)[0]
    original = Walker.listings_task

    def broken(self: Walker, client, race_id: int, event_ids: list[int]):  # type: ignore[no-untyped-def]
        if race_id == bad_race:
            raise OverflowError(f"boom\nsecond line {cred.secret}")
        return original(self, client, race_id, event_ids)

    monkeypatch.setattr(Walker, "listings_task", broken)
    db = tmp_path / "rsu.db"
    seed_credentials(db, world.credentials)
    with LoopbackServer(SimulatorApp(world)) as api:
        result = run_fetch(db, fast_options(api.base_url, tmp_path))
    assert result.exit_code == 1
    assert len(result.failures) == 1
    line = result.failures[0]
    assert line.startswith(
        f"partner {victim} race {bad_race}: participants: "
        "internal error: OverflowError: boom second line *** (at test_fetch_hostile.py:"
    ), line
    assert cred.secret not in line
    with Journal.open(db) as j:
        failed = [r for r in j.find(kind="fetch_failed")]
        assert len(list(j.find(kind="run_finished"))) == 1
    assert [(r.timing_partner_id, r.race_id) for r in failed] == [(victim, bad_race)]
    ev = failed[0].event
    assert isinstance(ev, FetchFailed)
    assert (ev.endpoint, ev.path, ev.attempts) == (
        "participants",
        f"/Rest/race/{bad_race}/participants",
        0,
    )
    assert "\n" not in ev.error_msg and cred.secret not in ev.error_msg
    expected = {k: v for k, v in non_empty(world_ids(world)).items() if k[0] != bad_race}
    assert {k: v for k, v in journaled_ids(db).items() if k[0] != bad_race} == expected
    # the projection records the failed scope in sync_history, like any failed request
    assert ev.internal
    assert project(db).new_errors == 1
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT timing_partner_id, race_id, endpoint, status, reason FROM sync_history "
        "WHERE status = 'error'"
    ).fetchall()
    conn.close()
    assert [r[:4] for r in rows] == [(victim, bad_race, "participants", "error")]
    assert rows[0][4] == ev.error_msg
