"""Unit tests of the fetcher's small parts: backoff, Retry-After, scrubbing, body shapes,
paging, cursors, rate limiting."""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path

import pytest

from rsu.fetcher.client import Exchange, RateLimiter, RetryPolicy, backoff_seconds
from rsu.fetcher.client import retry_after_seconds as retry_after
from rsu.fetcher.cursor import ListingState, modified_after
from rsu.fetcher.paging import keyset_next, page_number_next, paginate
from rsu.fetcher.redact import scrub
from rsu.fetcher.shapes import ApiErrorBody, PageInfo, ShapeError, parse


def test_backoff_doubles_and_is_capped() -> None:
    policy = RetryPolicy(backoff_factor=0.5, backoff_max=3.0, jitter=0.0)
    assert [backoff_seconds(n, policy) for n in (1, 2, 3, 4)] == [1.0, 2.0, 3.0, 3.0]
    jittery = RetryPolicy(backoff_factor=0.5, backoff_max=30.0, jitter=0.25)
    values = [backoff_seconds(1, jittery) for _ in range(50)]
    assert all(1.0 <= v <= 1.25 for v in values) and len(set(values)) > 1


def test_retry_after() -> None:
    policy = RetryPolicy(retry_after_cap=30.0)
    assert retry_after("5", policy) == 5.0
    assert retry_after("3600", policy) == 30.0
    assert retry_after(None, policy) is None
    assert retry_after("soon", policy) is None
    # HTTP dates: far in the future is capped, in the past is no wait (no clock involved).
    assert retry_after(formatdate(time.time() + 3600, usegmt=True), policy) == 30.0
    assert retry_after(formatdate(time.time() - 3600, usegmt=True), policy) == 0.0


def test_scrub_removes_queries_and_secrets() -> None:
    msg = (
        "HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: "
        "/Rest/races?format=json&api_key=KEY1&api_secret=a%2Fb%2Bc (Caused by NewConnectionError)"
    )
    out = scrub(msg, ["a/b+c", "KEY1"])
    assert "KEY1" not in out and "a%2Fb%2Bc" not in out and "api_secret" not in out
    assert "/Rest/races?<query>" in out
    assert scrub("token a/b+c leaked", ["a/b+c"]) == "token *** leaked"
    assert scrub("x a%2Fb%2Bc y", ["a/b+c"]) == "x *** y"


def test_parse_shapes_and_quirks() -> None:
    races = (
        b'{"races":[{"race":{"race_id":5,"events":[{"event_id":9},{"event_id":"10"}]}},'
        b'{"race":{"race_id":6,"name":"x"}}]}'
    )
    assert parse("races", races) == PageInfo(rows=2, races={5: [9, 10], 6: []})
    assert parse("race", b'{"race":{"race_id":5,"events":[{"event_id":7}]}}').event_ids == [7]
    part = (
        b'[{"event":{"event_id":1,"participants":[]},"participants":['
        b'{"registration_id":3,"last_modified":100},{"registration_id":8,"last_modified":90}]}]'
    )
    assert parse("participants", part) == PageInfo(
        rows=2, last_id=8, max_last_modified=100, per_event={1: (2, 8)}
    )
    removed = (
        b'[{"event":{"event_id":1,"participants":[{"registration_id":4,'
        b'"last_modified":"2026-01-01 10:00:00","last_modified_ts":1767279600}]}}]'
    )
    assert parse("removed_participants", removed) == PageInfo(
        1, 4, 1767279600, per_event={1: (1, 4)}
    )
    assert parse("participants", b"[]") == PageInfo()
    err = b'{"error":{"error_code":6,"error_msg":"Key authentication failed"}}'
    for endpoint in ("auth_check", "races", "race", "participants", "removed_participants"):
        assert parse(endpoint, err) == ApiErrorBody(6, "Key authentication failed")
    assert parse("participants", b'{"error":"bad thing"}') == ApiErrorBody(0, "bad thing")
    for endpoint, body in [
        ("participants", b'[{"event":{"event_id":1},"participants":[{"registration_id":3,"las'),
        ("participants", b"<html><body>502 Bad Gateway</body></html>"),
        ("participants", b'{"participants":[]}'),
        ("races", b'{"something":"else"}'),
        ("race", b"[]"),
        ("races", b""),
    ]:
        with pytest.raises(ShapeError):
            parse(endpoint, body)


