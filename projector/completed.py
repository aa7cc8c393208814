"""Listing outcomes: the ``listing_completed`` and ``fetch_failed`` journal events.

A completed ``GET /Rest/race/{id}/participants`` listing gets its ``sync_history`` row (summed from
its ``projector_pages``) and, when complete, retires the registrations of its events that none of
its pages showed (``missing_from_listing``); a failed fetch gets an error row, and RunSignUp error 7
for a race detail (``GET /Rest/race/{id}``) marks the race access lost.
"""

from __future__ import annotations

from typing import Any

from rsu.journal import (
    FetchFailed,
    JournalRow,
    ListingCompleted,
)

from .history import _utc_seconds
from .participants import ParticipantsApplier, _chunks
from .races import LOST_DENIED
from .schema import (
    PAGES,
    SYNC_HISTORY,
)


class CompletedApplier(ParticipantsApplier):
    """The listing outcome part of :class:`~rsu.projector.apply.Applier`."""

    def _listing_completed(self, row: JournalRow, ev: ListingCompleted) -> None:
        tp = row.timing_partner_id
        page_seqs = sorted(set(ev.page_seqs))
        pages: dict[int, tuple[Any, ...]] = {}
        for chunk, marks in _chunks(page_seqs):
            for r in self.conn.execute(
                f"SELECT seq, ok, rows, rows_failed, num_new, num_changed, num_unchanged, "
                f"num_removed, reason FROM {PAGES.name}{self.suffix} WHERE seq IN ({marks})",
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
            removed = sum(
                self._retire(row, tp, race_id, "missing_from_listing", e, unseen_since=page_seqs[0])
                for e in covered
            )
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

    def _denied_since(self, row: JournalRow, tp: int, race_id: int) -> str | None:
        """When the race detail of ``race_id`` already answered error 7 in an earlier run and no
        detail was read since (the race is stored as lost with :data:`LOST_DENIED`, or never
        stored and denied in another run): the time (UTC) of that loss; else ``None``."""
        stored = self.conn.execute(
            f"SELECT access_lost_at, access_lost_reason FROM {self._t_races} "
            "WHERE timing_partner_id = ? AND race_id = ?",
            (tp, race_id),
        ).fetchone()
        if stored is not None:
            return str(stored[0]) if stored[1] == LOST_DENIED and stored[0] else None
        earlier = self.conn.execute(
            f"SELECT MIN(sync_time) FROM {SYNC_HISTORY.name}{self.suffix} "
            "WHERE timing_partner_id = ? AND race_id = ? AND endpoint = 'race' "
            "AND error_code = 7 AND COALESCE(run_id, '') <> ?",
            (tp, race_id, row.run_id or ""),
        ).fetchone()
        return _utc_seconds(earlier[0]) if earlier and earlier[0] else None

    def _fetch_failed(self, row: JournalRow, ev: FetchFailed) -> None:
        tp = row.timing_partner_id
        race_id = ev.race_id if ev.race_id is not None else row.race_id
        reason = ev.error_msg or (
            f"HTTP {ev.http_status}" if ev.http_status is not None else "no response"
        )
        status = "error"
        if ev.endpoint == "race" and ev.error_code == 7 and tp is not None and race_id is not None:
            since = self._denied_since(row, tp, race_id)
            if since is not None:  # denied again: known lost, a warning (rsu.fetcher.denials)
                status = "warning"
                reason = f"denied again: {reason} (access lost since {since})"
            # RunSignUp error 7 (Permission Denied) for a race read before: access lost
            self._lose_access(row, tp, race_id, LOST_DENIED)
        self._sync_row(
            row,
            key=f"{tp}:fetch_failed:{row.run_id}:{ev.endpoint}:{ev.path}:{ev.last_seq or row.seq}",
            race_id=race_id,
            event_id=None,
            status=status,
            reason=reason,
            endpoint=ev.endpoint,
            error_code=ev.error_code or None,  # 0: an error object without a code
            http_status=ev.http_status,
            requests=ev.attempts,
            retries=max(ev.attempts - 1, 0),
        )
