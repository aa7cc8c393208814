"""Endpoints, auth modes, errors, paging limits and filters of the simulator's REST look-alike."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from rsu.simulator import Credential, SimulatorServer, World, WorldConfig
from rsu.simulator.testing import SMALL, api_get

CONFIG = WorldConfig(
    seed=11,
    partners=3,
    races_per_partner=2,
    events_per_race=(2, 2),
    registrations_per_event=(30, 60),
    public_races=2,
    private_race_fraction=0.0,
)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(World.generate(CONFIG)) as server:
        yield server


def _err(code: int, msg: str) -> dict[str, Any]:
    return {"error": {"error_code": code, "error_msg": msg}}


def _first(sim: SimulatorServer, n: int = 0) -> tuple[Credential, int, int]:
    cred = sim.world.credentials[n]
    race_id = sim.world.race_ids(cred.timing_partner_id)[0]
    return cred, race_id, sim.world.event_ids(race_id)[0]


def _rows(body: Any) -> list[dict[str, Any]]:
    return [row for element in body for row in element["participants"]]


# ---------------------------------------------------------------------- auth
def test_credentials_vary_auth_kinds(sim: SimulatorServer) -> None:
    assert [c.auth for c in sim.world.credentials] == ["api_key", "rsu_api_key", "bearer"]
    assert [c.timing_partner_id for c in sim.world.credentials] == sim.world.partner_ids
    assert sim.world.credentials[2].principal == ""


@pytest.mark.parametrize("n", [0, 1, 2])
def test_each_auth_mode_sees_only_its_partner_races(sim: SimulatorServer, n: int) -> None:
    cred = sim.world.credentials[n]
    body = api_get(sim, cred, "/Rest/races", only_partner_races="T").json()
    got = [item["race"]["race_id"] for item in body["races"]]
    assert got == sim.world.race_ids(cred.timing_partner_id)


def test_races_without_only_partner_flag_add_unlinked_public_races(sim: SimulatorServer) -> None:
    cred = sim.world.credentials[0]
    body = api_get(sim, cred, "/Rest/races").json()
    public = [r.race_id for r in sim.world.races.values() if r.timing_partner_id is None]
    got = [item["race"]["race_id"] for item in body["races"]]
    assert got == sim.world.race_ids(cred.timing_partner_id) + public
    anonymous = api_get(sim, None, "/Rest/races").json()
    assert [item["race"]["race_id"] for item in anonymous["races"]] == public


@pytest.mark.parametrize(
    ("params", "headers"),
    [
        ({"api_key": "nope", "api_secret": "nope"}, {}),
        ({"rsu_api_key": "nope"}, {"X-RSU-API-SECRET": "nope"}),
        ({}, {"Authorization": "Bearer nope"}),
    ],
)
def test_bad_credentials_give_error_6(sim: SimulatorServer, params: dict, headers: dict) -> None:
    resp = requests.get(
        sim.base_url + "/Rest/races",
        params={"format": "json", **params},
        headers=headers,
        timeout=10,
    )
    assert resp.status_code == 200
    assert resp.json() == _err(6, "Key authentication failed")


def test_right_key_wrong_secret_gives_error_6(sim: SimulatorServer) -> None:
    cred = sim.world.credentials[0]
    q = {"format": "json", "api_key": cred.principal, "api_secret": "x"}
    assert requests.get(sim.base_url + "/Rest/races", params=q, timeout=10).json() == _err(
        6, "Key authentication failed"
    )
    v2 = sim.world.credentials[1]
    q = {"format": "json", "rsu_api_key": v2.principal}  # header missing
    assert requests.get(sim.base_url + "/Rest/races", params=q, timeout=10).json() == _err(
        6, "Key authentication failed"
    )


def test_other_partners_race_is_permission_denied(sim: SimulatorServer) -> None:
    _, race_id, event_id = _first(sim, 0)
    other = sim.world.credentials[1]
    denied = _err(7, "Permission Denied")
    assert api_get(sim, other, f"/Rest/race/{race_id}").json() == denied
    assert (
        api_get(sim, other, f"/Rest/race/{race_id}/participants", event_id=event_id).json()
        == denied
    )
    path = f"/Rest/race/{race_id}/removed-participants"
    assert api_get(sim, other, path, event_id=event_id).json() == denied
    assert (
        api_get(sim, None, f"/Rest/race/{race_id}/participants", event_id=event_id).json() == denied
    )


def test_public_unlinked_race_detail_ok_but_participants_denied(sim: SimulatorServer) -> None:
    public = next(r for r in sim.world.races.values() if r.timing_partner_id is None)
    cred = sim.world.credentials[0]
    assert (
        api_get(sim, cred, f"/Rest/race/{public.race_id}").json()["race"]["race_id"]
        == public.race_id
    )
    event_id = next(iter(public.events))
    path = f"/Rest/race/{public.race_id}/participants"
    assert api_get(sim, cred, path, event_id=event_id).json() == _err(7, "Permission Denied")


# ---------------------------------------------------------------------- errors
def test_race_and_event_not_found(sim: SimulatorServer) -> None:
    cred, race_id, _ = _first(sim)
    assert api_get(sim, cred, "/Rest/race/1").json() == _err(201, "Race not found.")
    path = f"/Rest/race/{race_id}/participants"
    assert api_get(sim, cred, path, event_id=1).json() == _err(301, "Event not found.")
    path = f"/Rest/race/{race_id}/removed-participants"
    assert api_get(sim, cred, path, event_id=1).json() == _err(301, "Event not found.")


@pytest.mark.parametrize(
    "params",
    [
        {},  # event_id is required
        {"event_id": "abc"},
        {"results_per_page": 2501},
        {"results_per_page": 0},
        {"page": 0},
        {"sort": "shoe_size ASC"},
        {"sort": "registration_id SIDEWAYS"},
        {"modified_after_timestamp": "yesterday"},
    ],
)
def test_invalid_parameters_error_3(sim: SimulatorServer, params: dict[str, Any]) -> None:
    cred, race_id, event_id = _first(sim)
    query = {"event_id": event_id, **params}
    if "event_id" not in params and not params:
        query = {}
    resp = api_get(sim, cred, f"/Rest/race/{race_id}/participants", **query)
    assert resp.status_code == 200
    assert resp.json() == _err(3, "Invalid parameters")


def test_unknown_method_and_http_method(sim: SimulatorServer) -> None:
    cred = sim.world.credentials[0]
    assert api_get(sim, cred, "/Rest/nothing-here").json() == _err(1, "Unknown method")
    resp = requests.post(sim.base_url + "/Rest/races?format=json", timeout=10)
    assert resp.json() == _err(2, "HTTP method not supported")


def test_invalid_date_filter(sim: SimulatorServer) -> None:
    cred = sim.world.credentials[0]
    assert api_get(sim, cred, "/Rest/races", start_date="02/01/2026").json() == _err(
        9, "Invalid date"
    )


# ---------------------------------------------------------------------- formats
def test_xml_is_the_default_format(sim: SimulatorServer) -> None:
    cred, race_id, event_id = _first(sim)
    resp = api_get(sim, cred, f"/Rest/race/{race_id}/participants", format="xml", event_id=event_id)
    assert resp.headers["Content-Type"] == "text/xml; charset=utf-8"
    assert resp.text.startswith('<?xml version="1.0" encoding="utf-8"?><response><item><event>')
    q = {**cred.query_params()}
    err = requests.get(sim.base_url + "/Rest/race/1", params=q, timeout=10)
    assert err.text == (
        '<?xml version="1.0" encoding="utf-8"?><error><error_code>201</error_code>'
        "<error_msg>Race not found.</error_msg></error>"
    )


def test_path_is_case_insensitive(sim: SimulatorServer) -> None:
    cred, race_id, _ = _first(sim)
    for path in (f"/rest/race/{race_id}", f"/REST/RACE/{race_id}", f"/Rest/race/{race_id}.json"):
        assert api_get(sim, cred, path).json()["race"]["race_id"] == race_id


def test_race_detail_shapes(sim: SimulatorServer) -> None:
    cred, race_id, _ = _first(sim)
    race = api_get(sim, cred, f"/Rest/race/{race_id}").json()["race"]
    assert [e["event_id"] for e in race["events"]] == sim.world.event_ids(race_id)
    assert race["timezone"] == sim.world.races[race_id].data["timezone"]
    assert "waiver" not in race and "headings" not in race and "questions" not in race
    full = api_get(
        sim,
        cred,
        f"/Rest/race/{race_id}",
        include_waiver="T",
        race_headings="T",
        include_questions="T",
    ).json()["race"]
    assert isinstance(full["waiver"], str) and isinstance(full["headings"], list)
    assert full["questions"] == sim.world.races[race_id].questions
    for ev in race["events"]:
        assert ev["registration_periods"][0]["race_fee"].startswith("$")
        month, day, rest = ev["start_time"].split("/")
        assert not month.startswith("0") and not day.startswith("0") and len(rest) == 10


def test_races_list_events_flag(sim: SimulatorServer) -> None:
    cred = sim.world.credentials[0]
    plain = api_get(sim, cred, "/Rest/races", only_partner_races="T").json()["races"]
    assert all("events" not in item["race"] for item in plain)
    with_events = api_get(sim, cred, "/Rest/races", only_partner_races="T", events="T").json()
    got = {
        i["race"]["race_id"]: [e["event_id"] for e in i["race"]["events"]]
        for i in with_events["races"]
    }
    assert got == {r: sim.world.event_ids(r) for r in sim.world.race_ids(cred.timing_partner_id)}


# ---------------------------------------------------------------------- races paging/filters
def test_races_paging_default_50_and_max_1000() -> None:
    world = World.generate(
        WorldConfig(
            seed=2,
            partners=1,
            races_per_partner=55,
            events_per_race=(1, 1),
            registrations_per_event=(1, 1),
        )
    )
    cred = world.credentials[0]
    with SimulatorServer(world) as sim:
        first = api_get(sim, cred, "/Rest/races").json()["races"]
        second = api_get(sim, cred, "/Rest/races", page=2).json()["races"]
        huge = api_get(sim, cred, "/Rest/races", results_per_page=5000).json()["races"]
        small = api_get(sim, cred, "/Rest/races", results_per_page=20, page=3).json()["races"]
    ids = world.race_ids(cred.timing_partner_id)
    assert [i["race"]["race_id"] for i in first] == ids[:50]
    assert [i["race"]["race_id"] for i in second] == ids[50:]
    assert [i["race"]["race_id"] for i in huge] == ids  # clamped to 1000, not an error
    assert [i["race"]["race_id"] for i in small] == ids[40:]


def test_races_date_filters_and_sort(sim: SimulatorServer) -> None:
    cred = sim.world.credentials[0]
    races = [sim.world.races[r] for r in sim.world.race_ids(cred.timing_partner_id)]
    pivot = sorted(r.next_date for r in races)[0]
    iso = pivot.isoformat()
    after = api_get(sim, cred, "/Rest/races", only_partner_races="T", start_date=iso).json()[
        "races"
    ]
    before = api_get(sim, cred, "/Rest/races", only_partner_races="T", end_date=iso).json()["races"]
    assert sorted(i["race"]["race_id"] for i in after) == sorted(r.race_id for r in races)
    assert [i["race"]["race_id"] for i in before] == [
        r.race_id for r in races if r.next_date <= pivot
    ]
    by_date = api_get(sim, cred, "/Rest/races", only_partner_races="T", sort="date DESC").json()[
        "races"
    ]
    want = sorted(races, key=lambda r: r.next_date, reverse=True)
    assert [i["race"]["race_id"] for i in by_date] == [r.race_id for r in want]


# ---------------------------------------------------------------------- participants paging/filters
def test_participants_shape_and_default_page(sim: SimulatorServer) -> None:
    cred, race_id, event_id = _first(sim)
    body = api_get(sim, cred, f"/Rest/race/{race_id}/participants", event_id=event_id).json()
    assert isinstance(body, list) and len(body) == 1
    assert body[0]["event"] == {"event_id": event_id, "participants": []}
    active = sim.world.active_registrations(race_id, event_id)
    rows = body[0]["participants"]
    assert [r["registration_id"] for r in rows] == sorted(active)[:50]
    assert all("question_responses" not in r for r in rows)
    with_q = api_get(
        sim,
        cred,
        f"/Rest/race/{race_id}/participants",
        event_id=event_id,
        include_questions="T",
        supports_nb="T",
    ).json()
    assert with_q[0]["participants"] == [active[i] for i in sorted(active)[:50]]


def test_participants_paging_and_keyset(sim: SimulatorServer) -> None:
    cred, race_id, event_id = _first(sim)
    path = f"/Rest/race/{race_id}/participants"
    want = sorted(sim.world.active_registrations(race_id, event_id))
    pages, page = [], 1
    while True:
        rows = _rows(
            api_get(sim, cred, path, event_id=event_id, results_per_page=7, page=page).json()
        )
        pages.append([r["registration_id"] for r in rows])
        if len(rows) < 7:
            break
        page += 1
    assert [i for p in pages for i in p] == want
    keyset = _rows(
        api_get(sim, cred, path, event_id=event_id, after_registration_id=want[9]).json()
    )
    assert [r["registration_id"] for r in keyset] == want[10:]
    desc = _rows(api_get(sim, cred, path, event_id=event_id, sort="registration_id DESC").json())
    assert [r["registration_id"] for r in desc] == want[::-1][:50]
    before = _rows(
        api_get(sim, cred, path, event_id=event_id, before_registration_id=want[3]).json()
    )
    assert [r["registration_id"] for r in before] == want[:3]


def test_participants_max_page_is_2500() -> None:
    world = World.generate(
        WorldConfig(
            seed=4,
            partners=1,
            races_per_partner=1,
            events_per_race=(1, 1),
            registrations_per_event=(2600, 2600),
            removed_fraction=0,
        )
    )
    cred = world.credentials[0]
    race_id = world.race_ids(cred.timing_partner_id)[0]
    event_id = world.event_ids(race_id)[0]
    with SimulatorServer(world) as sim:
        path = f"/Rest/race/{race_id}/participants"
        full = _rows(api_get(sim, cred, path, event_id=event_id, results_per_page=2500).json())
        rest = _rows(
            api_get(sim, cred, path, event_id=event_id, results_per_page=2500, page=2).json()
        )
        over = api_get(sim, cred, path, event_id=event_id, results_per_page=2501).json()
    assert len(full) == 2500 and len(rest) == 100
    assert over == _err(3, "Invalid parameters")


def test_participants_sort_last_modified_and_modified_after_inclusive(sim: SimulatorServer) -> None:
    cred, race_id, event_id = _first(sim)
    path = f"/Rest/race/{race_id}/participants"
    active = sim.world.active_registrations(race_id, event_id)
    stamps = sorted(r["last_modified"] for r in active.values())
    pivot = stamps[len(stamps) // 2]
    rows = _rows(
        api_get(
            sim,
            cred,
            path,
            event_id=event_id,
            modified_after_timestamp=pivot,
            results_per_page=2500,
        ).json()
    )
    assert sorted(r["registration_id"] for r in rows) == sorted(
        i for i, r in active.items() if r["last_modified"] >= pivot
    )
    assert min(r["last_modified"] for r in rows) == pivot  # inclusive
    by_mod = _rows(
        api_get(
            sim, cred, path, event_id=event_id, sort="last_modified ASC", results_per_page=2500
        ).json()
    )
    assert [r["last_modified"] for r in by_mod] == stamps
    by_name = _rows(
        api_get(
            sim, cred, path, event_id=event_id, sort="last_name DESC", results_per_page=2500
        ).json()
    )
    names = [r["user"]["last_name"].strip().lower() for r in by_name]
    assert names == sorted(names, reverse=True)


def test_participants_event_id_list(sim: SimulatorServer) -> None:
    cred = sim.world.credentials[0]
    race_id = sim.world.race_ids(cred.timing_partner_id)[0]
    e1, e2 = sim.world.event_ids(race_id)
    body = api_get(
        sim, cred, f"/Rest/race/{race_id}/participants", event_id=f"{e1},{e2}", results_per_page=5
    ).json()
    assert [el["event"]["event_id"] for el in body] == [e1, e2]
    assert [r["event_id"] for r in body[1]["participants"]] == [e2] * 5
    assert [r["registration_id"] for r in body[0]["participants"]] == sorted(
        sim.world.active_registrations(race_id, e1)
    )[:5]


def test_removed_participants_shape_filters_and_condensed(sim: SimulatorServer) -> None:
    cred, race_id, event_id = _first(sim)
    sim.world.advance(
        new=0, edits=0, refunds=3, transfers=0, deferrals=0, seconds=30, race_ids=[race_id]
    )
    removed = sim.world.removed_registrations(race_id, event_id)
    path = f"/Rest/race/{race_id}/removed-participants"
    body = api_get(sim, cred, path, event_id=event_id, results_per_page=2500).json()
    assert list(body[0]) == ["event"] and body[0]["event"]["event_id"] == event_id
    rows = body[0]["event"]["participants"]
    assert rows == [removed[i] for i in sorted(removed)]
    for row in rows:
        assert row["removed_reason"] in {"cleared", "removed", "transferred", "deferred"}
        assert len(row["last_modified"]) == 19 and row["last_modified"][4] == "-"
        assert isinstance(row["last_modified_ts"], int)
    newest = max(r["last_modified_ts"] for r in rows)
    recent = api_get(sim, cred, path, event_id=event_id, modified_after_timestamp=newest).json()
    assert [r["last_modified_ts"] for r in recent[0]["event"]["participants"]] == [newest]
    condensed = api_get(sim, cred, path, event_id=event_id, condensed_format="T").json()
    assert set(condensed[0]["event"]["participants"][0]) == {
        "registration_id",
        "removed_reason",
        "new_registration_id",
    }
    by_mod = api_get(sim, cred, path, event_id=event_id, sort="last_modified DESC").json()
    ts = [r["last_modified_ts"] for r in by_mod[0]["event"]["participants"]]
    assert ts == sorted(ts, reverse=True)
    assert api_get(sim, cred, path, event_id=event_id, sort="age ASC").json() == _err(
        3, "Invalid parameters"
    )


def test_nonbinary_gender_needs_supports_nb() -> None:
    world = World.generate(SMALL)
    found = [
        (r.race_id, e.event_id, reg_id)
        for r in world.races.values()
        for e in r.events.values()
        for reg_id, row in e.active.items()
        if row["user"].get("gender") == "X"
    ]
    assert found, "the SMALL world should hold at least one gender X registration"
    race_id, event_id, reg_id = found[0]
    cred = world.credential_for(world.races[race_id].timing_partner_id or 0)
    with SimulatorServer(world) as sim:
        path = f"/Rest/race/{race_id}/participants"
        plain = _rows(api_get(sim, cred, path, event_id=event_id, results_per_page=2500).json())
        nb = _rows(
            api_get(
                sim, cred, path, event_id=event_id, results_per_page=2500, supports_nb="T"
            ).json()
        )
    assert next(r for r in plain if r["registration_id"] == reg_id)["user"]["gender"] is None
    assert next(r for r in nb if r["registration_id"] == reg_id)["user"]["gender"] == "X"


def test_admin_state_and_advance_over_http(sim: SimulatorServer) -> None:
    state = requests.get(sim.base_url + "/_admin/state", timeout=10).json()
    assert state["now"] == sim.world.now
    assert state["partner_ids"] == sim.world.partner_ids
    before = sim.world.now
    resp = requests.post(
        sim.base_url + "/_admin/advance",
        data=json.dumps(
            {"new": 2, "edits": 0, "refunds": 0, "transfers": 0, "deferrals": 0, "seconds": 60}
        ),
        timeout=10,
    )
    body = resp.json()
    assert body["now"] == before + 60 == sim.world.now
    assert [c["kind"] for c in body["changes"]] == ["new", "new"]
    bad = requests.post(sim.base_url + "/_admin/advance", data='{"bogus": 1}', timeout=10)
    assert bad.status_code == 400


def test_served_pages_follow_changes(sim: SimulatorServer) -> None:
    """Cached row JSON and sort orders are invalidated by every change kind."""
    cred = sim.world.credentials[0]
    race_id = sim.world.race_ids(cred.timing_partner_id)[0]
    path = f"/Rest/race/{race_id}/participants"

    def served() -> dict[int, list[dict[str, Any]]]:
        return {
            e: _rows(
                api_get(
                    sim,
                    cred,
                    path,
                    event_id=e,
                    results_per_page=2500,
                    include_questions="T",
                    supports_nb="T",
                ).json()
            )
            for e in sim.world.event_ids(race_id)
        }

    def expected() -> dict[int, list[dict[str, Any]]]:
        out = {}
        for e in sim.world.event_ids(race_id):
            active = sim.world.active_registrations(race_id, e)
            out[e] = [active[i] for i in sorted(active)]
        return out

    assert served() == expected()  # warms the caches
    since = sim.world.now
    changes = sim.world.advance(
        new=3, edits=6, refunds=1, transfers=2, deferrals=1, race_ids=[race_id]
    )
    assert served() == expected()
    touched = {
        c.new_registration_id or c.registration_id
        for c in changes
        if c.kind in ("new", "edit", "transfer")
    }
    delta = {
        r["registration_id"]
        for e in sim.world.event_ids(race_id)
        for r in _rows(
            api_get(sim, cred, path, event_id=e, modified_after_timestamp=since + 1).json()
        )
    }
    still_active = {
        i for e in sim.world.event_ids(race_id) for i in sim.world.active_registrations(race_id, e)
    }
    assert delta == touched & still_active
    gone = {c.registration_id for c in changes if c.kind in ("refund", "transfer", "deferral")}
    removed_path = f"/Rest/race/{race_id}/removed-participants"
    recent = {
        r["registration_id"]: r["removed_reason"]
        for e in sim.world.event_ids(race_id)
        for el in api_get(
            sim, cred, removed_path, event_id=e, modified_after_timestamp=since + 1
        ).json()
        for r in el["event"]["participants"]
    }
    assert set(recent) == gone
    kinds = {"refund": "removed", "transfer": "transferred", "deferral": "deferred"}
    assert recent == {c.registration_id: kinds[c.kind] for c in changes if c.kind in kinds}


def test_page_walk_property() -> None:
    """Walking pages of any size, in either direction, yields every row exactly once, in order."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    world = World.generate(SMALL)
    cred = world.credentials[0]
    race_id = world.race_ids(cred.timing_partner_id)[0]
    event_id = world.event_ids(race_id)[0]
    want = sorted(world.active_registrations(race_id, event_id))
    path = f"/Rest/race/{race_id}/participants"
    with SimulatorServer(world) as sim:
        session = requests.Session()

        @settings(max_examples=25, deadline=None)
        @given(per_page=st.integers(1, 70), desc=st.booleans(), removed=st.booleans())
        def walk(per_page: int, desc: bool, removed: bool) -> None:
            sort = "registration_id " + ("DESC" if desc else "ASC")
            ep = path.replace("participants", "removed-participants") if removed else path
            expected = sorted(world.removed_registrations(race_id, event_id)) if removed else want
            got, page = [], 1
            while True:
                body = api_get(
                    sim,
                    cred,
                    ep,
                    session=session,
                    event_id=event_id,
                    results_per_page=per_page,
                    page=page,
                    sort=sort,
                ).json()
                rows = body[0]["event"]["participants"] if removed else body[0]["participants"]
                got += [r["registration_id"] for r in rows]
                if len(rows) < per_page:
                    break
                page += 1
            assert got == (expected[::-1] if desc else expected)

        walk()


