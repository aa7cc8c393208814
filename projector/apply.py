"""Per-endpoint handlers: apply one journal event to the projection tables.

:class:`Applier` holds one SQLite connection and a table-name suffix (``""`` for the live tables,
``"_new"`` while rebuilding). It never commits: the runner wraps a batch of :meth:`Applier.apply`
calls and the checkpoint in one transaction.

Bodies come from the RunSignUp endpoints (``shared/docs/runsignup-api.md`` §3-4):

- ``races``: ``GET /Rest/races`` -> ``{"races": [{"race": {..., "events": [...]}}]}``
- ``race``: ``GET /Rest/race/{id}`` -> ``{"race": {..., "events": [...]}}``
- ``participants``: ``GET /Rest/race/{id}/participants`` -> ``[{"event": {...}, "participants":
  [...]}]``
- ``removed_participants``: ``GET /Rest/race/{id}/removed-participants`` -> ``[{"event":
  {"event_id": N, "participants": [...]}}]``

Both listings are also read as the bare element without the array (``{"event": {...}, ...}``),
the form of RunSignUp's own documentation examples.

One row per registration and race (issue 13): ``runsignup_participants`` is keyed by
``(timing_partner_id, race_id, registration_id)``. A registration seen in another event of its race
moves there (``previous_event_id``, ``event_changed_at``, a ``runsignup_event_changes`` row) unless
that copy's ``last_modified`` is older than the stored one; rows of one page are taken in the order
sent by the same rule, so when RunSignUp lists the same registration_id in two events of one
listing, the later one wins unless it is older. A race that a complete races listing of its partner
no longer contains (within the listing's date window), or whose detail answers RunSignUp error 7
after it was read before, gets ``access_lost_at``/``access_lost_reason`` and its active
registrations ``removed_reason = 'access_lost'``; an event that a race detail no longer lists gets
``removed_at`` and its registrations ``removed_reason = 'event_removed'``. Both are undone, with
those registrations, when RunSignUp shows the race (or event) again.

A failed attempt (HTTP >= 400, a non-JSON or truncated body, a RunSignUp ``{"error": ...}`` object)
changes no data: its scope's outcome is reported by ``listing_completed``/``fetch_failed``. A JSON
success body of an unexpected shape, or a row that cannot be read, goes to ``projection_errors``.

No journal event can stop the projector: :meth:`Applier.apply` runs each event inside a
``SAVEPOINT``. When applying it raises anything but a database failure (a value that does not fit
a column, JSON nested too deeply to decode, an unforeseen shape), the event's writes are rolled
back, the event is recorded in ``projection_errors`` (item ``-1``) and ``sync_history`` (status
``error``), and projection goes on with the next event: the checkpoint moves past it and
``rsu project`` exits 1. Database failures (disk full, locked, corrupt) and journal integrity
errors still raise: they are not the event's fault and must not move the checkpoint.

The work is split by job: :mod:`.history` (shared state, bodies, ``sync_history`` and
``projection_errors`` rows), :mod:`.races` (races, events, access lost, events removed),
:mod:`.participants` (participants pages) and :mod:`.completed` (``listing_completed``,
``fetch_failed``, retirement); :class:`Applier` joins them and stays the one entry point.
"""

from __future__ import annotations

import dataclasses
import sqlite3

from rsu.journal import (
    FetchFailed,
    JournalError,
    JournalRow,
    ListingCompleted,
    ResponseReceived,
)

from .completed import CompletedApplier
from .history import BadShape, BodyRejected, Counters, _upsert_sql
from .participants import _PARTICIPANT_ENDPOINTS, Key, RegKey
from .races import LOST_DENIED, LOST_UNLISTED, RACES_SERVED_AT_LEAST

__all__ = [
    "DATABASE_ERRORS",
    "LOST_DENIED",
    "LOST_UNLISTED",
    "RACES_SERVED_AT_LEAST",
    "Applier",
    "BadShape",
    "BodyRejected",
    "Counters",
    "Key",
    "RegKey",
    "_upsert_sql",
]

_FAILED_FETCH_ENDPOINTS = ("auth_check", "races", "race")


#: Per database driver: its error base class, and the errors among them that a value of the
#: event caused (NOT NULL, a type); the PostgreSQL target adds psycopg's (``pg.py``).
DATABASE_ERRORS: list[tuple[type[Exception], tuple[type[Exception], ...]]] = [
    (sqlite3.DatabaseError, (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.InterfaceError))
]


def _is_event_fault(exc: Exception) -> bool:
    """True when ``exc`` raised while applying one event is that event's fault (its data does not
    fit), false for failures of the database or the journal, which must stop the run."""
    if isinstance(exc, JournalError | MemoryError):
        return False
    for base, values in DATABASE_ERRORS:
        if isinstance(exc, base):
            # a value the database refused; anything else is the database's
            return isinstance(exc, values)
    return True


class Applier(CompletedApplier):
    """Applies journal events to the projection tables named ``<table><suffix>`` on ``conn``."""

    # -- dispatch ---------------------------------------------------------------------------

    def apply(self, row: JournalRow) -> None:
        """Project one journal event (any kind; irrelevant kinds are skipped), all or nothing.

        Runs inside ``SAVEPOINT`` (portable SQL, also PostgreSQL): when the event cannot be
        projected it is rolled back and recorded instead (see the module docstring). Raises only
        database and journal failures (``sqlite3.OperationalError``, ``JournalError``...)."""
        conn = self.conn
        counters = dataclasses.replace(self.counters)
        conn.execute("SAVEPOINT rsu_event")
        try:
            self._dispatch(row)
        except Exception as exc:
            conn.execute("ROLLBACK TO SAVEPOINT rsu_event")
            conn.execute("RELEASE SAVEPOINT rsu_event")
            if not _is_event_fault(exc):
                raise
            self.counters = counters
            self.counters.events += 1
            self._event_failed(row, exc)
            return
        conn.execute("RELEASE SAVEPOINT rsu_event")

    def _event_failed(self, row: JournalRow, exc: Exception) -> None:
        """Record an event that could not be projected: ``projection_errors`` item ``-1``, a
        failed ``projector_pages`` row for a listing page (so its listing fails), else an error
        row in ``sync_history``."""
        ev = row.event
        endpoint = getattr(ev, "endpoint", None)
        detail = str(exc) or type(exc).__name__
        if isinstance(exc, RecursionError):
            detail = "JSON nested too deeply"
        reason = f"could not be projected ({type(exc).__name__}): {detail}"[:500]
        self._error(row, -1, reason, endpoint)
        if isinstance(ev, ResponseReceived) and endpoint in _PARTICIPANT_ENDPOINTS:
            self._seen_events = set()
            self._page_row(row, ev, 0, {}, reason)
            return
        self._projection_failed(row, endpoint or row.kind, reason)

    def _dispatch(self, row: JournalRow) -> None:
        ev = row.event
        self.counters.events += 1
        if isinstance(ev, ResponseReceived):
            if ev.endpoint in _PARTICIPANT_ENDPOINTS:
                self._participants_page(row, ev)
            elif ev.endpoint in ("races", "race"):
                self._races_body(row, ev)
        elif isinstance(ev, ListingCompleted):
            self._listing_completed(row, ev)
        elif isinstance(ev, FetchFailed) and (
            ev.endpoint in _FAILED_FETCH_ENDPOINTS or ev.internal
        ):
            self._fetch_failed(row, ev)
