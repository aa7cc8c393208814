"""One row per registration (issue 13): event changes move it, a race the partner can no longer
read and an event a race no longer lists take their registrations off the active start lists,
and both come back when RunSignUp shows them again."""

from __future__ import annotations

import sqlite3
from typing import Any

from project_helpers import (
    Builder,
    j,
    new_journal,
    participants_body,
    race_obj,
    registration,
)

from rsu.journal import Journal
from rsu.projector import project

RACE, OTHER = 100, 200
A, B = 11, 12
AT = "2024-01-01T00:00:{:02d}Z"


def rows(conn: sqlite3.Connection) -> dict[int, tuple[Any, ...]]:
    """registration_id -> (event_id, removed_reason, previous_event_id, event_changed_at)."""
    return {
        r[0]: tuple(r[1:])
        for r in conn.execute(
            "SELECT registration_id, event_id, removed_reason, previous_event_id, "
            "event_changed_at FROM runsignup_participants ORDER BY registration_id"
        )
    }


def moves(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT registration_id, from_event_id, to_event_id, changed_at "
        "FROM runsignup_event_changes ORDER BY source_seq, registration_id"
    ).fetchall()


def access(conn: sqlite3.Connection) -> dict[int, tuple[Any, ...]]:
    return {
        r[0]: (r[1], r[2])
        for r in conn.execute(
            "SELECT race_id, access_lost_at, access_lost_reason FROM runsignup_races"
        )
    }


def reg(reg_id: int, event_id: int, version: int = 0) -> dict[str, Any]:
    return registration(reg_id, event_id, version)


def setup() -> tuple[Journal, Builder]:
    jn = new_journal()
    b = Builder(jn)
    b.race(j({"race": race_obj(RACE, event_ids=(A, B))}), RACE)  # tick 1
    b.listing(RACE, A, [participants_body(A, [reg(1, A), reg(2, A)])])  # ticks 2-3
    b.listing(RACE, B, [participants_body(B, [reg(3, B)])])  # ticks 4-5
    return jn, b


def test_an_event_change_moves_the_one_row_and_records_the_move() -> None:
    jn, b = setup()
    # reg 1 switches from A to B (newer last_modified); an incremental listing of B shows it
    b.listing(RACE, B, [participants_body(B, [reg(1, B, version=1)])], complete=False)  # 6-7
    project(jn.db)
    conn = jn.db.conn
    assert rows(conn) == {
        1: (B, None, A, AT.format(6)),
        2: (A, None, None, None),
        3: (B, None, None, None),
    }
    assert moves(conn) == [(1, A, B, AT.format(6))]
    # the next complete listing of A no longer holds reg 1: it stays active in B
    b.listing(RACE, A, [participants_body(A, [reg(2, A)])])
    b.listing(RACE, B, [participants_body(B, [reg(1, B, 1), reg(3, B)])])
    assert project(jn.db).exit_code == 0
    assert rows(conn)[1] == (B, None, A, AT.format(6))
    assert conn.execute(
        "SELECT COUNT(*) FROM runsignup_participants WHERE removed_at IS NULL"
    ).fetchone() == (3,)
    assert len(moves(conn)) == 1


def test_a_stale_copy_in_the_old_event_does_not_move_it_back() -> None:
    jn, b = setup()
    b.listing(RACE, B, [participants_body(B, [reg(1, B, version=1)])], complete=False)
    # a complete listing of A still showing reg 1 with its older last_modified
    b.listing(RACE, A, [participants_body(A, [reg(1, A), reg(2, A)])])
    project(jn.db)
    assert rows(jn.db.conn)[1] == (B, None, A, AT.format(6))


def test_same_registration_in_two_events_of_one_listing() -> None:
    """The rows are taken in the order sent: the later one wins unless it is older."""
    jn = new_journal()
    b = Builder(jn)
    b.race(j({"race": race_obj(RACE, event_ids=(A, B))}), RACE)
    page = j(
        [
            {"event": {"event_id": A}, "participants": [reg(1, A, 1), reg(2, A, 0)]},
            {"event": {"event_id": B}, "participants": [reg(1, B, 0), reg(2, B, 0)]},
        ]
    )
    b.listing(RACE, A, [page])
    project(jn.db)
    got = rows(jn.db.conn)
    # reg 1: B's copy is older, A's stays; reg 2: same last_modified, the later (B) wins
    assert got == {1: (A, None, None, None), 2: (B, None, None, None)}
    assert moves(jn.db.conn) == []