def _page(rows: int, last: int | None = None) -> Exchange:
    return Exchange(True, PageInfo(rows=rows, last_id=last), seq=1)


def short_page(page_size: int) -> Callable[[Exchange], bool]:
    """A stop rule for these tests: fewer than ``page_size`` rows (or no page)."""
    return lambda exchange: exchange.info is None or exchange.info.rows < page_size


def test_paginate_keyset_until_short_page() -> None:
    pages = {0: _page(3, 30), 30: _page(3, 60), 60: _page(1, 70)}
    seen = [t for t, _ in paginate(pages.__getitem__, 0, keyset_next, short_page(3))]
    assert seen == [0, 30, 60]


def test_paginate_stops_on_failure_and_stuck_cursor() -> None:
    pages = {0: _page(3, 30), 30: Exchange(False, error_msg="boom")}
    assert [ex.ok for _, ex in paginate(pages.__getitem__, 0, keyset_next, short_page(3))] == [
        True,
        False,
    ]
    stuck = {0: _page(3, 30), 30: _page(3, 30)}
    assert [t for t, _ in paginate(stuck.__getitem__, 0, keyset_next, short_page(3))] == [0, 30]
    numbered = {1: _page(2), 2: _page(2), 3: _page(0)}
    assert [t for t, _ in paginate(numbered.__getitem__, 1, page_number_next, short_page(2))] == [
        1,
        2,
        3,
    ]


def test_modified_after_rules() -> None:
    now = 1_000_000.0
    state = ListingState(max_last_modified=5000, last_complete_at=now - 60)
    kw = {"now": now, "full": False, "full_every": 3600.0}
    assert modified_after(state, overlap_seconds=10, **kw) == 4991
    assert modified_after(state, overlap_seconds=0, **kw) == 5001
    assert modified_after(None, overlap_seconds=10, **kw) is None
    assert modified_after(ListingState(None, now), overlap_seconds=10, **kw) is None
    assert modified_after(ListingState(5000, None), overlap_seconds=10, **kw) is None
    assert modified_after(ListingState(5000, now - 7200), overlap_seconds=10, **kw) is None
    assert modified_after(state, overlap_seconds=10, now=now, full=True, full_every=3600) is None


def test_rate_limiter_spaces_requests() -> None:
    clock = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))

    limiter = RateLimiter(50.0, clock=lambda: clock[0], sleep=sleep)
    for _ in range(4):
        limiter.acquire()
    # 50/s: one start every 0.02 s; the first starts at once, the others wait their turn.
    assert slept == [0.02, 0.04, 0.06]
    clock[0] = 200.0  # long idle: no waiting debt carried over
    limiter.acquire()
    assert slept == [0.02, 0.04, 0.06]
    unlimited = RateLimiter(0, clock=lambda: clock[0], sleep=sleep)
    for _ in range(100):
        unlimited.acquire()
    assert len(slept) == 3


class _StubClient:
    """Answers ``race`` with error 201 and every listing with one empty page."""

    def __init__(self) -> None:
        from rsu.fetcher.credentials import Credential

        self.credential = Credential(5, "bearer", "", "t")
        self.calls: list[tuple[str, str | None]] = []

    def get(self, endpoint: str, path: str, params: dict, **kw) -> Exchange:
        self.calls.append((endpoint, params.get("event_id")))
        if endpoint == "race":
            return Exchange(False, error_code=201, error_msg="RunSignUp error 201: Race not found.")
        return Exchange(True, PageInfo(rows=0), seq=1)


