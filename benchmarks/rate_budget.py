"""Benchmark: how much of the rate budget a first fetch uses, against its bound, same run.

    .venv/bin/python benchmarks/rate_budget.py [--latency-ms 50] [--partners 5] [--max-rps 5]

A complete first fetch of a simulator world (``--partners`` partners of equal size) with
``--latency-ms`` per request, the default 2 requests in flight and ``--max-rps`` per credential.
The bound is ``min(partners x max_rps, in flight / latency)`` requests per second; the issue asks
for >= 0.8 of it. In the same run, the same fetch without a rate limit (``max_rps=0``) shows
what 2 requests in flight reach on this machine at that latency (the other side of the bound).
The simulator (in a child process) refuses a third request in flight with error 14; the
benchmark fails if any was refused.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fetch_helpers import fast_options, seed_credentials

from rsu.fetcher import run_fetch
from rsu.simulator import Faults, SimulatorServer, World, WorldConfig

IN_FLIGHT = 2


def serve(world: World, latency_ms: float, conn: Connection) -> None:
    """Child process: serve ``world`` until told to stop, then report what the server saw."""
    with SimulatorServer(world, faults=Faults(latency_ms=latency_ms)) as sim:
        sim.max_in_flight = IN_FLIGHT  # over the limit: error 14, as RunSignUp answers
        conn.send(sim.base_url)
        conn.recv()
        over = sum(1 for r in sim.requests if r.fault == "over_concurrency")
        conn.send((len(sim.requests), sim.peak_in_flight, over))


def one_fetch(world: World, latency_ms: float, max_rps: float, work: Path) -> tuple[int, float]:
    """(requests the simulator served, wall seconds) of one complete first fetch. The simulator
    runs in a child process, so the fetcher's threads do not slow its answers (one GIL)."""
    db = work / f"rate-{max_rps}.db"
    seed_credentials(db, world.credentials)
    ours, theirs = multiprocessing.get_context("fork").Pipe()
    child = multiprocessing.get_context("fork").Process(
        target=serve, args=(world, latency_ms, theirs)
    )
    child.start()
    try:
        options = fast_options(ours.recv(), work, max_rps=max_rps, concurrency=IN_FLIGHT)
        started = time.perf_counter()
        result = run_fetch(db, options)
        wall = time.perf_counter() - started
        ours.send("stop")
        served, peak, over = ours.recv()
    finally:
        child.join(timeout=30)
    assert result.exit_code == 0, result.failures
    assert over == 0, f"{over} requests were refused as over {IN_FLIGHT} in flight (peak {peak})"
    return served, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--partners", type=int, default=5)
    parser.add_argument("--races-per-partner", type=int, default=10)
    parser.add_argument("--max-rps", type=float, default=5.0)
    args = parser.parse_args()
    world = World.generate(
        WorldConfig(
            seed=9,
            partners=args.partners,
            races_per_partner=args.races_per_partner,
            events_per_race=(2, 2),
            registrations_per_event=(40, 40),
        )
    )
    bound = min(args.partners * args.max_rps, IN_FLIGHT / (args.latency_ms / 1000))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        served, wall = one_fetch(world, args.latency_ms, args.max_rps, work)
        free_served, free_wall = one_fetch(world, args.latency_ms, 0, work)
    rate = served / wall
    print(
        f"world: {args.partners} partners x {args.races_per_partner} races; latency "
        f"{args.latency_ms:.0f} ms; {IN_FLIGHT} requests in flight; --max-rps {args.max_rps:g}"
    )
    print(
        f"bound: min({args.partners} x {args.max_rps:g}, {IN_FLIGHT} / "
        f"{args.latency_ms / 1000:g} s) = {bound:.1f} requests/s"
    )
    print(f"rate-limited fetch: {served} requests in {wall:.2f} s = {rate:.1f} requests/s")
    print(
        f"same fetch, no rate limit (in-flight side of the bound, this machine): "
        f"{free_served / free_wall:.1f} requests/s"
    )
    print(f"rate use: {rate / bound:.2f} of the bound (target >= 0.8)")


if __name__ == "__main__":
    main()
