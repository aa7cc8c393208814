"""Projection benchmark: rows/s of ``rsu.projector.project`` against a same-run SQLite limit.

Builds a journal of ``--registrations`` (default 200,000) registrations as realistic
``/participants`` pages of 2,500 rows (``tests/project_helpers.registration``), grouped in events
of ``--per-event`` registrations, each listing closed by a ``listing_completed`` event. Then:

1. projects it (the projector: fetch bodies, decode, normalise, diff, upsert, checkpoint);
2. re-projects nothing (a second run must be a no-op) and rebuilds (``--rebuild``);
3. measures the limit: plain ``sqlite3`` ``executemany`` upserts of the same rows, already
   extracted, into a table of the same shape, in transactions of the same size.

Prints rows/s of each, the ratio, and peak RSS (``resource.getrusage``) before and after the
projection. The journal is built in a child process, so the peak RSS is the projector's own.

    .venv/bin/python benchmarks/projection.py [--registrations 200000]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from project_helpers import Builder, j, participants_body, race_obj, registration

from rsu.journal import Journal, open_db
from rsu.projector import project
from rsu.projector.schema import PARTICIPANTS

PAGE = 2500


def rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(path: Path, registrations: int, per_event: int) -> None:
    journal = Journal(open_db(path))
    b = Builder(journal)
    b.run_started()
    n_events = (registrations + per_event - 1) // per_event
    event_ids = [1000 + e for e in range(n_events)]
    b.race(j({"race": race_obj(1, event_ids=event_ids)}), 1)
    reg = 1
    for event_id in event_ids:
        bodies = []
        end = min(reg + per_event, registrations + 1)
        while reg < end:
            stop = min(reg + PAGE, end)
            bodies.append(
                participants_body(event_id, [registration(i, event_id) for i in range(reg, stop)])
            )
            reg = stop
        b.listing(1, event_id, bodies)
    b.run_finished()
    journal.close()


def baseline(rows: list[tuple[object, ...]], path: Path) -> float:
    """Seconds to upsert ``rows`` with plain executemany, one transaction per page."""
    db = open_db(path)
    conn = db.conn
    conn.execute(PARTICIPANTS.create_sql("_limit"))
    for name, cols in PARTICIPANTS.indexes:  # same shape: the live table's look-up indexes too
        conn.execute(
            f"CREATE INDEX ix_limit_{name} ON {PARTICIPANTS.name}_limit ({', '.join(cols)})"
        )
    cols = PARTICIPANTS.column_names
    updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in PARTICIPANTS.pk)
    sql = (
        f"INSERT INTO {PARTICIPANTS.name}_limit ({', '.join(cols)}) "
        f"VALUES ({', '.join('?' * len(cols))}) "
        f"ON CONFLICT ({', '.join(PARTICIPANTS.pk)}) DO UPDATE SET {updates}"
    )
    start = time.perf_counter()
    for i in range(0, len(rows), PAGE):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, rows[i : i + PAGE])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--registrations", type=int, default=200_000)
    ap.add_argument("--per-event", type=int, default=25_000)
    ap.add_argument("--batch-size", type=int, default=200)
    ap.add_argument("--build-only", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.build_only is not None:
        build(args.build_only, args.registrations, args.per_event)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        t0 = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--registrations",
                str(args.registrations),
                "--per-event",
                str(args.per_event),
                "--build-only",
                str(path),
            ],
            check=True,
        )
        print(
            f"journal built: {args.registrations} registrations in {time.perf_counter() - t0:.1f}s"
        )
        rss_before = rss_mb()

        t0 = time.perf_counter()
        result = project(path, batch_size=args.batch_size)
        t_proj = time.perf_counter() - t0
        rss_after = rss_mb()
        t0 = time.perf_counter()
        again = project(path, batch_size=args.batch_size)
        t_again = time.perf_counter() - t0
        t0 = time.perf_counter()
        project(path, batch_size=args.batch_size, rebuild=True)
        t_rebuild = time.perf_counter() - t0
        assert again.events == 0 and again.rows_upserted == 0

        db = open_db(path)
        n = db.conn.execute("SELECT COUNT(*) FROM runsignup_participants").fetchone()[0]
        rows = db.conn.execute(
            "SELECT * FROM runsignup_participants ORDER BY event_id, registration_id"
        ).fetchall()
        db.conn.close()
        t_limit = baseline(rows, Path(tmp) / "limit.db")

        proj_rate = n / t_proj
        limit_rate = len(rows) / t_limit
        print(f"projected: {result.events} events, {n} registrations in {t_proj:.2f}s")
        print(f"projector rows/s:         {proj_rate:,.0f}")
        print(f"limit rows/s (executemany): {limit_rate:,.0f}")
        print(f"ratio projector/limit:    {proj_rate / limit_rate:.2f}")
        print(f"second run (no-op):       {t_again:.2f}s")
        print(f"rebuild:                  {t_rebuild:.2f}s ({n / t_rebuild:,.0f} rows/s)")
        print(f"peak RSS: {rss_before:.0f} MiB before projecting, {rss_after:.0f} MiB after")


if __name__ == "__main__":
    main()
