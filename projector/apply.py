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
import sqlite3
from dataclasses import dataclass
from typing import Any

import msgspec
from msgspec import UNSET

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
from .schema import EVENTS, PAGES, PARTICIPANTS, PROJECTION_ERRORS, RACES, SYNC_HISTORY, Table

_decode = msgspec.json.decode
#: ``(race_id, event_id, registration_id)`` of a registration (the timing partner is the row's).
Key = tuple[int, int, int]
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


def _is_event_fault(exc: Exception) -> bool:
    """True when ``exc`` raised while applying one event is that event's fault (its data does not
    fit), false for failures of the database or the journal, which must stop the run."""
    if isinstance(exc, JournalError | MemoryError):
        return False
    if isinstance(exc, sqlite3.DatabaseError):
        # a value the database refused (NOT NULL, a type); anything else is the database's
        return isinstance(exc, sqlite3.IntegrityError | sqlite3.DataError | sqlite3.InterfaceError)
    return True


def _without_events(endpoint: str, race: Any) -> bool:
    """A race detail (``race`` endpoint) whose ``events`` are absent or empty."""
    return endpoint == "race" and isinstance(race, dict) and race.get("events") in (None, [], {})


def _utc_seconds(recorded_at: str) -> str:
    """A journal ``recorded_at`` (``...T..:..:..mmmZ``) trimmed to whole seconds, ``...Z``."""
    return recorded_at[:19] + "Z" if len(recorded_at) >= 19 else recorded_at