# ---------------------------------------------------------------------- caller registration
def _caller_sim(**options: Any) -> SimulatorServer:
    return SimulatorServer(World.generate(SMALL), **options)


def test_world_caller_registration_is_deterministic_from_the_seed() -> None:
    a, b = World.generate(SMALL).caller, World.generate(SMALL).caller
    other = World.generate(WorldConfig(seed=SMALL.seed + 1, partners=1, races_per_partner=1))
    assert a == b
    assert a != other.caller
    assert a.reg_id.isdigit() and len(a.token) == 32 and len(a.secret) == 40
    assert a.param == f"{a.reg_id}.{a.token}"
    assert a.query_params() == {"rsu_api_reg": a.param}
    assert a.headers() == {"X-RSU-API-REG-SECRET": a.secret}
    assert a.token not in repr(a) and a.secret not in repr(a)


def _wrong_callers(sim: SimulatorServer) -> list[tuple[dict[str, str], dict[str, str]]]:
    c = sim.world.caller
    return [
        ({"rsu_api_reg": f"{c.reg_id}.nope"}, c.headers()),  # wrong token
        (c.query_params(), {"X-RSU-API-REG-SECRET": "nope"}),  # wrong secret
        ({"rsu_api_reg": f"9{c.reg_id}.{c.token}"}, c.headers()),  # wrong id
        (c.query_params(), {}),  # secret missing
        ({}, c.headers()),  # rsu_api_reg missing
    ]


