"""Benchmark: a full fetch against the simulator with 50 ms latency per request, at concurrency 4
against concurrency 1, in the same run. Prints both wall times and the ratio.

    .venv/bin/python benchmarks/fetch.py [--latency-ms 50] [--partners 4]

The rate limit is off (``max_rps=0``) so the figure measures concurrency, not throttling.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from rsu.fetcher import FetchOptions, run_fetch
from rsu.fetcher.credentials import add_credential
from rsu.journal import open_db
from rsu.simulator import Faults, SimulatorServer, World, WorldConfig


def one_run(world: World, latency_ms: float, concurrency: int, workdir: Path) -> tuple[float, dict]:
    db = workdir / f"bench-c{concurrency}.db"
    conn = open_db(db)
    for c in world.credentials:
        add_credential(conn, c.timing_partner_id, c.auth, c.secret, c.principal)
    conn.conn.close()
    with SimulatorServer(world, faults=Faults(latency_ms=latency_ms)) as sim:
        options = FetchOptions(
            base_url=sim.base_url,
            all_races=True,
            full=True,
            concurrency=concurrency,
            beyond_caller_limit=concurrency > 2,
            max_rps=0,
            log_file=workdir / "bench.log",
            summary_file=workdir / f"bench-c{concurrency}.json",
        )
        started = time.perf_counter()
        result = run_fetch(db, options)
        wall = time.perf_counter() - started
    assert result.exit_code == 0, result.failures
    return wall, result.counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--partners", type=int, default=4)
    parser.add_argument("--races-per-partner", type=int, default=4)
    args = parser.parse_args()
    world = World.generate(
        WorldConfig(
            seed=42,
            partners=args.partners,
            races_per_partner=args.races_per_partner,
            events_per_race=(1, 3),
            registrations_per_event=(100, 1500),
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        t1, counts = one_run(world, args.latency_ms, 1, workdir)
        t4, counts4 = one_run(world, args.latency_ms, 4, workdir)
    assert counts["participants"] == counts4["participants"]
    print(
        f"world: {counts['races']} races, {counts['events']} events, "
        f"{counts['participants']} participants, {counts['requests']} requests, "
        f"{counts['bytes_received'] / 1e6:.1f} MB; latency {args.latency_ms:.0f} ms/request"
    )
    print(f"concurrency 1: {t1:6.2f} s")
    print(f"concurrency 4: {t4:6.2f} s")
    print(f"speed-up:      {t1 / t4:6.2f}x")


if __name__ == "__main__":
    main()
