"""Projection benchmark: rows/s of ``rsu.projector.project`` against a same-run SQLite limit.

Builds a journal of ``--registrations`` (default 200,000) registrations as realistic
``/participants`` pages of 2,500 rows (``tests/project_helpers.registration``), grouped in events
of ``--per-event`` registrations, each listing closed by a ``listing_completed`` event. Then:

1. projects it (the projector: fetch bodies, decode, normalise, diff, upsert, checkpoint);
2. re-projects nothing (a second run must be a no-op) and rebuilds (``--rebuild``);
3. measures the limit: plain ``sqlite3`` ``executemany`` upserts of the same rows, already
   extracted, into a table of the same shape, in transactions of the same size.

Steps 1 and 3 run ``--runs`` times (default 3), each on a fresh copy of the journal; prints rows/s
of each, each run's ratio and their median, and peak RSS (``resource.getrusage``) before and after
the first projection (before the limit, which holds every row in memory, runs). The journal is built
in a child process, so the peak RSS is the projector's own. ``--no-limit`` skips the limit (for the
RSS at 1M registrations). Every registration answers the same two questions the same way (the
projector memoises repeated ``question_responses``); ``--unique-answers`` adds a free-text answer
of each registration's own, the case where that memo never helps. The projector also writes the
columns alike in every row of a page (fees of one price...) as constants of its statement;
``--varied`` makes fees, teams, middle names and giveaways vary as in a real event.

    .venv/bin/python benchmarks/projection.py [--registrations 200000] [--unique-answers]
        [--varied]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from project_helpers import Builder, j, money, participants_body, race_obj, registration

from rsu.journal import Journal, open_db
from rsu.projector import project
from rsu.projector.schema import PARTICIPANTS

PAGE = 2500


def rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def answered(reg_id: int, event_id: int, unique_answers: bool, varied: bool) -> dict[str, Any]:
    """A registration; with ``unique_answers`` also a free-text answer of its own (an emergency
    contact), so no two registrations send the same ``question_responses``; with ``varied``, the
    columns ``registration`` keeps alike vary as in a real event: four price periods (fees and
    amount paid), one in ten on a team, one in three with a middle name, four giveaway options,
    one in fifty imported."""
    reg = registration(reg_id, event_id)
    if unique_answers:
        reg["question_responses"] = [
            *reg["question_responses"],
            {"question_id": 3, "question_text": "Emergency contact", "response": f"C {reg_id}"},
        ]
    if varied:
        period = reg_id % 4
        fee, processing = 3500 + 500 * period, 380 + 40 * period
        reg.update(
            race_fee=money(fee),
            processing_fee=money(processing),
            processing_fee_paid_by_user=money(processing),
            partner_fee=money(75 + 5 * period),
            amount_paid=money(fee + processing),
            giveaway_option_id=1 + reg_id % 4,
            imported="T" if reg_id % 50 == 0 else "F",
        )
        reg["user"]["middle_name"] = "Lee" if reg_id % 3 == 0 else None
        if reg_id % 10 == 0:
            team = reg_id // 40
            reg.update(team_id=team, team_name=f"Team {team}", team_type_id=2, team_type="Club")
            reg.update(team_bib_num=str(team), team_gender="X")
    return reg


def build(
    path: Path,
    registrations: int,
    per_event: int,
    unique_answers: bool = False,
    varied: bool = False,
) -> None:
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
                participants_body(
                    event_id,
                    [answered(i, event_id, unique_answers, varied) for i in range(reg, stop)],
                )
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
    ap.add_argument("--runs", type=int, default=3, help="runs; the ratio printed is their median")
    ap.add_argument("--no-limit", action="store_true", help="skip the limit (RSS at 1M rows)")
    ap.add_argument(
        "--unique-answers",
        action="store_true",
        help="each registration answers a free-text question of its own (no two alike)",
    )
    ap.add_argument(
        "--varied",
        action="store_true",
        help="fees, teams, middle names, giveaways vary as in a real event (few columns alike)",
    )
    ap.add_argument("--build-only", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.build_only is not None:
        build(args.build_only, args.registrations, args.per_event, args.unique_answers, args.varied)
        return
    with tempfile.TemporaryDirectory() as tmp:
        built = Path(tmp) / "built.db"
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
                str(built),
                *(["--unique-answers"] if args.unique_answers else []),
                *(["--varied"] if args.varied else []),
            ],
            check=True,
        )
        print(
            f"journal built: {args.registrations} registrations in {time.perf_counter() - t0:.1f}s"
        )
        ratios: list[float] = []
        rss_before = rss_after = rss_mb()
        n = args.registrations
        for run in range(1, args.runs + 1):
            path = Path(tmp) / f"run{run}.db"
            shutil.copy(built, path)
            t0 = time.perf_counter()
            result = project(path, batch_size=args.batch_size)
            t_proj = time.perf_counter() - t0
            rss_after = rss_after if run > 1 else rss_mb()  # the projector's own, before the limit
            if args.no_limit:
                print(f"run {run}: projected {result.events} events in {t_proj:.2f}s")
                continue
            db = open_db(path)
            n = db.conn.execute("SELECT COUNT(*) FROM runsignup_participants").fetchone()[0]
            rows = db.conn.execute(
                "SELECT * FROM runsignup_participants ORDER BY event_id, registration_id"
            ).fetchall()
            db.conn.close()
            t_limit = baseline(rows, Path(tmp) / f"limit{run}.db")
            del rows
            proj_rate, limit_rate = n / t_proj, n / t_limit
            ratios.append(proj_rate / limit_rate)
            print(
                f"run {run}: projected {result.events} events, {n} registrations in "
                f"{t_proj:.2f}s: {proj_rate:,.0f} rows/s; limit (executemany) "
                f"{limit_rate:,.0f} rows/s; ratio {ratios[-1]:.2f}"
            )
        t0 = time.perf_counter()
        again = project(path, batch_size=args.batch_size)
        t_again = time.perf_counter() - t0
        assert again.events == 0 and again.rows_upserted == 0
        t0 = time.perf_counter()
        project(path, batch_size=args.batch_size, rebuild=True)
        t_rebuild = time.perf_counter() - t0
        if ratios:
            print(
                f"ratio projector/limit, median of {len(ratios)}: {statistics.median(ratios):.2f}"
            )
        print(f"second run (no-op):       {t_again:.2f}s")
        print(f"rebuild:                  {t_rebuild:.2f}s ({n / t_rebuild:,.0f} rows/s)")
        print(
            f"peak RSS: {rss_before:.0f} MiB before projecting, "
            f"{rss_after:.0f} MiB after the first projection"
        )


if __name__ == "__main__":
    main()