@pytest.mark.parametrize("required", [False, True])
def test_wrong_caller_registration_fails_every_call_with_400_error_17(required: bool) -> None:
    with _caller_sim(require_caller=required) as sim:
        cred, race_id, event_id = _first(sim)
        paths = [
            ("/Rest/races", {}),
            (f"/Rest/race/{race_id}", {}),
            (f"/Rest/race/{race_id}/participants", {"event_id": event_id}),
            (f"/Rest/race/{race_id}/removed-participants", {"event_id": event_id}),
            ("/Rest/no-such-method", {}),
        ]
        for params, headers in _wrong_callers(sim):
            for path, extra in paths:
                q = {"format": "json", **cred.query_params(), **params, **extra}
                h = {**cred.headers(), **headers}
                resp = requests.get(sim.base_url + path, params=q, headers=h, timeout=10)
                assert resp.status_code == 400, (path, params, headers)
                assert resp.json() == _err(17, "Invalid API caller credentials.")
        xml = requests.get(
            sim.base_url + "/Rest/races",
            params={"rsu_api_reg": "1.2"},
            headers=sim.world.caller.headers(),
            timeout=10,
        )
        assert xml.status_code == 400 and "<error_code>17</error_code>" in xml.text
        assert {r.caller for r in sim.requests} == {"invalid"}


