"""Incremental cursors, read back from the journal's ``listing_completed`` events.

For one (partner, race, event, endpoint) the cursor is the ``max_last_modified`` (epoch seconds)
of the latest **ok** ``ListingCompleted``; the next listing asks
``modified_after_timestamp = max_last_modified + 1 - overlap_seconds`` (RunSignUp's filter is
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


def load_states(
    journal: Journal, timing_partner_id: int
) -> dict[tuple[int, int, str], ListingState]:
    """Per ``(race_id, event_id, endpoint)`` the :class:`ListingState` of one partner, from all of
    its ``listing_completed`` events (one query, newest first)."""
    latest_ok: dict[tuple[int, int, str], int | None] = {}
    complete_at: dict[tuple[int, int, str], float] = {}
    for row in journal.find(
        kind="listing_completed", timing_partner_id=timing_partner_id, newest_first=True
    ):
        ev = row.event
        if not isinstance(ev, ListingCompleted) or not ev.ok:
            continue
        key = (ev.race_id, ev.event_id, ev.endpoint)
        if key not in latest_ok:
            latest_ok[key] = ev.max_last_modified
        if ev.complete and key not in complete_at:
            complete_at[key] = _epoch(row.recorded_at)
    return {
        key: ListingState(latest_ok.get(key), complete_at.get(key))
        for key in latest_ok.keys() | complete_at.keys()
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
