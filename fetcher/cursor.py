"""Incremental cursors, read back from the journal's ``listing_completed`` events.

For one (partner, race, event, endpoint) the cursor is the ``next_cursor`` (epoch seconds: the
highest ``last_modified`` seen, capped at the server clock when the listing's first page was
served) of the latest **ok** ``ListingCompleted`` (``max_last_modified`` for older events); the
next listing asks ``modified_after_timestamp = cursor + 1 - overlap_seconds`` (RunSignUp's filter is
inclusive: with ``overlap_seconds = 0`` exactly the rows modified after the last one seen come
back; the default overlap of 10 s re-reads the last 10 s, as RunSignUp advises, and the projector
dedupes by ``registration_id``). A complete listing is due instead when none exists yet or the
latest complete one is older than ``full_every`` seconds: only complete listings reveal silent
removals.

Cursors are never stored anywhere else: they are whatever the journal proves was read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rsu.journal import Journal, ListingCompleted


@dataclass(frozen=True)
class ListingState:
    """What the journal says about one (race, event, endpoint) listing of a partner.

    ``max_last_modified``: epoch seconds from the latest ok listing (``None`` if none or it saw no
    rows); ``last_complete_at``: UTC epoch seconds when the latest complete listing was
    journaled (``None`` if never).
    """

    max_last_modified: int | None = None
    last_complete_at: float | None = None


def _epoch(recorded_at: str) -> float:
    return datetime.fromisoformat(recorded_at.replace("Z", "+00:00")).timestamp()


#: Journal rows read per query while looking back for one listing's state.
_PAGE = 64


def listing_state(
    journal: Journal, timing_partner_id: int, race_id: int, event_id: int, endpoint: str
) -> ListingState:
    """The :class:`ListingState` of one (partner, race, event, endpoint) listing (see
    :func:`race_listing_states`); ``ListingState()`` when never listed ok."""
    state = race_listing_states(journal, timing_partner_id, race_id, endpoint, [event_id])
    return state[event_id] or ListingState()


def race_listing_states(
    journal: Journal,
    timing_partner_id: int,
    race_id: int,
    endpoint: str,
    event_ids: list[int],
) -> dict[int, ListingState | None]:
    """:class:`ListingState` of each of ``event_ids`` (``None``: never listed ok), read from the
    race's ``listing_completed`` events newest first, listings of one event and of several
    (:attr:`~rsu.journal.ListingCompleted.covered_events`) alike. Stops once every event has its
    latest ok and latest complete listing, so the cost follows the race's recent listings, not
    the age of the journal."""
    wanted = set(event_ids)
    cursor: dict[int, int | None] = {}
    complete_at: dict[int, float] = {}
    before: int | None = None
    while wanted - set(complete_at):
        rows = journal.find(
            kind="listing_completed",
            timing_partner_id=timing_partner_id,
            race_id=race_id,
            before_seq=before,
            newest_first=True,
            limit=_PAGE,
        )
        for row in rows:
            ev = row.event
            if not isinstance(ev, ListingCompleted) or not ev.ok or ev.endpoint != endpoint:
                continue
            for eid in ev.covered_events:
                if eid not in wanted:
                    continue
                if eid not in cursor:
                    cursor[eid] = (
                        ev.next_cursor if ev.next_cursor is not None else ev.max_last_modified
                    )
                if ev.complete and eid not in complete_at:
                    complete_at[eid] = _epoch(row.recorded_at)
        if len(rows) < _PAGE:
            break
        before = rows[-1].seq
    return {
        eid: ListingState(cursor[eid], complete_at.get(eid)) if eid in cursor else None
        for eid in event_ids
    }


def modified_after(
    state: ListingState | None,
    *,
    now: float,
    full: bool,
    full_every: float,
    overlap_seconds: int,
) -> int | None:
    """The ``modified_after_timestamp`` (epoch seconds) for the next listing, or ``None`` for a
    complete listing: when ``full`` is forced, nothing was read yet, or the last complete listing
    is older than ``full_every`` seconds (``now`` is epoch seconds)."""
    if full or state is None or state.max_last_modified is None:
        return None
    if state.last_complete_at is None or now - state.last_complete_at > full_every:
        return None
    return max(0, state.max_last_modified + 1 - overlap_seconds)
