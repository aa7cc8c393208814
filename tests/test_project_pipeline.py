"""Issue 12: pages read, decoded and normalised by the worker process (``rsu.projector.pipeline``)
give exactly the tables of a projection without it: first projections, chunked ones, pages over
stored registrations (absent keys keep the stored values), rebuilds, bad pages."""

from __future__ import annotations

import errno
import hashlib
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from project_helpers import (
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
from test_journal_tamper import _tamper
from test_project_properties import EVENTS, SETTINGS, build, steps_st

from rsu.journal import JournalError
from rsu.journal.codecs import ZSTD, encode_whole
from rsu.projector import pipeline, project, typed
from rsu.projector.participants import ParticipantsApplier
from rsu.projector.schema import PARTICIPANTS


@contextmanager
def worker_always(take: Callable[[int], bool] = lambda seq: False) -> Iterator[dict[str, int]]:
    """Start the worker whatever the number of events, wait for its every page; count the pages
    it prepared (``new``: in the new-registration form). The main process takes the pages of the
    seqs ``take`` names itself, as it does before the worker's first message."""
    counts = {"prepared": 0, "new": 0}
    old_min, old_prepared = pipeline.MIN_EVENTS, pipeline.Prefetcher.prepared
    old_entry = pipeline.Prefetcher._entry

    def prepared(self: pipeline.Prefetcher, row: Any) -> Any:
        got = old_prepared(self, row)
        counts["prepared"] += got is not pipeline.NOT_PREFETCHED
        counts["new"] += (
            got is not pipeline.NOT_PREFETCHED and got is not None and got[1].__class__ is dict
        )
        return got

    def entry(self: pipeline.Prefetcher, row: Any) -> Any:
        if take(row.seq):
            self._taken.value = row.seq
            return None
        return old_entry(self, row)

    pipeline.MIN_EVENTS = 0
    pipeline.Prefetcher.prepared = prepared  # type: ignore[method-assign]
    pipeline.Prefetcher._entry = entry  # type: ignore[method-assign]
    pipeline.Prefetcher.wait = True
    try:
        yield counts
    finally:
        pipeline.Prefetcher.wait = False
        pipeline.MIN_EVENTS = old_min
        pipeline.Prefetcher.prepared = old_prepared  # type: ignore[method-assign]
        pipeline.Prefetcher._entry = old_entry  # type: ignore[method-assign]


def _projected_both_ways(
    journal_at: Callable[[Any], Any], tmp_path: Path, **options: Any
) -> tuple[Any, Any, dict[str, int]]:
    """The journal ``journal_at(path)`` builds, projected in memory (never a worker) and from a
    file with the worker preparing every page (:func:`worker_always`); their tables are equal.
    Returns both journals and the worker's counts."""
    plain = journal_at(":memory:")
    project(plain.db, **options)
    with worker_always() as counts:
        piped = journal_at(tmp_path / "piped.db")
        project(piped.db, **options)
    assert dump(piped.db.conn) == dump(plain.db.conn)
    return plain, piped, counts


@settings(SETTINGS, max_examples=8)  # each projection starts a worker process
@given(steps=steps_st, batch=st.integers(1, 7), taken=st.sets(st.integers(1, 40), max_size=10))
def test_the_worker_gives_the_tables_of_the_main_process(steps, batch, taken):
    """Whichever pages the main process takes itself (``taken``: before the worker's first
    message it does not wait), the tables are those of a projection without a worker."""
    plain = new_journal()
    build(plain, steps)
    project(plain.db, batch_size=batch)  # in memory: never a worker
    expected = dump(plain.db.conn)
    with tempfile.TemporaryDirectory() as tmp, worker_always(take=taken.__contains__):
        src = new_journal()
        build(src, steps)
        piped = copy_db(src.db.conn, Path(tmp) / "piped.db")
        project(piped.db, batch_size=batch)
        assert dump(piped.db.conn) == expected
        project(piped.db, rebuild=True, batch_size=batch)
        assert dump(piped.db.conn) == expected
        piped.db.conn.close()


def _without(reg: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in reg.items() if k not in keys}


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_pages_over_stored_registrations_keep_values_of_absent_keys(tmp_path, monkeypatch, workers):
    """A second listing sends fewer keys (absent: keep the stored value), moves registrations
    between events and repeats one in a page; the workers (each taking the pages of its seqs
    modulo their count) prepared every page."""
    monkeypatch.setattr(pipeline, "WORKERS", workers)

    def journal_at(path: Any) -> Any:
        jn = new_journal(path)
        b = Builder(jn, tp=1, run_id="r1")
        b.race(j({"race": race_obj(100, event_ids=EVENTS)}), 100)
        first = [registration(i, 11) for i in range(1, 120)]
        b.listing(100, 11, [participants_body(11, first[k : k + 40]) for k in (0, 40, 80)])
        second = [
            _without(registration(i, 11 + i % 2, 1), "age", "user", "last_modified")
            for i in range(1, 130)
        ]
        second.append(registration(5, 11, 2))  # registration 5 twice in the last page
        b.listing(100, 11, [participants_body(11, second[k : k + 50]) for k in (0, 50, 100)])
        return jn

    plain = journal_at(":memory:")
    project(plain.db, batch_size=2)
    with worker_always() as counts:
        piped = journal_at(tmp_path / "piped.db")
        project(piped.db, batch_size=2)
    # the first listing's pages as new registrations, the second's with their MISSING positions
    assert (counts["prepared"], counts["new"]) == (6, 3)
    assert dump(piped.db.conn) == dump(plain.db.conn)
    # absent keys kept the first listing's values; the generic path agrees (checked above)
    age = piped.db.conn.execute(
        "SELECT age FROM runsignup_participants WHERE registration_id = 7"
    ).fetchone()
    assert age == (registration(7, 11)["age"],)


def test_page_values_are_the_new_registration_rows_with_the_missing_positions(monkeypatch):
    """The rows are those the generic (row by row, untyped) path projects from the same page."""
    regs = [
        registration(1, 11),
        _without(registration(2, 11), "age", "bib_num"),
        _without(registration(3, 12), "user"),
    ]
    raw = participants_body(11, regs)
    jn = new_journal()
    b = Builder(jn, tp=7, run_id="r1")
    b.race(j({"race": race_obj(100, event_ids=EVENTS)}), 100)
    b.listing(100, 11, [raw])
    monkeypatch.setattr(ParticipantsApplier, "_typed_page", lambda *args: None)
    project(jn.db)
    generic = jn.db.conn.execute(
        "SELECT * FROM runsignup_participants ORDER BY registration_id"
    ).fetchall()
    (seq,) = {row[PARTICIPANTS.column_names.index("source_seq")] for row in generic}
    prepared = pipeline.page_values(7, 100, seq, raw)
    assert prepared is not None
    rows, missing, events, twice = prepared
    assert rows == generic
    # registration() leaves team_gender's key out; 2 also age and bib_num, 3 the whole user
    names = PARTICIPANTS.column_names[4:]
    user = ["user_id", "first_name", "middle_name", "last_name", "email", "dob", "gender"]
    user += ["phone", "street", "city", "state", "zipcode", "country_code"]
    assert [[names[i] for i in m or ()] for m in missing] == [
        ["team_gender"],
        ["bib_num", "age", "team_gender"],
        [*user, "team_gender"],
    ]
    assert (events, twice) == ([11, 12], False)
    assert pipeline.page_values(7, 100, 42, j({"unexpected": True})) is None


def test_new_registration_form_is_the_stored_form_without_missing():
    regs = [registration(1, 11), _without(registration(2, 12), "age", "user")]
    raw = participants_body(11, regs)
    full = pipeline.page_values(7, 100, 42, raw)
    new = pipeline.page_values(7, 100, 42, raw, stored=False)
    assert full is not None and new is not None
    rows, constants, events, twice = new
    assert (events, twice) == ([11, 12], False)
    # the short form: no partner, race, removal columns or provenance (constants of every page)
    assert all(
        r[:2] == (7, 100) and r[-7:] == (None, None, None, 42, 42, None, None) for r in full[0]
    )
    short = [r[2:-7] for r in full[0]]
    assert pipeline.with_constants(rows, constants) == short
    # and no column alike in every row of this page: NULL or the same integer
    names = ["event_id", "registration_id", *PARTICIPANTS.column_names[4:-7]]
    alike = {names[p] for p in constants}
    assert alike == {
        n
        for p, n in enumerate(names)
        if p >= 2
        and len({r[p] for r in short}) == 1
        and (short[0][p] is None or short[0][p].__class__ is int)
    }
    assert {"middle_name", "team_id", "offline_payment_amount", "team_gender"} <= alike
    assert "age" not in alike and "first_name" not in alike  # a value and a None; text
    assert all(len(r) == len(names) - len(constants) for r in rows)


def test_page_constants_of_one_row_or_of_none():
    one = [(11, 1, None, 5, "x")]
    assert pipeline._page_constants(one) == (one, {})
    assert pipeline.with_constants([(11, 1), (11, 2)], {2: None, 3: 7}) == [
        (11, 1, None, 7),
        (11, 2, None, 7),
    ]
    big = [(11, 1, 2**63), (11, 2, 2**63)]  # not a BIGINT: no constant
    assert pipeline._page_constants(big) == (big, {})


def test_a_first_listing_page_over_stored_registrations_is_projected_from_its_body(tmp_path):
    """The first listing of event 12 repeats registrations the first listing of event 11 stored
    (they changed event): the worker sends that page as new registrations, the main process
    finds them stored and projects the page from its body, as without a worker."""

    def journal_at(path: Any) -> Any:
        jn = new_journal(path)
        b = Builder(jn, tp=1, run_id="r1")
        b.race(j({"race": race_obj(100, event_ids=EVENTS)}), 100)
        b.listing(100, 11, [participants_body(11, [registration(i, 11) for i in range(1, 30)])])
        moved = [registration(i, 12, 1) for i in range(20, 40)]
        b.listing(100, 12, [participants_body(12, moved)])
        return jn

    _, piped, counts = _projected_both_ways(journal_at, tmp_path)
    assert (counts["prepared"], counts["new"]) == (2, 2)
    moved = piped.db.conn.execute(
        "SELECT COUNT(*) FROM runsignup_participants WHERE event_id = 12 AND previous_event_id = 11"
    ).fetchone()
    assert moved == (10,)


def test_ids_at_the_ends_of_bigint_are_written_exactly_with_the_page_constants(tmp_path):
    """The partner and race of a page of new registrations become SQL constants: at the largest
    and smallest BIGINT they are still stored as the exact integers."""
    top, bottom = 2**63 - 1, -(2**63)

    def journal_at(path: Any) -> Any:
        jn = new_journal(path)
        for tp, race in ((top, top), (bottom, 5)):
            b = Builder(jn, tp=tp, run_id=f"r{tp}")
            b.race(j({"race": race_obj(race, event_ids=EVENTS)}), race)
            b.listing(race, 11, [participants_body(11, [registration(i, 11) for i in (1, 2)])])
        return jn

    _, piped, counts = _projected_both_ways(journal_at, tmp_path)
    assert counts["new"] == 2
    got = piped.db.conn.execute(
        "SELECT timing_partner_id, typeof(timing_partner_id), race_id, typeof(race_id), "
        "COUNT(*) FROM runsignup_participants GROUP BY 1, 3 ORDER BY 1"
    ).fetchall()
    assert got == [(bottom, "integer", 5, "integer", 2), (top, "integer", top, "integer", 2)]


def test_a_first_listing_page_repeating_a_registration_after_an_all_null_copy(tmp_path):
    """A registration twice in a page of a first listing, its first copy all-null: the typed
    path keeps the last copy (no error), so the worker must not send the page down the generic
    path (which records the first copy as an error) when its new-registration form fails."""

    def journal_at(path: Any) -> Any:
        jn = new_journal(path)
        b = Builder(jn, tp=1, run_id="r1")
        b.race(j({"race": race_obj(100, event_ids=EVENTS)}), 100)
        null = {"registration_id": 3, "event_id": 11, "user": None, "bib_num": None}
        regs = [registration(1, 11), null, registration(3, 11), registration(4, 11)]
        b.listing(100, 11, [participants_body(11, regs)])
        return jn

    _, piped, counts = _projected_both_ways(journal_at, tmp_path)
    assert counts["prepared"] == 1
    errors = piped.db.conn.execute("SELECT COUNT(*) FROM projection_errors").fetchone()
    assert errors == (0,)


def test_a_worker_killed_mid_run_leaves_the_rest_to_the_main_process(tmp_path):
    """SIGKILL of the workers once the first page arrived (more pages than the pipes hold
    follow, the last one each wrote maybe cut): the main process reads what is whole and
    projects the rest itself, to the tables of a projection without a worker."""

    def journal_at(path: Any) -> Any:
        jn = new_journal(path)
        b = Builder(jn, tp=1, run_id="r1")
        b.race(j({"race": race_obj(100, event_ids=EVENTS)}), 100)
        regs = [registration(i, 11 + i % 2) for i in range(1, 6001)]
        b.listing(100, 11, [participants_body(11, regs[k : k + 200]) for k in range(0, 6000, 200)])
        return jn

    plain = journal_at(":memory:")
    project(plain.db)
    with worker_always() as counts:
        counted = pipeline.Prefetcher.prepared

        def prepared(self: pipeline.Prefetcher, row: Any) -> Any:
            got = counted(self, row)
            for w in self._workers:
                if w.proc.is_alive():
                    os.kill(w.proc.pid, signal.SIGKILL)
                    w.proc.join()
            return got

        pipeline.Prefetcher.prepared = prepared  # type: ignore[method-assign]
        piped = journal_at(tmp_path / "piped.db")
        project(piped.db)
    assert 1 <= counts["prepared"] < 30  # 30 pages of about 64 KiB marshal-ed: not all sent
    assert dump(piped.db.conn) == dump(plain.db.conn)


def _deepest_decodable(page: Callable[[int], bytes]) -> int:
    """The deepest ``page(depth)`` msgspec decodes from this frame (its limit counts the Python
    frames below the call: a deeper caller decodes less)."""
    depth = 1
    while typed.decode_page(page(depth + 1)) is not None:
        depth += 1
    return depth


def test_a_page_nested_nearly_too_deep_for_the_main_process_is_left_to_it(tmp_path):
    """How deeply nested a body decodes depends on the Python frames of the caller: a
    ``question_responses`` nested just deeper than the main process (some frames further down
    than this test) can decode is a page error there; the worker, with fewer frames, must not
    decode it either."""

    def page(depth: int) -> bytes:
        deep = b'[{"question_id":"1","response":' + b"[" * depth + b"]" * depth + b"}]"
        reg = participants_body(11, [registration(1, 11)])
        return reg.replace(b'"question_responses":', b'"question_responses":' + deep + b',"x":', 1)

    body = page(_deepest_decodable(page) - 5)

    def journal_at(path: Any) -> Any:
        jn = new_journal(path)
        b = Builder(jn, tp=1, run_id="r1")
        b.race(j({"race": race_obj(100, event_ids=EVENTS)}), 100)
        b.listing(100, 11, [body, participants_body(11, [registration(2, 11)])])
        return jn

    plain, _, _ = _projected_both_ways(journal_at, tmp_path)
    errors = plain.db.conn.execute("SELECT reason FROM projection_errors").fetchall()
    assert errors == [("body is JSON nested too deeply to read",)]


#: ``question_responses`` of the first listing's registrations (kept raw by the typed path)
ODD_ANSWERS = [
    None,
    {},
    [],
    "text",
    5,
    [[[[1]]]],
    [{"question_id": 5, "response": "x" * 3000}],  # more than the memoised 1 KiB
    [1, None, "a"],
    [{"question_id": None}],
]


def _odd_journal(path: Any) -> Any:
    """Two partners sharing a race; first listings mixing typed and generic pages (odd answers,
    all-null rows, ids out of range or as text, a registration without ``event_id``), error
    bodies, a removal, a registration in two events across pages, a multi-event listing of scope
    ``None`` whose element has no ``event_id``."""
    jn = new_journal(path)
    no_event = _without(registration(53, 11), "event_id")
    for tp in (1, 2):
        b = Builder(jn, tp=tp, run_id=f"r{tp}")
        b.race(j({"race": race_obj(100, event_ids=EVENTS)}), 100)
        regs: list[Any] = []
        for i, answers in enumerate(ODD_ANSWERS):
            regs.append({**registration(i + 1, 11), "question_responses": answers})
        regs += [
            {"registration_id": 50, "event_id": 11, "user": None, "question_responses": None},
            {"registration_id": 51, "event_id": 11, "user": None, "age": None},
            {"registration_id": 2**63, "event_id": 11},
            {"registration_id": "52", "event_id": 11},
            no_event,
        ]
        b.listing(100, 11, [participants_body(11, regs[:5]), participants_body(11, regs[5:])])
        b.listing(
            100,
            12,
            [
                participants_body(12, [registration(60, 12), registration(61, 11)]),
                participants_body(11, [registration(60, 11, 1)]),
            ],
        )
        removal = removed_registration(3, 11, "removed", None, 1_700_000_500)
        b.listing(100, 11, [removed_body(11, [removal])], endpoint="removed_participants")
        error = j({"error": {"error_code": 5, "error_msg": "x"}})
        b.response("participants", error, race_id=100, event_id=12, listing_id=f"e{tp}")
        b.response("participants", b"oops", race_id=100, event_id=12, status=500)
        several = j(
            [
                {"event": {"event_id": None}, "participants": [registration(70, 12), no_event]},
                {"event": {"event_id": 12}, "participants": [registration(3, 12)]},
            ]
        )
        b.listing(100, None, [several, participants_body(12, [registration(72, 12)])])
        b.listing(100, 12, [participants_body(12, [registration(i, 12, 2) for i in range(1, 12)])])
    return jn


@pytest.mark.parametrize("options", [{}, {"batch_size": 1}, {"shortcuts": False, "batch_size": 2}])
def test_odd_pages_in_first_listings_give_the_tables_of_the_main_process(tmp_path, options):
    plain, piped, counts = _projected_both_ways(_odd_journal, tmp_path, **options)
    # every page prepared, the typed first listings' pages as new registrations
    assert (counts["prepared"], counts["new"]) == (16, 6)
    with worker_always():
        project(piped.db, rebuild=True, **options)
    assert dump(piped.db.conn) == dump(plain.db.conn)
    errors = plain.db.conn.execute("SELECT COUNT(*) FROM projection_errors").fetchone()
    assert errors == (16,)  # the odd pages really went the generic way, 8 errors per partner


def test_a_forged_blob_of_a_first_listing_page_is_refused_with_the_worker(tmp_path):
    """The worker does not prepare a page whose blob fails its sha256 (it would have sent it
    as new registrations, without the body): the main process reads it and refuses the run,
    naming the journal event, as without a worker; nothing of the batch is written."""
    path = tmp_path / "forged.db"
    jn = new_journal(path)
    b = Builder(jn, tp=1, run_id="r1")
    b.race(j({"race": race_obj(100, event_ids=EVENTS)}), 100)
    pages = [participants_body(11, [registration(i, 11) for i in range(k, k + 5)]) for k in (1, 6)]
    b.listing(100, 11, pages)
    sha = hashlib.sha256(pages[1]).hexdigest()
    (seq,) = jn.db.conn.execute("SELECT seq FROM journal WHERE body_sha256 = ?", (sha,)).fetchone()
    jn.close()
    forged = pages[1].replace(b"Testville", b"Forgedvil")
    _tamper(
        path,
        "UPDATE journal_blobs SET codec = ?, data = ?, size = ? WHERE sha256 = ?",
        (ZSTD, encode_whole(forged).data, len(forged), sha),
    )
    with worker_always() as counts, pytest.raises(JournalError, match=f"journal event {seq}: "):
        project(path)
    assert counts == {"prepared": 1, "new": 1}  # the first page only
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT COUNT(*) FROM runsignup_participants").fetchone() == (0,)
    conn.close()


def test_a_projection_without_shortcuts_after_a_checkpoint(tmp_path):
    """``shortcuts=False`` starts the worker after a checkpoint too: it no longer sees the
    listings before it, so it sends a re-listing's pages (stored registrations, some changed,
    one new) as a first listing's; the main process finds them stored and projects them from
    their bodies."""

    def journal_at(path: Any, checkpoint: Callable[[Any], Any] = lambda jn: None) -> Any:
        jn = new_journal(path)
        b = Builder(jn, tp=1, run_id="r1")
        b.race(j({"race": race_obj(100, event_ids=EVENTS)}), 100)
        regs = [registration(i, 11) for i in range(1, 31)]
        b.listing(100, 11, [participants_body(11, regs[k : k + 10]) for k in (0, 10, 20)])
        checkpoint(jn)
        again = [registration(i, 11, i % 3 == 0) for i in range(1, 32)]
        b.listing(100, 11, [participants_body(11, again[k : k + 10]) for k in (0, 10, 20, 30)])
        return jn

    plain = journal_at(":memory:")
    project(plain.db, shortcuts=False)
    with worker_always() as counts:
        piped = journal_at(tmp_path / "piped.db", lambda jn: project(jn.db, shortcuts=False))
        project(piped.db, shortcuts=False)
    # the first run: the first listing's 3 pages; the second: the re-listing's 4, sent as new
    assert (counts["prepared"], counts["new"]) == (7, 7)
    assert dump(piped.db.conn) == dump(plain.db.conn)
    written = piped.db.conn.execute(
        "SELECT COUNT(*) FROM runsignup_participants p JOIN projector_pages g "
        "ON g.seq = p.source_seq WHERE g.listing_id = 'r1-1-2'"
    ).fetchone()
    assert written == (11,)  # by the re-listing: 10 changed (every third), 1 new


@pytest.mark.parametrize("refused_at", [0, 1])
def test_a_worker_the_system_refuses_to_start_leaves_the_pages_to_the_main_process(
    tmp_path, monkeypatch, refused_at
):
    """The workers only save time: when the system refuses a process (EAGAIN: a service's
    task limit reached), the projection goes on without them (those already started are
    stopped: ``refused_at`` 1 refuses the second)."""
    process = multiprocessing.get_context("spawn").Process
    start, started = process.start, []

    def refuse(self: Any) -> None:
        if len(started) == refused_at:
            raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))
        start(self)
        started.append(self)

    monkeypatch.setattr(pipeline, "WORKERS", 2)
    monkeypatch.setattr(process, "start", refuse)

    def journal_at(path: Any) -> Any:
        jn = new_journal(path)
        b = Builder(jn, tp=1, run_id="r1")
        b.race(j({"race": race_obj(100, event_ids=EVENTS)}), 100)
        b.listing(100, 11, [participants_body(11, [registration(i, 11) for i in range(1, 9)])])
        return jn

    _, _, counts = _projected_both_ways(journal_at, tmp_path)
    assert counts == {"prepared": 0, "new": 0}
    assert len(started) == refused_at
    assert not any(p.is_alive() for p in started)  # the one started was stopped