def test_caller_registration_optional_unless_required() -> None:
    with _caller_sim() as sim:
        cred, caller = sim.world.credentials[0], sim.world.caller
        assert sim.require_caller is False and sim.caller == caller
        assert "races" in api_get(sim, cred, "/Rest/races").json()
        assert "races" in api_get(sim, cred, "/Rest/races", caller=caller).json()
        sim.require_caller = True  # switched at runtime
        refused = api_get(sim, cred, "/Rest/races")
        assert refused.status_code == 400
        assert refused.json() == _err(17, "Invalid API caller credentials.")
        anonymous = api_get(sim, None, "/Rest/races")  # no credential either: still error 17
        assert anonymous.json() == _err(17, "Invalid API caller credentials.")
        assert "races" in api_get(sim, cred, "/Rest/races", caller=caller).json()
        assert [(r.status, r.caller) for r in sim.requests] == [
            (200, None),
            (200, "valid"),
            (400, None),
            (400, None),
            (200, "valid"),
        ]
        off = requests.post(sim.base_url + "/_admin/settings", json={"require_caller": False})
        assert off.json() == {
            "multi_event_paging": "per_event",
            "require_caller": False,
            "participants_shape": "array",
            "removed_shape": "array",
            "max_page_size": 0,
        }
        assert api_get(sim, cred, "/Rest/races").status_code == 200
        bad = requests.post(sim.base_url + "/_admin/settings", json={"require_caller": "yes"})
        assert bad.status_code == 400 and sim.require_caller is False


