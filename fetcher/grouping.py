"""Several events of a race in one listing call, and the paging rule that is right either way.

RunSignUp's ``/participants`` and ``/removed-participants`` take ``event_id`` as a comma list and
answer one element per event, each row under its event (``runsignup-api.md`` 3.3, 3.4). Its docs
do not say how ``results_per_page`` and ``after_registration_id`` apply to such a call. Two
readings are possible:

* **per event**: each event's element holds up to ``results_per_page`` rows above the cursor;
* **in total**: the asked events' rows are merged in ``registration_id`` order and the page holds
  the first ``results_per_page`` of them, grouped by event.

RunSignUp may also serve fewer rows per page than ``results_per_page`` asks, so a page is
"short" only below a page the server is known to serve (``served``: the largest page, or event
element, of this listing so far, or RunSignUp's default page size; see
:class:`~rsu.fetcher.paging.PageProof`). The rule used here
is right under both readings and any such cap (:func:`next_parts`):

1. The first call asks for every event of the group with no ``after_registration_id``.
2. An empty page, or one with fewer rows in total than ``served``, ends every event (in total:
   the merged list ended; per event: each event got fewer than a page).
3. A page holding more rows than ``results_per_page`` proves the per-event reading; then an event
   with fewer rows than the largest element of the page (or ``served``) ended, and each other
   event is continued **on its own** (single-event keyset paging, which has one reading) from the
   highest ``registration_id`` the page held for it.
4. Otherwise the group is asked again, from the lowest of the highest ids of the events that may
   have been cut by a per-event cap (as many rows as the largest element, and at least
   ``served``; the page's highest id when none): in total, the merged list goes on from there
   (rows already read may come again, fewer than a page, and the projector upserts them); per
   event, each possibly cut event goes on from at most its own highest id, and the others come
   back with nothing new. Rule 2 then decides again on that page.

So a race costs one call per listing kind when nothing changed, and one more when something did
(the page that proves the end).

Groups (:func:`plan_groups`): events due a complete listing are listed together without a
cursor; the others together from the oldest of their cursors (re-reading a little more of a
newer event is harmless: the projector upserts). An event whose last complete listing is older
than half of ``full_every`` joins a complete listing that is due anyway, so the events of a race
converge on one complete listing a day instead of one per event.
"""

from __future__ import annotations

from dataclasses import dataclass

from .client import CALLER_CODE, Exchange
from .cursor import ListingState, modified_after
from .shapes import PageInfo

#: "Key authentication failed": the partner's key; every call of the partner fails alike.
KEY_REFUSED = 6


@dataclass(frozen=True)
class Group:
    """Events of one race listed in one call: ``cursor`` is the ``modified_after_timestamp``
    (epoch seconds; ``None`` for a complete listing); ``previous`` the oldest cursor the group's
    events had (epoch seconds, ``None`` when any had none)."""

    event_ids: tuple[int, ...]
    cursor: int | None
    previous: int | None


def plan_groups(
    states: dict[int, ListingState | None],
    *,
    now: float,
    full: bool,
    full_every: float,
    overlap_seconds: int,
    events_per_call: int = 0,
) -> list[Group]:
    """Split a race's events (``states``: event_id -> its listing state, in the race's order)
    into :class:`Group` s: complete first, then incremental (see module docstring), each cut
    into calls of at most ``events_per_call`` events (``0``: no limit; ``1``: one event per
    call, as before several-event calls). ``now`` is epoch seconds; ``full_every`` seconds."""
    cursors = {
        eid: modified_after(
            st, now=now, full=full, full_every=full_every, overlap_seconds=overlap_seconds
        )
        for eid, st in states.items()
    }
    complete = [e for e, c in cursors.items() if c is None]
    if complete:
        for eid, st in states.items():
            done_at = st.last_complete_at if st is not None else None
            if cursors[eid] is not None and (done_at is None or now - done_at > full_every / 2):
                complete.append(eid)
    incremental = [e for e in states if e not in complete]
    groups = []
    if complete:
        groups.append(Group(tuple(e for e in states if e in complete), None, None))
    if incremental:
        cursor = min(c for e, c in cursors.items() if e in incremental and c is not None)
        olds = [st.max_last_modified if (st := states[e]) else None for e in incremental]
        known = [p for p in olds if p is not None]
        groups.append(
            Group(tuple(incremental), cursor, min(known) if len(known) == len(olds) else None)
        )
    if events_per_call <= 0:
        return groups
    k = events_per_call
    return [
        Group(g.event_ids[i : i + k], g.cursor, g.previous)
        for g in groups
        for i in range(0, len(g.event_ids), k)
    ]


def next_parts(
    info: PageInfo, asked: tuple[int, ...], page_size: int, served: int
) -> list[tuple[tuple[int, ...], int]]:
    """What to ask after a several-event page of ``asked`` events: ``(events,
    after_registration_id)`` parts (rules 2-4 of the module docstring), empty when the page ended
    them all. ``page_size`` is the ``results_per_page`` asked; ``served`` the largest page (or
    event element) the server served earlier in this listing (``0``: none)."""
    if info.rows == 0 or info.rows < served:
        return []
    page_max = info.last_id if info.last_id is not None else 0
    # each event's element is at most one page under either reading
    bound = max([served, *(n for n, _ in info.per_event.values())])
    cut: list[tuple[int, int]] = []  # (event, its highest id): may have been cut by a cap
    for eid in asked:
        rows, last = info.per_event.get(eid, (0, None))
        if rows and rows >= bound:
            cut.append((eid, last if last is not None else page_max))
    if info.rows > page_size:
        return [((eid,), last) for eid, last in cut]  # per event (proven): the others ended
    return [(asked, min((last for _, last in cut), default=page_max))]


def splittable(failed: Exchange) -> bool:
    """True when a failed several-event call should be retried as one listing per event: the
    server answered with a RunSignUp error that may concern one event (301 "Event not found",
    7 "Permission Denied" for one event, 3 "Invalid parameters") or an HTTP 4xx other than 429.
    Not for error 6 (the key: every call fails alike), error 17 (the caller registration), a
    skipped request or a transport failure (the server is not answering)."""
    if failed.skipped:
        return False
    if failed.error_code is not None:
        return failed.error_code not in (CALLER_CODE, KEY_REFUSED)
    status = failed.http_status
    return status is not None and 400 <= status < 500 and status != 429
