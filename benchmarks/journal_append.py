"""Benchmark: journal appends of realistic participant pages vs a plain sqlite3 insert.

Run: ``.venv/bin/python benchmarks/journal_append.py [--appends N] [--unique N]``

Builds ``--unique`` distinct participant-page bodies (RunSignUp shape: a top-level array of
``{"event": {...}, "participants": [...]}`` with 1,500-2,500 registration dicts, 1-2 MB each),
then appends ``--appends`` of them (the first ``--unique`` once each, the rest repeats of earlier
bodies) to a temporary WAL journal, and inserts the same bodies, in the same order, one row and one
transaction per body, into a plain table of a second WAL database with the same pragmas. Prints
MB/s (10^6 bytes of body per second) for both, their ratio and the journal's dedup/compression.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import tempfile
import time
from pathlib import Path

from rsu.journal import Journal, ResponseReceived, sha256_hex

FIRST = ["Alex", "Blair", "Casey", "Dana", "Emerson", "Finley", "Gray", "Harper", "Indy", "Jordan"]
LAST = ["Sample", "Example", "Tester", "Runner", "Miles", "Pace", "Stride", "Quick", "Long", "Hill"]
CITIES = [("Testville", "GA"), ("Sampletown", "CA"), ("Exampleburg", "NY"), ("Racetown", "TX")]


def registration(rng: random.Random, event_id: int, reg_id: int) -> dict[str, object]:
    """One registration dict shaped like RunSignUp's participants endpoint (format=json)."""
    city, state = rng.choice(CITIES)
    first, last = rng.choice(FIRST), rng.choice(LAST)
    fee = rng.choice([2200, 3500, 4500, 5500])
    return {
        "registration_id": reg_id,
        "event_id": event_id,
        "rsu_transaction_id": rng.randint(10**7, 10**8),
        "transaction_id": str(rng.randint(10**7, 10**8)),
        "bib_num": str(rng.randint(1, 9999)) if rng.random() < 0.8 else None,
        "chip_num": None,
        "age": rng.randint(8, 85),
        "registration_date": f"{rng.randint(1, 12)}/{rng.randint(1, 28)}/2024 "
        f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
        "team_id": None,
        "team_name": rng.choice([None, None, "Hill Striders", "Fast Feet"]),
        "last_modified": 1_700_000_000 + rng.randint(0, 30_000_000),
        "imported": "F",
        "race_fee": f"${fee / 100:.2f}",
        "processing_fee": "$3.00",
        "amount_paid": f"${(fee + 300) / 100:.2f}",
        "giveaway": rng.choice(["S", "M", "L", "XL"]),
        "user": {
            "user_id": rng.randint(10**6, 10**8),
            "first_name": first,
            "middle_name": None,
            "last_name": last,
            "email": f"{first.lower()}.{last.lower()}{rng.randint(1, 9999)}@example.com",
            "address": {
                "street": f"{rng.randint(1, 9999)} Example Street",
                "city": city,
                "state": state,
                "zipcode": f"{rng.randint(0, 99999):05d}",
                "country_code": "US",
            },
            "dob": f"{rng.randint(1940, 2016)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            "gender": rng.choice(["M", "F", "X"]),
            "phone": f"555-{rng.randint(0, 999):03d}-{rng.randint(0, 9999):04d}",
        },
        "question_responses": [
            {"question_id": "1", "question_text": "Emergency Contact Name", "response": last},
            {
                "question_id": "2",
                "question_text": "Emergency Contact Phone",
                "response": f"555-{rng.randint(0, 9999):04d}",
            },
        ],
    }


def participant_page(rng: random.Random, event_id: int) -> bytes:
    """One participants page: 1,500-2,500 registrations, about 1-2 MB of JSON."""
    n = rng.randint(1500, 2500)
    start = rng.randint(10**7, 9 * 10**7)
    page = [
        {
            "event": {"event_id": event_id, "participants": []},
            "participants": [registration(rng, event_id, start + i) for i in range(n)],
        }
    ]
    return json.dumps(page, separators=(",", ":")).encode()


