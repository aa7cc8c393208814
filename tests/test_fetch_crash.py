"""Crash safety: ``rsu fetch`` killed with SIGKILL at many points leaves a journal that verifies,
and the next fetch completes the data."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fetch_helpers import fast_options, journaled_ids, non_empty, seed_credentials, world_ids

from rsu.fetcher import run_fetch
from rsu.journal import Journal
from rsu.simulator import Faults, SimulatorServer, World, WorldConfig

RSU = str(Path(sys.executable).parent / "rsu")
CONFIG = WorldConfig(
    seed=11,
    partners=2,
    races_per_partner=2,
    events_per_race=(1, 2),
    registrations_per_event=(60, 150),
)
PAGE_SIZE = 20

# (kind, seed): "requests" kills after a seeded number of requests seen by the simulator (a
# full run makes about 54), "delay" after a seeded random delay from the first request (a full
# run takes about 0.4 s after ~1 s of interpreter start-up).
POINTS = [("requests", s) for s in range(8)] + [("delay", s) for s in range(4)]


@pytest.mark.parametrize(("kind", "seed"), POINTS)
def test_sigkill_then_resume(tmp_path: Path, kind: str, seed: int) -> None:
    world = World.generate(CONFIG)
    db = tmp_path / "rsu.db"
    seed_credentials(db, world.credentials)
    rng = random.Random(seed)
    with SimulatorServer(world, faults=Faults(seed=seed, latency_ms=3)) as sim:
        cmd = [
            RSU,
            "fetch",
            "--db",
            str(db),
            "--base-url",
            sim.base_url,
            "--all-races",
            "--max-rps",
            "0",
            "--page-size",
            str(PAGE_SIZE),
            "--concurrency",
            "2",
            "--no-progress",
        ]
        env = {**os.environ, "COLUMNS": "120"}
        proc = subprocess.Popen(
            cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            target = rng.randint(1, 48) if kind == "requests" else 1
            deadline = time.monotonic() + 30
            while len(sim.requests) < target and proc.poll() is None:
                assert time.monotonic() < deadline
                time.sleep(0.001)
            if kind == "delay":
                time.sleep(rng.uniform(0.0, 0.2))
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
        killed_after = len(sim.requests)
        assert proc.returncode == -signal.SIGKILL
        with Journal.open(db) as j:
            report = j.verify()
            assert report.ok, report.problems
            assert j.find(kind="run_started") and not j.find(kind="run_finished")
        result = run_fetch(db, fast_options(sim.base_url, tmp_path, page_size=PAGE_SIZE))
    assert result.exit_code == 0, (killed_after, result.failures)
    assert journaled_ids(db) == non_empty(world_ids(world))
    assert journaled_ids(db, "removed_participants") == non_empty(world_ids(world, removed=True))
    with Journal.open(db) as j:
        assert j.verify().ok
