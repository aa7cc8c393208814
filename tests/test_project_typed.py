"""The typed (msgspec Struct) path for /participants pages gives exactly the generic path's values
whenever it accepts a page, and the projector falls back to the generic path otherwise."""

from __future__ import annotations

import copy
import json

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from project_helpers import (
    DATA,
    Builder,
    dump,
    j,
    new_journal,
    participants_body,
    registration,
)

from rsu.projector import normalize as n
from rsu.projector import project, typed
from rsu.projector.normalize import MISSING
from rsu.projector.records import active_participant_values, participant_values

ODD = st.one_of(
    st.none(),
    st.just(""),
    st.integers(-3, 10**13),
    st.sampled_from(["12", " 7 ", "007", "T", "F", "$1.50", "x", "1/2/2020 10:00", "2020-01-02"]),
    # copies: a shared {"a": 1} mutated by one example could end up holding itself
    st.sampled_from([[], {}, True, 2.5, 3.0, [1], {"a": 1}]).map(copy.deepcopy),
)


@st.composite
def odd_registration(draw):
    reg = registration(draw(st.integers(1, 10**6)), 11, draw(st.integers(0, 2)))
    for _ in range(draw(st.integers(0, 4))):
        target = reg
        if draw(st.booleans()) and isinstance(reg.get("user"), dict):
            target = reg["user"]
            if draw(st.booleans()) and isinstance(target.get("address"), dict):
                target = target["address"]
        keys = sorted(target)
        if not keys:
            continue
        key = draw(st.sampled_from(keys))
        if key in ("registration_id", "event_id"):
            continue
        if draw(st.booleans()):
            del target[key]
        else:
            target[key] = draw(ODD)
    return reg


def _typed_regs(regs):
    page = typed.decode_page(participants_body(11, regs))
    return None if page is None else page[0].participants


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reg=odd_registration())
def test_typed_values_equal_generic_values(reg):
    typed_regs = _typed_regs([reg])
    if typed_regs is None:
        return  # not the common shape: the generic path projects the page
    generic = msgspec.json.decode(j(reg))
    for stored in (True, False):
        try:
            got = typed.typed_values(typed_regs[0], stored)
        except Exception:
            continue  # the generic path projects the page (and records any error)
        slow = participant_values(generic, removed=False)
        if not stored:
            slow = tuple(None if v is MISSING else v for v in slow)
        assert got == slow
        assert active_participant_values(generic, MISSING if stored else None) == slow


def test_typed_path_accepts_the_common_shape_and_falls_back_otherwise():
    regs = [registration(i, 11) for i in range(1, 5)]
    assert _typed_regs(regs) is not None
    quirks = (DATA / "quirks-participants.json").read_bytes()
    assert typed.decode_page(quirks) is None  # string ids, [] objects, ...
    odd = copy.deepcopy(regs)
    odd[2]["user"] = []
    assert _typed_regs(odd) is None
    assert typed.decode_page(b'{"error": {"error_code": 201}}') is None
    assert typed.decode_page(b"not json") is None


@settings(max_examples=300, deadline=None)
@given(
    month=st.integers(1, 12),
    day=st.integers(1, 31),
    year=st.sampled_from([1883, 1900, 1969, 1970, 2007, 2017, 2023, 2024, 2038, 2100]),
    hour=st.integers(0, 25),
    minute=st.integers(0, 59),
    pad=st.booleans(),
)
def test_hourly_eastern_equals_eastern(month, day, year, hour, minute, pad):
    hh = f"{hour:02d}" if pad else str(hour)
    value = f"{month}/{day}/{year} {hh}:{minute:02d}"
    try:
        expected = n.eastern(value)
    except ValueError:
        expected = None
    try:
        got = typed.eastern(value)
    except ValueError:
        got = None
    assert got == expected


def test_hourly_eastern_dst_days():
    for value in ("3/10/2024 02:30", "3/10/2024 03:00", "11/3/2024 01:30", "11/3/2024 02:00"):
        assert typed.eastern(value) == n.eastern(value)
    for value in (None, "", "2024-03-10 02:30:00", "3/10/2024", " 3/10/2024 02:30"):
        assert typed.eastern(value) == n.eastern(value)


def test_page_mixing_typed_and_generic_pages_matches_generic_only(monkeypatch):
    """The same journal projected with the typed path disabled gives the same dump."""
    jn = new_journal()
    b = Builder(jn)
    odd = registration(3, 11, 1)
    odd["user"] = []
    b.listing(100, 11, [participants_body(11, [registration(i, 11) for i in range(1, 30)])])
    b.listing(100, 11, [participants_body(11, [registration(i, 11, 1) for i in range(1, 20)])])
    b.listing(100, 11, [participants_body(11, [odd, registration(4, 11, 2)])], complete=False)
    partial = [{"registration_id": 5, "event_id": 11, "bib_num": 9, "user": None}]
    b.listing(100, 11, [participants_body(11, partial)], complete=False)
    plain = new_journal()
    jn.db.conn.backup(plain.db.conn)
    project(jn.db)
    monkeypatch.setattr(typed, "decode_page", lambda raw: None)
    project(plain.db)
    assert dump(jn.db.conn) == dump(plain.db.conn)
    row = json.loads(dump(jn.db.conn).split("## runsignup_participants")[1].splitlines()[5])
    assert row[3] == 5 and row[17] == "9"


@settings(max_examples=500, deadline=None)
@given(secs=st.one_of(st.integers(0, 253_402_300_799), st.integers(1_600_000_000, 1_800_000_000)))
def test_hourly_epoch_utc_equals_epoch_utc(secs):
    assert typed.epoch_utc(secs) == n.epoch_utc(secs)
