"""Shared helpers for the fetcher tests (plain functions, no conftest)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from rsu.fetcher import FetchOptions, run_fetch
from rsu.fetcher.credentials import add_credential
from rsu.journal import Journal, ResponseReceived, open_db
from rsu.projector import project
from rsu.simulator import Credential, World, WorldConfig

SMALL = WorldConfig(
    seed=3,
    partners=3,
    races_per_partner=2,
    events_per_race=(1, 2),
    registrations_per_event=(20, 120),
)


def seed_credentials(db_path: Path, credentials: list[Credential]) -> None:
    """Store the simulator's credentials in ``partner_provider_credentials``."""
    db = open_db(db_path)
    try:
        for c in credentials:
            add_credential(db, c.timing_partner_id, c.auth, c.secret, c.principal)
    finally:
        db.conn.close()


def seeded_world(tmp_path: Path, **config: Any) -> tuple[World, Path]:
    """The simulator world of ``WorldConfig(**config)`` and ``tmp_path/rsu.db`` holding its
    credentials."""
    world = World.generate(WorldConfig(**config))
    db = tmp_path / "rsu.db"
    seed_credentials(db, world.credentials)
    return world, db


def fast_options(base_url: str, tmp_path: Path, **overrides: Any) -> FetchOptions:
    """Options for tests: tiny backoff, no rate limit, every race, files under ``tmp_path``."""
    values: dict[str, Any] = {
        "base_url": base_url,
        "all_races": True,
        "ignore_cadence": True,  # every race on every run; tests/test_cadence.py covers the cadence
        "max_rps": 0,
        "max_attempts": 10,
        "backoff_factor": 0.001,
        "backoff_jitter": 0.002,
        "backoff_max": 0.02,
        "retry_after_cap": 0.01,
        "connect_timeout": 5,
        "read_timeout": 10,
        "log_file": tmp_path / "runsignup_sync.log",
        "summary_file": tmp_path / "runsignup_sync_summary.json",
    }
    values.update(overrides)
    return FetchOptions(**values)


def _rows(endpoint: str, body: bytes) -> list[tuple[int, dict[str, Any]]] | None:
    """``(event_id, row)`` of every row of a listing page (rows sit under their event's
    element; a page of several events has one element per event)."""
    try:
        doc = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    if not isinstance(doc, list):
        return None
    rows: list[tuple[int, dict[str, Any]]] = []
    for element in doc:
        event = element.get("event") or {}
        group = element.get("participants") if endpoint == "participants" else None
        for row in group or event.get("participants") or []:
            rows.append((int(event["event_id"]), row))
    return rows


def journaled_ids(
    db_path: Path, endpoint: str = "participants", run_id: str | None = None
) -> dict[tuple[int, int], set[int]]:
    """``(race_id, event_id) -> registration ids`` in every parseable journaled page of
    ``endpoint`` (optionally of one run)."""
    out: dict[tuple[int, int], set[int]] = defaultdict(set)
    with Journal.open(db_path) as j:
        for row in j.find(kind="response_received", run_id=run_id):
            ev = row.event
            if not isinstance(ev, ResponseReceived) or ev.endpoint != endpoint or ev.status != 200:
                continue
            rows = _rows(endpoint, j.body(ev.body_sha256))
            if rows is None:
                continue
            assert ev.race_id is not None
            for event_id, r in rows:
                out[(ev.race_id, event_id)].add(r["registration_id"])
    return dict(out)


def _held(world: World, removed: bool) -> Iterator[tuple[int, int, dict[int, dict[str, Any]]]]:
    """``(race_id, event_id, registration_id -> row)`` of every event of every partner of the
    simulator's world, its active (or, with ``removed``, removed) registrations."""
    for pid in world.partner_ids:
        for rid in world.race_ids(pid):
            for eid in world.event_ids(rid):
                if removed:
                    yield rid, eid, world.removed_registrations(rid, eid)
                else:
                    yield rid, eid, world.active_registrations(rid, eid)


def world_ids(world: World, removed: bool = False) -> dict[tuple[int, int], set[int]]:
    """``(race_id, event_id) -> registration ids`` the simulator holds (active or removed); an
    event without any has an empty set."""
    return {(rid, eid): set(rows) for rid, eid, rows in _held(world, removed)}


def world_registrations(
    world: World, removed: bool = False
) -> dict[tuple[int, int, int], dict[str, Any]]:
    """``(race_id, event_id, registration_id) -> row`` of every registration the simulator holds
    active (or, with ``removed``, removed), over all partners: the oracle of end-to-end tests."""
    return {
        (rid, eid, reg): row
        for rid, eid, rows in _held(world, removed)
        for reg, row in rows.items()
    }


def fetch_and_project(db_path: Path, base_url: str, tmp_path: Path, **opts: Any) -> tuple[int, int]:
    """One sync as ``rsu sync`` runs it: fetch from ``base_url`` with :func:`fast_options`
    (``opts`` override them), then project; returns both exit codes."""
    fetched = run_fetch(db_path, fast_options(base_url, tmp_path, **opts))
    return fetched.exit_code, project(db_path).exit_code


def non_empty(d: dict[tuple[int, int], set[int]]) -> dict[tuple[int, int], set[int]]:
    """``d`` without empty sets."""
    return {k: v for k, v in d.items() if v}


def stored_bodies(db_path: Path) -> dict[str, bytes]:
    """Every body in ``journal_blobs`` of ``db_path``, decoded whatever its codec, by sha256."""
    journal = Journal.open(db_path)
    try:
        shas = [r[0] for r in journal.db.conn.execute("SELECT sha256 FROM journal_blobs")]
        return {sha: journal.body(sha) for sha in shas}
    finally:
        journal.close()


def replay_into(src: Journal, dst: Journal) -> None:
    """Append every event of ``src`` (with its body and row scope) to ``dst``, in seq order."""
    for batch in src.read():
        for r in batch:
            dst.append(
                r.event,
                src.body(r.body_sha256) if r.body_sha256 is not None else None,
                run_id=r.run_id,
                timing_partner_id=r.timing_partner_id,
                race_id=r.race_id,
                event_id=r.event_id,
            )
