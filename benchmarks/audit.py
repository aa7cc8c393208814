"""``rsu audit`` benchmark: time to trace one registration against a same-run floor.

Builds a journal of ``--registrations`` (default 100,000) registrations as ``/participants`` pages
of 2,500 rows (``tests/project_helpers.registration``) in events of ``--per-event``, listed
``--runs`` times (each run edits every 50th registration, so bodies differ run to run). Then:

1. the floor: read every participants body from the journal and ``json.loads`` it once (what any
   audit from the raw responses must at least do);
2. ``audit_registration`` of one registration in the middle of the journal.

Prints both times and the ratio (audit / floor).

    .venv/bin/python benchmarks/audit.py [--registrations 100000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from project_helpers import Builder, j, participants_body, race_obj, registration

from rsu.journal import Journal, ResponseReceived
from rsu.journal.registration_audit import audit_registration

PAGE = 2500


def build(path: Path, registrations: int, per_event: int, runs: int) -> int:
    """Write the journal; returns a registration id from the middle."""
    journal = Journal.open(path)
    events = list(range(1, registrations // per_event + 1))
    for run in range(runs):
        b = Builder(journal, run_id=f"run-{run}")
        b.tick = run * 10_000
        b.run_started()
        b.race(j({"race": race_obj(7, event_ids=events)}), 7)
        for e in events:
            ids = range(e * 1_000_000, e * 1_000_000 + per_event)
            pages = [
                participants_body(
                    e, [registration(r, e, version=run if r % 50 == 0 else 0) for r in chunk]
                )
                for chunk in (ids[i : i + PAGE] for i in range(0, len(ids), PAGE))
            ]
            b.listing(7, e, pages)
        b.run_finished()
    journal.close()
    middle = events[len(events) // 2]
    return middle * 1_000_000 + 50


def floor(journal: Journal) -> int:
    """Decode every participants body once; returns the rows seen."""
    rows = 0
    for row in journal.find(kind="response_received"):
        if isinstance(row.event, ResponseReceived) and row.event.endpoint == "participants":
            doc = json.loads(journal.body(row.body_sha256 or ""))
            rows += sum(len(element["participants"]) for element in doc)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registrations", type=int, default=100_000)
    parser.add_argument("--per-event", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        target = build(path, args.registrations, args.per_event, args.runs)
        with Journal.open(path, readonly=True) as journal:
            t0 = time.perf_counter()
            rows = floor(journal)
            t_floor = time.perf_counter() - t0
            t0 = time.perf_counter()
            report = audit_registration(journal, target)
            t_audit = time.perf_counter() - t0
    versions = sum(len(t.versions) for t in report.timelines)
    print(f"journal: {rows} registration rows in {args.runs} runs")
    print(f"floor (decode every participants body once): {t_floor:.2f} s")
    print(f"audit of registration {target} ({versions} versions): {t_audit:.2f} s")
    print(f"ratio audit / floor: {t_audit / t_floor:.2f}")


if __name__ == "__main__":
    main()
