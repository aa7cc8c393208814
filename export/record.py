"""The record of every export: the ``exports`` table and the rows each export wrote.

These are not projection tables: ``rsu project --rebuild`` drops and rebuilds only the tables in
:data:`rsu.projector.schema.TABLES`, so the record survives a rebuild. They evolve through
sqlite-utils ``Migrations`` (set ``rsu.export``), like the journal.

- ``exports``: ``export_id``, ``created_utc`` (ISO 8601 UTC), ``timing_partner_id``,
  ``race_id``, ``event_ids`` (JSON array; ``[]`` = every event of the race), ``format``,
  ``since_export_id`` (the export a ``--since`` diff was taken against, else NULL), ``as_of``
  (ISO 8601 UTC of ``--as-of``, else NULL), ``journal_seq`` (the last journal seq the export
  reflects), ``row_count`` (data rows written), ``sha256`` (of the bytes written), ``output``
  (the file path, ``-`` for standard output).
- ``export_rows``: per export, each registration in it with the values a later ``--since``
  compares (:data:`TRACKED`), as a JSON object, so a diff never depends on re-deriving the past.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import msgspec
import sqlite_utils
from sqlite_utils.migrations import Migrations

from .selection import StartRow

migrations = Migrations("rsu.export")

#: The StartRow fields a ``--since`` diff compares, in report order.
TRACKED = (
    "event_id",
    "bib_num",
    "chip_num",
    "first_name",
    "last_name",
    "gender",
    "dob",
    "team_name",
    "team_bib",
)


@migrations()
def m001_exports(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        CREATE TABLE IF NOT EXISTS exports (
            export_id INTEGER PRIMARY KEY,
            created_utc TEXT NOT NULL,
            timing_partner_id INTEGER NOT NULL,
            race_id INTEGER NOT NULL,
            event_ids TEXT NOT NULL,
            format TEXT NOT NULL,
            since_export_id INTEGER,
            as_of TEXT,
            journal_seq INTEGER NOT NULL,
            row_count INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            output TEXT
        )
        """
    )
    db.execute(
        """
        CREATE TABLE IF NOT EXISTS export_rows (
            export_id INTEGER NOT NULL REFERENCES exports(export_id),
            registration_id INTEGER NOT NULL,
            data TEXT NOT NULL,
            PRIMARY KEY (export_id, registration_id)
        )
        """
    )
    db.execute(
        "CREATE INDEX IF NOT EXISTS ix_exports_race "
        "ON exports (timing_partner_id, race_id, format, export_id)"
    )


def ensure_schema(db: sqlite_utils.Database) -> None:
    """Create or migrate the ``exports`` and ``export_rows`` tables (idempotent)."""
    migrations.apply(db)


def exists(conn: sqlite3.Connection) -> bool:
    """Whether the database has the ``exports`` table (no export was ever made when not)."""
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'exports'"
    ).fetchone()
    return row is not None


@dataclass(frozen=True)
class ExportRecord:
    """One row of ``exports`` (see the module docstring for the columns)."""

    export_id: int
    created_utc: str
    timing_partner_id: int
    race_id: int
    event_ids: tuple[int, ...]
    format: str
    since_export_id: int | None
    as_of: str | None
    journal_seq: int
    row_count: int
    sha256: str
    output: str | None


def tracked_values(row: StartRow) -> dict[str, Any]:
    """The :data:`TRACKED` values of ``row`` (what ``export_rows.data`` stores)."""
    return {name: getattr(row, name) for name in TRACKED}


def _record(row: sqlite3.Row | tuple) -> ExportRecord:
    r = list(row)
    r[4] = tuple(json.loads(r[4]))
    return ExportRecord(*r)


_encode = msgspec.json.Encoder(order="sorted").encode

_COLUMNS = (
    "export_id, created_utc, timing_partner_id, race_id, event_ids, format, since_export_id, "
    "as_of, journal_seq, row_count, sha256, output"
)


def save_export(
    conn: sqlite3.Connection, record: ExportRecord, rows: Iterable[StartRow]
) -> ExportRecord:
    """Insert ``record`` (its ``export_id`` is ignored: the next id is assigned) and the rows it
    wrote, in one transaction; returns the record with its id."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        cur = conn.execute(
            f"INSERT INTO exports ({_COLUMNS.split(', ', 1)[1]}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.created_utc,
                record.timing_partner_id,
                record.race_id,
                json.dumps(sorted(record.event_ids)),
                record.format,
                record.since_export_id,
                record.as_of,
                record.journal_seq,
                record.row_count,
                record.sha256,
                record.output,
            ),
        )
        export_id = int(cur.lastrowid or 0)
        conn.executemany(
            "INSERT INTO export_rows (export_id, registration_id, data) VALUES (?, ?, ?)",
            [(export_id, r.registration_id, _encode(tracked_values(r)).decode()) for r in rows],
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return replace(record, export_id=export_id)


def get_export(conn: sqlite3.Connection, export_id: int) -> ExportRecord | None:
    """The export with this id, or ``None``."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM exports WHERE export_id = ?", (export_id,)
    ).fetchone()
    return None if row is None else _record(row)


def last_export(
    conn: sqlite3.Connection,
    timing_partner_id: int,
    race_id: int,
    fmt: str | None = None,
    event_ids: Sequence[int] | None = None,
) -> ExportRecord | None:
    """The newest export of the race (of format ``fmt`` and exactly ``event_ids`` when given;
    ``()`` means every event), or ``None``. An ``--as-of`` export is never the last one: it
    shows the past, not the start list handed to the timing software."""
    sql = (
        f"SELECT {_COLUMNS} FROM exports "
        "WHERE timing_partner_id = ? AND race_id = ? AND as_of IS NULL"
    )
    params: list[Any] = [timing_partner_id, race_id]
    if fmt is not None:
        sql += " AND format = ?"
        params.append(fmt)
    if event_ids is not None:
        sql += " AND event_ids = ?"
        params.append(json.dumps(sorted(event_ids)))
    row = conn.execute(sql + " ORDER BY export_id DESC LIMIT 1", params).fetchone()
    return None if row is None else _record(row)


def exported_rows(conn: sqlite3.Connection, export_id: int) -> dict[int, dict[str, Any]]:
    """``registration_id -> tracked values`` of the rows export ``export_id`` wrote."""
    return {
        int(reg): json.loads(data)
        for reg, data in conn.execute(
            "SELECT registration_id, data FROM export_rows WHERE export_id = ? "
            "ORDER BY registration_id",
            (export_id,),
        )
    }
