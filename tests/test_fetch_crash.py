"""Crash safety: ``rsu fetch`` killed with SIGKILL at many points leaves a journal that verifies,
and the next fetch completes the data."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from crash_helpers import killed_at
from fetch_helpers import fast_options, journaled_ids, non_empty, seed_credentials, world_ids

from rsu.fetcher import run_fetch
from rsu.journal import Journal
from rsu.simulator import Faults, SimulatorServer, World, WorldConfig

CONFIG = WorldConfig(
    seed=11,
    partners=2,
    races_per_partner=2,
    events_per_race=(1, 2),
    registrations_per_event=(60, 150),
)
PAGE_SIZE = 20
#: Journal appends of one complete fetch of CONFIG (run_started ... run_finished); the test
#: ``test_reference_append_count`` checks it, so the kill points below stay inside a run.
APPENDS = 58

# (point, n): the fetch SIGKILLs itself at its n-th journal append ("append": before the
# transaction; "in-append": inside it, before COMMIT). Spread over the whole run, first and last
# appends included.
POINTS = [("append", n) for n in (1, 2, 9, 23, 38, 52, APPENDS)] + [
    ("in-append", n) for n in (1, 3, 17, 30, 44, APPENDS - 1)
]


def _fetch_args(db: Path, base_url: str) -> list[str]:
    return [
        "fetch",
        "--db",
        str(db),
        "--base-url",
        base_url,
        "--all-races",
        "--max-rps",
        "0",
        "--page-size",
        str(PAGE_SIZE),
        "--concurrency",
        "2",
        "--no-progress",
    ]


def _run(tmp_path: Path, point: str, n: int, args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "120"}
    return subprocess.run(
        killed_at(point, n, *args),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_reference_append_count(tmp_path: Path) -> None:
    world = World.generate(CONFIG)
    db = tmp_path / "rsu.db"
    seed_credentials(db, world.credentials)
    with SimulatorServer(world, faults=Faults(seed=0, latency_ms=3)) as sim:
        done = _run(tmp_path, "append", 10**9, _fetch_args(db, sim.base_url))
    assert done.returncode == 0, done.stderr
    with Journal.open(db) as j:
        assert j.last_seq() == APPENDS


@pytest.mark.parametrize(("point", "n"), POINTS)
def test_sigkill_then_resume(tmp_path: Path, point: str, n: int) -> None:
    world = World.generate(CONFIG)
    db = tmp_path / "rsu.db"
    seed_credentials(db, world.credentials)
    with SimulatorServer(world, faults=Faults(seed=n, latency_ms=3)) as sim:
        proc = _run(tmp_path, point, n, _fetch_args(db, sim.base_url))
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        with Journal.open(db) as j:
            report = j.verify()
            assert report.ok, report.problems
            # Exactly the appends before the n-th survived: the killed one never committed.
            assert j.last_seq() == n - 1
            assert not j.find(kind="run_finished")
        result = run_fetch(db, fast_options(sim.base_url, tmp_path, page_size=PAGE_SIZE))
    assert result.exit_code == 0, (n, result.failures)
    assert journaled_ids(db) == non_empty(world_ids(world))
    assert journaled_ids(db, "removed_participants") == non_empty(world_ids(world, removed=True))
    with Journal.open(db) as j:
        assert j.verify().ok