class Applier:
    """Applies journal events to the projection tables named ``<table><suffix>`` on ``conn``."""

    def __init__(self, conn: sqlite3.Connection, journal: Journal, suffix: str = "") -> None:
        self.conn = conn
        self.journal = journal
        self.suffix = suffix
        self.counters = Counters()
        s = suffix
        self._t_part = PARTICIPANTS.name + s
        self._t_events = EVENTS.name + s
        self._t_races = RACES.name + s
        self._upsert_part = _upsert_sql(PARTICIPANTS, s)
        self._upsert_events = _upsert_sql(EVENTS, s)
        self._upsert_races = _upsert_sql(RACES, s)
        self._part_select = (
            f"SELECT registration_id, last_seen_seq, {', '.join(PARTICIPANT_DATA_COLUMNS)} "
            f"FROM {self._t_part} WHERE timing_partner_id = ? AND race_id = ? AND event_id = ? "
            "AND registration_id IN "
        )
        self._seen_update = (
            f"UPDATE {self._t_part} SET last_seen_seq = ? WHERE timing_partner_id = ? "
            "AND race_id = ? AND event_id = ? AND registration_id = ?"
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
            self._page_row(row.seq, ev.listing_id, 0, {}, reason)
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
            mode=None,
            complete=None,
            error_code=None,
            http_status=None,
            counts=(0, 0, 0, 0, 0, 0, 0),
            pages=0,
            requests=0,
            retries=0,
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
        elif isinstance(ev, FetchFailed) and ev.endpoint in _FAILED_FETCH_ENDPOINTS:
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
        except BodyRejected:
            return
        try:
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
        except (BadShape, ValueError) as exc:
            self._error(row, -1, str(exc), ev.endpoint)
            self._projection_failed(row, ev.endpoint, str(exc)[:500])
            return
        failed: list[str] = []
        for i, race in enumerate(races):
            try:
                self._race(row, tp, race)  # type: ignore[arg-type]
            except (BadShape, ValueError, TypeError) as exc:
                self._error(row, i, str(exc), ev.endpoint)
                failed.append(str(exc))
            else:
                if _without_events(ev.endpoint, race):
                    self._race_without_events(row, race)
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
            listing_id=None,
            mode=None,
            complete=None,
            error_code=None,
            http_status=None,
            counts=(0, 0, 0, 0, 0, 0, 0),
            pages=0,
            requests=0,
            retries=0,
        )

    def _race(self, row: JournalRow, tp: int, race: Any) -> None:
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
        old = self.conn.execute(
            f"SELECT {', '.join(RACE_DATA_COLUMNS)} FROM {self._t_races} "
            "WHERE timing_partner_id = ? AND race_id = ?",
            (tp, race_id),
        ).fetchone()
        merged = _merge(values, old)
        if merged != old:
            self.conn.execute(self._upsert_races, (tp, race_id, *merged, row.seq))
            self.counters.rows_upserted += 1
        if isinstance(events_raw, list) and events_raw:
            tz = merged[RACE_DATA_COLUMNS.index("timezone")]
            self._events(row, tp, race_id, tz, events_raw)

    def _events(
        self, row: JournalRow, tp: int, race_id: int, tz: str | None, events: list[Any]
    ) -> None:
        existing = {
            r[0]: tuple(r[1:])
            for r in self.conn.execute(
                f"SELECT event_id, {', '.join(EVENT_DATA_COLUMNS)} FROM {self._t_events} "
                "WHERE timing_partner_id = ? AND race_id = ?",
                (tp, race_id),
            )
        }
        for e in events:
            e = n.obj(e)
            event_id = n.integer(e.get("event_id"))
            if event_id is None:
                raise BadShape(f"race {race_id}: event without event_id")
            old = existing.get(event_id)
            merged = _merge(event_values(e, tz), old)
            if merged != old:
                self.conn.execute(self._upsert_events, (tp, race_id, event_id, *merged, row.seq))
                existing[event_id] = merged
                self.counters.rows_upserted += 1

    # -- participants / removed participants pages -------------------------------------------

    def _participants_page(self, row: JournalRow, ev: ResponseReceived) -> None:
        removed = ev.endpoint == "removed_participants"
        stats = {"rows": 0, "failed": 0, "new": 0, "changed": 0, "unchanged": 0, "removed": 0}
        ok, reason = 1, None
        try:
            raw = self._raw_body(row, ev)
            typed_page = None if removed else self._typed_page(row, ev, raw)
            if typed_page is not None:
                self._store(row, typed_page[0], typed_page[1], removed, stats)
            else:
                body = self._decode_body(raw)
                rows = self._page_rows(row, ev, body, removed, stats)
                self._write_rows(row, ev, rows, removed, stats)
        except BodyRejected as exc:
            ok, reason = 0, str(exc)
        except BadShape as exc:
            ok, reason = 0, str(exc)
            self._error(row, -1, str(exc), ev.endpoint)
        if stats["failed"] and reason is None:
            reason = f"{stats['failed']} rows could not be projected"
        self._page_row(row.seq, ev.listing_id, ok, stats, reason)

    def _page_row(
        self, seq: int, listing_id: str | None, ok: int, stats: dict[str, int], reason: str | None
    ) -> None:
        """The ``projector_pages`` row of one listing page (kept once per seq)."""
        self.conn.execute(
            f"INSERT INTO {PAGES.name}{self.suffix} (seq, listing_id, ok, rows, rows_failed, "
            "num_new, num_changed, num_unchanged, num_removed, reason) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (seq) DO NOTHING",
            (
                seq,
                listing_id,
                ok,
                *(
                    stats.get(k, 0)
                    for k in ("rows", "failed", "new", "changed", "unchanged", "removed")
                ),
                reason,
            ),
        )

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

    def _existing(self, tp: int, keys: Any) -> dict[Key, tuple[Any, ...]]:
        """Stored ``(last_seen_seq, *data columns)`` of these registrations, one query per
        (race, event) and :data:`_IN_CHUNK` ids."""
        by_scope: dict[tuple[int, int], list[int]] = {}
        for race_id, event_id, reg_id in keys:
            by_scope.setdefault((race_id, event_id), []).append(reg_id)
        existing: dict[Key, tuple[Any, ...]] = {}
        for (race_id, event_id), reg_ids in by_scope.items():
            for i in range(0, len(reg_ids), _IN_CHUNK):
                chunk = reg_ids[i : i + _IN_CHUNK]
                sql = self._part_select + f"({','.join('?' * len(chunk))})"
                for r in self.conn.execute(sql, (tp, race_id, event_id, *chunk)):
                    existing[(race_id, event_id, r[0])] = r[1:]
        return existing

    def _typed_page(
        self, row: JournalRow, ev: ResponseReceived, raw: bytes
    ) -> tuple[dict[Key, tuple[Any, ...]], list[tuple[Key, tuple[Any, ...]]]] | None:
        """A ``/participants`` page of the common shape, decoded to Structs and normalised by
        :mod:`rsu.projector.typed`: ``(stored rows, [(key, values)])``. ``None`` when the page
        has anything unusual: the generic path then projects it (and records its errors)."""
        tp = row.timing_partner_id
        race_id = row.race_id if row.race_id is not None else ev.race_id
        if tp is None or race_id is None:
            return None
        elements = typed.decode_page(raw)
        if elements is None:
            return None
        regs: dict[Key, typed.Registration] = {}
        for element in elements:
            e = element.event
            el_event = e.event_id if e.__class__ is typed.ElementEvent else None  # type: ignore[union-attr]
            page_regs = element.participants
            if page_regs is None or page_regs is UNSET:
                continue
            for reg in page_regs:  # type: ignore[union-attr]
                event_id = reg.event_id
                if event_id is UNSET:
                    if el_event.__class__ is not int:
                        return None
                    event_id = el_event
                regs[(race_id, event_id, reg.registration_id)] = reg  # type: ignore[assignment]
        existing = self._existing(tp, regs.keys())
        out: list[tuple[Key, tuple[Any, ...]]] = []
        typed_values = typed.typed_values
        try:
            for key, reg in regs.items():
                out.append((key, typed_values(reg, key in existing)))
        except Exception:  # any doubt: the generic path decides (and records the error)
            return None
        return existing, out

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
            old_full = existing.get(key)
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
        existing: dict[Key, tuple[Any, ...]],
        rows: list[tuple[Key, tuple[Any, ...]]],
        removed: bool,
        stats: dict[str, int],
    ) -> None:
        """Diff normalised registrations against the stored rows; upsert the new and changed
        ones, move ``last_seen_seq`` of the unchanged ones."""
        if not rows:
            return
        tp = row.timing_partner_id
        seq = row.seq
        upserts: list[tuple[Any, ...]] = []
        seen: list[tuple[Any, ...]] = []
        removed_ix = PARTICIPANT_DATA_COLUMNS.index("removed_at")
        provenance_new = (seq, None if removed else seq)
        for key, values in rows:
            old_full = existing.get(key)
            stats["rows"] += 1
            if old_full is None:
                stats["new"] += 1
                if removed:
                    stats["removed"] += 1
                upserts.append((tp, *key, *values, *provenance_new))
                continue
            old = old_full[1:]
            merged = _merge(values, old) if MISSING in values else values
            if merged == old:
                stats["unchanged"] += 1
                if not removed and old_full[0] != seq:
                    seen.append((seq, tp, *key))
                continue
            stats["changed"] += 1
            if removed and old[removed_ix] is None:
                stats["removed"] += 1
            last_seen = old_full[0] if removed else seq
            upserts.append((tp, *key, *merged, seq, last_seen))
        if upserts:
            self.conn.executemany(self._upsert_part, upserts)
            self.counters.rows_upserted += len(upserts)
        if seen:
            self.conn.executemany(self._seen_update, seen)

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
        reason = ev.error_msg or (
            f"HTTP {ev.http_status}" if ev.http_status is not None else "no response"
        )
        self._sync_row(
            row,
            key=f"{tp}:fetch_failed:{row.run_id}:{ev.endpoint}:{ev.path}:{ev.last_seq or row.seq}",
            race_id=ev.race_id if ev.race_id is not None else row.race_id,
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
        listing_id: str | None,
        mode: str | None,
        complete: int | None,
        error_code: int | None,
        http_status: int | None,
        counts: tuple[int, int, int, int, int, int, int],
        pages: int,
        requests: int,
        retries: int,
        event_ids: str | None = None,
    ) -> None:
        """One ``sync_history`` row (kept once per ``key``); ``event_ids``: the comma list of
        events a listing of several events covered (``event_id`` is then ``NULL``)."""
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