def test_a_race_missing_from_a_complete_race_listing_loses_access_and_comes_back() -> None:
    jn, b = setup()
    other = race_obj(OTHER, event_ids=(21,))
    b.races_listing([[race_obj(RACE), other]])  # tick 6
    b.listing(OTHER, 21, [participants_body(21, [reg(9, 21)])])  # 7-8
    b.races_listing([[other]])  # tick 9: RACE is gone from the partner's list
    project(jn.db)
    conn = jn.db.conn
    assert access(conn) == {
        RACE: (AT.format(9), "missing_from_race_listing"),
        OTHER: (None, None),
    }
    assert {k: v[1] for k, v in rows(conn).items()} == {
        1: "access_lost",
        2: "access_lost",
        3: "access_lost",
        9: None,
    }
    b.races_listing([[other, race_obj(RACE)]])  # listed again
    project(jn.db)
    assert access(conn)[RACE] == (None, None)
    assert {k: v[1] for k, v in rows(conn).items()} == {1: None, 2: None, 3: None, 9: None}


def test_only_a_complete_race_listing_proves_a_race_gone() -> None:
    jn, b = setup()
    far = {**race_obj(OTHER, event_ids=(21,)), "next_date": "03/01/2030"}
    b.races_listing([[race_obj(RACE), far]])
    # a full page whose next page was never read: not complete
    b.races_listing([[far]], per_page=1)
    # a windowed listing proves nothing about races dated outside its window (RACE is 2017)
    b.races_listing([[far]], window=("2029-01-01", "2031-01-01"))
    project(jn.db)
    assert access(jn.db.conn) == {RACE: (None, None), OTHER: (None, None)}
    # ... and does about the races dated inside it
    b.races_listing([[far]], window=("2017-01-01", "2031-01-01"))
    project(jn.db)
    assert access(jn.db.conn)[RACE][1] == "missing_from_race_listing"


def test_a_multi_page_race_listing_is_complete_at_its_short_page() -> None:
    jn, b = setup()
    others = [race_obj(OTHER + i, event_ids=(30 + i,)) for i in range(3)]
    b.races_listing([others[:2], others[2:]], per_page=2)
    project(jn.db)
    assert access(jn.db.conn)[RACE][1] == "missing_from_race_listing"
    assert jn.db.conn.execute("SELECT COUNT(*) FROM projector_race_listing_pages").fetchone() == (
        0,
    )


def test_error_7_after_earlier_successes_loses_access_until_the_race_answers() -> None:
    jn, b = setup()
    b.fetch_failed("race", RACE, code=7, msg="Permission Denied")  # tick 6-7
    b.fetch_failed("race", OTHER, code=7, msg="Permission Denied")  # never read: ignored
    project(jn.db)
    conn = jn.db.conn
    assert access(conn) == {RACE: (AT.format(7), "permission_denied")}
    assert {v[1] for v in rows(conn).values()} == {"access_lost"}
    # a races listing that contains it does not end a permission denial; the race detail does
    b.races_listing([[race_obj(RACE)]])
    project(jn.db)
    assert access(conn)[RACE][1] == "permission_denied"
    b.race(j({"race": race_obj(RACE, event_ids=(A, B))}), RACE)
    project(jn.db)
    assert access(conn)[RACE] == (None, None)
    assert {v[1] for v in rows(conn).values()} == {None}


