"""Races and race bodies: ``GET /Rest/races`` and ``GET /Rest/race/{id}``.

Upserts ``runsignup_races`` and ``runsignup_events``; tracks the pages of a partner's races
listing (``only_partner_races=T``) so that a complete listing marks the stored races it no longer
contains access lost; a race detail removes the events it no longer lists (``event_removed``).
Retiring and restoring a race's or an event's registrations lives here too (also used for
RunSignUp error 7, see :mod:`.completed`).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import msgspec

from rsu.journal import (
    JournalRow,
    ResponseReceived,
)

from . import normalize as n
from .history import ApplierBase, BadShape, BodyRejected, _decode, _merge, _utc_seconds
from .normalize import MISSING
from .records import (
    EVENT_DATA_COLUMNS,
    RACE_DATA_COLUMNS,
    event_values,
    race_values,
)
from .schema import (
    RACE_LISTING_PAGES,
)

#: Races a ``GET /Rest/races`` page is taken to hold whatever the server caps (RunSignUp's
#: documented default ``results_per_page``): a page of fewer races than that ends a listing.
RACES_SERVED_AT_LEAST = 50
#: ``runsignup_races.access_lost_reason``: a complete race listing of the partner no longer
#: contains the race / the race detail answered RunSignUp error 7 (Permission Denied).
LOST_UNLISTED = "missing_from_race_listing"
LOST_DENIED = "permission_denied"
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
#: What a race detail's omission of a stored event proves (:func:`_detail_proof`).
PROVES_ALL, PROVES_FUTURE, PROVES_NONE = "all", "future", "none"
#: ``GET /Rest/race/{id}`` parameters that restrict its events; ``future_events_only=T`` leaves
#: out past events, the others all but the most recent ones / one race day's.
_RESTRICTING = ("most_recent_events_only", "race_event_days_id")
#: With ``future_events_only=T`` only an event starting this long (seconds) after the answer
#: can be missing for being removed: RunSignUp's "future" is its own (by date, in its zone).
FUTURE_MARGIN_S = 86400


def _true(value: str | None) -> bool:
    """A RunSignUp flag parameter that is set: anything but absent, empty, ``F``, ``0``,
    ``false`` (an unknown spelling counts as set: it may restrict the answer)."""
    return value is not None and value.strip().lower() not in ("", "f", "0", "false")


def _detail_proof(query: dict[str, str]) -> str:
    """Which stored events a race detail (``GET /Rest/race/{id}``) fetched with ``query`` proves
    removed by not listing them: :data:`PROVES_ALL` by default ("all events, including past
    events"), :data:`PROVES_FUTURE` with ``future_events_only=T`` (the past ones are left out),
    :data:`PROVES_NONE` with ``most_recent_events_only=T`` or ``race_event_days_id``."""
    lowered = {k.lower(): v for k, v in query.items()}
    if any(k in lowered and (k == "race_event_days_id" or _true(lowered[k])) for k in _RESTRICTING):
        return PROVES_NONE
    return PROVES_FUTURE if _true(lowered.get("future_events_only")) else PROVES_ALL


def _utc_after(recorded_at: str, seconds: int) -> str | None:
    """The journal time ``recorded_at`` plus ``seconds``, as ``YYYY-MM-DDTHH:MM:SSZ``; ``None``
    when ``recorded_at`` is unreadable (an imported journal's)."""
    try:
        at = datetime.strptime(_utc_seconds(recorded_at), "%Y-%m-%dT%H:%M:%SZ")
        return (at + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError):
        return None


def _without_events(endpoint: str, race: Any) -> bool:
    """A race detail (``race`` endpoint) whose ``events`` are absent or empty."""
    return endpoint == "race" and isinstance(race, dict) and race.get("events") in (None, [], {})


_START_UTC = EVENT_DATA_COLUMNS.index("start_time_utc")


def _race_id(race: Any) -> int | None:
    """The ``race_id`` of one race item of a races listing, or ``None`` when unreadable."""
    try:
        return n.integer(race.get("race_id")) if isinstance(race, dict) else None
    except (ValueError, TypeError):
        return None


def _json_ids(ids: list[int]) -> str:
    return msgspec.json.encode(ids).decode()


class RacesApplier(ApplierBase):
    """The races / race part of :class:`~rsu.projector.apply.Applier`."""

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
        proof = _detail_proof(ev.query) if detail else PROVES_NONE
        for i, race in enumerate(races):
            try:
                self._race(row, tp, race, detail, proof)  # type: ignore[arg-type]
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

    def _race(self, row: JournalRow, tp: int, race: Any, detail: bool, proof: str) -> None:
        """Upsert one race (and its events); a race seen again is accessible again: a race
        detail (``detail``) ends any access loss, a races listing one it caused itself.
        ``proof``: which stored events the race's omission removes (:func:`_detail_proof`)."""
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
            self._events(row, tp, race_id, tz, events_raw, proof)

    def _events(
        self,
        row: JournalRow,
        tp: int,
        race_id: int,
        tz: str | None,
        events: list[Any],
        proof: str,
    ) -> None:
        """Upsert the listed events (a listed event is never removed); a race detail
        (``GET /Rest/race/{id}``, every event of the race: ``proof`` :data:`PROVES_ALL`) removes
        the stored events it no longer lists, with their registrations (``removed_reason =
        'event_removed'``); one fetched with ``future_events_only=T`` (:data:`PROVES_FUTURE`) only
        those starting :data:`FUTURE_MARGIN_S` or more after the answer; a races listing or a
        detail restricted otherwise (:data:`PROVES_NONE`) none."""
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
        if proof == PROVES_NONE:
            return
        at = _utc_seconds(row.recorded_at)
        future = _utc_after(row.recorded_at, FUTURE_MARGIN_S)
        for event_id, (data, removed_at) in existing.items():
            if event_id in listed or removed_at is not None:
                continue
            start = data[_START_UTC]
            if proof == PROVES_FUTURE and not (
                future and isinstance(start, str) and start >= future
            ):
                continue  # a past (or undated) event: left out, not removed
            self.conn.execute(
                f"UPDATE {self._t_events} SET removed_at = ?, source_seq = ? "
                "WHERE timing_partner_id = ? AND race_id = ? AND event_id = ?",
                (at, row.seq, tp, race_id, event_id),
            )
            self.counters.rows_upserted += 1
            self._retire(row, tp, race_id, "event_removed", event_id)

    # -- access lost, event removed: retire and restore a race's or an event's registrations ---

    def _retire(
        self,
        row: JournalRow,
        tp: int,
        race_id: int,
        reason: str,
        event_id: int | None = None,
        *,
        unseen_since: int | None = None,
    ) -> int:
        """Mark the active registrations of a race (or of one of its events) removed with
        ``reason`` at the journal row's time; with ``unseen_since``, only those no page from that
        journal seq on has seen (``last_seen_seq``); returns how many."""
        sql = (
            f"UPDATE {self._t_part} SET removed_at = ?, removed_reason = ?, "
            "new_registration_id = NULL, source_seq = ? "
            "WHERE timing_partner_id = ? AND race_id = ? AND removed_at IS NULL"
        )
        params: tuple[Any, ...] = (_utc_seconds(row.recorded_at), reason, row.seq, tp, race_id)
        if event_id is not None:
            sql += " AND event_id = ?"
            params += (event_id,)
        if unseen_since is not None:
            sql += " AND (last_seen_seq IS NULL OR last_seen_seq < ?)"
            params += (unseen_since,)
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
                self._upsert_listing_page,
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
