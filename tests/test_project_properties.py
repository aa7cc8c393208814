"""Property tests: chunking, duplicates, rebuild and repeat runs give the same tables; the
version bump rebuilds by itself; readers never see empty or half-built tables. The steps move
registrations between events (the same ids in both events), drop events from the race detail,
and lose and regain access to the race (race listings, error 7)."""

from __future__ import annotations

import sqlite3
import threading

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from project_helpers import (
    MAIN_TABLES,
    PROVENANCE,
    Builder,
    copy_db,
    dump,
    j,
    new_journal,
    participants_body,
    race_obj,
    registration,
    removed_body,
    removed_registration,
)

import rsu.projector.runner as runner_mod
from rsu.projector import project

RACE = 100
EVENTS = (11, 12)
REASONS = ("cleared", "removed", "transferred", "deferred")

reg_ids = st.integers(min_value=1, max_value=25)
step = st.one_of(
    st.tuples(
        st.just("race"), st.integers(0, 3), st.sampled_from((EVENTS, EVENTS[:1], EVENTS[1:]))
    ),
    st.tuples(st.just("races"), st.booleans(), st.booleans()),
    st.tuples(st.just("denied")),
    # the last participants listing again: the same bodies, or one registration edited (-1:
    # given an age that cannot be read)
    st.tuples(st.just("again"), st.integers(-1, 3)),
    st.tuples(
        st.just("full"),
        st.sampled_from(EVENTS),
        st.dictionaries(reg_ids, st.integers(0, 2), max_size=20),
        st.integers(1, 8),
    ),
    st.tuples(
        st.just("incremental"),
        st.sampled_from(EVENTS),
        st.dictionaries(reg_ids, st.integers(0, 2), max_size=6),
        st.integers(1, 8),
    ),
    st.tuples(
        st.just("removed"),
        st.sampled_from(EVENTS),
        st.dictionaries(reg_ids, st.sampled_from(REASONS), max_size=4),
    ),
    st.tuples(st.just("failed"), st.sampled_from(EVENTS), st.lists(reg_ids, max_size=5)),
    st.tuples(st.just("bad"), st.sampled_from(EVENTS)),
    st.tuples(st.just("fetch_failed"), st.integers(0, 1)),
)
steps_st = st.lists(st.tuples(step, st.sampled_from((1, 1, 1, 2))), min_size=1, max_size=12)