def test_required_caller_from_the_constructor_and_a_chosen_registration() -> None:
    from rsu.simulator import CallerRegistrationSpec

    mine = CallerRegistrationSpec("4242", "t" * 32, "s" * 40)
    with _caller_sim(caller=mine, require_caller=True) as sim:
        cred = sim.world.credentials[0]
        assert api_get(sim, cred, "/Rest/races", caller=sim.world.caller).status_code == 400
        ok = api_get(sim, cred, "/Rest/races", caller=mine)
        assert ok.status_code == 200 and "races" in ok.json()
        assert [r.caller for r in sim.requests] == ["invalid", "valid"]


def test_request_log_records_the_caller_but_never_its_values() -> None:
    with _caller_sim(require_caller=True) as sim:
        cred, race_id, event_id = _first(sim)
        caller = sim.world.caller
        api_get(sim, cred, "/Rest/races", caller=caller)
        api_get(sim, cred, f"/Rest/race/{race_id}/participants", caller=caller, event_id=event_id)
        log = sim.requests
        assert [r.caller for r in log] == ["valid", "valid"]
        assert all(r.query["rsu_api_reg"] == "***" for r in log)
        over_http = requests.get(sim.base_url + "/_admin/requests", timeout=10).text
        for text in (repr(log), over_http):
            assert caller.token not in text and caller.secret not in text
        assert json.loads(over_http)[0]["caller"] == "valid"


