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
   received, compression included) for each codec, compression alone per MB of new bodies, next
   to the day-2 fetch's own time per MB. With ``--days N`` the world lives N days, each ending
   with a complete re-listing, and the ratio of every day is printed: deltas are taken against
   the newest body stored whole, so they grow until a body is stored whole again.
"""

from __future__ import annotations

import argparse
import itertools
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
    parser.add_argument(
        "--days", type=int, default=1, help="Days of changes and complete re-listings (>= 1)."
    )
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
        marks = []  # last seq of each day
        changes = []
        with SimulatorServer(world) as sim:
            assert run_fetch(db, fast_options(sim.base_url, work)).exit_code == 0
            fetched = Journal.open(db)
            marks.append(fetched.last_seq())
            removals = round(100 * scale)
            for _day in range(args.days):
                changes.append(
                    world.advance(
                        new=round(700 * scale),
                        edits=round(300 * scale),
                        refunds=removals - 2 * (removals // 3),
                        transfers=removals // 3,
                        deferrals=removals // 3,
                        seconds=86_400,
                    )
                )
                started = time.perf_counter()
                assert run_fetch(db, fast_options(sim.base_url, work, full=True)).exit_code == 0
                fetch_s = time.perf_counter() - started
                marks.append(fetched.last_seq())
        got = [received(fetched.db.conn, a, b) for a, b in itertools.pairwise(marks)]
        total_regs = sum(len(e.active) for e in world.events.values())
        print(
            f"world: {args.partners} partners, {len(world.races)} races, {len(world.events)} "
            f"events, {total_regs} active registrations; {len(changes[0])} changes a day"
        )
        print(f"day 2 complete re-listing: {got[0] / 1e6:.2f} MB of bodies received")
        stored: dict[str, list[int]] = {}
        cpu: dict[str, list[float]] = {}
        for codec in (codecs.ZLIB, codecs.ZSTD):
            dst = Journal.open(work / f"{codec}.db", blob_codec=codec)
            replay_day(fetched, dst, 0, marks[0])
            stored[codec], cpu[codec] = [], []
            for a, b in itertools.pairwise(marks):
                mark = max_rowid(dst)
                cpu[codec].append(replay_day(fetched, dst, a, b))
                stored[codec].append(stored_since(dst, mark))
            dst.close()
        new_bodies = [
            fetched.body(sha)
            for (sha,) in fetched.db.conn.execute(
                "SELECT DISTINCT body_sha256 FROM journal WHERE seq > ? AND seq <= ? AND "
                "body_sha256 NOT IN "
                "(SELECT body_sha256 FROM journal WHERE seq <= ? AND body_sha256 IS NOT NULL)",
                (marks[0], marks[1], marks[0]),
            )
        ]
        fetched.close()
    plain = sum(len(codecs.encode_whole(b).data) for b in new_bodies)
    new_mb = sum(len(b) for b in new_bodies) / 1e6
    codec_ms = {}
    for codec in (codecs.ZLIB, codecs.ZSTD):
        started = time.process_time()
        for b in new_bodies:
            codecs.encode_whole(b, codec)
        codec_ms[codec] = 1e3 * (time.process_time() - started) / new_mb
    mb = got[0] / 1e6
    base_stored, new_stored = stored[codecs.ZLIB][0], stored[codecs.ZSTD][0]
    print(
        f"old codec (zlib 1, whole):     {base_stored / 1e6:8.3f} MB stored, "
        f"{base_stored / got[0]:.4f} stored/received, "
        f"{1e3 * cpu[codecs.ZLIB][0] / mb:6.2f} ms CPU/MB received to append"
    )
    print(
        f"zstd, whole (no deltas):       {plain / 1e6:8.3f} MB stored, {plain / got[0]:.4f} "
        "stored/received"
    )
    print(
        f"zstd + listing-page deltas:    {new_stored / 1e6:8.3f} MB stored, "
        f"{new_stored / got[0]:.4f} stored/received, "
        f"{1e3 * cpu[codecs.ZSTD][0] / mb:6.2f} ms CPU/MB received to append"
    )
    print(
        f"ratio new/old stored: {new_stored / base_stored:.4f} ({base_stored / new_stored:.0f}x "
        f"less); target stored/received <= 0.01: "
        f"{'met' if new_stored / got[0] <= 0.01 else 'MISSED'}"
    )
    print(
        f"compression alone, per MB of new bodies: zlib 1 {codec_ms[codecs.ZLIB]:.2f} ms, "
        f"zstd 3 {codec_ms[codecs.ZSTD]:.2f} ms CPU; the day-2 fetch itself took "
        f"{1e3 * fetch_s / (got[-1] / 1e6):.1f} ms wall per MB (loopback, no latency)"
    )
    if args.days > 1:
        print("per day (complete re-listing each day), stored/received:")
        for d, g in enumerate(got):
            zl, zs = stored[codecs.ZLIB][d] / g, stored[codecs.ZSTD][d] / g
            print(f"  day {d + 2:3d}: zlib {zl:.4f}   zstd+deltas {zs:.4f}")
        total = sum(got)
        print(
            f"  all {args.days} days: zlib {sum(stored[codecs.ZLIB]) / total:.4f}   "
            f"zstd+deltas {sum(stored[codecs.ZSTD]) / total:.4f}"
        )


if __name__ == "__main__":
    main()
