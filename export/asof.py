"""``rsu export --as-of T``: the race as the journal knew it at time ``T``.

The journal up to the last seq recorded at or before ``T`` is replayed by the projector's own
:class:`~rsu.projector.apply.Applier` into a temporary in-memory projection. No HTTP, and the
live tables are not touched.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

from rsu.journal import Journal
from rsu.projector.apply import Applier
from rsu.projector.schema import create_tables

#: Journal events read per batch during the replay.
_BATCH = 500


class AsOfError(ValueError):
    """``--as-of`` is not a time this command understands, or the journal is empty then."""


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (``2026-05-02T18:00:00Z``, ``2026-05-02 13:00-05:00``,
    ``2026-05-02``) as an aware UTC datetime; a time without zone is UTC. Raises
    :class:`AsOfError` naming the value."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise AsOfError(
            f"--as-of {text!r} is not an ISO 8601 time (e.g. 2026-05-02T18:00:00Z)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def journal_iso(when: datetime) -> str:
    """``when`` (aware) in the journal's ``recorded_at`` form, ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def seq_at(journal: Journal, when: datetime) -> int:
    """The last journal seq recorded at or before ``when`` (0 when none was)."""
    row = journal.db.conn.execute(
        "SELECT MAX(seq) FROM journal WHERE recorded_at <= ?", (journal_iso(when),)
    ).fetchone()
    return int(row[0] or 0)


def replay_until(journal: Journal, until_seq: int) -> sqlite3.Connection:
    """A new in-memory database holding the projection tables built from journal events
    ``1..until_seq``. The caller closes it."""
    conn = sqlite3.connect(":memory:")
    create_tables(conn)
    applier = Applier(conn, journal)
    for batch in journal.read(0, _BATCH):
        for row in batch:
            if row.seq > until_seq:
                conn.commit()
                return conn
            applier.apply(row)
    conn.commit()
    return conn
