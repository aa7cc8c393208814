"""Participants pages: ``GET /Rest/race/{id}/participants`` and
``GET /Rest/race/{id}/removed-participants``.

Reads one page (the typed fast path of :mod:`.typed`, the generic path of :mod:`.records`, or a
page a worker process prepared, :mod:`.pipeline`), merges it with the stored rows of
``runsignup_participants`` (one row per registration and race; ``last_modified`` decides), moves
a registration seen in another event of its race (``runsignup_event_changes``), records the page
in ``projector_pages`` and skips pages seen before unchanged (the re-seen shortcuts).
"""

from __future__ import annotations

import dataclasses
import re
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from rsu.journal import (
    JournalRow,
    ResponseReceived,
)

from . import normalize as n
from . import typed
from .history import _PART_PREFIX, BadShape, BodyRejected, _insert_sql, _merge, _utc_seconds
from .normalize import MISSING
from .pipeline import NOT_PREFETCHED, Prepared, race_id_of, with_constants
from .races import RacesApplier
from .records import (
    PARTICIPANT_DATA_COLUMNS,
    active_participant_values,
    all_null,
    participant_values,
)
from .schema import PAGES, PARTICIPANTS
from .typed import RawRow

#: ``(race_id, event_id, registration_id)`` of a registration (the timing partner is the row's).
Key = tuple[int, int, int]
#: ``(race_id, registration_id)``: the key of a registration's one row (with the timing partner).
RegKey = tuple[int, int]
_PREFIX = len(_PART_PREFIX)
_LM = PARTICIPANT_DATA_COLUMNS.index("last_modified")
_REMOVED_AT = PARTICIPANT_DATA_COLUMNS.index("removed_at")
_KEY = b'"registration_id":'
_REG_ID = re.compile(rb'"registration_id":\s*(\d{1,18})')
#: Earlier pages whose raw rows :meth:`Applier._old_rows` keeps.
_OLD_PAGES = 8
#: Registration ids per ``IN (...)`` look-up.
_IN_CHUNK = 2000
_PARTICIPANT_ENDPOINTS = ("participants", "removed_participants")
_I64_MIN, _I64_MAX = n.INT64_MIN, n.INT64_MAX


def _chunks(ids: Sequence[int]) -> Iterator[tuple[Sequence[int], str]]:
    """``ids`` in slices of :data:`_IN_CHUNK`, each with its ``?,?,...`` placeholders."""
    for i in range(0, len(ids), _IN_CHUNK):
        chunk = ids[i : i + _IN_CHUNK]
        yield chunk, ",".join("?" * len(chunk))


#: Columns of a new registration that are the same for a whole page (as SQL: ``{tp}``...).
_PAGE_CONSTANTS = {
    "timing_partner_id": "{tp}",
    "race_id": "{race_id}",
    "removed_at": "NULL",
    "removed_reason": "NULL",
    "new_registration_id": "NULL",
    "source_seq": "{seq}",
    "last_seen_seq": "{seq}",
    "previous_event_id": "NULL",
    "event_changed_at": "NULL",
}
_NEW_ROW_SQL: dict[tuple[str, tuple[int, ...]], str] = {}
_SQL_CACHE = 256


def _new_rows_sql(
    table: str, tp: int, race_id: int, seq: int, constants: dict[int, int | None]
) -> str:
    """The upsert into ``table`` (``runsignup_participants`` + suffix) of a page of new
    registrations in the short form of :func:`rsu.projector.pipeline._new_rows`: the columns
    alike for every page (:data:`_PAGE_CONSTANTS`) and the page's own ``constants`` (by their
    position in the short form) are SQL constants, ``NULL`` or integers (of the journal row or
    within BIGINT, through ``int``), so SQLite binds fewer values per row (a sixth fewer: 11 %
    of the upsert's time; the page's own constants often a third more)."""
    key = (table, tuple(constants))
    template = _NEW_ROW_SQL.get(key)
    if template is None:
        suffix = table[len(PARTICIPANTS.name) :]
        values = [
            _PAGE_CONSTANTS.get(c, f"{{c{i - 2}}}" if i - 2 in constants else "?")
            for i, c in enumerate(PARTICIPANTS.column_names)
        ]
        template = _insert_sql(PARTICIPANTS, suffix, values=values)
        if len(_NEW_ROW_SQL) < _SQL_CACHE:
            _NEW_ROW_SQL[key] = template
    return template.format(
        tp=int(tp),
        race_id=int(race_id),
        seq=int(seq),
        **{f"c{p}": "NULL" if v is None else int(v) for p, v in constants.items()},
    )


def _older(new_lm: Any, old_lm: Any) -> bool:
    """Whether a row's ``last_modified`` (epoch seconds) is older than the stored one (unknown,
    MISSING or ``None`` on either side: not older, so the later journal event wins)."""
    return new_lm.__class__ is int and old_lm.__class__ is int and new_lm < old_lm


