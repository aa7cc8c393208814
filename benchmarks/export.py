"""Export benchmark: ``rsu export`` against a same-run limit, on one race of many registrations.

Builds a projection of ``--registrations`` (default 50,000) registrations in two events
(``tests/export_helpers``), then times:

1. the limit: a plain ``sqlite3`` SELECT of the same rows written with ``csv.writer`` to bytes;
2. ``run_export`` as ``raceresult`` (select, check every row, encode, sha256, record the export
   and its rows);
3. ``run_export --since last`` after 1 % of the registrations changed their bib.

Prints seconds and rows/s of each and the ratio to the limit.

    .venv/bin/python benchmarks/export.py [--registrations 50000]
"""

from __future__ import annotations

import argparse
import csv
import io
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from export_helpers import MARATHON, RACE, RELAY, make_db, person

from rsu.export import ExportOptions, run_export
from rsu.journal import open_db


def limit(db: Path) -> float:
    t0 = time.perf_counter()
    conn = sqlite3.connect(db)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for row in conn.execute(
        "SELECT p.bib_num, p.last_name, p.first_name, p.gender, p.dob, e.name, p.team_name, "
        "p.team_bib_num, p.chip_num, p.registration_id, p.street, p.zipcode, p.city, p.state, "
        "p.country_code, p.email, p.phone FROM runsignup_participants p JOIN runsignup_events e "
        "USING (timing_partner_id, race_id, event_id) WHERE p.race_id = ? AND p.removed_at IS NULL "
        "ORDER BY e.start_time_utc, CAST(p.bib_num AS INTEGER)",
        (RACE,),
    ):
        writer.writerow(row)
    buf.getvalue().encode()
    conn.close()
    return time.perf_counter() - t0


def export(db: Path, **kw: object) -> tuple[float, int]:
    database = open_db(db)
    out: list[bytes] = []
    t0 = time.perf_counter()
    result = run_export(
        database, ExportOptions(race_id=RACE, format="raceresult", **kw), out.append
    )  # type: ignore[arg-type]
    elapsed = time.perf_counter() - t0
    database.conn.close()
    assert result.exit_code == 0
    return elapsed, result.rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--registrations", type=int, default=50_000)
    n = parser.parse_args().registrations
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "rsu.db"
        people = [
            person(i, MARATHON if i % 2 else RELAY, chip_num=f"{i:08X}", city="Austin")
            for i in range(1, n + 1)
        ]
        make_db(db, people)
        base = limit(db)
        full, rows = export(db)
        conn = sqlite3.connect(db)
        conn.execute(
            "UPDATE runsignup_participants SET bib_num = bib_num || '0' "
            "WHERE registration_id % 100 = 0"
        )
        conn.commit()
        conn.close()
        since, changes = export(db, since="last")
    print(f"registrations: {n}")
    print(f"limit (SELECT + csv.writer): {base:.3f} s, {n / base:,.0f} rows/s")
    print(
        f"rsu export raceresult:       {full:.3f} s, {rows / full:,.0f} rows/s, "
        f"ratio to limit {full / base:.1f}x"
    )
    print(
        f"rsu export --since last:     {since:.3f} s for {changes} changes, "
        f"ratio to limit {since / base:.1f}x"
    )


if __name__ == "__main__":
    main()
