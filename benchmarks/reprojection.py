"""Re-projection benchmark (issue 15): CPU of projecting a complete re-listing against the CPU of
the first projection of the same listing, measured in the same run.

Builds a journal of ``--registrations`` registrations (``tests/project_helpers.registration``) in
events of ``--per-event`` rows, pages of 2,500, one complete listing per event, and projects it
(the first projection, the baseline). Then appends and projects, one at a time:

1. an unchanged complete re-listing (every page body the same as before: 0 new bodies);
2. an ordinary day: a complete re-listing where ``--changed`` (default 1%) of the registrations
   were edited (a new bib, fee and team), spread over every page.

Prints the CPU seconds (this process and the prefetch worker it starts) of each projection and
its ratio to the first
(the issue's target: <= 0.25 for the unchanged re-listing), with the shortcut on and, for
comparison, off (``project(..., shortcuts=False)``), each on its own copy of the database.

    .venv/bin/python benchmarks/reprojection.py [--registrations 100000]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from project_helpers import Builder, j, participants_body, race_obj, registration

from rsu.journal import Journal, open_db
from rsu.projector import project

PAGE = 2500


def listing(b: Builder, event_ids: list[int], per_event: int, total: int, changed: set[int]):
    reg = 1
    for event_id in event_ids:
        bodies = []
        end = min(reg + per_event, total + 1)
        while reg < end:
            stop = min(reg + PAGE, end)
            regs = [registration(i, event_id, int(i in changed)) for i in range(reg, stop)]
            bodies.append(participants_body(event_id, regs))
            reg = stop
        b.listing(1, event_id, bodies)


def cpu_seconds() -> float:
    """CPU seconds of this process and of its reaped children (the projector's prefetch worker,
    ``rsu.projector.pipeline``, runs in a child process)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def cpu_project(path: Path, shortcuts: bool) -> float:
    t0 = cpu_seconds()
    project(path, shortcuts=shortcuts)
    return cpu_seconds() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--registrations", type=int, default=100_000)
    ap.add_argument("--per-event", type=int, default=25_000)
    ap.add_argument("--changed", type=float, default=0.01, help="share edited on the day")
    args = ap.parse_args()
    n = args.registrations
    n_events = (n + args.per_event - 1) // args.per_event
    event_ids = [1000 + e for e in range(n_events)]
    step = max(1, round(1 / args.changed)) if args.changed > 0 else n + 1
    day_changes = set(range(1, n + 1, step))
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base.db"
        journal = Journal(open_db(base))
        b = Builder(journal)
        b.race(j({"race": race_obj(1, event_ids=event_ids)}), 1)
        listing(b, event_ids, args.per_event, n, set())
        journal.close()
        results: dict[bool, list[float]] = {}
        for shortcuts in (True, False):
            path = Path(tmp) / f"run-{shortcuts}.db"
            shutil.copy(base, path)
            first = cpu_project(path, shortcuts)
            journal = Journal(open_db(path))
            listing(Builder(journal), event_ids, args.per_event, n, set())
            journal.close()
            same = cpu_project(path, shortcuts)
            journal = Journal(open_db(path))
            listing(Builder(journal), event_ids, args.per_event, n, day_changes)
            journal.close()
            day = cpu_project(path, shortcuts)
            results[shortcuts] = [first, same, day]
        print(f"{n} registrations, {n_events} events, {len(day_changes)} edited on the day")
        for shortcuts, (first, same, day) in results.items():
            label = "shortcut on " if shortcuts else "shortcut off"
            print(
                f"{label}: first {first:.2f}s CPU; unchanged re-listing {same:.2f}s "
                f"(ratio {same / first:.3f}); ordinary day {day:.2f}s (ratio {day / first:.3f})"
            )
        first, same, _ = results[True]
        print(f"re-projection CPU ratio (unchanged complete re-listing): {same / first:.3f}")


if __name__ == "__main__":
    main()