class ParticipantsApplier(RacesApplier):
    """The participants pages part of :class:`~rsu.projector.apply.Applier`."""

    def _participants_page(self, row: JournalRow, ev: ResponseReceived) -> None:
        removed = ev.endpoint == "removed_participants"
        stats = {"rows": 0, "failed": 0, "new": 0, "changed": 0, "unchanged": 0, "removed": 0}
        ok, reason = 1, None
        self._seen_events = set()
        prepared = NOT_PREFETCHED
        if not removed and self.prefetch is not None:
            prepared = self.prefetch.prepared(row)
            if prepared is None:  # the worker's typed path did not apply: decide as without it
                prepared = NOT_PREFETCHED
            if prepared is not NOT_PREFETCHED and prepared[1].__class__ is dict:
                if self._new_page(row, ev, prepared, stats):
                    self._page_row(row, ev, ok, stats, reason)
                    return
                prepared = NOT_PREFETCHED  # some are stored: the main process decodes the page
        try:
            if not removed and self.shortcuts and self._same_page(row, ev, stats):
                self._page_row(row, ev, ok, stats, reason)
                return
            raw = self._raw_body(row, ev)
            if not removed and self.shortcuts and self._seen_rows(row, ev, raw, stats):
                self._page_row(row, ev, ok, stats, reason)
                return
            self._page_body(row, ev, raw, removed, stats, prepared)
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
        prepared: Any = NOT_PREFETCHED,
    ) -> None:
        """Project every registration of one page body, row by row (typed path when it fits);
        ``prepared``: the rows the worker prepared of ``raw``, the journal row's own body, with
        their ``MISSING`` positions (:func:`rsu.projector.pipeline.page_values`)."""
        if prepared is not NOT_PREFETCHED:
            self._prefetched_page(row, ev, prepared, stats)
            return
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
        race_id = race_id_of(row, ev)
        if tp is None or race_id is None or not self._seen_before(tp, race_id, raw):
            return False
        rows = typed.raw_rows(raw)
        if not rows or len({r[0] for r in rows}) != len(rows):
            return False  # another shape, or a registration twice: the general rules decide
        stored: dict[int, tuple[Any, ...]] = {}
        ids = [r[0] for r in rows]
        for chunk, marks in _chunks(ids):
            for r in self.conn.execute(
                f"SELECT registration_id, event_id, last_seen_seq, source_seq FROM {self._t_part} "
                "WHERE timing_partner_id = ? AND race_id = ? AND removed_at IS NULL "
                f"AND registration_id IN ({marks})",
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
            for chunk, marks in _chunks(ids):
                self.conn.execute(
                    f"UPDATE {self._t_part} SET last_seen_seq = ? WHERE timing_partner_id = ? "
                    f"AND race_id = ? AND registration_id IN ({marks})",
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
            and race_id_of(old, ev) == race_id
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
            self._insert_page,
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
                race_id_of(row, ev),
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
        race_id = race_id_of(row, ev)
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
        race_id = race_id_of(row, ev)
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
            for chunk, marks in _chunks(sorted(id_set)):
                for r in self.conn.execute(f"{self._part_select}({marks})", (tp, race_id, *chunk)):
                    existing[(race_id, r[0])] = r[1:]
        return existing

    def _typed_page(
        self, row: JournalRow, ev: ResponseReceived, raw: bytes
    ) -> tuple[dict[RegKey, tuple[Any, ...]], list[tuple[Key, tuple[Any, ...]]]] | None:
        """A ``/participants`` page of the common shape, decoded to Structs and normalised by
        :mod:`rsu.projector.typed`: ``(stored rows, [(key, values)])``. ``None`` when the page
        has anything unusual: the generic path then projects it (and records its errors)."""
        tp = row.timing_partner_id
        race_id = race_id_of(row, ev)
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

    def _new_page(
        self, row: JournalRow, ev: ResponseReceived, page: Prepared, stats: dict[str, int]
    ) -> bool:
        """Upsert a ``/participants`` page of new-registration rows the worker prepared
        (:func:`rsu.projector.pipeline._new_rows`) as they are, when none of its registrations is
        stored and none is in it twice (what :meth:`_store` would then do); else return
        ``False`` having written nothing (the caller projects the page from its body)."""
        tp: Any = row.timing_partner_id  # set: the worker prepares only such pages
        race_id: Any = race_id_of(row, ev)
        rows, page_constants, events, twice = page
        constants: dict[int, Any] = page_constants  # type: ignore[assignment]
        if twice or not rows:
            return False
        ids = [r[1] for r in rows]
        if (  # one range probe; the exact look-up only when it finds a registration
            self.conn.execute(self._any_between, (tp, race_id, min(ids), max(ids))).fetchone()
            and self._existing(tp, ((race_id, r[0], r[1]) for r in rows))
        ):
            return False
        if isinstance(self.conn, sqlite3.Connection) and all(  # (the worker checked constants)
            v.__class__ is int and _I64_MIN <= v <= _I64_MAX for v in (tp, race_id, row.seq)
        ):
            sql = _new_rows_sql(self._t_part, tp, race_id, row.seq, constants)
            self.conn.executemany(sql, rows)
        else:  # PostgreSQL (its target copies whole rows in), or an id a constant cannot be
            tail = (*typed.ACTIVE, row.seq, row.seq, None, None)
            self.conn.executemany(
                self._upsert_part,
                [(tp, race_id, *r, *tail) for r in with_constants(rows, constants)],
            )
        self.counters.rows_upserted += len(rows)
        stats["rows"] += len(rows)
        stats["new"] += len(rows)
        self._seen_events.update(events)
        return True

    def _prefetched_page(
        self, row: JournalRow, ev: ResponseReceived, page: Prepared, stats: dict[str, int]
    ) -> None:
        """Store a ``/participants`` page the worker prepared with the ``MISSING`` positions
        of its rows (:mod:`rsu.projector.pipeline`) as :meth:`_typed_page` and :meth:`_store`
        would: ``MISSING`` put back for the stored registrations."""
        tp = row.timing_partner_id
        race_id: Any = race_id_of(row, ev)  # set: the worker prepares only such pages
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
        positions: list[tuple[int, ...] | None] = missing  # type: ignore[assignment]
        for r, idx in zip(rows, positions, strict=True):
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
