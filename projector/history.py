"""The :class:`~rsu.projector.apply.Applier`'s shared state and its bookkeeping rows.

:class:`ApplierBase` holds the connection, the table names and the prepared upserts of one
projection (``suffix`` ``""`` for the live tables, ``"_new"`` while rebuilding), reads the stored
body of a RunSignUp success response (any endpoint: ``GET /Rest/races``, ``/Rest/race/{id}``,
``/Rest/race/{id}/participants``, ``/removed-participants``) and writes the rows about the sync
itself: ``projection_errors`` (a body or row that cannot be projected) and ``sync_history`` (one
row per listing, failed fetch or unprojectable event).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from rsu.journal import (
    Journal,
    JournalError,
    JournalRow,
    ResponseReceived,
)
from rsu.journal.envelope import runsignup_error

from .normalize import MISSING
from .pipeline import Prefetcher
from .records import (
    PARTICIPANT_DATA_COLUMNS,
)
from .schema import (
    EVENT_CHANGES,
    EVENTS,
    PAGES,
    PARTICIPANTS,
    PROJECTION_ERRORS,
    RACE_LISTING_PAGES,
    RACES,
    SYNC_HISTORY,
    Table,
)

_decode = msgspec.json.decode
#: Columns read before the data columns of a stored registration (see ``Applier._existing``).
_PART_PREFIX = ("event_id", "last_seen_seq", "previous_event_id", "event_changed_at")


class BodyRejected(Exception):
    """A body that is a failed attempt (not data): HTTP error, not JSON, RunSignUp error object."""


class BadShape(Exception):
    """A success-looking JSON body the projector cannot understand (goes to projection_errors)."""


@dataclass
class Counters:
    """What one projection run did: ``events`` projected, data ``rows_upserted`` (inserted or
    changed), ``new_errors`` (new ``projection_errors`` rows plus new error rows in
    ``sync_history``)."""

    events: int = 0
    rows_upserted: int = 0
    new_errors: int = 0


def _insert_sql(
    table: Table, suffix: str, *, update: bool = True, values: Sequence[str] = ()
) -> str:
    """``INSERT`` of one whole row of ``table`` (``?`` placeholders, or ``values``: one SQL
    expression per column); on a key conflict the non-key columns are updated (``update``) or
    the stored row is kept."""
    cols = table.column_names
    updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in table.pk)
    return (
        f"INSERT INTO {table.name}{suffix} ({', '.join(cols)}) "
        f"VALUES ({', '.join(values or '?' * len(cols))}) "
        f"ON CONFLICT ({', '.join(table.pk)}) "
        + (f"DO UPDATE SET {updates}" if update else "DO NOTHING")
    )


def _upsert_sql(table: Table, suffix: str) -> str:
    """The upsert of one whole row of ``table`` (:func:`_insert_sql` updating)."""
    return _insert_sql(table, suffix)


def _merge(new: tuple[Any, ...], old: tuple[Any, ...] | None) -> tuple[Any, ...]:
    """Resolve MISSING markers: keep ``old`` values (or ``None`` for a new row)."""
    if old is None:
        return tuple(None if v is MISSING else v for v in new)
    return tuple(o if v is MISSING else v for v, o in zip(new, old, strict=True))


def _utc_seconds(recorded_at: str) -> str:
    """A journal ``recorded_at`` (``...T..:..:..mmmZ``) trimmed to whole seconds, ``...Z``."""
    return recorded_at[:19] + "Z" if len(recorded_at) >= 19 else recorded_at


class ApplierBase:
    """State shared by the parts of :class:`~rsu.projector.apply.Applier` (see there)."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        journal: Journal,
        suffix: str = "",
        *,
        shortcuts: bool = True,
    ) -> None:
        self.conn = conn
        self.journal = journal
        self.suffix = suffix
        #: Re-seen pages skip the row-by-row merge (:meth:`_same_page`); only on the live tables,
        #: whose look-up indexes the shortcut needs (a rebuild projects every row).
        self.shortcuts = shortcuts and suffix == ""
        #: Events of the registrations the current page marked seen (``projector_pages``).
        self._seen_events: set[int] = set()
        #: Raw rows of recently read earlier pages, by journal seq (see :meth:`_old_rows`).
        self._old_pages: dict[int, dict[int, tuple[int, bytes]]] = {}
        self.counters = Counters()
        #: Pages prepared by a worker process (set by the runner, see :mod:`.pipeline`).
        self.prefetch: Prefetcher | None = None
        s = suffix
        self._t_part = PARTICIPANTS.name + s
        self._t_events = EVENTS.name + s
        self._t_races = RACES.name + s
        self._upsert_part = _upsert_sql(PARTICIPANTS, s)
        self._upsert_events = _upsert_sql(EVENTS, s)
        self._upsert_races = _upsert_sql(RACES, s)
        self._part_select = (
            f"SELECT registration_id, {', '.join(_PART_PREFIX)}, "
            f"{', '.join(PARTICIPANT_DATA_COLUMNS)} "
            f"FROM {self._t_part} WHERE timing_partner_id = ? AND race_id = ? "
            "AND registration_id IN "
        )
        self._any_between = (
            f"SELECT 1 FROM {self._t_part} WHERE timing_partner_id = ? AND race_id = ? "
            "AND registration_id BETWEEN ? AND ? LIMIT 1"
        )
        self._insert_move = _insert_sql(EVENT_CHANGES, s, update=False)
        self._insert_sync = _insert_sql(SYNC_HISTORY, s, update=False)
        self._insert_page = _insert_sql(PAGES, s, update=False)
        self._upsert_listing_page = _upsert_sql(RACE_LISTING_PAGES, s)

    # -- helpers ----------------------------------------------------------------------------

    def _projection_failed(self, row: JournalRow, endpoint: str, reason: str) -> None:
        """The ``sync_history`` error row of an event (or rows of it) that could not be
        projected (kept once per seq)."""
        ev = row.event
        self._sync_row(
            row,
            key=f"{row.timing_partner_id}:projection:{row.seq}",
            race_id=row.race_id,
            event_id=row.event_id,
            status="error",
            reason=reason,
            endpoint=endpoint,
            listing_id=getattr(ev, "listing_id", None),
        )

    def _error(self, row: JournalRow, item: int, reason: str, endpoint: str | None) -> None:
        cur = self.conn.execute(
            f"INSERT INTO {PROJECTION_ERRORS.name}{self.suffix} "
            "(seq, item, kind, endpoint, timing_partner_id, reason) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (seq, item) DO NOTHING",
            (row.seq, item, row.kind, endpoint, row.timing_partner_id, reason[:500]),
        )
        self.counters.new_errors += cur.rowcount

    def _raw_body(self, row: JournalRow, ev: ResponseReceived) -> bytes:
        """The stored body of a success response, or raise :class:`BodyRejected`."""
        if ev.status >= 400 or ev.status < 200:
            raise BodyRejected(f"HTTP {ev.status}")
        if not row.body_sha256:
            raise BodyRejected("no body")
        if self.prefetch is not None and (raw := self.prefetch.body(row)) is not None:
            return raw
        try:
            return self.journal.body(row.body_sha256)
        except KeyError:
            raise BodyRejected("body missing from journal_blobs") from None
        except JournalError as exc:  # a forged or damaged blob: refuse to project it
            raise JournalError(
                f"journal event {row.seq}: {exc}; not projected (see rsu journal verify)"
            ) from None

    @staticmethod
    def _decode_body(raw: bytes) -> Any:
        """The decoded success body, or raise :class:`BodyRejected`."""
        try:
            body = _decode(raw)
        except msgspec.DecodeError as exc:
            raise BodyRejected(f"body is not JSON: {exc}") from None
        except RecursionError:
            raise BadShape("body is JSON nested too deeply to read") from None
        err = runsignup_error(body)
        if err is not None:
            raise BodyRejected(f"RunSignUp error {err[0]}: {err[1]}")
        return body

    def _load_body(self, row: JournalRow, ev: ResponseReceived) -> Any:
        """The decoded success body, or raise :class:`BodyRejected`."""
        return self._decode_body(self._raw_body(row, ev))

    def _sync_row(
        self,
        row: JournalRow,
        *,
        key: str,
        race_id: int | None,
        event_id: int | None,
        status: str,
        reason: str | None,
        endpoint: str,
        listing_id: str | None = None,
        mode: str | None = None,
        complete: int | None = None,
        error_code: int | None = None,
        http_status: int | None = None,
        counts: tuple[int, int, int, int, int, int, int] = (0, 0, 0, 0, 0, 0, 0),
        pages: int = 0,
        requests: int = 0,
        retries: int = 0,
        event_ids: str | None = None,
    ) -> None:
        """One ``sync_history`` row (kept once per ``key``); ``event_ids``: the comma list of
        events a listing of several events covered (``event_id`` is then ``NULL``). Counts
        default to 0 and the listing columns to ``NULL`` (a row about no listing)."""
        synced, success, failed, new, changed, unchanged, removed = counts
        cur = self.conn.execute(
            self._insert_sync,
            (
                key,
                row.timing_partner_id,
                race_id,
                event_id,
                row.recorded_at,
                synced,
                status,
                reason,
                success,
                failed,
                row.run_id,
                endpoint,
                listing_id,
                mode,
                complete,
                error_code,
                http_status,
                new,
                changed,
                unchanged,
                removed,
                pages,
                requests,
                retries,
                row.seq,
                event_ids,
            ),
        )
        if status == "error":
            self.counters.new_errors += cur.rowcount
