"""Helpers for export and check tests: a small projection written row by row (no journal), so
each test states exactly the registrations it needs."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from rsu.journal import open_db
from rsu.projector.schema import EVENTS, PARTICIPANTS, RACES, create_tables

DATA = Path(__file__).resolve().parent / "data" / "export"
PARTNER, RACE = 7, 100
MARATHON, RELAY = 1001, 1002

EVENT_ROWS = [
    {
        "event_id": MARATHON,
        "name": "Marathon",
        "start_time": "2026-05-03T07:00:00-05:00",
        "start_time_utc": "2026-05-03T12:00:00Z",
        "event_type": "running_race",
    },
    {
        "event_id": RELAY,
        "name": "Relay",
        "start_time": "2026-05-03T07:30:00-05:00",
        "start_time_utc": "2026-05-03T12:30:00Z",
        "event_type": "relay",
    },
]


def person(reg: int, event_id: int, **kw: Any) -> dict[str, Any]:
    """A clean registration with every start-list field set; ``kw`` overrides."""
    row: dict[str, Any] = {
        "registration_id": reg,
        "event_id": event_id,
        "first_name": f"First{reg}",
        "last_name": f"Last{reg}",
        "gender": "F",
        "dob": "1990-04-05",
        "age": 36,
        "bib_num": str(reg),
        "email": f"r{reg}@example.com",
        "country_code": "US",
    }
    row.update(kw)
    return row


#: The relay team of registrations 503 and 504.
LIGHTNING: dict[str, Any] = {
    "team_id": 20,
    "team_name": "Lightning",
    "team_type": "Relay",
    "team_type_id": 2,
}

#: The clean race every format's expected file describes.
CLEAN = [
    person(
        501,
        MARATHON,
        bib_num="12",
        chip_num="ABC123",
        first_name="Jane",
        last_name="Doe",
        email="jane@example.com",
        phone="555-0101",
        street="1 Main St",
        city="Austin",
        state="TX",
        zipcode="78701",
        registration_date_utc="2026-01-10T15:00:00Z",
    ),
    person(
        502,
        MARATHON,
        bib_num="7",
        first_name="José",
        last_name="Müller, Jr.",
        gender="M",
        dob="1985-12-31",
        age=40,
        team_id=9,
        team_name='Club "Fast"',
        team_type="Club",
        email=None,
        zipcode="02134",
        registration_date_utc="2026-02-01T09:30:00Z",
    ),
    person(
        503,
        RELAY,
        bib_num="50",
        first_name="Ann",
        last_name="Lee",
        dob="2000-01-01",
        age=26,
        **LIGHTNING,
        registration_date_utc="2026-03-01T10:00:00Z",
    ),
    person(
        504,
        RELAY,
        bib_num="50",
        first_name="Bo",
        last_name="Lee",
        gender="X",
        dob="2001-06-30",
        age=24,
        **LIGHTNING,
        registration_date_utc="2026-03-01T10:05:00Z",
    ),
    person(
        505,
        MARATHON,
        bib_num="13",
        removed_at="2026-04-01T00:00:00Z",
        removed_reason="removed",
    ),
]


def _insert(conn: sqlite3.Connection, table: Any, row: dict[str, Any]) -> None:
    cols = table.column_names
    unknown = set(row) - set(cols)
    assert not unknown, unknown
    conn.execute(
        f"INSERT OR REPLACE INTO {table.name} ({', '.join(cols)}) "
        f"VALUES ({', '.join('?' * len(cols))})",
        [row.get(c) for c in cols],
    )


def make_db(
    path: Path,
    participants: list[dict[str, Any]],
    events: list[dict[str, Any]] | None = None,
    race_id: int = RACE,
    partner: int = PARTNER,
) -> Path:
    """A database at ``path`` whose projection holds one race with ``events`` (default: the
    marathon and the relay) and ``participants`` (as :func:`person` builds them)."""
    db = open_db(path)
    conn = db.conn
    create_tables(conn)
    base = {"timing_partner_id": partner, "race_id": race_id, "source_seq": 1}
    _insert(conn, RACES, {**base, "name": "Spring Run", "timezone": "America/Chicago"})
    for ev in events if events is not None else EVENT_ROWS:
        _insert(conn, EVENTS, {**base, **ev})
    for i, p in enumerate(participants):
        _insert(conn, PARTICIPANTS, {**base, "source_seq": 10 + i, **p})
    conn.commit()
    conn.close()
    return path


def set_participant(path: Path, reg: int, **values: Any) -> None:
    """Update one registration's columns in place (a test's stand-in for a sync)."""
    conn = sqlite3.connect(path)
    sets = ", ".join(f"{k} = ?" for k in values)
    conn.execute(
        f"UPDATE runsignup_participants SET {sets} WHERE registration_id = ?",
        [*values.values(), reg],
    )
    conn.commit()
    conn.close()


def add_participant(path: Path, row: dict[str, Any]) -> None:
    """Insert one more registration (as :func:`person` builds it) into the race."""
    conn = sqlite3.connect(path)
    seq = conn.execute("SELECT MAX(source_seq) + 1 FROM runsignup_participants").fetchone()[0]
    base = {"timing_partner_id": PARTNER, "race_id": RACE, "source_seq": seq}
    _insert(conn, PARTICIPANTS, {**base, **row})
    conn.commit()
    conn.close()