def test_a_worker_does_not_import_the_main_script(tmp_path):
    """``multiprocessing`` would have each spawned worker import the parent's ``__main__`` (for
    ``rsu``, its whole command line, 0.4 s); the workers import only what they run. The script
    below leaves a mark per process that imports it."""
    script = tmp_path / "main_script.py"
    script.write_text(
        "import os, sys\n"
        "open(os.path.join(sys.argv[1], f'imported-by-{os.getpid()}'), 'w').close()\n"
        "if __name__ == '__main__':\n"
        "    from rsu.journal import Journal, open_db\n"
        "    from rsu.projector import pipeline\n"
        "    Journal(open_db(os.path.join(sys.argv[1], 'j.db'))).close()\n"
        "    p = pipeline.Prefetcher(os.path.join(sys.argv[1], 'j.db'), 0, 2)\n"
        "    ends = [w.next(wait=True) for w in p._workers]\n"
        "    p.close()\n"
        "    print(ends)\n"
    )
    marks = tmp_path / "marks"
    marks.mkdir()
    out = subprocess.run(
        [sys.executable, str(script), str(marks)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[(None, None, None, None), (None, None, None, None)]"
    imported_by = [m.name for m in marks.iterdir() if m.name.startswith("imported-by-")]
    assert len(imported_by) == 1  # the script's own process only
