"""RunSignUp's 2027 rules end to end, through the command line against the simulator: the
caller registration on every call and never in any output, a wrong one stops the run at once
with one line naming it, at most 2 calls in flight by default, and several-event listings that
are complete under either reading of how RunSignUp pages them."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from fetch_helpers import (
    SMALL,
    journaled_ids,
    non_empty,
    seed_credentials,
    stored_bodies,
    world_ids,
)
from typer.testing import CliRunner

from rsu.cli.main import app
from rsu.journal import Journal, ListingCompleted
from rsu.simulator import SimulatorServer, World
from rsu.simulator.wire import CallerRegistrationSpec

runner = CliRunner()

# distinctive values, so that a scan of every output finds any copy of them
CALLER = CallerRegistrationSpec("40417", "CANARYregtoken5g6h7j8k", "CANARY/regsecret+9z8y7x")


def _set_caller(db: Path, reg: CallerRegistrationSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RSU_API_REG_SECRET", reg.secret)
    res = runner.invoke(app, ["credentials", "caller", "--db", str(db), "--token", reg.param])
    monkeypatch.delenv("RSU_API_REG_SECRET")
    assert res.exit_code == 0, res.output
    assert reg.token not in res.output and reg.secret not in res.output


def _fetch(db: Path, base_url: str, *extra: str) -> tuple[int, str]:
    res = runner.invoke(
        app,
        [
            "fetch",
            "--db",
            str(db),
            "--base-url",
            base_url,
            "--all-races",
            "--all",
            "--max-rps",
            "0",
            "--backoff",
            "0.001",
            *extra,
        ],
    )
    return res.exit_code, res.stdout + res.stderr


def _hits(path: Path, needles: list[bytes]) -> list[str]:
    """Needles in every column of every table (journal blobs decompressed) and in the raw
    database file and its WAL."""
    hits = [
        f"journal_blobs (decoded): {n!r}"
        for body in stored_bodies(path).values()
        for n in needles
        if n in body
    ]
    conn = sqlite3.connect(path)
    for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall():
        for row in conn.execute(f"SELECT * FROM {table}"):
            for value in row:
                data = value.encode() if isinstance(value, str) else value
                if not isinstance(data, bytes):
                    continue
                blobs = [data]
                hits += [f"{table}: {n!r}" for b in blobs for n in needles if n in b]
    conn.close()
    for suffix in ("", "-wal"):
        f = Path(f"{path}{suffix}")
        if f.exists():
            hits += [f"file {f.name}: {n!r}" for n in needles if n in f.read_bytes()]
    return hits


def test_caller_registration_on_every_call_and_nowhere_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    world = World.generate(SMALL)
    db = tmp_path / "rsu.db"
    seed_credentials(db, world.credentials)
    _set_caller(db, CALLER, monkeypatch)
    with SimulatorServer(world, caller=CALLER, require_caller=True, max_in_flight=2) as sim:
        code, out = _fetch(db, sim.base_url)
        statuses = {r.caller for r in sim.requests}
        n_requests = len(sim.requests)
        peak = sim.peak_in_flight
    assert code == 0, out
    assert n_requests > 10 and statuses == {"valid"}
    assert peak <= 2
    assert journaled_ids(db) == non_empty(world_ids(world))
    assert "caller registration" not in out  # no warning: it is set
    res = runner.invoke(app, ["project", "--db", str(db)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["status", "--db", str(db), "--json"])
    assert json.loads(res.stdout)["caller_registration"] == "set"
    assert "2027" not in res.stdout
    res = runner.invoke(app, ["credentials", "list", "--db", str(db)])
    assert res.exit_code == 0 and "caller registration: set (id 40417)" in res.output
    outputs = out + res.output
    needles = [CALLER.token.encode(), CALLER.secret.encode(), b"regtoken5g6h", b"regsecret"]
    files = [tmp_path / "runsignup_sync.log", tmp_path / "runsignup_sync_summary.json"]
    hits = [f"output: {n!r}" for n in needles if n in outputs.encode()]
    hits += [f"{f.name}: {n!r}" for f in files for n in needles if n in f.read_bytes()]
    assert hits + _hits(db, needles) == []
    # the secrets file holds both, and is private
    secrets = Path(f"{db}.secrets")
    assert secrets.stat().st_mode & 0o777 == 0o600
    assert CALLER.token.encode() in secrets.read_bytes()
    assert CALLER.secret.encode() in secrets.read_bytes()


def test_wrong_caller_registration_stops_the_run_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    world = World.generate(SMALL)
    db = tmp_path / "rsu.db"
    seed_credentials(db, world.credentials)
    wrong = CallerRegistrationSpec(CALLER.reg_id, CALLER.token, "CANARY/wrongsecret+1q2w3e")
    _set_caller(db, wrong, monkeypatch)
    with SimulatorServer(world, caller=CALLER) as sim:
        code, out = _fetch(db, sim.base_url)
        requests_made = [(r.path, r.status, r.caller) for r in sim.requests]
    assert code == 1
    # every call was refused with error 17; no call was retried, and the run stopped asking:
    # at most one call per worker (2) was in flight when the first refusal came back
    assert {(status, caller) for _, status, caller in requests_made} == {(400, "invalid")}
    assert len(requests_made) <= 2
    lines = [line for line in out.splitlines() if "caller registration" in line]
    assert lines and all("error 17" in line for line in lines[:1])
    assert "rsu credentials caller" in out
    assert "the partner keys were not the problem" in out
    assert b"wrongsecret" not in out.encode()
    assert _hits(db, [b"wrongsecret", CALLER.token.encode()]) == []
    summary = json.loads((tmp_path / "runsignup_sync_summary.json").read_text())
    assert "wrongsecret" not in json.dumps(summary)


def test_no_caller_registration_warns_and_still_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    world = World.generate(SMALL)
    db = tmp_path / "rsu.db"
    seed_credentials(db, world.credentials)
    with SimulatorServer(world) as sim:
        code, out = _fetch(db, sim.base_url)
        statuses = {r.caller for r in sim.requests}
    assert code == 0, out
    assert statuses == {None}
    text = " ".join(out.split())
    assert "RunSignUp rejects calls without one from 2027-01-01" in text
    res = runner.invoke(app, ["credentials", "list", "--db", str(db)])
    assert "caller registration: not set" in res.output
    res = runner.invoke(app, ["project", "--db", str(db)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["status", "--db", str(db)])
    assert "RunSignUp rejects calls without one from 2027-01-01" in " ".join(res.output.split())
    res = runner.invoke(app, ["status", "--db", str(db), "--json"])
    assert json.loads(res.stdout)["caller_registration"] == "unset"


@pytest.mark.parametrize("paging", ["per_event", "total"])
def test_several_events_per_call_complete_under_both_paging_readings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, paging: str
) -> None:
    monkeypatch.chdir(tmp_path)
    world = World.generate(SMALL)
    db = tmp_path / "rsu.db"
    seed_credentials(db, world.credentials)
    multi = [r for r in world.races.values() if len(r.events) > 1]
    assert multi, "the world needs a race with several events"
    with SimulatorServer(world, multi_event_paging=paging, max_in_flight=2) as sim:
        code, out = _fetch(db, sim.base_url, "--page-size", "25")
        csv_calls = [r for r in sim.requests if "," in r.query.get("event_id", "")]
        peak = sim.peak_in_flight
    assert code == 0, out
    assert csv_calls, "no call asked for several events"
    assert peak <= 2
    assert journaled_ids(db) == non_empty(world_ids(world))
    assert journaled_ids(db, "removed_participants") == non_empty(world_ids(world, removed=True))
    with Journal.open(db) as j:
        listings = [r.event for r in j.find(kind="listing_completed")]
    assert listings and all(isinstance(e, ListingCompleted) and e.complete for e in listings)
