"""Benchmark: participant rows the simulator serves per second over loopback, 2,500-row pages.

Run: ``.venv/bin/python benchmarks/simulator.py [--registrations N] [--threads T] [--passes P]``

Builds one event of ``--registrations`` rows, then walks it with
``GET /Rest/race/{id}/participants?event_id=..&results_per_page=2500&sort=registration_id ASC``
and ``after_registration_id`` keyset paging through ``requests.Session``; bodies are read as
bytes and rows counted, not decoded. The first pass is cold (row JSON not cached yet), later
passes warm; a last run fetches ``page=N`` pages from ``--threads`` threads at once. Baseline,
measured in the same run: encoding the same 2,500-row pages in-process with
``msgspec.json.encode`` (no HTTP). Prints rows/s for each and the ratio served/baseline.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

import msgspec
import requests

from rsu.simulator import SimulatorServer, World, WorldConfig

PAGE = 2500
KEY = b'{"registration_id":'


def walk(
    sim: SimulatorServer, params: dict[str, str], headers: dict[str, str], path: str
) -> tuple[int, int]:
    """Keyset-walk the event; returns (rows, bytes)."""
    session = requests.Session()
    after, rows, size = 0, 0, 0
    while True:
        q = {**params, "after_registration_id": str(after)}
        body = session.get(sim.base_url + path, params=q, headers=headers, timeout=60).content
        size += len(body)
        n = body.count(KEY)  # one registration_id per row; no JSON decode on the client
        rows += n
        if n < PAGE:
            return rows, size
        at = body.rindex(KEY) + len(KEY)
        after = int(body[at : body.index(b",", at)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--registrations", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--passes", type=int, default=3)
    args = ap.parse_args()

    t0 = time.perf_counter()
    world = World.generate(
        WorldConfig(
            seed=1,
            partners=1,
            races_per_partner=1,
            events_per_race=(1, 1),
            registrations_per_event=(1, 1),
        )
    )
    cred = world.credentials[0]
    race_id = world.race_ids(cred.timing_partner_id)[0]
    event_id = world.add_event(race_id, registrations=args.registrations)
    gen_s = time.perf_counter() - t0
    active = world.active_registrations(race_id, event_id)
    print(f"generated {len(active):,} active registrations in {gen_s:.2f} s")

    # Baseline: in-process serialization of the same pages (no HTTP, no cache).
    ids = sorted(active)
    pages = [[active[i] for i in ids[k : k + PAGE]] for k in range(0, len(ids), PAGE)]
    t0 = time.perf_counter()
    for page in pages:
        msgspec.json.encode(
            [{"event": {"event_id": event_id, "participants": []}, "participants": page}]
        )
    base_rate = len(ids) / (time.perf_counter() - t0)
    print(f"baseline  in-process msgspec encode of 2,500-row pages: {base_rate:12,.0f} rows/s")

    path = f"/Rest/race/{race_id}/participants"
    params = {
        "format": "json",
        "event_id": str(event_id),
        "results_per_page": str(PAGE),
        "sort": "registration_id ASC",
    }
    params.update(cred.query_params())
    headers = cred.headers()
    with SimulatorServer(world) as sim:
        rates = []
        for n in range(args.passes):
            t0 = time.perf_counter()
            rows, size = walk(sim, params, headers, path)
            dt = time.perf_counter() - t0
            rates.append(rows / dt)
            label = "cold" if n == 0 else "warm"
            print(
                f"served    pass {n + 1} ({label}, 1 thread, keyset):    {rows / dt:12,.0f} rows/s"
                f"  ({size / dt / 1e6:.0f} MB/s, ratio {rows / dt / base_rate:.2f})"
            )
        n_pages = (len(ids) + PAGE - 1) // PAGE

        def fetch(page: int) -> int:
            session = requests.Session()
            q = {**params, "page": str(page)}
            body = session.get(sim.base_url + path, params=q, headers=headers, timeout=60).content
            return body.count(KEY)

        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.threads) as pool:
            rows = sum(pool.map(fetch, range(1, n_pages + 1)))
        dt = time.perf_counter() - t0
        print(
            f"served    {args.threads} threads, page=N, warm:          {rows / dt:12,.0f} rows/s"
            f"  (ratio {rows / dt / base_rate:.2f})"
        )
    best = max(rates)
    verdict = "met" if best > 50_000 else "NOT met"
    print(
        f"result: {best:,.0f} rows/s served (best single-thread pass) vs baseline "
        f"{base_rate:,.0f}; ratio {best / base_rate:.2f}; target > 50,000 rows/s: {verdict}"
    )


if __name__ == "__main__":
    main()