# ---------------------------------------------------------------------- several events
def _uneven_race() -> tuple[World, Credential, int, list[int]]:
    """One race with three events of very different sizes whose registration ids interleave
    (the later changes add rows to every event), plus removed rows in each."""
    world = World.generate(
        WorldConfig(
            seed=23,
            partners=1,
            races_per_partner=1,
            events_per_race=(1, 1),
            registrations_per_event=(3, 3),
            removed_fraction=0.05,
        )
    )
    cred = world.credentials[0]
    (race_id,) = world.race_ids(cred.timing_partner_id)
    world.add_event(race_id, 40)
    world.add_event(race_id, 300)
    for _ in range(3):
        world.advance(new=9, edits=5, refunds=3, transfers=2, deferrals=1, race_ids=[race_id])
    small, mid, big = world.event_ids(race_id)
    return world, cred, race_id, [big, small, mid]  # asked in neither id nor size order


@pytest.fixture(scope="module")
def uneven() -> Iterator[tuple[SimulatorServer, Credential, int, list[int]]]:
    world, cred, race_id, events = _uneven_race()
    with SimulatorServer(world) as server:
        yield server, cred, race_id, events


def _element_rows(el: dict[str, Any], removed: bool) -> list[dict[str, Any]]:
    return el["event"]["participants"] if removed else el["participants"]


