"""Benchmark: journal bytes stored per body byte received for a day's complete re-listing, with
the blob codecs of today (zstd, deltas against the same listing page) against the old codec
(zlib level 1, every new body whole), measured in the same run on the same responses.

    .venv/bin/python benchmarks/journal_storage.py [--registrations 20000] [--partners 5]

1. A simulator world of ``--registrations`` registrations (5 partners by default) is fetched
   completely once (day 1) with the real fetcher, into a journal.
2. The world then lives one day: per 100,000 registrations ~700 new, 300 edits and 100 removals
   (refunds, transfers, deferrals), scaled to the world's size; then a complete re-listing
   (``--full``) is fetched (day 2).
3. The fetched events are replayed, in seq order with their bodies, into two fresh journals: one
   with ``blob_codec="zstd"`` (today's) and one with ``blob_codec="zlib"`` (the old codec).
   For day 2 it prints body bytes received, bytes stored by each, their ratios (target <= 0.01)
   and plain zstd (no deltas) for comparison; and the CPU cost of storing (append time per MB
   received, compression included) for each codec, next to the day-2 fetch's own time per MB.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fetch_helpers import fast_options, seed_credentials

from rsu.fetcher import run_fetch
from rsu.journal import Journal, codecs
from rsu.simulator import SimulatorServer, World, WorldConfig


def replay_day(src: Journal, dst: Journal, after: int, upto: int) -> float:
    """Append ``src``'s events ``after < seq <= upto`` to ``dst``; CPU seconds spent in appends."""
    spent = 0.0
    for batch in src.read(after_seq=after):
        for r in batch:
            if r.seq > upto:
                return spent
            body = src.body(r.body_sha256) if r.body_sha256 is not None else None
            started = time.process_time()
            dst.append(
                r.event,
                body,
                run_id=r.run_id,
                timing_partner_id=r.timing_partner_id,
                race_id=r.race_id,
                event_id=r.event_id,
            )
            spent += time.process_time() - started
    return spent


def stored_since(journal: Journal, rowid: int) -> int:
    """Stored bytes of blobs written after ``rowid``."""
    row = journal.db.conn.execute(
        "SELECT COALESCE(SUM(LENGTH(data)), 0) FROM journal_blobs WHERE rowid > ?", (rowid,)
    ).fetchone()
    return int(row[0])


def max_rowid(journal: Journal) -> int:
    return int(
        journal.db.conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM journal_blobs").fetchone()[0]
    )


def received(conn: sqlite3.Connection, after: int, upto: int) -> int:
    """Body bytes received (repeats included) by events ``after < seq <= upto``."""
    row = conn.execute(
        "SELECT COALESCE(SUM(b.size), 0) FROM journal j JOIN journal_blobs b "
        "ON b.sha256 = j.body_sha256 WHERE j.seq > ? AND j.seq <= ?",
        (after, upto),
    ).fetchone()
    return int(row[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--registrations", type=int, default=20_000)
    parser.add_argument("--partners", type=int, default=5)
    args = parser.parse_args()
    scale = args.registrations / 100_000
    races_per_partner = max(1, round(100 * scale / args.partners))
    per_event = args.registrations / (args.partners * races_per_partner * 2)
    world = World.generate(
        WorldConfig(
            seed=15,
            partners=args.partners,
            races_per_partner=races_per_partner,
            events_per_race=(1, 3),
            registrations_per_event=(int(per_event * 0.5), int(per_event * 1.5)),
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db = work / "fetched.db"
        seed_credentials(db, world.credentials)
        with SimulatorServer(world) as sim:
            assert run_fetch(db, fast_options(sim.base_url, work)).exit_code == 0
            fetched = Journal.open(db)
            day1 = fetched.last_seq()
            removals = round(100 * scale)
            changes = world.advance(
                new=round(700 * scale),
                edits=round(300 * scale),
                refunds=removals - 2 * (removals // 3),
                transfers=removals // 3,
                deferrals=removals // 3,
                seconds=86_400,
            )
            started = time.perf_counter()
            assert run_fetch(db, fast_options(sim.base_url, work, full=True)).exit_code == 0
            fetch_s = time.perf_counter() - started
        day2 = fetched.last_seq()
        got = received(fetched.db.conn, day1, day2)
        total_regs = sum(len(e.active) for e in world.events.values())
        print(
            f"world: {args.partners} partners, {len(world.races)} races, {len(world.events)} "
            f"events, {total_regs} active registrations; day 2: {len(changes)} changes"
        )
        print(f"day 2 complete re-listing: {got / 1e6:.2f} MB of bodies received")
        results = {}
        for codec in (codecs.ZLIB, codecs.ZSTD):
            dst = Journal.open(work / f"{codec}.db", blob_codec=codec)
            replay_day(fetched, dst, 0, day1)
            mark = max_rowid(dst)
            cpu = replay_day(fetched, dst, day1, day2)
            results[codec] = (stored_since(dst, mark), cpu)
            dst.close()
        new_bodies = fetched.db.conn.execute(
            "SELECT DISTINCT j.body_sha256 FROM journal j WHERE j.seq > ? AND j.body_sha256 "
            "NOT IN (SELECT body_sha256 FROM journal WHERE seq <= ? AND body_sha256 IS NOT NULL)",
            (day1, day1),
        ).fetchall()
        plain = sum(len(codecs.encode_whole(fetched.body(sha)).data) for (sha,) in new_bodies)
        fetched.close()
    mb = got / 1e6
    base_stored, base_cpu = results[codecs.ZLIB]
    new_stored, new_cpu = results[codecs.ZSTD]
    print(
        f"old codec (zlib 1, whole):     {base_stored / 1e6:8.3f} MB stored, "
        f"{base_stored / got:.4f} stored/received, {1e3 * base_cpu / mb:6.2f} ms CPU/MB to append"
    )
    print(
        f"zstd, whole (no deltas):       {plain / 1e6:8.3f} MB stored, {plain / got:.4f} "
        "stored/received"
    )
    print(
        f"zstd + listing-page deltas:    {new_stored / 1e6:8.3f} MB stored, "
        f"{new_stored / got:.4f} stored/received, {1e3 * new_cpu / mb:6.2f} ms CPU/MB to append"
    )
    print(
        f"ratio new/old stored: {new_stored / base_stored:.4f} ({base_stored / new_stored:.0f}x "
        f"less); target stored/received <= 0.01: {'met' if new_stored / got <= 0.01 else 'MISSED'}"
    )
    print(
        f"for scale: the day-2 fetch itself took {1e3 * fetch_s / mb:.1f} ms wall per MB "
        "(loopback simulator, no latency)"
    )


if __name__ == "__main__":
    main()
