"""Benchmark: requests and wall time of a no-change incremental sync, against the minimum and
against the previous way of asking (one call per event, 4 in flight), in the same run.

    .venv/bin/python benchmarks/request_count.py [--latency-ms 50] [--partners 5] [--races 100]

For each way, a fresh database gets a complete first fetch (no latency), then a second,
incremental fetch with nothing changed in between, at ``--latency-ms`` per request; that second
fetch is what is measured. The minimum is what RunSignUp must be asked at least: one races
listing per partner, one race detail per race, one participants and one removed-participants
call per race (a no-change page is never full); rsu adds one auth check per partner.

"before" is the same code with ``events_per_call=1`` and ``concurrency=4`` (the defaults before
RunSignUp's 2027 limits); "now" is the defaults (a race's events in one call, 2 in flight).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from rsu.fetcher import FetchOptions, run_fetch
from rsu.fetcher.credentials import add_credential
from rsu.journal import open_db
from rsu.simulator import Faults, SimulatorServer, World, WorldConfig


def _fetch(sim: SimulatorServer, db: Path, workdir: Path, **kw: Any) -> tuple[float, dict, int]:
    options = FetchOptions(
        base_url=sim.base_url,
        all_races=True,
        ignore_cadence=True,  # every race, due or not: the request count of the whole world
        max_rps=0,
        log_file=workdir / "bench.log",
        summary_file=workdir / "bench.json",
        **kw,
    )
    sim.clear_requests()
    started = time.perf_counter()
    result = run_fetch(db, options)
    wall = time.perf_counter() - started
    assert result.exit_code == 0, result.failures
    return wall, result.counts, sim.peak_in_flight


def one_way(world: World, latency_ms: float, workdir: Path, name: str, **kw: Any) -> dict:
    db = workdir / f"{name}.db"
    conn = open_db(db)
    for c in world.credentials:
        add_credential(conn, c.timing_partner_id, c.auth, c.secret, c.principal)
    conn.conn.close()
    with SimulatorServer(world, max_in_flight=kw.get("concurrency", 2)) as sim:
        _fetch(sim, db, workdir, **kw)  # the complete first sync
        sim.faults = Faults(latency_ms=latency_ms)
        wall, counts, peak = _fetch(sim, db, workdir, **kw)
    return {"wall": wall, "requests": counts["requests"], "peak": peak, "counts": counts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--partners", type=int, default=5)
    parser.add_argument("--races", type=int, default=100)
    args = parser.parse_args()
    world = World.generate(
        WorldConfig(
            seed=42,
            partners=args.partners,
            races_per_partner=max(1, args.races // args.partners),
            events_per_race=(1, 4),
            registrations_per_event=(100, 850),
        )
    )
    races = sum(len(world.race_ids(p)) for p in world.partner_ids)
    events = sum(len(world.event_ids(r)) for p in world.partner_ids for r in world.race_ids(p))
    regs = sum(
        len(world.active_registrations(r, e))
        for p in world.partner_ids
        for r in world.race_ids(p)
        for e in world.event_ids(r)
    )
    minimum = args.partners + 3 * races
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        before = one_way(
            world,
            args.latency_ms,
            workdir,
            "before",
            events_per_call=1,
            concurrency=4,
            beyond_caller_limit=True,
        )
        now = one_way(world, args.latency_ms, workdir, "now")
    print(
        f"world: {args.partners} partners, {races} races, {events} events, {regs} active "
        f"registrations; no-change incremental sync at {args.latency_ms:.0f} ms/request"
    )
    print(f"minimum requests (races listing/partner + 3/race): {minimum}")
    print(f"  + auth check per partner:                        {minimum + args.partners}")
    for name, r in (("before", before), ("now", now)):
        print(
            f"{name:<7} {r['requests']:5d} requests ({r['requests'] / minimum:.2f}x the minimum), "
            f"{r['wall']:6.2f} s, peak {r['peak']} in flight"
        )
    print(f"requests now/before: {now['requests'] / before['requests']:.2f}")
    print(f"wall time now/before: {now['wall'] / before['wall']:.2f}")


if __name__ == "__main__":
    main()