def _expected(world: World, race_id: int, events: list[int], removed: bool) -> list[int]:
    get = world.removed_registrations if removed else world.active_registrations
    return sorted(i for e in events for i in get(race_id, e))


def test_uneven_race_is_uneven_and_interleaved(uneven: Any) -> None:
    sim, _, race_id, (big, small, mid) = uneven
    sizes = [len(sim.world.active_registrations(race_id, e)) for e in (small, mid, big)]
    assert sizes[0] * 2 < sizes[1] and sizes[1] * 4 < sizes[2]
    small_ids = sorted(sim.world.active_registrations(race_id, small))
    big_ids = sim.world.active_registrations(race_id, big)
    assert any(small_ids[0] < i < small_ids[-1] for i in big_ids)  # ids interleave
    assert all(sim.world.removed_registrations(race_id, e) for e in (small, mid, big))


@pytest.mark.parametrize("removed", [False, True])
@pytest.mark.parametrize("per_page", [7, 50])
@pytest.mark.parametrize("mode", ["per_event", "total"])
def test_multi_event_page_walk_gives_every_row_once(
    uneven: Any, mode: str, per_page: int, removed: bool
) -> None:
    sim, cred, race_id, events = uneven
    sim.multi_event_paging = mode
    try:
        sub = "removed-participants" if removed else "participants"
        got: list[int] = []
        page, sizes = 1, []
        while True:
            body = api_get(
                sim,
                cred,
                f"/Rest/race/{race_id}/{sub}",
                event_id=",".join(map(str, events)),
                results_per_page=per_page,
                page=page,
            ).json()
            assert [el["event"]["event_id"] for el in body] == events  # empty ones stay
            for el in body:
                rows = _element_rows(el, removed)
                assert {r["event_id"] for r in rows} <= {el["event"]["event_id"]}
            # grouped by event within a page, so the page's rows are put back in id order
            got += sorted(r["registration_id"] for el in body for r in _element_rows(el, removed))
            counts = [len(_element_rows(el, removed)) for el in body]
            sizes.append(sum(counts))
            more = sum(counts) == per_page if mode == "total" else per_page in counts
            if not more:
                break
            page += 1
    finally:
        sim.multi_event_paging = "per_event"
    want = _expected(sim.world, race_id, events, removed)
    assert sorted(got) == want and len(got) == len(set(got))
    if mode == "total":  # full pages in global registration_id order, then one short page
        assert got == want  # page n holds the n-th run of per_page ids of the merged order
        assert sizes[:-1] == [per_page] * (len(sizes) - 1) and sizes[-1] < per_page
    else:  # each event is paged on its own: the biggest one sets the number of pages
        get = sim.world.removed_registrations if removed else sim.world.active_registrations
        biggest = max(len(get(race_id, e)) for e in events)
        assert page == biggest // per_page + 1
        assert sizes[0] == sum(min(per_page, len(get(race_id, e))) for e in events)


@pytest.mark.parametrize("removed", [False, True])
def test_total_paging_keyset_walk_gives_every_row_once(uneven: Any, removed: bool) -> None:
    sim, cred, race_id, events = uneven
    sub = "removed-participants" if removed else "participants"
    with SimulatorServer(sim.world, multi_event_paging="total") as total:
        got: list[int] = []
        after = 0
        while True:
            body = api_get(
                total,
                cred,
                f"/Rest/race/{race_id}/{sub}",
                event_id=",".join(map(str, events)),
                results_per_page=11,
                after_registration_id=after,
            ).json()
            assert [el["event"]["event_id"] for el in body] == events
            ids = sorted(r["registration_id"] for el in body for r in _element_rows(el, removed))
            got += ids
            if len(ids) < 11:
                break
            after = ids[-1]
    assert got == _expected(sim.world, race_id, events, removed)


