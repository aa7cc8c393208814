"""World generation (determinism, variety) and change over time (every change kind, the clock)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from rsu.simulator import Change, World, WorldConfig
from rsu.simulator.testing import SMALL


def _all_active(world: World) -> list[dict[str, Any]]:
    return [row for e in world.events.values() for row in e.active.values()]


def test_generation_is_deterministic() -> None:
    a, b = World.generate(SMALL), World.generate(SMALL)
    assert a.credentials == b.credentials
    assert a.partner_ids == b.partner_ids
    for p in a.partner_ids:
        for race_id in a.race_ids(p):
            for event_id in a.event_ids(race_id):
                assert a.active_registrations(race_id, event_id) == b.active_registrations(
                    race_id, event_id
                )
                assert a.removed_registrations(race_id, event_id) == b.removed_registrations(
                    race_id, event_id
                )
    assert a.advance() == b.advance()
    c = World.generate(WorldConfig(seed=SMALL.seed + 1, partners=3, races_per_partner=2))
    assert c.credentials != a.credentials


def test_sizes_follow_the_knobs() -> None:
    cfg = WorldConfig(
        seed=5,
        partners=2,
        races_per_partner=3,
        events_per_race=(2, 2),
        registrations_per_event=(10, 10),
        removed_fraction=0.0,
    )
    world = World.generate(cfg)
    assert len(world.partner_ids) == 2
    assert [len(world.race_ids(p)) for p in world.partner_ids] == [3, 3]
    for p in world.partner_ids:
        for race_id in world.race_ids(p):
            assert len(world.event_ids(race_id)) == 2
            for event_id in world.event_ids(race_id):
                assert len(world.active_registrations(race_id, event_id)) == 10
                assert world.removed_registrations(race_id, event_id) == {}


def test_add_event_builds_a_big_event() -> None:
    world = World.generate(SMALL)
    race_id = world.race_ids(world.partner_ids[0])[0]
    event_id = world.add_event(race_id, registrations=6000)
    assert world.event_ids(race_id)[-1] == event_id
    rows = world.active_registrations(race_id, event_id)
    assert len(rows) + len(world.removed_registrations(race_id, event_id)) == 6000
    assert all(r["last_modified"] < world.now for r in rows.values())


def test_realistic_variety() -> None:
    world = World.generate(
        WorldConfig(seed=9, partners=2, races_per_partner=3, registrations_per_event=(200, 300))
    )
    rows = _all_active(world)
    names = [r["user"]["first_name"] + r["user"]["last_name"] for r in rows]
    assert any(re.search(r"[À-ɏ]", n) for n in names), "accented names"
    assert any(re.search(r"[\u4e00-\u9fff\u3040-\u30ff\uac00-\ud7af]", n) for n in names), (
        "CJK/Korean names"
    )
    assert any(re.search(r"[\U0001F300-\U0001FAFF]", n) for n in names), "emoji names"
    bibs = [r["bib_num"] for r in rows]
    assert any(isinstance(b, int) for b in bibs)
    assert any(isinstance(b, str) and b.startswith("0") for b in bibs), "leading-zero bibs"
    assert any(isinstance(b, str) and b[0].isalpha() for b in bibs), "alphanumeric bibs"
    assert any(b is None for b in bibs)
    assert any("email" not in r["user"] for r in rows), "missing email key"
    assert any("phone" not in r["user"] for r in rows)
    assert any("gender" not in r["user"] for r in rows)
    relays = {}
    for r in rows:
        if r["team_type"] == "Relay" and r["bib_num"] is not None:
            relays.setdefault(r["team_id"], set()).add(repr(r["bib_num"]))
    assert relays and all(len(b) == 1 for b in relays.values()), "relay members share one bib"
    responses = [q for r in rows for q in r["question_responses"]]
    assert any("responses" in q and isinstance(q["responses"], list) for q in responses)
    assert any("response" in q for q in responses)
    assert all(isinstance(q["question_id"], str) for q in responses)
    for r in rows:
        assert re.fullmatch(r"\d{1,2}/\d{1,2}/\d{4} \d{2}:\d{2}", r["registration_date"])
        assert re.fullmatch(r"\$\d+\.\d{2}", r["amount_paid"])
        assert r["imported"] in ("T", "F")
    tz = {race.data["timezone"] for race in world.races.values()}
    assert len(tz) >= 2
    for race in world.races.values():
        assert re.fullmatch(r"\d{2}/\d{2}/\d{4}", race.data["next_date"])
        assert re.fullmatch(r"\d{1,2}/\d{1,2}/\d{4} \d{2}:\d{2}", race.data["created"])
    events = [e.data for e in world.events.values()]
    assert any("giveaway" not in e for e in events) and any("giveaway" in e for e in events)


# ---------------------------------------------------------------------- changes
@pytest.fixture
def world() -> World:
    return World.generate(SMALL)


def _locate(world: World, reg_id: int) -> tuple[str, int] | None:
    for e in world.events.values():
        if reg_id in e.active:
            return "active", e.event_id
        if reg_id in e.removed:
            return "removed", e.event_id
    return None


def test_advance_moves_clock_and_stamps_changes(world: World) -> None:
    start = world.now
    high_water = max(r["last_modified"] for r in _all_active(world))
    assert high_water <= start
    changes = world.advance(new=5, edits=5, refunds=2, transfers=2, deferrals=2, seconds=600)
    assert world.now == start + 600
    assert sorted(c.kind for c in changes) == sorted(
        ["new"] * 5 + ["edit"] * 5 + ["refund"] * 2 + ["transfer"] * 2 + ["deferral"] * 2
    )
    stamps = [c.at for c in changes]
    assert stamps == sorted(stamps)
    assert all(start < t <= world.now for t in stamps)
    assert max(r["last_modified"] for r in _all_active(world)) <= world.now
    assert world.advance(new=0, edits=0, refunds=0, transfers=0, deferrals=0, seconds=5) == []
    assert world.now == start + 605
    world.advance(new=1, edits=0, refunds=0, transfers=0, deferrals=0, seconds=0)
    assert world.now == start + 606  # a change always moves the clock by at least 1 s
    with pytest.raises(ValueError):
        world.advance(seconds=-1)


def test_new_registrations_get_higher_ids(world: World) -> None:
    old_max = max(r["registration_id"] for r in _all_active(world))
    changes = world.advance(new=3, edits=0, refunds=0, transfers=0, deferrals=0)
    assert [c.kind for c in changes] == ["new"] * 3
    for c in changes:
        assert c.registration_id > old_max
        row = world.active_registrations(c.race_id, c.event_id)[c.registration_id]
        assert row["last_modified"] == c.at


def test_edit_bumps_last_modified(world: World) -> None:
    (c,) = world.advance(new=0, edits=1, refunds=0, transfers=0, deferrals=0, seconds=100)
    assert c.kind == "edit" and c.detail in ("bib", "name", "team")
    row = world.active_registrations(c.race_id, c.event_id)[c.registration_id]
    assert row["last_modified"] == c.at


@pytest.mark.parametrize(("kind", "reason"), [("refund", "removed"), ("deferral", "deferred")])
def test_refund_and_deferral_move_rows_to_removed(world: World, kind: str, reason: str) -> None:
    counts = {"new": 0, "edits": 0, "refunds": 0, "transfers": 0, "deferrals": 0}
    counts["refunds" if kind == "refund" else "deferrals"] = 1
    (c,) = world.advance(**counts)
    assert c.kind == kind
    assert _locate(world, c.registration_id) == ("removed", c.event_id)
    row = world.removed_registrations(c.race_id, c.event_id)[c.registration_id]
    assert row["removed_reason"] == reason
    assert row["new_registration_id"] is None
    assert row["last_modified_ts"] == c.at


def test_transfer_gives_new_id_and_removed_row(world: World) -> None:
    (c,) = world.advance(new=0, edits=0, refunds=0, transfers=1, deferrals=0)
    assert isinstance(c, Change) and c.kind == "transfer"
    assert c.new_registration_id is not None and c.new_registration_id > c.registration_id
    assert _locate(world, c.registration_id) == ("removed", c.event_id)
    assert _locate(world, c.new_registration_id) == ("active", c.new_event_id)
    removed = world.removed_registrations(c.race_id, c.event_id)[c.registration_id]
    assert removed["removed_reason"] == "transferred"
    assert removed["new_registration_id"] == c.new_registration_id
    new_row = world.active_registrations(c.race_id, c.new_event_id or 0)[c.new_registration_id]
    assert new_row["last_modified"] == c.at == removed["last_modified_ts"]


def test_advance_limited_to_races(world: World) -> None:
    race_id = world.race_ids(world.partner_ids[1])[0]
    changes = world.advance(new=4, edits=4, refunds=1, transfers=1, deferrals=1, race_ids=[race_id])
    assert {c.race_id for c in changes} == {race_id}


def test_event_change_keeps_the_registration_id(world: World) -> None:
    changes = world.advance(new=0, edits=0, refunds=0, transfers=0, deferrals=0, event_changes=3)
    assert [c.kind for c in changes] == ["event_change"] * 3
    for c in changes:
        assert c.new_event_id is not None and c.new_event_id != c.event_id
        assert world.races[c.race_id].events[c.new_event_id]  # same race
    last = {c.registration_id: c for c in changes}  # a runner may move twice
    for reg_id, c in last.items():
        assert _locate(world, reg_id) == ("active", c.new_event_id)
        row = world.active_registrations(c.race_id, c.new_event_id or 0)[reg_id]
        assert (row["event_id"], row["last_modified"]) == (c.new_event_id, c.at)


def test_revoked_access_and_removed_events(world: World) -> None:
    pid = world.partner_ids[0]
    race_id = world.race_ids(pid)[0]
    world.revoke_access(race_id)
    assert race_id not in world.race_ids(pid)
    world.restore_access(race_id)
    assert race_id in world.race_ids(pid)
    multi = next(r for r in world.races.values() if len(r.events) > 1)
    gone, keep = list(multi.events)[:2]
    before = set(world.active_registrations(multi.race_id, keep))
    moved = world.remove_event(multi.race_id, gone, move_to=keep)
    assert gone not in world.event_ids(multi.race_id) and gone not in world.events
    assert set(world.active_registrations(multi.race_id, keep)) == before | set(moved)
