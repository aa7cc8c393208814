"""Several events per listing call: the paging rule is right under both readings of RunSignUp's
paging (per event, in total), checked against a model server of each reading."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rsu.fetcher.client import Exchange
from rsu.fetcher.cursor import ListingState
from rsu.fetcher.grouping import Group, next_parts, plan_groups, splittable
from rsu.fetcher.paging import PageProof
from rsu.fetcher.shapes import PageInfo


def _page(per_event: dict[int, list[int]]) -> PageInfo:
    ids = [r for rows in per_event.values() for r in rows]
    return PageInfo(
        rows=len(ids),
        last_id=max(ids) if ids else None,
        per_event={e: (len(r), max(r) if r else None) for e, r in per_event.items()},
    )


def _serve(
    data: dict[int, list[int]],
    events: tuple[int, ...],
    after: int,
    n: int,
    reading: str,
    cap: int | None = None,
) -> dict[int, list[int]]:
    """A model of RunSignUp answering ``event_id=events&after_registration_id=after`` with
    ``results_per_page=n`` under one reading of how a several-event call is paged, serving at
    most ``cap`` rows a page (or element) whatever ``n`` asks."""
    n = min(n, cap or n)
    above = {e: sorted(r for r in data[e] if r > after) for e in events}
    if reading == "per_event":
        return {e: rows[:n] for e, rows in above.items()}
    merged = sorted((r, e) for e, rows in above.items() for r in rows)[:n]
    return {e: [r for r, ev in merged if ev == e] for e in events}


def _walk(
    data: dict[int, list[int]], n: int, reading: str, cap: int | None = None
) -> tuple[dict[int, set[int]], int]:
    """The fetcher's rule (first call for all events, then :func:`next_parts`, keyset pages per
    event ending on :class:`PageProof`) against the model; returns the rows seen per event and
    the calls made."""
    events = tuple(data)
    seen: dict[int, set[int]] = {e: set() for e in events}
    calls = 0
    proof = PageProof()
    parts: list[tuple[tuple[int, ...], int]] = [(events, 0)]
    while parts:
        asked, after = parts.pop(0)
        while True:
            calls += 1
            got = _serve(data, asked, after, n, reading, cap)
            for e, rows in got.items():
                seen[e].update(rows)
            info = _page(got)
            if len(asked) > 1:
                parts.extend(next_parts(info, asked, n, proof.served))
                proof.observe(max((k for k, _ in info.per_event.values()), default=0))
                break
            if proof.ends(info.rows) or info.last_id is None:
                break
            after = info.last_id
    return seen, calls


@settings(max_examples=300, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 30), min_size=2, max_size=4),
    n=st.integers(1, 12),
    cap=st.one_of(st.none(), st.integers(1, 12)),
    reading=st.sampled_from(["per_event", "total"]),
    seed=st.randoms(use_true_random=False),
)
def test_every_row_is_read_under_both_readings_and_any_cap(sizes, n, cap, reading, seed) -> None:
    ids = seed.sample(range(1, 1000), sum(sizes))
    data, k = {}, 0
    for i, size in enumerate(sizes):
        data[100 + i] = ids[k : k + size]
        k += size
    seen, calls = _walk(data, n, reading, cap)
    assert seen == {e: set(rows) for e, rows in data.items()}
    if sum(sizes) == 0:
        assert calls == 1  # one call for the whole race when nothing is there
    # a page that proves nothing costs one more call, and each page of it re-reads less than a
    # page: at most about twice the pages the rows fill, and one call to prove the end
    page = min(n, cap or n)
    assert calls <= 2 * (sum(sizes) // page + len(sizes)) + 2


def test_short_page_ends_every_event() -> None:
    info = _page({1: [5, 9], 2: [7]})
    assert next_parts(info, (1, 2), 4, served=4) == []
    # nothing served yet: event 1 may be a capped page; the group goes on from its highest id
    assert next_parts(info, (1, 2), 4, served=0) == [((1, 2), 9)]
    assert next_parts(_page({1: [5], 2: [7], 3: [8]}), (1, 2, 3), 9, 0) == [((1, 2, 3), 5)]


def test_full_page_in_total_reading_continues_from_the_lowest_possibly_cut_event() -> None:
    # in total: the 4 lowest ids of events 1, 2 and 3 (3 had none below 8)
    info = _page({1: [2, 3], 2: [5, 8], 3: []})
    assert next_parts(info, (1, 2, 3), 4, 0) == [((1, 2, 3), 3)]
    assert next_parts(_page({1: [2], 2: [5, 8], 3: []}), (1, 2, 3), 3, 0) == [((1, 2, 3), 8)]
    # a page of 2 known to be served: no event is cut, the merged list goes on from the top
    assert next_parts(info, (1, 2, 3), 4, 3) == [((1, 2, 3), 8)]


def test_more_rows_than_a_page_proves_per_event_paging() -> None:
    # 4 + 2 rows on a page of 4: per event; only event 1 filled its page
    info = _page({1: [2, 3, 4, 6], 2: [5, 8]})
    assert next_parts(info, (1, 2), 4, 0) == [((1,), 6)]


def test_plan_groups_complete_and_incremental() -> None:
    now = 1_000_000.0
    fresh = ListingState(max_last_modified=500, last_complete_at=now - 60)
    newer = ListingState(max_last_modified=900, last_complete_at=now - 120)
    kw = {"now": now, "full": False, "full_every": 3600.0, "overlap_seconds": 10}
    # both incremental: one call from the older cursor
    assert plan_groups({1: fresh, 2: newer}, **kw) == [Group((1, 2), 491, 500)]
    # a never-listed event is complete; the others stay incremental (complete ones are recent)
    assert plan_groups({1: fresh, 3: None, 2: newer}, **kw) == [
        Group((3,), None, None),
        Group((1, 2), 491, 500),
    ]
    # an event whose complete listing is older than full_every/2 joins a complete one due anyway
    half = ListingState(max_last_modified=700, last_complete_at=now - 2000)
    assert plan_groups({1: fresh, 3: None, 2: half}, **kw) == [
        Group((3, 2), None, None),
        Group((1,), 491, 500),
    ]
    assert plan_groups({1: fresh, 2: half}, **{**kw, "full": True}) == [Group((1, 2), None, None)]


def test_splittable() -> None:
    assert splittable(Exchange(False, error_code=301, http_status=200))
    assert splittable(Exchange(False, error_code=7, http_status=200))
    assert splittable(Exchange(False, http_status=404))
    assert not splittable(Exchange(False, error_code=6, http_status=200))
    assert not splittable(Exchange(False, error_code=17, http_status=400))
    assert not splittable(Exchange(False, http_status=429))
    assert not splittable(Exchange(False, http_status=503))
    assert not splittable(Exchange(False, error_msg="ConnectionError"))
    assert not splittable(Exchange(False, attempts=0, skipped=True))
