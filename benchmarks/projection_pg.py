"""PostgreSQL projection benchmark: rows/s of ``rsu project --target`` against a same-run COPY.

Builds the journal of ``benchmarks/projection.py`` (``--registrations`` realistic registrations
in ``/participants`` pages of 2,500), in a child process. Then, into a fresh database on the
server named by ``--dsn`` (or ``RSU_TARGET`` / ``RSU_TEST_PG_DSN``):

1. projects it into PostgreSQL (fetch bodies, decode, normalise, diff, upsert, checkpoint);
2. re-projects nothing (a second run must be a no-op) and rebuilds (``--rebuild``);
3. measures the baseline: ``COPY`` of the already-built participant rows (read back from the
   projected table) into a table of the same shape and indexes, in transactions of one page.

Prints rows/s of each and the ratio projector/COPY (median of ``--runs`` runs). The database is
dropped at the end; the DSN is printed with its password masked.

    RSU_TEST_PG_DSN=postgresql://... .venv/bin/python benchmarks/projection_pg.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from rsu.projector import project
from rsu.projector.dsn import mask_dsn
from rsu.projector.pg import JSON_COLUMNS, create_sql
from rsu.projector.schema import PARTICIPANTS

PAGE = 2500
BUILDER = str(Path(__file__).with_name("projection.py"))


def copy_baseline(dsn: str) -> tuple[int, float]:
    """(rows, seconds) to COPY the projected participant rows into a same-shaped table."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        # JSONB read back as its text, so COPY writes it unchanged
        select = [f"{c}::text" if c in JSON_COLUMNS else c for c in PARTICIPANTS.column_names]
        rows = conn.execute(
            f"SELECT {', '.join(select)} FROM runsignup_participants "
            "ORDER BY event_id, registration_id".encode()
        ).fetchall()
        conn.execute(create_sql(PARTICIPANTS, "_limit").encode())
        for name, cols in PARTICIPANTS.indexes:
            conn.execute(
                f"CREATE INDEX ix_limit_{name} ON {PARTICIPANTS.name}_limit "
                f"({', '.join(cols)})".encode()
            )
        copy_sql = (
            f"COPY {PARTICIPANTS.name}_limit ({', '.join(PARTICIPANTS.column_names)}) FROM STDIN"
        )
        start = time.perf_counter()
        for i in range(0, len(rows), PAGE):
            with conn.transaction(), conn.cursor().copy(copy_sql.encode()) as copy:
                for row in rows[i : i + PAGE]:
                    copy.write_row(row)
        elapsed = time.perf_counter() - start
        conn.execute(f"DROP TABLE {PARTICIPANTS.name}_limit".encode())
    return len(rows), elapsed


def one_run(admin: str, journal: Path, batch_size: int) -> tuple[float, float, float, float, int]:
    """(projector s, no-op s, rebuild s, COPY s, rows) in a fresh database."""
    name = f"rsu_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}".encode())
    dsn = urlunsplit(urlsplit(admin)._replace(path=f"/{name}"))
    try:
        t0 = time.perf_counter()
        project(journal, batch_size=batch_size, target=dsn)
        t_proj = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = project(journal, batch_size=batch_size, target=dsn)
        t_again = time.perf_counter() - t0
        assert again.events == 0 and again.rows_upserted == 0
        t0 = time.perf_counter()
        project(journal, batch_size=batch_size, rebuild=True, target=dsn)
        t_rebuild = time.perf_counter() - t0
        n, t_copy = copy_baseline(dsn)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)".encode())
    return t_proj, t_again, t_rebuild, t_copy, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--dsn", default=os.environ.get("RSU_TARGET") or os.environ.get("RSU_TEST_PG_DSN")
    )
    ap.add_argument("--registrations", type=int, default=100_000)
    ap.add_argument("--per-event", type=int, default=25_000)
    ap.add_argument("--batch-size", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if not args.dsn:
        sys.exit("give --dsn postgresql://... (or set RSU_TARGET / RSU_TEST_PG_DSN)")
    print(f"server: {mask_dsn(args.dsn)}")
    with tempfile.TemporaryDirectory() as tmp:
        journal = Path(tmp) / "bench.db"
        t0 = time.perf_counter()
        subprocess.run(
            [
                *(sys.executable, BUILDER, "--registrations", str(args.registrations)),
                *("--per-event", str(args.per_event), "--build-only", str(journal)),
            ],
            check=True,
        )
        print(
            f"journal built: {args.registrations} registrations in {time.perf_counter() - t0:.1f}s"
        )
        ratios = []
        for run in range(1, args.runs + 1):
            t_proj, t_again, t_rebuild, t_copy, n = one_run(args.dsn, journal, args.batch_size)
            proj_rate, copy_rate = n / t_proj, n / t_copy
            ratios.append(proj_rate / copy_rate)
            print(
                f"run {run}: projector {proj_rate:,.0f} rows/s ({n} rows in {t_proj:.2f}s), "
                f"COPY baseline {copy_rate:,.0f} rows/s, ratio {ratios[-1]:.2f}; "
                f"no-op rerun {t_again:.2f}s, rebuild {n / t_rebuild:,.0f} rows/s"
            )
        print(
            f"ratio projector/COPY: median {statistics.median(ratios):.2f} "
            f"(min {min(ratios):.2f}, max {max(ratios):.2f}, {len(ratios)} runs)"
        )


if __name__ == "__main__":
    main()