def test_failed_race_detail_falls_back_to_listed_events() -> None:
    from rsu.fetcher.client import RunContext, SessionPool, Timeouts
    from rsu.fetcher.report import NullProgress, RunStats
    from rsu.fetcher.walk import Walker, WalkSettings
    from rsu.journal import Journal, ListingCompleted, open_db

    settings = WalkSettings(
        "http://x", (), None, None, False, 3600.0, 10, 2500, 1000, 0, RetryPolicy(), Timeouts()
    )
    journal = Journal(open_db(":memory:"))
    stats = RunStats()
    walker = Walker(settings, RunContext(journal, "r1", stats), SessionPool(), NullProgress())
    client = _StubClient()
    tasks = walker.race_task(client, 77, [701, 702])  # type: ignore[arg-type]
    for task in tasks:
        task()
    # both listed events in one call per listing kind (the page was short: nothing more)
    assert client.calls == [
        ("race", None),
        ("removed_participants", "701,702"),
        ("participants", "701,702"),
    ]
    assert [(f.level, f.race_id, f.error_code) for f in stats.failures] == [("race", 77, 201)]
    listings = [r.event for r in journal.find(kind="listing_completed")]
    assert len(listings) == 2
    assert all(isinstance(e, ListingCompleted) and e.complete for e in listings)
    assert [e.covered_events for e in listings] == [[701, 702], [701, 702]]


def test_brief_transport_error_messages() -> None:
    from rsu.fetcher.client import brief_transport_error

    long = (
        "ConnectionError: HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded "
        "with url: /Rest/races?<query> (Caused by NewConnectionError('<urllib3.connection."
        "HTTPConnection object at 0x7f>: Failed to establish a new connection: [Errno 111] "
        "Connection refused'))"
    )
    assert brief_transport_error("ConnectionError", long) == "ConnectionError: connection refused"
    timeout = "ReadTimeout: HTTPConnectionPool(host='x', port=1): Read timed out. (read timeout=1)"
    assert brief_transport_error("ReadTimeout", timeout) == (
        "ReadTimeout: no answer within the read timeout"
    )
    assert brief_transport_error("ValueError", "ValueError: odd") == "ValueError: odd"


def test_listing_state_looks_back_only_as_far_as_needed(tmp_path: Path) -> None:
    from rsu.fetcher.cursor import listing_state
    from rsu.journal import Journal, ListingCompleted

    def listing(endpoint: str, *, ok: bool = True, complete: bool = False, lm: int = 0) -> None:
        journal.append(
            ListingCompleted(
                endpoint=endpoint,
                race_id=7,
                event_id=70,
                listing_id=f"l{lm}",
                ok=ok,
                complete=complete,
                max_last_modified=lm,
            ),
            timing_partner_id=3,
            race_id=7,
            event_id=70,
        )

    with Journal.open(tmp_path / "j.db") as journal:
        assert listing_state(journal, 3, 7, 70, "participants") == ListingState(None, None)
        listing("participants", complete=True, lm=100)
        for lm in range(101, 301):  # 200 incremental listings since, more than a page of rows
            listing("participants", lm=lm)
            listing("removed_participants", lm=lm + 1000)
        listing("participants", ok=False, lm=999)  # a failed listing moves no cursor
        state = listing_state(journal, 3, 7, 70, "participants")
        other = listing_state(journal, 3, 7, 71, "participants")
        complete_row = journal.find(kind="listing_completed", limit=1)[0]
    assert state.max_last_modified == 300
    assert state.last_complete_at is not None
    assert abs(state.last_complete_at - _epoch_of(complete_row.recorded_at)) < 0.001
    assert other == ListingState(None, None)


def _epoch_of(recorded_at: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(recorded_at.replace("Z", "+00:00")).timestamp()