def build(journal, steps, *, dup: bool = False, after_step=None) -> None:
    """Append ``steps``; with ``dup`` each step's events are written ``times`` times (a retry
    that got the same answer). ``after_step(i)`` runs after each step (for progressive projects)."""
    by_tp = {1: Builder(journal, tp=1, run_id="r1"), 2: Builder(journal, tp=2, run_id="r2")}
    last_listing: tuple[Builder, int, list[tuple[int, int]], int, bool] | None = None
    for i, (s, times) in enumerate(steps):
        t = times if dup else 1
        b = by_tp[1 + i % 2]
        kind = s[0]
        if kind == "race":
            b.race(j({"race": race_obj(RACE, version=s[1], event_ids=s[2])}), RACE, times=t)
        elif kind == "races":  # a complete race listing, with or without the race
            _, listed, window = s
            b.races_listing(
                [[race_obj(RACE, event_ids=())] if listed else []],
                window=("2017-01-01", "2018-01-01") if window else None,
                times=t,
            )
        elif kind == "denied":
            b.fetch_failed("race", RACE, code=7, msg="Permission Denied", times=t)
        elif kind in ("full", "incremental"):
            _, ev, regs, size = s
            items = sorted(regs.items())
            pages = [
                participants_body(ev, [registration(r, ev, v) for r, v in items[k : k + size]])
                for k in range(0, max(len(items), 1), size)
            ]
            b.listing(RACE, ev, pages, complete=kind == "full", times=t)
            last_listing = (b, ev, items, size, kind == "full")
        elif kind == "again" and last_listing is not None:
            lb, ev, items, size, complete = last_listing
            edit = s[1]
            regs = [registration(r, ev, v + (k == edit)) for k, (r, v) in enumerate(items)]
            if edit == -1 and regs:
                regs[len(regs) // 2]["age"] = "unknown"
            pages = [
                participants_body(ev, regs[k : k + size]) for k in range(0, max(len(regs), 1), size)
            ]
            lb.listing(RACE, ev, pages, complete=complete, times=t)
        elif kind == "removed":
            _, ev, regs = s
            body = removed_body(
                ev,
                [
                    removed_registration(
                        r, ev, why, 9000 + r if why == "transferred" else None, 1_700_000_000 + r
                    )
                    for r, why in sorted(regs.items())
                ],
            )
            b.listing(RACE, ev, [body], endpoint="removed_participants", times=t)
        elif kind == "failed":
            _, ev, regs = s
            b.listing(
                RACE,
                ev,
                [participants_body(ev, [registration(r, ev) for r in regs])],
                fail_after=b"<html>502 Bad Gateway</html>",
                times=t,
            )
        elif kind == "bad":
            b.listing(RACE, s[1], [j({"unexpected": True})], times=t)
        elif kind == "fetch_failed":
            b.fetch_failed("race", RACE + s[1], code=201, msg="Race not found.", times=t)
        if after_step is not None:
            after_step(i)


SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(steps=steps_st, batch=st.integers(1, 7), cuts=st.sets(st.integers(0, 11)))
def test_chunks_progressive_and_rebuild_match_one_pass(steps, batch, cuts):
    one = new_journal()
    build(one, steps)
    chunked = copy_db(one.db.conn)
    rebuilt = copy_db(one.db.conn)
    project(one.db, batch_size=10_000)
    expected = dump(one.db.conn)

    project(chunked.db, batch_size=batch)
    assert dump(chunked.db.conn) == expected

    project(rebuilt.db, batch_size=batch)
    project(rebuilt.db, rebuild=True, batch_size=3)
    assert dump(rebuilt.db.conn) == expected

    # projecting while the journal grows, at random points
    progressive = new_journal()
    build(
        progressive,
        steps,
        after_step=lambda i: project(progressive.db, batch_size=batch) if i in cuts else None,
    )
    project(progressive.db, batch_size=batch)
    assert dump(progressive.db.conn) == expected

    # a second run changes nothing
    again = project(one.db)
    assert (again.events, again.rows_upserted, again.new_errors) == (0, 0, 0)
    assert dump(one.db.conn) == expected


@SETTINGS
@given(steps=steps_st, batch=st.integers(1, 7))
def test_the_reseen_page_shortcut_gives_the_tables_of_a_row_by_row_projection(steps, batch):
    """Issue 15: the same tables (provenance included) with and without the shortcut."""
    fast = new_journal()
    build(fast, steps)
    slow = copy_db(fast.db.conn)
    project(fast.db, batch_size=batch)
    project(slow.db, batch_size=batch, shortcuts=False)
    assert dump(fast.db.conn) == dump(slow.db.conn)


@SETTINGS
@given(steps=steps_st)
def test_duplicated_events_give_the_same_tables(steps):
    plain, dupped = new_journal(), new_journal()
    build(plain, steps)
    build(dupped, steps, dup=True)
    project(plain.db)
    project(dupped.db)
    # seqs differ (the duplicates take seqs), so columns holding seqs are left out (a
    # fetch_failed sync_key embeds the seq of the request's last attempt)
    exclude = (*PROVENANCE, "sync_key")
    assert dump(dupped.db.conn, MAIN_TABLES, exclude=exclude) == dump(
        plain.db.conn, MAIN_TABLES, exclude=exclude
    )


def _sample_journal(path=":memory:"):
    jn = new_journal(path)
    steps = [
        (("race", 1, EVENTS), 1),
        (("full", 11, {i: 0 for i in range(1, 400)}, 50), 1),
        (("full", 12, {i: 1 for i in range(1, 300)}, 40), 1),
        (("removed", 11, {3: "transferred", 4: "deferred"}), 1),
        (("full", 11, {i: 1 for i in range(1, 390)}, 50), 1),
        (("bad", 12), 1),
        (("fetch_failed", 0), 1),
    ]
    build(jn, steps)
    return jn


def test_dump_byte_identical_across_runs(tmp_path):
    jn = _sample_journal(tmp_path / "a.db")
    other = copy_db(jn.db.conn, tmp_path / "b.db")
    project(jn.db, batch_size=4)
    project(other.db, batch_size=50)
    a, b = dump(jn.db.conn).encode(), dump(other.db.conn).encode()
    assert a == b and len(a) > 100_000


def test_version_bump_rebuilds_by_itself(monkeypatch):
    jn = _sample_journal()
    project(jn.db)
    before = dump(jn.db.conn)
    old = runner_mod.PROJECTION_VERSION
    monkeypatch.setattr(runner_mod, "PROJECTION_VERSION", old + 1)
    seen: list[str] = []
    result = project(jn.db, progress=seen.append)
    assert result.rebuilt
    assert result.messages == [
        f"projection version changed ({old} -> {old + 1}): rebuilding the tables from the journal"
    ]
    assert seen[0] == result.messages[0]
    after = dump(jn.db.conn)
    assert after == before.replace(
        f'["projection_version", {old}]', f'["projection_version", {old + 1}]'
    )
    assert not project(jn.db).rebuilt


def test_readers_never_see_empty_or_half_built_tables(tmp_path):
    path = tmp_path / "rsu.db"
    jn = _sample_journal(path)
    project(jn.db, batch_size=2)
    expected = jn.db.conn.execute(
        "SELECT COUNT(*), SUM(removed_at IS NULL) FROM runsignup_participants"
    ).fetchone()
    stop = threading.Event()
    seen: list[tuple] = []
    failures: list[BaseException] = []

    def reader() -> None:
        conn = sqlite3.connect(path, timeout=30)
        try:
            while not stop.is_set():
                conn.execute("BEGIN")
                seen.append(
                    conn.execute(
                        "SELECT COUNT(*), SUM(removed_at IS NULL) FROM runsignup_participants"
                    ).fetchone()
                    + conn.execute("SELECT COUNT(*) FROM sync_history").fetchone()
                )
                conn.execute("COMMIT")
        except BaseException as exc:
            failures.append(exc)
        finally:
            conn.close()

    t = threading.Thread(target=reader)
    t.start()
    try:
        for _ in range(3):
            project(jn.db, rebuild=True, batch_size=1)
    finally:
        stop.set()
        t.join()
    assert not failures
    assert len(seen) > 10
    assert {s[:2] for s in seen} == {tuple(expected)}
    assert {s[2] for s in seen} == {6}  # 5 listings + 1 fetch_failed
