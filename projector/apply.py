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
"""

from __future__ import annotations

import dataclasses
import re
import sqlite3
from dataclasses import dataclass
from typing import Any

import msgspec

from rsu.journal import (
    FetchFailed,
    Journal,
    JournalError,
    JournalRow,
    ListingCompleted,
    ResponseReceived,
)
from rsu.journal.envelope import runsignup_error

from . import normalize as n
from . import typed
from .normalize import MISSING
from .pipeline import NOT_PREFETCHED, Prefetcher, Prepared
from .records import (
    EVENT_DATA_COLUMNS,
    PARTICIPANT_DATA_COLUMNS,
    RACE_DATA_COLUMNS,
    active_participant_values,
    all_null,
    event_values,
    participant_values,
    race_values,
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
from .typed import RawRow

_decode = msgspec.json.decode
#: ``(race_id, event_id, registration_id)`` of a registration (the timing partner is the row's).
Key = tuple[int, int, int]
#: ``(race_id, registration_id)``: the key of a registration's one row (with the timing partner).
RegKey = tuple[int, int]
#: Columns read before the data columns of a stored registration (see ``Applier._existing``).
_PART_PREFIX = ("event_id", "last_seen_seq", "previous_event_id", "event_changed_at")
_PREFIX = len(_PART_PREFIX)
_LM = PARTICIPANT_DATA_COLUMNS.index("last_modified")
_REMOVED_AT = PARTICIPANT_DATA_COLUMNS.index("removed_at")
#: Races a ``GET /Rest/races`` page is taken to hold whatever the server caps (RunSignUp's
#: documented default ``results_per_page``): a page of fewer races than that ends a listing.
RACES_SERVED_AT_LEAST = 50
#: ``runsignup_races.access_lost_reason``: a complete race listing of the partner no longer
#: contains the race / the race detail answered RunSignUp error 7 (Permission Denied).
LOST_UNLISTED = "missing_from_race_listing"
LOST_DENIED = "permission_denied"
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_KEY = b'"registration_id":'
_REG_ID = re.compile(rb'"registration_id":\s*(\d{1,18})')
#: Earlier pages whose raw rows :meth:`Applier._old_rows` keeps.
_OLD_PAGES = 8
#: Registration ids per ``IN (...)`` look-up.
_IN_CHUNK = 2000
_PARTICIPANT_ENDPOINTS = ("participants", "removed_participants")
_I64_MIN, _I64_MAX = n.INT64_MIN, n.INT64_MAX
_FAILED_FETCH_ENDPOINTS = ("auth_check", "races", "race")


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


def _upsert_sql(table: Table, suffix: str) -> str:
    cols = table.column_names
    updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in table.pk)
    return (
        f"INSERT INTO {table.name}{suffix} ({', '.join(cols)}) "
        f"VALUES ({', '.join('?' * len(cols))}) "
        f"ON CONFLICT ({', '.join(table.pk)}) DO UPDATE SET {updates}"
    )


def _merge(new: tuple[Any, ...], old: tuple[Any, ...] | None) -> tuple[Any, ...]:
    """Resolve MISSING markers: keep ``old`` values (or ``None`` for a new row)."""
    if old is None:
        return tuple(None if v is MISSING else v for v in new)
    return tuple(o if v is MISSING else v for v, o in zip(new, old, strict=True))


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


def _without_events(endpoint: str, race: Any) -> bool:
    """A race detail (``race`` endpoint) whose ``events`` are absent or empty."""
    return endpoint == "race" and isinstance(race, dict) and race.get("events") in (None, [], {})


def _older(new_lm: Any, old_lm: Any) -> bool:
    """Whether a row's ``last_modified`` (epoch seconds) is older than the stored one (unknown,
    MISSING or ``None`` on either side: not older, so the later journal event wins)."""
    return new_lm.__class__ is int and old_lm.__class__ is int and new_lm < old_lm


def _race_id(race: Any) -> int | None:
    """The ``race_id`` of one race item of a races listing, or ``None`` when unreadable."""
    try:
        return n.integer(race.get("race_id")) if isinstance(race, dict) else None
    except (ValueError, TypeError):
        return None


def _json_ids(ids: list[int]) -> str:
    return msgspec.json.encode(ids).decode()


def _utc_seconds(recorded_at: str) -> str:
    """A journal ``recorded_at`` (``...T..:..:..mmmZ``) trimmed to whole seconds, ``...Z``."""
    return recorded_at[:19] + "Z" if len(recorded_at) >= 19 else recorded_at


class Applier:
    """Applies journal events to the projection tables named ``<table><suffix>`` on ``conn``."""

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
        self._insert_move = (
            f"INSERT INTO {EVENT_CHANGES.name}{s} ({', '.join(EVENT_CHANGES.column_names)}) "
            f"VALUES ({', '.join('?' * len(EVENT_CHANGES.columns))}) "
            f"ON CONFLICT ({', '.join(EVENT_CHANGES.pk)}) DO NOTHING"
        )

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

    # -- helpers ----------------------------------------------------------------------------

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

    # -- races / race -----------------------------------------------------------------------

    def _races_body(self, row: JournalRow, ev: ResponseReceived) -> None:
        tp = row.timing_partner_id
        try:
            body = self._load_body(row, ev)
            if tp is None:
                raise BadShape("no timing_partner_id on the journal row")
            if ev.endpoint == "races":
                if not isinstance(body, dict) or not isinstance(body.get("races", []), list):
                    raise BadShape('races body is not {"races": [...]}')
                races = [n.obj(item).get("race") for item in body.get("races", [])]
            else:
                if not isinstance(body, dict) or not isinstance(body.get("race"), dict):
                    raise BadShape('race body is not {"race": {...}}')
                races = [body["race"]]
        except BodyRejected:
            return
        except (BadShape, ValueError) as exc:
            self._error(row, -1, str(exc), ev.endpoint)
            self._projection_failed(row, ev.endpoint, str(exc)[:500])
            return
        failed: list[str] = []
        detail = ev.endpoint == "race"
        for i, race in enumerate(races):
            try:
                self._race(row, tp, race, detail)  # type: ignore[arg-type]
            except (BadShape, ValueError, TypeError) as exc:
                self._error(row, i, str(exc), ev.endpoint)
                failed.append(str(exc))
            else:
                if _without_events(ev.endpoint, race):
                    self._race_without_events(row, race)
        if not detail and tp is not None:
            ids = [_race_id(r) for r in races]
            listed = [r for r in ids if r is not None]
            if len(listed) == len(races):  # an unreadable race id: the page proves nothing
                self._races_listing_page(row, ev, tp, listed, len(races))
        if failed:
            reason = f"{len(failed)} of {len(races)} races could not be projected: {failed[0]}"
            self._projection_failed(row, ev.endpoint, reason[:500])

    def _race_without_events(self, row: JournalRow, race: Any) -> None:
        """A ``warning`` row in ``sync_history`` for a race detail (``GET /Rest/race/{id}``)
        that lists no events: nothing of the race can be listed, which is neither a success nor
        an error of the sync."""
        race_id = n.integer(race.get("race_id"))
        self._sync_row(
            row,
            key=f"{row.timing_partner_id}:race_without_events:{row.seq}",
            race_id=race_id,
            event_id=None,
            status="warning",
            reason=f"race {race_id} lists no events: no participants to fetch",
            endpoint="race",
        )

    def _race(self, row: JournalRow, tp: int, race: Any, detail: bool) -> None:
        """Upsert one race (and its events); a race seen again is accessible again: a race
        detail (``detail``) ends any access loss, a races listing one it caused itself."""
        if not isinstance(race, dict):
            raise BadShape("race item is not an object")
        race_id = n.integer(race.get("race_id"))
        if race_id is None:
            raise BadShape("race without race_id")
        values = race_values(race)
        events_raw = race.get("events", MISSING)
        if (
            events_raw is not MISSING
            and events_raw not in (None, {})
            and not isinstance(events_raw, list)
        ):
            raise BadShape("race.events is not a list")
        stored = self.conn.execute(
            f"SELECT {', '.join(RACE_DATA_COLUMNS)}, access_lost_at, access_lost_reason "
            f"FROM {self._t_races} WHERE timing_partner_id = ? AND race_id = ?",
            (tp, race_id),
        ).fetchone()
        old = None if stored is None else tuple(stored[:-2])
        old_access = (None, None) if stored is None else tuple(stored[-2:])
        access = old_access
        if old_access[0] is not None and (detail or old_access[1] == LOST_UNLISTED):
            access = (None, None)
        merged = _merge(values, old)
        if merged != old or access != old_access:
            self.conn.execute(self._upsert_races, (tp, race_id, *merged, row.seq, *access))
            self.counters.rows_upserted += 1
            if access != old_access:
                self._restore(row, tp, race_id, "access_lost")
        if isinstance(events_raw, list) and events_raw:
            tz = merged[RACE_DATA_COLUMNS.index("timezone")]
            self._events(row, tp, race_id, tz, events_raw, detail)

    def _events(
        self,
        row: JournalRow,
        tp: int,
        race_id: int,
        tz: str | None,
        events: list[Any],
        detail: bool,
    ) -> None:
        """Upsert the listed events (a listed event is never removed); a race ``detail``
        (``GET /Rest/race/{id}``, every event of the race) removes the stored events it no
        longer lists, with their registrations (``removed_reason = 'event_removed'``)."""
        existing = {
            r[0]: (tuple(r[1:-1]), r[-1])
            for r in self.conn.execute(
                f"SELECT event_id, {', '.join(EVENT_DATA_COLUMNS)}, removed_at "
                f"FROM {self._t_events} WHERE timing_partner_id = ? AND race_id = ?",
                (tp, race_id),
            )
        }
        listed: set[int] = set()
        for e in events:
            e = n.obj(e)
            event_id = n.integer(e.get("event_id"))
            if event_id is None:
                raise BadShape(f"race {race_id}: event without event_id")
            listed.add(event_id)
            old, old_removed = existing.get(event_id, (None, None))
            merged = _merge(event_values(e, tz), old)
            if merged != old or old_removed is not None:
                self.conn.execute(
                    self._upsert_events, (tp, race_id, event_id, *merged, row.seq, None)
                )
                existing[event_id] = (merged, None)
                self.counters.rows_upserted += 1
                if old_removed is not None:
                    self._restore(row, tp, race_id, "event_removed", event_id)
        if not detail:
            return
        at = _utc_seconds(row.recorded_at)
        for event_id, (_, removed_at) in existing.items():
            if event_id in listed or removed_at is not None:
                continue
            self.conn.execute(
                f"UPDATE {self._t_events} SET removed_at = ?, source_seq = ? "
                "WHERE timing_partner_id = ? AND race_id = ? AND event_id = ?",
                (at, row.seq, tp, race_id, event_id),
            )
            self.counters.rows_upserted += 1
            self._retire(row, tp, race_id, "event_removed", event_id)

    # -- access lost, event removed: retire and restore a race's or an event's registrations ---

    def _retire(
        self, row: JournalRow, tp: int, race_id: int, reason: str, event_id: int | None = None
    ) -> int:
        """Mark the active registrations of a race (or of one of its events) removed with
        ``reason`` at the journal row's time; returns how many."""
        sql = (
            f"UPDATE {self._t_part} SET removed_at = ?, removed_reason = ?, "
            "new_registration_id = NULL, source_seq = ? "
            "WHERE timing_partner_id = ? AND race_id = ? AND removed_at IS NULL"
        )
        params: tuple[Any, ...] = (_utc_seconds(row.recorded_at), reason, row.seq, tp, race_id)
        if event_id is not None:
            sql += " AND event_id = ?"
            params += (event_id,)
        count = self.conn.execute(sql, params).rowcount
        self.counters.rows_upserted += count
        return count

    def _restore(
        self, row: JournalRow, tp: int, race_id: int, reason: str, event_id: int | None = None
    ) -> None:
        """Make the registrations that :meth:`_retire` removed with ``reason`` active again
        (a complete listing retires those that are really gone)."""
        sql = (
            f"UPDATE {self._t_part} SET removed_at = NULL, removed_reason = NULL, "
            "source_seq = ? WHERE timing_partner_id = ? AND race_id = ? AND removed_reason = ?"
        )
        params: tuple[Any, ...] = (row.seq, tp, race_id, reason)
        if event_id is not None:
            sql += " AND event_id = ?"
            params += (event_id,)
        self.counters.rows_upserted += self.conn.execute(sql, params).rowcount

    def _lose_access(self, row: JournalRow, tp: int, race_id: int, reason: str) -> None:
        """Mark a stored race no longer accessible (``reason``: :data:`LOST_UNLISTED` or
        :data:`LOST_DENIED`) and retire its registrations. A race already lost keeps its first
        time (an unlisted race that then answers error 7 becomes :data:`LOST_DENIED`); a race
        never seen is left alone."""
        cur = self.conn.execute(
            f"UPDATE {self._t_races} SET access_lost_at = COALESCE(access_lost_at, ?), "
            "access_lost_reason = ?, source_seq = ? WHERE timing_partner_id = ? AND race_id = ? "
            "AND (access_lost_at IS NULL OR (? = 1 AND access_lost_reason = ?))",
            (
                _utc_seconds(row.recorded_at),
                reason,
                row.seq,
                tp,
                race_id,
                int(reason == LOST_DENIED),
                LOST_UNLISTED,
            ),
        )
        if cur.rowcount:
            self.counters.rows_upserted += 1
            self._retire(row, tp, race_id, "access_lost")

    def _races_listing_page(
        self, row: JournalRow, ev: ResponseReceived, tp: int, race_ids: list[int], size: int
    ) -> None:
        """Track the pages of one run's ``GET /Rest/races?only_partner_races=T`` listing of a
        partner. At its last page (fewer than ``results_per_page`` races) with every earlier
        page read in the same run, the listing is complete: each stored race of the partner it
        does not contain, and whose stored ``next_date`` lies in the listing's
        ``start_date``..``end_date`` window (any race without a window), loses access."""
        q = ev.query
        if q.get("only_partner_races", "F").upper() != "T" or row.run_id is None:
            return
        per_page = n.integer(q.get("results_per_page"))
        page = ev.page if ev.page is not None else n.integer(q.get("page", "1"))
        start, end = q.get("start_date"), q.get("end_date")
        if per_page is None or page is None or page < 1:
            return
        if any(d is not None and not _ISO_DATE.fullmatch(d) for d in (start, end)):
            return
        key = "&".join(f"{k}={v}" for k, v in sorted(q.items()) if k != "page")
        t_pages = RACE_LISTING_PAGES.name + self.suffix
        earlier = []
        if size < per_page:
            earlier = self.conn.execute(
                f"SELECT page, race_ids FROM {t_pages} WHERE timing_partner_id = ? "
                "AND run_id = ? AND listing_key = ? AND page < ?",
                (tp, row.run_id, key, page),
            ).fetchall()
        # RunSignUp may serve fewer races than asked: a page ends the listing only when shorter
        # than a page known to be served (an earlier one, or the default 50 races).
        served = max([min(per_page, RACES_SERVED_AT_LEAST), *(len(_decode(i)) for _, i in earlier)])
        if size >= per_page or (size and size >= served):
            self.conn.execute(
                f"INSERT INTO {t_pages} ({', '.join(RACE_LISTING_PAGES.column_names)}) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT "
                f"({', '.join(RACE_LISTING_PAGES.pk)}) DO UPDATE SET race_ids = excluded.race_ids",
                (tp, row.run_id, key, page, _json_ids(race_ids)),
            )
            return
        self.conn.execute(
            f"DELETE FROM {t_pages} WHERE timing_partner_id = ? AND "
            "(run_id <> ? OR listing_key = ?)",
            (tp, row.run_id, key),
        )
        if {p for p, _ in earlier} != set(range(1, page)):
            return  # a page of this listing was not read: no proof of anything
        listed = set(race_ids)
        for _, ids in earlier:
            listed.update(_decode(ids))
        for race_id, next_date in self.conn.execute(
            f"SELECT race_id, next_date FROM {self._t_races} WHERE timing_partner_id = ? "
            "AND access_lost_at IS NULL",
            (tp,),
        ).fetchall():
            if race_id in listed:
                continue
            if start is not None or end is not None:
                if next_date is None or (start is not None and next_date < start):
                    continue
                if end is not None and next_date > end:
                    continue
            self._lose_access(row, tp, race_id, LOST_UNLISTED)

    # -- participants / removed participants pages -------------------------------------------

    def _participants_page(self, row: JournalRow, ev: ResponseReceived) -> None:
        removed = ev.endpoint == "removed_participants"
        stats = {"rows": 0, "failed": 0, "new": 0, "changed": 0, "unchanged": 0, "removed": 0}
        ok, reason = 1, None
        self._seen_events = set()
        try:
            if not removed and self.shortcuts and self._same_page(row, ev, stats):
                self._page_row(row, ev, ok, stats, reason)
                return
            raw = self._raw_body(row, ev)
            if not removed and self.shortcuts and self._seen_rows(row, ev, raw, stats):
                self._page_row(row, ev, ok, stats, reason)
                return
            self._page_body(row, ev, raw, removed, stats, whole=True)
        except BodyRejected as exc:
            ok, reason = 0, str(exc)
        except BadShape as exc:
            ok, reason = 0, str(exc)
            self._error(row, -1, str(exc), ev.endpoint)
        if stats["failed"] and reason is None:
            reason = f"{stats['failed']} rows could not be projected"
        self._page_row(row, ev, ok, stats, reason)

    def _page_body(
        self,
        row: JournalRow,
        ev: ResponseReceived,
        raw: bytes,
        removed: bool,
        stats: dict[str, int],
        *,
        whole: bool = False,
    ) -> None:
        """Project every registration of one page body, row by row (typed path when it fits);
        ``whole``: ``raw`` is the journal row's own body (a worker may have prepared it)."""
        prepared = NOT_PREFETCHED
        if whole and not removed and self.prefetch is not None:
            prepared = self.prefetch.prepared(row)
        if prepared is not NOT_PREFETCHED:
            if prepared is not None:
                self._prefetched_page(row, ev, prepared, stats)
                return
            typed_page = None  # not of the typed shape: the generic path
        else:
            typed_page = None if removed else self._typed_page(row, ev, raw)
        if typed_page is not None:
            self._store(row, typed_page[0], typed_page[1], removed, stats)
        else:
            body = self._decode_body(raw)
            rows = self._page_rows(row, ev, body, removed, stats)
            self._write_rows(row, ev, rows, removed, stats)

    def _seen_rows(
        self, row: JournalRow, ev: ResponseReceived, raw: bytes, stats: dict[str, int]
    ) -> bool:
        """The re-seen row shortcut (issue 15): a registration whose JSON bytes are those of the
        page that last saw it (its ``last_seen_seq``), in the same event, still active and not
        written since (``source_seq`` not after that page), would merge as unchanged: only its
        ``last_seen_seq`` moves. The other rows go row by row, as a page of their own; should
        any of them fail, the whole page is projected row by row instead (so the errors are
        numbered as in the page). Returns whether it applied (``stats`` filled)."""
        tp = row.timing_partner_id
        race_id = row.race_id if row.race_id is not None else ev.race_id
        if tp is None or race_id is None or not self._seen_before(tp, race_id, raw):
            return False
        rows = typed.raw_rows(raw)
        if not rows or len({r[0] for r in rows}) != len(rows):
            return False  # another shape, or a registration twice: the general rules decide
        stored: dict[int, tuple[Any, ...]] = {}
        ids = [r[0] for r in rows]
        for i in range(0, len(ids), _IN_CHUNK):
            chunk = ids[i : i + _IN_CHUNK]
            for r in self.conn.execute(
                f"SELECT registration_id, event_id, last_seen_seq, source_seq FROM {self._t_part} "
                "WHERE timing_partner_id = ? AND race_id = ? AND removed_at IS NULL "
                f"AND registration_id IN ({','.join('?' * len(chunk))})",
                (tp, race_id, *chunk),
            ):
                stored[r[0]] = r[1:]
        same: list[RawRow] = []
        other: list[RawRow] = []
        for r in rows:
            s = stored.get(r[0])
            if (
                s is not None
                and s[0] == r[1]
                and s[1] is not None
                and s[1] < row.seq
                and s[2] <= s[1]
                and self._old_rows(s[1], tp, race_id).get(r[0]) == r[1:]
            ):
                same.append(r)
            else:
                other.append(r)
        if len(same) * 2 < len(rows):
            return False  # mostly new rows: no gain
        if other and not self._other_rows(row, ev, other, stats):
            return False
        self._mark_seen(row.seq, tp, [(race_id, r[0]) for r in same])
        stats["rows"] += len(same)
        stats["unchanged"] += len(same)
        self._seen_events.update(r[1] for r in same)
        return True

    def _mark_seen(self, seq: int, tp: int, keys: list[RegKey]) -> None:
        """Set ``last_seen_seq = seq`` of these registrations: one ``UPDATE ... IN (...)`` per
        race and :data:`_IN_CHUNK` ids (half the cost of one statement per row)."""
        by_race: dict[int, list[int]] = {}
        for race_id, reg_id in keys:
            by_race.setdefault(race_id, []).append(reg_id)
        for race_id, ids in by_race.items():
            for i in range(0, len(ids), _IN_CHUNK):
                chunk = ids[i : i + _IN_CHUNK]
                self.conn.execute(
                    f"UPDATE {self._t_part} SET last_seen_seq = ? WHERE timing_partner_id = ? "
                    f"AND race_id = ? AND registration_id IN ({','.join('?' * len(chunk))})",
                    (seq, tp, race_id, *chunk),
                )

    def _seen_before(self, tp: int, race_id: int, raw: bytes) -> bool:
        """A cheap guess whether :meth:`_seen_rows` can help: the first or last registration of
        the page (found by a byte search, good enough for a guess) is stored and was seen (a
        first projection skips the shortcut's decoding at no cost)."""
        last = _REG_ID.search(raw, max(raw.rfind(_KEY), 0))
        found = [int(m.group(1)) for m in (_REG_ID.search(raw), last) if m is not None]
        return bool(found) and (
            self.conn.execute(
                f"SELECT 1 FROM {self._t_part} WHERE timing_partner_id = ? AND race_id = ? "
                f"AND registration_id IN ({','.join('?' * len(found))}) "
                "AND last_seen_seq IS NOT NULL LIMIT 1",
                (tp, race_id, *found),
            ).fetchone()
            is not None
        )

    def _old_rows(self, seq: int, tp: int, race_id: int) -> dict[int, tuple[int, bytes]]:
        """``registration_id -> (event_id, JSON bytes)`` of the ``/participants`` page at journal
        ``seq`` of this partner's race (empty for anything else), a few pages cached."""
        cached = self._old_pages.get(seq)
        if cached is not None:
            return cached
        out: dict[int, tuple[int, bytes]] = {}
        try:
            old = self.journal.get(seq)
        except KeyError:
            return out
        ev = old.event
        if (
            isinstance(ev, ResponseReceived)
            and ev.endpoint == "participants"
            and old.timing_partner_id == tp
            and (old.race_id if old.race_id is not None else ev.race_id) == race_id
            and old.body_sha256
        ):
            try:
                rows = typed.raw_rows(self.journal.body(old.body_sha256)) or []
            except KeyError:
                rows = []
            out = {r[0]: (r[1], r[2]) for r in rows}
            if len(out) != len(rows):
                out = {}  # a registration twice in that page: no shortcut for its rows
        if len(self._old_pages) >= _OLD_PAGES:
            self._old_pages.clear()
        self._old_pages[seq] = out
        return out

    def _other_rows(
        self, row: JournalRow, ev: ResponseReceived, rows: list[RawRow], stats: dict[str, int]
    ) -> bool:
        """Project the rows the shortcut could not skip as a page of their own; on any row
        error roll them back (``stats`` and counters too) and return ``False``."""
        body = (
            b"["
            + b",".join(
                b'{"event":{"event_id":%d},"participants":[%s]}' % (event_id, blob)
                for _, event_id, blob in rows
            )
            + b"]"
        )
        before = (dict(stats), set(self._seen_events), dataclasses.replace(self.counters))
        self.conn.execute("SAVEPOINT other_rows")
        try:
            self._page_body(row, ev, body, False, stats)
            failed = stats["failed"] > 0
        except (BadShape, BodyRejected):
            failed = True
        if failed:
            self.conn.execute("ROLLBACK TO SAVEPOINT other_rows")
            stats.clear()
            stats.update(before[0])
            self._seen_events, self.counters = before[1], before[2]
        self.conn.execute("RELEASE SAVEPOINT other_rows")
        return not failed

    def _page_row(
        self,
        row: JournalRow,
        ev: ResponseReceived,
        ok: int,
        stats: dict[str, int],
        reason: str | None,
    ) -> None:
        """The ``projector_pages`` row of one listing page (kept once per seq), with its body
        and the events of the registrations it marked seen (:meth:`_same_page` reads them)."""
        events = (
            ",".join(map(str, sorted(self._seen_events)))
            if ev.endpoint == "participants" and self._seen_events
            else None
        )
        self.conn.execute(
            f"INSERT INTO {PAGES.name}{self.suffix} ({', '.join(PAGES.column_names)}) "
            f"VALUES ({', '.join('?' * len(PAGES.columns))}) ON CONFLICT (seq) DO NOTHING",
            (
                row.seq,
                ev.listing_id,
                ok,
                *(
                    stats.get(k, 0)
                    for k in ("rows", "failed", "new", "changed", "unchanged", "removed")
                ),
                reason,
                row.timing_partner_id,
                row.race_id if row.race_id is not None else ev.race_id,
                row.body_sha256 or None,
                events,
            ),
        )

    def _same_page(self, row: JournalRow, ev: ResponseReceived, stats: dict[str, int]) -> bool:
        """The re-seen page shortcut (issue 15): a ``/participants`` page whose body is the same
        bytes as an earlier page of the partner's race that marked all its ``rows`` seen, when
        none of those registrations was written or seen since (each still has that page's
        ``last_seen_seq`` and no ``source_seq`` after it), would merge every row as unchanged.
        Then only ``last_seen_seq`` moves, in one statement, and the body is not even read.
        Returns whether it applied (``stats`` filled as the row-by-row merge would)."""
        tp = row.timing_partner_id
        race_id = row.race_id if row.race_id is not None else ev.race_id
        if not row.body_sha256 or tp is None or race_id is None or not 200 <= ev.status < 400:
            return False
        prev = self.conn.execute(
            f"SELECT seq, rows, event_ids FROM {PAGES.name}{self.suffix} WHERE body_sha256 = ? "
            "AND timing_partner_id = ? AND race_id = ? AND ok = 1 AND rows_failed = 0 "
            "AND event_ids IS NOT NULL AND seq < ? ORDER BY seq DESC LIMIT 1",
            (row.body_sha256, tp, race_id, row.seq),
        ).fetchone()
        if prev is None or not prev[1]:
            return False
        prev_seq, rows, event_ids = prev
        events = [int(e) for e in event_ids.split(",")]
        where = (
            "WHERE timing_partner_id = ? AND race_id = ? "
            f"AND event_id IN ({','.join('?' * len(events))}) AND last_seen_seq = ?"
        )
        params = (tp, race_id, *events, prev_seq)
        count, newest = self.conn.execute(
            f"SELECT COUNT(*), MAX(source_seq) FROM {self._t_part} {where}", params
        ).fetchone()
        if count != rows or newest is None or newest > prev_seq:
            return False
        self.conn.execute(
            f"UPDATE {self._t_part} SET last_seen_seq = ? {where}", (row.seq, *params)
        )
        stats["rows"] = stats["unchanged"] = count
        self._seen_events = set(events)
        return True

    def _page_rows(
        self,
        row: JournalRow,
        ev: ResponseReceived,
        body: Any,
        removed: bool,
        stats: dict[str, int],
    ) -> dict[Key, tuple[int, dict[str, Any]]]:
        """Raw rows of one page keyed by ``(race_id, event_id, registration_id)``; a
        registration repeated in the page counts once (the last occurrence wins)."""
        tp = row.timing_partner_id
        race_id = row.race_id if row.race_id is not None else ev.race_id
        scope_event = row.event_id if row.event_id is not None else ev.event_id
        if tp is None or race_id is None:
            raise BadShape("no timing_partner_id/race_id on the journal row")
        if isinstance(body, dict) and isinstance(body.get("event"), dict):
            body = [body]  # the bare element of RunSignUp's documentation examples
        if not isinstance(body, list):
            raise BadShape(f"{ev.endpoint} body is not a JSON array or an event element")
        out: dict[Key, tuple[int, dict[str, Any]]] = {}
        item = 0
        integer = n.integer
        for element in body:
            if not isinstance(element, dict):
                raise BadShape("array element is not an object")
            event_obj = n.obj(element.get("event"))
            el_event = event_obj.get("event_id")
            regs = element.get("participants") if not removed else event_obj.get("participants")
            if removed and not regs:
                regs = element.get("participants")
            if regs is None or regs == {}:
                continue
            if not isinstance(regs, list):
                raise BadShape("participants is not a list")
            for reg in regs:
                item += 1
                try:
                    if reg.__class__ is not dict:
                        raise ValueError("registration is not an object")
                    reg_id = reg.get("registration_id")
                    if reg_id.__class__ is not int or not _I64_MIN <= reg_id <= _I64_MAX:
                        reg_id = integer(reg_id)
                        if reg_id is None:
                            raise ValueError("registration without registration_id")
                    event_id = reg.get("event_id", el_event)
                    if event_id.__class__ is not int or not _I64_MIN <= event_id <= _I64_MAX:
                        event_id = integer(event_id)
                        if event_id is None:
                            event_id = integer(el_event) if el_event is not None else scope_event
                        if event_id is None:
                            raise ValueError(f"registration {reg_id} without event_id")
                    if reg.get("user") is None and all_null(reg):
                        raise ValueError(f"registration {reg_id}: every field is null")
                except (ValueError, TypeError) as exc:
                    stats["failed"] += 1
                    self._error(row, item, str(exc), ev.endpoint)
                    continue
                out[(race_id, event_id, reg_id)] = (item, reg)
        return out

    def _existing(self, tp: int, keys: Any) -> dict[RegKey, tuple[Any, ...]]:
        """Stored ``(event_id, last_seen_seq, previous_event_id, event_changed_at, *data
        columns)`` of these registrations, in whatever event of their race they are, keyed by
        ``(race_id, registration_id)``: one query per race and :data:`_IN_CHUNK` ids."""
        by_race: dict[int, set[int]] = {}
        for race_id, _event_id, reg_id in keys:
            by_race.setdefault(race_id, set()).add(reg_id)
        existing: dict[RegKey, tuple[Any, ...]] = {}
        for race_id, id_set in by_race.items():
            reg_ids = sorted(id_set)
            for i in range(0, len(reg_ids), _IN_CHUNK):
                chunk = reg_ids[i : i + _IN_CHUNK]
                sql = self._part_select + f"({','.join('?' * len(chunk))})"
                for r in self.conn.execute(sql, (tp, race_id, *chunk)):
                    existing[(race_id, r[0])] = r[1:]
        return existing

    def _typed_page(
        self, row: JournalRow, ev: ResponseReceived, raw: bytes
    ) -> tuple[dict[RegKey, tuple[Any, ...]], list[tuple[Key, tuple[Any, ...]]]] | None:
        """A ``/participants`` page of the common shape, decoded to Structs and normalised by
        :mod:`rsu.projector.typed`: ``(stored rows, [(key, values)])``. ``None`` when the page
        has anything unusual: the generic path then projects it (and records its errors)."""
        tp = row.timing_partner_id
        race_id = row.race_id if row.race_id is not None else ev.race_id
        if tp is None or race_id is None:
            return None
        regs = typed.page_registrations(race_id, raw)
        if regs is None:
            return None
        existing = self._existing(tp, regs.keys())
        out: list[tuple[Key, tuple[Any, ...]]] = []
        typed_values = typed.typed_values
        try:
            for key, reg in regs.items():
                out.append((key, typed_values(reg, (key[0], key[2]) in existing)))
        except Exception:  # any doubt: the generic path decides (and records the error)
            return None
        return existing, out

    def _prefetched_page(
        self, row: JournalRow, ev: ResponseReceived, page: Prepared, stats: dict[str, int]
    ) -> None:
        """Store a ``/participants`` page the worker prepared (:mod:`rsu.projector.pipeline`)
        as :meth:`_typed_page` and :meth:`_store` would. A page of registrations none of which
        is stored (nor twice in it) is upserted as the worker built its rows; otherwise the
        values go through :meth:`_store`, ``MISSING`` put back for the stored registrations."""
        tp = row.timing_partner_id
        race_id = row.race_id if row.race_id is not None else ev.race_id
        rows, missing, events, twice = page
        existing = self._existing(tp, ((race_id, r[2], r[3]) for r in rows))
        if not existing and not twice:
            self.conn.executemany(self._upsert_part, rows)
            self.counters.rows_upserted += len(rows)
            stats["rows"] += len(rows)
            stats["new"] += len(rows)
            self._seen_events.update(events)
            return
        end = 4 + len(PARTICIPANT_DATA_COLUMNS)
        out: list[tuple[Key, tuple[Any, ...]]] = []
        for r, idx in zip(rows, missing, strict=True):
            values = r[4:end]
            if idx is not None and (race_id, r[3]) in existing:
                cols = list(values)
                for i in idx:
                    cols[i] = MISSING
                values = tuple(cols)
            out.append(((race_id, r[2], r[3]), values))
        self._store(row, existing, out, False, stats)

    def _write_rows(
        self,
        row: JournalRow,
        ev: ResponseReceived,
        rows: dict[Key, tuple[int, dict[str, Any]]],
        removed: bool,
        stats: dict[str, int],
    ) -> None:
        """Normalise one page's registrations (recording the rows that fail), then store them."""
        if not rows:
            return
        existing = self._existing(row.timing_partner_id, rows.keys())
        removed_at_default = _utc_seconds(row.recorded_at)
        out: list[tuple[Key, tuple[Any, ...]]] = []
        for key, (item, reg) in rows.items():
            old_full = existing.get((key[0], key[2]))
            try:
                if removed:
                    values = participant_values(
                        reg, removed=True, removed_at_default=removed_at_default
                    )
                    if old_full is None:
                        values = _merge(values, None)
                else:
                    values = active_participant_values(
                        reg, MISSING if old_full is not None else None
                    )
            except (ValueError, TypeError, AttributeError, OverflowError, RecursionError) as exc:
                stats["failed"] += 1
                self._error(row, item, f"registration {key[2]}: {exc}", ev.endpoint)
                continue
            out.append((key, values))
        self._store(row, existing, out, removed, stats)

    def _store(
        self,
        row: JournalRow,
        existing: dict[RegKey, tuple[Any, ...]],
        rows: list[tuple[Key, tuple[Any, ...]]],
        removed: bool,
        stats: dict[str, int],
    ) -> None:
        """Diff normalised registrations against the stored rows; upsert the new and changed
        ones, move ``last_seen_seq`` of the unchanged ones.

        Event changes: a registration stored in another event of the race moves to the row's
        event (recorded in ``runsignup_event_changes``) unless the row's ``last_modified`` is
        older than the stored one (a stale copy, left alone). The same registration_id in two
        events of one page: the rows are taken in page order by the same rule, so the later
        one wins unless its ``last_modified`` is older.
        """
        if not rows:
            return
        tp = row.timing_partner_id
        seq = row.seq
        # (race_id, registration_id) -> (event_id, values): one row per registration
        final: dict[RegKey, tuple[int, tuple[Any, ...]]] = {}
        for (race_id, event_id, reg_id), values in rows:
            earlier = final.get((race_id, reg_id))
            if (
                earlier is not None
                and earlier[0] != event_id
                and _older(values[_LM], earlier[1][_LM])
            ):
                continue
            final[(race_id, reg_id)] = (event_id, values)
        upserts: list[tuple[Any, ...]] = []
        seen: list[RegKey] = []
        moves: list[tuple[Any, ...]] = []
        provenance_new = (seq, None if removed else seq, None, None)
        seen_events = self._seen_events
        for (race_id, reg_id), (event_id, values) in final.items():
            old_full = existing.get((race_id, reg_id))
            stats["rows"] += 1
            if old_full is None:
                if not removed:
                    seen_events.add(event_id)
                stats["new"] += 1
                if removed:
                    stats["removed"] += 1
                upserts.append((tp, race_id, event_id, reg_id, *values, *provenance_new))
                continue
            old_event, last_seen, previous_event, changed_at = old_full[:_PREFIX]
            old = old_full[_PREFIX:]
            if old_event != event_id:
                if _older(values[_LM], old[_LM]):
                    stats["unchanged"] += 1  # a stale copy in another event
                    continue
                previous_event, changed_at = old_event, _utc_seconds(row.recorded_at)
                moves.append((tp, race_id, reg_id, old_event, event_id, changed_at, seq))
            if not removed:
                seen_events.add(event_id)
            merged = _merge(values, old) if MISSING in values else values
            if merged == old and old_event == event_id:
                stats["unchanged"] += 1
                if not removed and last_seen != seq:
                    seen.append((race_id, reg_id))
                continue
            stats["changed"] += 1
            if removed and old[_REMOVED_AT] is None:
                stats["removed"] += 1
            last_seen = last_seen if removed else seq
            upserts.append(
                (tp, race_id, event_id, reg_id, *merged, seq, last_seen, previous_event, changed_at)
            )
        if upserts:
            self.conn.executemany(self._upsert_part, upserts)
            self.counters.rows_upserted += len(upserts)
        if seen:
            self._mark_seen(seq, tp, seen)
        if moves:
            self.conn.executemany(self._insert_move, moves)

    def _listing_completed(self, row: JournalRow, ev: ListingCompleted) -> None:
        tp = row.timing_partner_id
        page_seqs = sorted(set(ev.page_seqs))
        pages: dict[int, tuple[Any, ...]] = {}
        for i in range(0, len(page_seqs), _IN_CHUNK):
            chunk = page_seqs[i : i + _IN_CHUNK]
            for r in self.conn.execute(
                f"SELECT seq, ok, rows, rows_failed, num_new, num_changed, num_unchanged, "
                f"num_removed, reason FROM {PAGES.name}{self.suffix} "
                f"WHERE seq IN ({','.join('?' * len(chunk))})",
                chunk,
            ):
                pages[r[0]] = r
        problems = []
        for number, page_seq in enumerate(dict.fromkeys(ev.page_seqs), 1):
            page = pages.get(page_seq)
            if page is None:
                problems.append(f"page {number}: not projected")
            elif not page[1] or page[3]:
                problems.append(f"page {number}: {page[8]}")
        status, reason = "success", None
        if not ev.ok:
            status = "error"
            reason = ev.error_msg or (f"error {ev.error_code}" if ev.error_code else "failed")
        elif problems:
            status, reason = "error", "; ".join(problems)[:500]
        sums = [sum(p[i] or 0 for p in pages.values()) for i in range(2, 8)]
        rows, failed, new, changed, unchanged, removed = sums
        race_id = ev.race_id if ev.race_id is not None else row.race_id
        covered = ev.event_ids or [ev.event_id if ev.event_id is not None else row.event_id]
        event_id = covered[0] if len(covered) == 1 else None
        if (
            status == "success"
            and ev.endpoint == "participants"
            and ev.complete
            and page_seqs
            and tp is not None
        ):
            # Every registration of each covered event was seen on one of the listing's pages
            # (last_seen_seq >= its first page) unless it left: a listing of several events
            # retires in exactly the events it asked for.
            removed = 0
            for covered_event in covered:
                cur = self.conn.execute(
                    f"UPDATE {self._t_part} SET removed_at = ?, removed_reason = ?, "
                    "new_registration_id = NULL, source_seq = ? "
                    "WHERE timing_partner_id = ? AND race_id = ? AND event_id = ? "
                    "AND removed_at IS NULL AND (last_seen_seq IS NULL OR last_seen_seq < ?)",
                    (
                        _utc_seconds(row.recorded_at),
                        "missing_from_listing",
                        row.seq,
                        tp,
                        race_id,
                        covered_event,
                        page_seqs[0],
                    ),
                )
                removed += cur.rowcount
        self._sync_row(
            row,
            key=f"{tp}:listing:{ev.listing_id}",
            race_id=race_id,
            event_id=event_id,
            status=status,
            reason=reason,
            endpoint=ev.endpoint,
            listing_id=ev.listing_id,
            mode=ev.mode,
            complete=int(ev.complete),
            error_code=ev.error_code or None,  # 0: no code (events written before issue 9)
            http_status=ev.http_status,
            counts=(rows, rows, failed, new, changed, unchanged, removed),
            pages=ev.pages,
            requests=ev.requests,
            retries=ev.retries,
            event_ids=",".join(str(e) for e in covered) if len(covered) > 1 else None,
        )

    def _fetch_failed(self, row: JournalRow, ev: FetchFailed) -> None:
        tp = row.timing_partner_id
        race_id = ev.race_id if ev.race_id is not None else row.race_id
        if ev.endpoint == "race" and ev.error_code == 7 and tp is not None and race_id is not None:
            # RunSignUp error 7 (Permission Denied) for a race read before: access lost
            self._lose_access(row, tp, race_id, LOST_DENIED)
        reason = ev.error_msg or (
            f"HTTP {ev.http_status}" if ev.http_status is not None else "no response"
        )
        self._sync_row(
            row,
            key=f"{tp}:fetch_failed:{row.run_id}:{ev.endpoint}:{ev.path}:{ev.last_seq or row.seq}",
            race_id=race_id,
            event_id=None,
            status="error",
            reason=reason,
            endpoint=ev.endpoint,
            listing_id=None,
            mode=None,
            complete=None,
            error_code=ev.error_code or None,  # 0: an error object without a code
            http_status=ev.http_status,
            counts=(0, 0, 0, 0, 0, 0, 0),
            pages=0,
            requests=ev.attempts,
            retries=max(ev.attempts - 1, 0),
        )

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
            f"INSERT INTO {SYNC_HISTORY.name}{self.suffix} "
            f"({', '.join(SYNC_HISTORY.column_names)}) "
            f"VALUES ({', '.join('?' * len(SYNC_HISTORY.columns))}) "
            "ON CONFLICT (sync_key) DO NOTHING",
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