def test_per_event_paging_with_one_keyset_cursor_skips_rows(uneven: Any) -> None:
    """Why the mode matters: a client that keeps one ``after_registration_id`` for a
    several-event listing loses rows when each event is paged on its own."""
    sim, cred, race_id, events = uneven
    got: list[int] = []
    after = 0
    while True:
        body = api_get(
            sim,
            cred,
            f"/Rest/race/{race_id}/participants",
            event_id=",".join(map(str, events)),
            results_per_page=11,
            after_registration_id=after,
        ).json()
        ids = sorted(r["registration_id"] for el in body for r in el["participants"])
        got += ids
        if not any(len(el["participants"]) == 11 for el in body):
            break
        after = ids[-1]
    want = _expected(sim.world, race_id, events, removed=False)
    assert set(got) < set(want)  # some rows never came


@pytest.mark.parametrize(
    "sort", ["registration_id DESC", "last_modified ASC", "last_modified DESC", "last_name ASC"]
)
def test_total_paging_merges_other_sorts(uneven: Any, sort: str) -> None:
    sim, cred, race_id, events = uneven
    field, _, direction = sort.partition(" ")
    with SimulatorServer(sim.world, multi_event_paging="total") as total:
        pages: list[list[dict[str, Any]]] = []
        page = 1
        while True:
            body = api_get(
                total,
                cred,
                f"/Rest/race/{race_id}/participants",
                event_id=",".join(map(str, events)),
                results_per_page=13,
                page=page,
                sort=sort,
            ).json()
            # within a page the merged order is lost to the grouping, so rebuild it: every row
            # of this page must sort before (or tie with) every row of the next page
            rows = [r for el in body for r in el["participants"]]
            pages.append(rows)
            if len(rows) < 13:
                break
            page += 1

    def key(r: dict[str, Any]) -> Any:
        if field == "last_name":
            return ((r["user"]["last_name"] or "").strip().lower(), r["registration_id"])
        return (r[field], r["registration_id"])

    reverse = direction == "DESC"
    flat = [k for rows in pages for k in sorted(map(key, rows), reverse=reverse)]
    assert flat == sorted(flat, reverse=reverse)  # pages follow each other in the global order
    ids = [k[-1] for k in flat]
    assert sorted(ids) == _expected(sim.world, race_id, events, removed=False)
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("mode", ["per_event", "total"])
@pytest.mark.parametrize("params", [{"page": 2}, {"page": 3, "sort": "registration_id DESC"}])
def test_fast_path_and_general_path_agree(uneven: Any, mode: str, params: dict[str, Any]) -> None:
    """``modified_after_timestamp=0`` matches every row but takes the general path, so both
    paths must give the same bytes."""
    sim, cred, race_id, events = uneven
    with SimulatorServer(sim.world, multi_event_paging=mode) as server:
        q = {"event_id": ",".join(map(str, events)), "results_per_page": 17, **params}
        path = f"/Rest/race/{race_id}/participants"
        fast = api_get(server, cred, path, **q)
        general = api_get(server, cred, path, modified_after_timestamp=0, **q)
    assert fast.content == general.content
    skip = 17 * (params["page"] - 1)
    sizes = [len(sim.world.active_registrations(race_id, e)) for e in events]
    want = 17 if mode == "total" else sum(min(17, max(0, n - skip)) for n in sizes)
    assert sum(len(el["participants"]) for el in fast.json()) == want


def test_total_paging_keeps_empty_event_elements(uneven: Any) -> None:
    sim, cred, race_id, (big, small, _mid) = uneven
    big_ids = sorted(sim.world.active_registrations(race_id, big))
    after = big_ids[0] - 1
    assert big_ids[4] < min(sim.world.active_registrations(race_id, small))  # page 1: big only
    with SimulatorServer(sim.world, multi_event_paging="total") as total:
        body = api_get(
            total,
            cred,
            f"/Rest/race/{race_id}/participants",
            event_id=f"{small},{big}",
            results_per_page=5,
            after_registration_id=after,
        ).json()
    assert [el["event"]["event_id"] for el in body] == [small, big]
    assert body[0]["participants"] == []
    assert [r["registration_id"] for r in body[1]["participants"]] == big_ids[:5]
    assert [r["event_id"] for r in body[1]["participants"]] == [big] * 5


def test_multi_event_paging_switches_over_admin_settings(uneven: Any) -> None:
    sim, cred, race_id, events = uneven
    url = sim.base_url + "/_admin/settings"
    path, q = f"/Rest/race/{race_id}/participants", {"event_id": ",".join(map(str, events))}
    try:
        assert requests.get(url, timeout=10).json()["multi_event_paging"] == "per_event"
        per_event = api_get(sim, cred, path, results_per_page=4, **q).json()
        assert [len(el["participants"]) for el in per_event] == [4, 4, 4]
        resp = requests.post(url, json={"multi_event_paging": "total"}, timeout=10)
        assert resp.json()["multi_event_paging"] == "total" and sim.multi_event_paging == "total"
        total = api_get(sim, cred, path, results_per_page=4, **q).json()
        assert sum(len(el["participants"]) for el in total) == 4
        bad = requests.post(url, json={"multi_event_paging": "sideways"}, timeout=10)
        assert bad.status_code == 400 and sim.multi_event_paging == "total"
        with pytest.raises(ValueError):
            sim.multi_event_paging = "sideways"
    finally:
        sim.multi_event_paging = "per_event"