def test_an_event_the_race_detail_no_longer_lists_is_removed_with_its_registrations() -> None:
    jn, b = setup()
    b.race(j({"race": race_obj(RACE, event_ids=(A,))}), RACE)  # tick 6: B is gone
    # a races listing (events of the listing are not every event) removes nothing
    b.races_listing([[race_obj(RACE, event_ids=())]])
    project(jn.db)
    conn = jn.db.conn
    events = conn.execute(
        "SELECT event_id, removed_at FROM runsignup_events ORDER BY event_id"
    ).fetchall()
    assert events == [(A, None), (B, AT.format(6))]
    assert {k: v[1] for k, v in rows(conn).items()} == {1: None, 2: None, 3: "event_removed"}
    b.race(j({"race": race_obj(RACE, event_ids=(A, B))}), RACE)
    project(jn.db)
    assert {k: v[1] for k, v in rows(conn).items()} == {1: None, 2: None, 3: None}
    assert conn.execute(
        "SELECT COUNT(*) FROM runsignup_events WHERE removed_at IS NOT NULL"
    ).fetchone() == (0,)


def test_a_races_page_shorter_than_asked_but_not_than_served_proves_nothing() -> None:
    """RunSignUp may serve fewer races per page than ``results_per_page`` asks: a page of 55
    races when 1000 were asked is not the last page, and no race on a later page loses access."""
    jn, b = setup()
    others = [race_obj(1000 + i, event_ids=(21,)) for i in range(59)]
    b.races_listing([others[:55]])  # page 1 of a listing capped at 55 (the fetcher stopped)
    project(jn.db)
    conn = jn.db.conn
    assert access(conn)[RACE] == (None, None)
    assert {v[1] for v in rows(conn).values()} == {None}
    # the next run reads on: page 2 (4 races and RACE) is shorter than page 1, so it ends it
    b.races_listing([others[:55], [*others[55:], race_obj(RACE)]])
    project(jn.db)
    assert access(conn)[RACE] == (None, None)
    # a run whose page 2 comes back empty: RACE was on neither page, it is gone
    b.races_listing([others[:55], []])
    project(jn.db)
    assert access(conn)[RACE] == (AT.format(10), "missing_from_race_listing")
    assert {v[1] for v in rows(conn).values()} == {"access_lost"}


def _race_with_starts(starts: dict[int, str]) -> bytes:
    """Race RACE whose events ``event_id -> start_time`` (``M/D/YYYY HH:MM``, America/Denver)."""
    race = race_obj(RACE, event_ids=tuple(starts))
    for event in race["events"]:
        event["start_time"] = starts[event["event_id"]]
    return j({"race": race})


def test_a_detail_of_future_events_only_removes_no_past_event() -> None:
    # At the journal's clock (2024-01-01T00:00:SSZ) A (2017) is past, C (2030) future, and D
    # (1/1/2024 12:00 Denver, 19:00Z) less than a day ahead: maybe not "future" to RunSignUp.
    C, D, E = 13, 14, 15
    starts = {A: "11/18/2017 09:00", C: "6/1/2030 08:00", D: "1/1/2024 12:00"}
    jn = new_journal()
    b = Builder(jn)
    b.race(_race_with_starts(starts), RACE)  # tick 1
    b.listing(RACE, A, [participants_body(A, [reg(1, A)])])  # ticks 2-3
    b.listing(RACE, C, [participants_body(C, [reg(2, C)])])  # ticks 4-5
    b.listing(RACE, D, [participants_body(D, [reg(3, D)])])  # ticks 6-7
    future_only = {"future_events_only": "T"}
    # the past event is left out of a future_events_only=T detail, not removed (tick 8)
    b.race(_race_with_starts({C: starts[C], D: starts[D]}), RACE, query=future_only)
    project(jn.db)
    conn = jn.db.conn
    removed = "SELECT event_id, removed_at FROM runsignup_events ORDER BY event_id"
    assert conn.execute(removed).fetchall() == [(A, None), (C, None), (D, None)]
    assert {k: v[1] for k, v in rows(conn).items()} == {1: None, 2: None, 3: None}
    # a future event it no longer lists is removed (tick 9); D, within a day, is not
    b.race(_race_with_starts({E: "6/1/2031 08:00"}), RACE, query=future_only)
    # restricted otherwise (the most recent events, one race day): no proof (ticks 10-11)
    b.race(_race_with_starts({E: "6/1/2031 08:00"}), RACE, query={"most_recent_events_only": "T"})
    b.race(_race_with_starts({E: "6/1/2031 08:00"}), RACE, query={"race_event_days_id": "58262"})
    project(jn.db)
    assert conn.execute(removed).fetchall() == [
        (A, None),
        (C, AT.format(9)),
        (D, None),
        (E, None),
    ]
    assert {k: v[1] for k, v in rows(conn).items()} == {1: None, 2: "event_removed", 3: None}
    # a detail of every event (future_events_only=F) removes the unlisted past ones (tick 12)
    b.race(_race_with_starts({E: "6/1/2031 08:00"}), RACE, query={"future_events_only": "F"})
    project(jn.db)
    assert conn.execute(removed).fetchall() == [
        (A, AT.format(12)),
        (C, AT.format(9)),
        (D, AT.format(12)),
        (E, None),
    ]
    assert {k: v[1] for k, v in rows(conn).items()} == {
        1: "event_removed",
        2: "event_removed",
        3: "event_removed",
    }


