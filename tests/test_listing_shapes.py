"""Listing bodies in both shapes RunSignUp shows (issue 9): the array clients read and the bare
object of its own documentation examples, for ``/participants`` and ``/removed-participants``, in
the fetcher's paging (end detection, row counting), in the projector, and end to end against the
simulator sending either form."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
import requests
from fetch_helpers import fast_options, seeded_world, world_registrations
from project_helpers import (
    Builder,
    j,
    new_journal,
    participant_rows,
    participants_body,
    registration,
    removed_registration,
    rows,
)

from rsu.fetcher import run_fetch
from rsu.fetcher.shapes import ApiErrorBody, PageInfo, ShapeError, parse
from rsu.journal import Journal, ResponseReceived
from rsu.projector import project
from rsu.simulator import SimulatorServer, World, WorldConfig
from rsu.simulator.testing import api_get

RACE, EV = 100, 11
T0 = 1_700_000_000
#: First byte of a listing body in each shape.
SHAPES = {"array": b"[", "object": b"{"}


def _removed_object(regs):
    return j({"event": {"event_id": EV, "participants": regs}})


def _participants_object(regs):
    return j({"event": {"event_id": EV, "participants": []}, "participants": regs})


def test_fetcher_reads_the_bare_object_forms():
    removed = _removed_object(
        [
            removed_registration(5, EV, "cleared", None, T0),
            removed_registration(9, EV, "transferred", 12, T0 + 60),
        ]
    )
    assert parse("removed_participants", removed) == PageInfo(
        rows=2, last_id=9, max_last_modified=T0 + 60, per_event={EV: (2, 9)}
    )
    active = _participants_object([registration(3, EV), registration(4, EV)])
    info = parse("participants", active)
    assert isinstance(info, PageInfo)
    assert (info.rows, info.last_id, info.per_event) == (2, 4, {EV: (2, 4)})
    # an empty bare element is an empty page: the end of the listing
    assert parse("removed_participants", _removed_object([])) == PageInfo(per_event={EV: (0, None)})
    # the error object is still an error, and an object of neither kind a shape error
    err = j({"error": {"error_code": 301, "error_msg": "Event not found."}})
    assert parse("participants", err) == ApiErrorBody(301, "Event not found.")
    with pytest.raises(ShapeError, match="object without 'event'"):
        parse("removed_participants", b'{"events": []}')


def test_projector_reads_the_bare_object_forms():
    jn = new_journal()
    b = Builder(jn)
    b.run_started()
    b.listing(RACE, EV, [_participants_object([registration(i, EV) for i in (1, 2, 3)])])
    b.listing(
        RACE,
        EV,
        [
            _removed_object(
                [
                    removed_registration(1, EV, "cleared", None, T0),
                    removed_registration(2, EV, "transferred", 9, T0 + 60),
                ]
            )
        ],
        endpoint="removed_participants",
    )
    assert project(jn.db).exit_code == 0
    got = rows(
        jn.db.conn,
        "SELECT registration_id, removed_at, removed_reason, new_registration_id "
        "FROM runsignup_participants ORDER BY registration_id",
    )
    assert [tuple(r.values()) for r in got] == [
        (1, "2023-11-14T22:13:20Z", "cleared", None),
        (2, "2023-11-14T22:14:20Z", "transferred", 9),
        (3, None, None, None),
    ]
    assert jn.db.conn.execute("SELECT COUNT(*) FROM projection_errors").fetchone() == (0,)
    # the same pages as arrays give the same tables
    arrays = new_journal()
    a = Builder(arrays)
    a.run_started()
    a.listing(RACE, EV, [participants_body(EV, [registration(i, EV) for i in (1, 2, 3)])])
    a.listing(
        RACE,
        EV,
        [
            j(
                [
                    msgspec.json.decode(
                        _removed_object(
                            [
                                removed_registration(1, EV, "cleared", None, T0),
                                removed_registration(2, EV, "transferred", 9, T0 + 60),
                            ]
                        )
                    )
                ]
            )
        ],
        endpoint="removed_participants",
    )
    project(arrays.db)
    assert [
        tuple(r.values())
        for r in rows(
            arrays.db.conn,
            "SELECT registration_id, removed_at, removed_reason, new_registration_id "
            "FROM runsignup_participants ORDER BY registration_id",
        )
    ] == [tuple(r.values()) for r in got]


def _state(db: Path) -> tuple[set[tuple[int, int, int]], dict[tuple[int, int, int], str]]:
    removed = participant_rows(db, "removed_reason", removed=True)
    return set(participant_rows(db)), {key: reason for key, (reason,) in removed.items()}


def _world_state(world: World) -> tuple[set[tuple[int, int, int]], dict]:
    removed = world_registrations(world, removed=True)
    return set(world_registrations(world)), {k: row["removed_reason"] for k, row in removed.items()}


@pytest.mark.parametrize(
    ("participants_shape", "removed_shape"), [("object", "object"), ("array", "object")]
)
def test_end_to_end_with_the_simulator_sending_bare_objects(
    tmp_path: Path, participants_shape: str, removed_shape: str
):
    world, db = seeded_world(
        tmp_path,
        seed=8,
        partners=1,
        races_per_partner=2,
        events_per_race=(1, 2),
        registrations_per_event=(20, 60),
    )
    # pages of 25 rows: every listing of more than one page ends on a short or empty bare object
    opts = {"events_per_call": 1, "page_size": 25, "full": True}
    with SimulatorServer(world) as sim:
        sim.api.participants_shape = participants_shape
        sim.api.removed_shape = removed_shape
        assert run_fetch(db, fast_options(sim.base_url, tmp_path, **opts)).exit_code == 0
        assert project(db).exit_code == 0
        changes = world.advance(new=5, edits=3, refunds=3, transfers=3, deferrals=2)
        assert {"refund", "transfer", "deferral"} <= {c.kind for c in changes}
        assert run_fetch(db, fast_options(sim.base_url, tmp_path, **opts)).exit_code == 0
        assert project(db).exit_code == 0
    with Journal.open(db) as jn:
        firsts = {
            (r.event.endpoint, jn.body(r.event.body_sha256)[:1])
            for r in jn.find(kind="response_received")
            if isinstance(r.event, ResponseReceived)
            and r.event.endpoint in ("participants", "removed_participants")
        }
    want = {("participants", SHAPES[participants_shape])}
    assert firsts == want | {("removed_participants", SHAPES[removed_shape])}
    active, removed = _state(db)
    want_active, want_removed = _world_state(world)
    assert active == want_active
    assert removed == want_removed
    assert set(removed.values()) >= {"cleared", "transferred", "deferred"} & set(
        want_removed.values()
    )
    assert len(removed) >= 8


def test_simulator_knobs_shape_and_page_cap():
    world = World.generate(
        WorldConfig(seed=3, partners=1, races_per_partner=1, events_per_race=(2, 2))
    )
    cred = world.credentials[0]
    race = world.race_ids(cred.timing_partner_id)[0]
    one, two = world.event_ids(race)
    path = f"/Rest/race/{race}/participants"
    with SimulatorServer(
        world, participants_shape="object", removed_shape="object", max_page_size=3
    ) as sim:
        body = api_get(sim, cred, path, event_id=str(one), results_per_page="50").json()
        assert isinstance(body, dict) and body["event"]["event_id"] == one
        assert len(body["participants"]) == 3  # capped below the 50 asked
        removed = api_get(
            sim, cred, path.replace("participants", "removed-participants"), event_id=str(one)
        ).json()
        assert isinstance(removed, dict) and set(removed) == {"event"}
        # several events: still one element per event in an array
        both = api_get(sim, cred, path, event_id=f"{one},{two}").json()
        assert [e["event"]["event_id"] for e in both] == [one, two]
        settings = sim.base_url + "/_admin/settings"
        changed = requests.post(
            settings, json={"participants_shape": "array", "max_page_size": 0}, timeout=5
        ).json()
        assert (changed["participants_shape"], changed["max_page_size"]) == ("array", 0)
        assert requests.post(settings, json={"removed_shape": "xml"}, timeout=5).status_code == 400
        again = api_get(sim, cred, path, event_id=str(one), results_per_page="50").json()
        assert isinstance(again, list) and len(again[0]["participants"]) > 3
    with pytest.raises(ValueError, match="listing shape"):
        SimulatorServer(world, removed_shape="xml")