def bench_journal(
    path: Path, bodies: list[bytes], order: list[int], split: int
) -> tuple[float, float, Journal]:
    """Append every body in ``order`` as a response_received event; return the seconds taken by
    all appends and by the first ``split`` (all new bodies), and the journal."""
    journal = Journal.open(path)
    t0 = time.perf_counter()
    t_split = 0.0
    for n, i in enumerate(order):
        if n == split:
            t_split = time.perf_counter() - t0
        body = bodies[i]
        journal.append(
            ResponseReceived(
                endpoint="participants",
                path="/Rest/race/1/participants",
                query={"event_id": str(1000 + i), "page": str(n + 1)},
                body_size=len(body),
                page=n + 1,
            ),
            body,
            run_id="bench",
            timing_partner_id=1,
            race_id=1,
            event_id=1000 + i,
        )
    return time.perf_counter() - t0, t_split, journal


def bench_sqlite(
    path: Path, bodies: list[bytes], order: list[int], split: int
) -> tuple[float, float]:
    """Insert every body in ``order`` into one plain table, one row and one commit per body;
    return the seconds taken by all inserts and by the first ``split``."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE bodies (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
    t0 = time.perf_counter()
    t_split = 0.0
    for n, i in enumerate(order):
        if n == split:
            t_split = time.perf_counter() - t0
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO bodies (body) VALUES (?)", (bodies[i],))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed, t_split


def main() -> None:
    """Build the bodies, run both benchmarks in one process, print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--appends", type=int, default=300, help="appends in total (default 300)")
    ap.add_argument("--unique", type=int, default=150, help="distinct bodies (default 150)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)

    t0 = time.perf_counter()
    bodies = [participant_page(rng, 1000 + i) for i in range(args.unique)]
    order = list(range(args.unique)) + [
        rng.randrange(args.unique) for _ in range(args.appends - args.unique)
    ]
    rng.shuffle(order[args.unique :])
    total = sum(len(bodies[i]) for i in order)
    sizes = sorted(len(b) for b in bodies)
    print(
        f"bodies: {args.unique} distinct, {sizes[0] / 1e6:.2f}-{sizes[-1] / 1e6:.2f} MB, "
        f"{args.appends} appends, {total / 1e6:.1f} MB in total "
        f"(built in {time.perf_counter() - t0:.1f} s)"
    )

    with tempfile.TemporaryDirectory(prefix="rsu-bench-") as tmp:
        # The bodies are already in memory for both runs; each run gets its own fresh file.
        base_s, base_new_s = bench_sqlite(Path(tmp) / "plain.db", bodies, order, args.unique)
        journal_s, journal_new_s, journal = bench_journal(
            Path(tmp) / "journal.db", bodies, order, args.unique
        )
        with journal:
            st = journal.stats()
            t1 = time.perf_counter()
            report = journal.verify()
            verify_s = time.perf_counter() - t1
            assert journal.body(sha256_hex(bodies[0])) == bodies[0]
        plain_size = (Path(tmp) / "plain.db").stat().st_size
        journal_size = (Path(tmp) / "journal.db").stat().st_size

    j_mbs, b_mbs = total / 1e6 / journal_s, total / 1e6 / base_s
    print(f"journal.append : {journal_s:6.2f} s  {j_mbs:7.1f} MB/s")
    print(f"plain sqlite3  : {base_s:6.2f} s  {b_mbs:7.1f} MB/s  (one row per body, same count)")
    print(f"ratio          : journal is {j_mbs / b_mbs:.2f}x the baseline's throughput")
    new = sum(len(bodies[i]) for i in order[: args.unique]) / 1e6
    print(
        f"new bodies only: journal {new / journal_new_s:.1f} MB/s vs plain "
        f"{new / base_new_s:.1f} MB/s (first {args.unique} appends, {new:.1f} MB; "
        f"ratio {base_new_s / journal_new_s:.2f}x)"
    )
    print(
        f"stats()        : received {st.body_bytes_received / 1e6:.1f} MB, unique "
        f"{st.body_bytes_unique / 1e6:.1f} MB, stored {st.body_bytes_stored / 1e6:.1f} MB; "
        f"dedup {st.body_bytes_received / st.body_bytes_unique:.2f}x, compression "
        f"{st.body_bytes_unique / st.body_bytes_stored:.2f}x, overall {st.ratio:.2f}x"
    )
    print(
        f"files          : journal.db {journal_size / 1e6:.1f} MB, "
        f"plain.db {plain_size / 1e6:.1f} MB"
    )
    print(f"verify()       : {'OK' if report.ok else 'BROKEN'} in {verify_s:.2f} s")


if __name__ == "__main__":
    main()