def _history(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT run_id, status, reason FROM sync_history WHERE endpoint = 'race' ORDER BY sync_time"
    ).fetchall()


def test_a_listed_race_denied_run_after_run_is_an_error_once_then_a_warning() -> None:
    from rsu.fetcher.denials import denied_since

    jn, b = setup()  # run-1: the race read, ticks 1-5
    denied = "RunSignUp error 7: Permission Denied"
    # what the fetcher finds in the journal before each run's denial: the previous denial
    previous = {"run-2": None, "run-3": AT.format(8), "run-4": AT.format(11)}
    for run in ("run-2", "run-3", "run-4"):  # listed by the partner, its detail denied
        b.run_id = run
        b.races_listing([[race_obj(RACE, event_ids=(A, B))]])
        found = denied_since(jn, 1, RACE, run)
        assert (found and found[:19] + "Z") == previous[run]
        b.fetch_failed("race", RACE, code=7, msg=denied)
        assert project(jn.db).exit_code == (1 if run == "run-2" else 0)
    conn = jn.db.conn
    lost = AT.format(8)  # run-2's fetch_failed
    assert access(conn) == {RACE: (lost, "permission_denied")}
    assert _history(conn) == [
        ("run-2", "error", denied),
        ("run-3", "warning", f"denied again: {denied} (access lost since {lost})"),
        ("run-4", "warning", f"denied again: {denied} (access lost since {lost})"),
    ]
    # the detail answers again (run-5), then a new denial (run-6) is an error again
    b.run_id = "run-5"
    b.race(j({"race": race_obj(RACE, event_ids=(A, B))}), RACE)
    assert denied_since(jn, 1, RACE, "run-6") is None
    b.run_id = "run-6"
    b.fetch_failed("race", RACE, code=7, msg=denied)
    assert project(jn.db).exit_code == 1
    assert _history(conn)[-1] == ("run-6", "error", denied)
    # a failure of another kind in between (run-7: HTTP 503) leaves the race lost: still a warning
    b.run_id = "run-7"
    b.fetch_failed("race", RACE, code=None, msg="HTTP 503", http_status=503)
    assert project(jn.db).exit_code == 1  # that one is an error of its own
    assert (
        denied_since(jn, 1, RACE, "run-8")
        == jn.find(kind="fetch_failed", run_id="run-6")[0].recorded_at
    )
    b.run_id = "run-8"
    b.fetch_failed("race", RACE, code=7, msg=denied)
    assert project(jn.db).exit_code == 0
    assert _history(conn)[-1][:2] == ("run-8", "warning")


def test_a_race_never_read_and_denied_again_is_a_warning_too() -> None:
    jn = new_journal()
    b = Builder(jn)
    b.fetch_failed("race", RACE, code=7, msg="Permission Denied")  # ticks 1-2
    assert project(jn.db).exit_code == 1
    b.run_id = "run-2"
    b.fetch_failed("race", RACE, code=7, msg="Permission Denied")
    assert project(jn.db).exit_code == 0
    assert _history(jn.db.conn) == [
        ("run-1", "error", "Permission Denied"),
        ("run-2", "warning", f"denied again: Permission Denied (access lost since {AT.format(2)})"),
    ]
