"""Schema of the journal tables, applied through sqlite-utils ``Migrations``.

``journal`` is append-only (triggers reject UPDATE and DELETE); ``journal_blobs`` holds each
distinct raw response body once, keyed by its sha256, compressed (``codec``; a ``zstd-delta``
blob also names its dictionary blob in ``base_sha256``, see :mod:`rsu.journal.codecs`). Only new
migrations are ever added here; an applied migration is never edited.
"""

from __future__ import annotations

import sqlite_utils
from sqlite_utils.migrations import Migrations

migrations = Migrations("rsu.journal")


@migrations()
def m001_journal(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        CREATE TABLE IF NOT EXISTS journal (
            seq INTEGER PRIMARY KEY,
            recorded_at TEXT NOT NULL,
            kind TEXT NOT NULL,
            run_id TEXT,
            timing_partner_id INTEGER,
            race_id INTEGER,
            event_id INTEGER,
            payload BLOB NOT NULL,
            body_sha256 TEXT REFERENCES journal_blobs(sha256),
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE IF NOT EXISTS journal_blobs (
            sha256 TEXT PRIMARY KEY,
            size INTEGER NOT NULL,
            codec TEXT NOT NULL,
            data BLOB NOT NULL
        )
        """
    )
    db.execute(
        "CREATE INDEX IF NOT EXISTS journal_scope "
        "ON journal(kind, timing_partner_id, race_id, event_id, seq)"
    )
    db.execute("CREATE INDEX IF NOT EXISTS journal_run ON journal(run_id, seq)")
    for statement in append_only_triggers():
        db.execute(statement)


@migrations()
def m002_blob_codecs(db: sqlite_utils.Database) -> None:
    """Blobs may be deltas: ``base_sha256`` names the dictionary blob of a ``zstd-delta`` (NULL
    for a blob stored whole) and ``listing_key`` the listing page a body belongs to (NULL for
    blobs written before, and for bodies of no listing page); see :mod:`rsu.journal.blobs`.
    Existing rows are not touched (both columns are NULL in them)."""
    db.execute("ALTER TABLE journal_blobs ADD COLUMN base_sha256 TEXT")
    db.execute("ALTER TABLE journal_blobs ADD COLUMN listing_key TEXT")
    db.execute(
        "CREATE INDEX IF NOT EXISTS journal_blobs_listing ON journal_blobs(listing_key) "
        "WHERE listing_key IS NOT NULL AND base_sha256 IS NULL"
    )


@migrations()
def m003_blob_bases(db: sqlite_utils.Database) -> None:
    """Find a whole blob's deltas quickly (the level-1 base of a new level-2 delta)."""
    db.execute(
        "CREATE INDEX IF NOT EXISTS journal_blobs_base ON journal_blobs(base_sha256) "
        "WHERE base_sha256 IS NOT NULL"
    )


def append_only_triggers() -> list[str]:
    """``CREATE TRIGGER`` statements that reject UPDATE and DELETE on the journal tables."""
    return [
        f"""
        CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()}
        BEFORE {op} ON {table}
        BEGIN
            SELECT RAISE(ABORT, '{table} is append-only: {op} rejected');
        END
        """
        for table in ("journal", "journal_blobs")
        for op in ("UPDATE", "DELETE")
    ]


def ensure_schema(db: sqlite_utils.Database) -> None:
    """Create or migrate the journal tables in ``db`` (idempotent)."""
    migrations.apply(db)
