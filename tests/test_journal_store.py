"""Contract tests of the journal store, run on an in-memory and on a WAL file database."""

from __future__ import annotations

import re
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rsu.journal import (
    Journal,
    JournalError,
    ListingCompleted,
    RequestFailed,
    ResponseReceived,
    RunFinished,
    RunStarted,
    open_db,
    redact_query,
    sha256_hex,
)
from rsu.journal.codecs import encode_whole
from rsu.journal.schema import append_only_triggers
from rsu.journal.store import APPEND_ONLY_TRIGGERS, GENESIS, chain_hash

BODY = b'[{"event":{"event_id":1,"participants":[]},"participants":[]}]\r\n\xff\xfe'
OTHER = b'{"error":{"error_code":201,"error_msg":"Race not found."}}'

RawConn = Callable[[], sqlite3.Connection]


@pytest.fixture(params=["memory", "wal_file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Journal, RawConn]]:
    """A fresh journal plus a factory of raw sqlite3 connections to the same database (for
    tampering). For ``:memory:`` the raw connection is the journal's own."""
    if request.param == "memory":
        journal = Journal(open_db(":memory:"))

        def raw() -> sqlite3.Connection:
            return journal.db.conn

    else:
        path = tmp_path / "journal.db"
        journal = Journal.open(path)
        assert journal.db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

        def raw() -> sqlite3.Connection:
            return sqlite3.connect(path, isolation_level=None)

    yield journal, raw
    journal.close()


def _tamper(raw: RawConn, sql: str, params: tuple[object, ...] = ()) -> None:
    """Run ``sql`` through a raw connection after dropping the append-only triggers."""
    conn = raw()
    for trig in APPEND_ONLY_TRIGGERS:
        conn.execute(f"DROP TRIGGER IF EXISTS {trig}")
    fk = conn.execute("PRAGMA foreign_keys").fetchone()[0]
    conn.execute("PRAGMA foreign_keys=OFF")
    conn.execute(sql, params)
    if conn.in_transaction:
        conn.commit()
    conn.execute(f"PRAGMA foreign_keys={fk}")
    # a careful tamperer puts the triggers back, so only the hashes can tell
    for statement in append_only_triggers():
        conn.execute(statement)


def _response(page: int, sha: str = "", size: int = 0) -> ResponseReceived:
    return ResponseReceived(
        endpoint="participants",
        path="/Rest/race/7/participants",
        query={"event_id": "11", "page": str(page)},
        status=200,
        body_sha256=sha,
        body_size=size,
        page=page,
        race_id=7,
        event_id=11,
    )


def _fill(journal: Journal) -> list[int]:
    """Append run_started, three responses (BODY, OTHER, BODY again) and run_finished."""
    return [
        journal.append(RunStarted(mode="full", scope={"partners": [3]}), run_id="r1"),
        journal.append(
            _response(1), BODY, run_id="r1", timing_partner_id=3, race_id=7, event_id=11
        ),
        journal.append(
            _response(2), OTHER, run_id="r1", timing_partner_id=3, race_id=7, event_id=11
        ),
        journal.append(
            _response(3), BODY, run_id="r1", timing_partner_id=4, race_id=8, event_id=12
        ),
        journal.append(RunFinished(status="ok", counts={"requests": 3}), run_id="r1"),
    ]


# -- round trip ------------------------------------------------------------------------------


def test_round_trip_events_and_bodies(store: tuple[Journal, RawConn]) -> None:
    journal, _ = store
    assert journal.last_seq() == 0
    assert _fill(journal) == [1, 2, 3, 4, 5]
    rows = [r for batch in journal.read(0, batch_size=2) for r in batch]
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert [r.kind for r in rows] == [
        "run_started",
        "response_received",
        "response_received",
        "response_received",
        "run_finished",
    ]
    assert rows[1].event == _response(1)
    assert rows[0].event == RunStarted(mode="full", scope={"partners": [3]})
    assert (rows[1].timing_partner_id, rows[1].race_id, rows[1].event_id) == (3, 7, 11)
    assert (rows[3].timing_partner_id, rows[3].race_id, rows[3].event_id) == (4, 8, 12)
    assert rows[0].body_sha256 is None
    assert rows[1].body_sha256 == rows[3].body_sha256 == sha256_hex(BODY)
    assert journal.body(sha256_hex(BODY)) == BODY
    assert journal.body(sha256_hex(OTHER)) == OTHER
    assert rows[0].prev_hash == GENESIS
    assert [r.prev_hash for r in rows[1:]] == [r.hash for r in rows[:-1]]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", rows[0].recorded_at)
    assert journal.get(3) == rows[2]
    assert journal.last_seq() == 5


def test_read_batches_and_after_seq(store: tuple[Journal, RawConn]) -> None:
    journal, _ = store
    _fill(journal)
    assert [[r.seq for r in b] for b in journal.read(0, batch_size=2)] == [[1, 2], [3, 4], [5]]
    assert [[r.seq for r in b] for b in journal.read(3, batch_size=10)] == [[4, 5]]
    assert list(journal.read(5)) == []
    with pytest.raises(ValueError, match="batch_size"):
        next(journal.read(0, batch_size=0))


def test_find_filters(store: tuple[Journal, RawConn]) -> None:
    journal, _ = store
    _fill(journal)
    assert [r.seq for r in journal.find(kind="response_received")] == [2, 3, 4]
    assert [r.seq for r in journal.find(timing_partner_id=3)] == [2, 3]
    assert [r.seq for r in journal.find(race_id=8)] == [4]
    assert [r.seq for r in journal.find(run_id="r1", newest_first=True, limit=2)] == [5, 4]
    assert [r.seq for r in journal.find(after_seq=1, before_seq=4)] == [2, 3]
    assert journal.find(since="2999-01-01") == []
    assert len(journal.find(since="2000-01-01")) == 5


def test_get_and_body_missing(store: tuple[Journal, RawConn]) -> None:
    journal, _ = store
    with pytest.raises(KeyError):
        journal.get(1)
    with pytest.raises(KeyError):
        journal.body("0" * 64)
    assert journal.has_body(sha256_hex(BODY)) is False


def test_identical_bodies_stored_once(store: tuple[Journal, RawConn]) -> None:
    journal, _ = store
    _fill(journal)
    rows = journal.db.conn.execute(
        "SELECT sha256, size, codec FROM journal_blobs ORDER BY size"
    ).fetchall()
    assert rows == [
        (sha256_hex(OTHER), len(OTHER), encode_whole(OTHER).codec),
        (sha256_hex(BODY), len(BODY), encode_whole(BODY).codec),
    ]
    st_ = journal.stats()
    assert st_.events == 5
    assert st_.events_by_kind == {"response_received": 3, "run_finished": 1, "run_started": 1}
    assert st_.blobs == 2
    assert st_.body_bytes_received == 2 * len(BODY) + len(OTHER)
    assert st_.body_bytes_unique == len(BODY) + len(OTHER)
    stored = sum(len(encode_whole(b).data) for b in (BODY, OTHER))
    assert st_.body_bytes_stored == stored
    assert st_.ratio == pytest.approx((2 * len(BODY) + len(OTHER)) / stored)
    assert st_.last_seq == 5


def test_empty_body_is_a_body(store: tuple[Journal, RawConn]) -> None:
    journal, _ = store
    seq = journal.append(_response(1), b"")
    assert journal.get(seq).body_sha256 == sha256_hex(b"")
    assert journal.body(sha256_hex(b"")) == b""
    assert journal.verify().ok


# -- append-only --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE journal SET kind = 'x' WHERE seq = 1",
        "DELETE FROM journal WHERE seq = 1",
        "DELETE FROM journal",
        "UPDATE journal_blobs SET size = 0",
        "DELETE FROM journal_blobs",
    ],
)
def test_update_and_delete_are_rejected(store: tuple[Journal, RawConn], sql: str) -> None:
    journal, raw = store
    _fill(journal)
    conn = raw()
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute(sql)
    if conn.in_transaction:
        conn.rollback()
    assert journal.last_seq() == 5
    assert journal.verify().ok


# -- verify ------------------------------------------------------------------------------------


def test_verify_ok_counts(store: tuple[Journal, RawConn]) -> None:
    journal, _ = store
    _fill(journal)
    report = journal.verify()
    assert (report.ok, report.events, report.blobs, report.problems) == (True, 5, 2, [])


def test_verify_catches_flipped_byte_in_blob_content(store: tuple[Journal, RawConn]) -> None:
    journal, raw = store
    _fill(journal)
    sha = sha256_hex(BODY)
    flipped = bytearray(BODY)
    flipped[10] ^= 0x01
    _tamper(
        raw,
        "UPDATE journal_blobs SET data = ? WHERE sha256 = ?",
        (encode_whole(bytes(flipped)).data, sha),
    )
    report = journal.verify()
    bad = f"body blob {sha[:12]} is bad: content does not match sha256"
    # every event whose body it is, by seq, then the blob itself
    assert report.problems == [
        ("2", bad),
        ("4", bad),
        (f"blob {sha[:12]}", "content does not match sha256"),
    ]
    assert not report.ok
    with pytest.raises(JournalError, match=f"blob {sha[:12]}: content does not match sha256"):
        journal.body(sha)


def test_verify_catches_flipped_byte_in_compressed_blob(store: tuple[Journal, RawConn]) -> None:
    journal, raw = store
    _fill(journal)
    sha = sha256_hex(OTHER)
    data = bytearray(
        journal.db.conn.execute(
            "SELECT data FROM journal_blobs WHERE sha256 = ?", (sha,)
        ).fetchone()[0]
    )
    data[len(data) // 2] ^= 0xFF
    _tamper(raw, "UPDATE journal_blobs SET data = ? WHERE sha256 = ?", (bytes(data), sha))
    report = journal.verify()
    assert [p[0] for p in report.problems] == ["3", f"blob {sha[:12]}"]
    assert report.problems[1][1] == "content does not match sha256"
    assert report.problems[0][1] == f"body blob {sha[:12]} is bad: {report.problems[1][1]}"


def test_verify_catches_edited_payload(store: tuple[Journal, RawConn]) -> None:
    journal, raw = store
    _fill(journal)
    forged = msgspec.json.encode(_response(99))
    _tamper(raw, "UPDATE journal SET payload = ? WHERE seq = 3", (forged,))
    assert journal.get(3).event == _response(99)  # the forgery reads fine...
    assert journal.verify().problems == [("3", "hash mismatch: row was altered")]  # ...but not here


def test_verify_catches_edited_payload_with_rehashed_row(store: tuple[Journal, RawConn]) -> None:
    """Recomputing the edited row's own hash still breaks the link to the next row."""
    journal, raw = store
    _fill(journal)
    r = journal.get(3)
    forged = msgspec.json.encode(_response(99))
    h = chain_hash(r.prev_hash, 3, r.recorded_at, r.kind, r.run_id, 3, 7, 11, forged, r.body_sha256)
    _tamper(raw, "UPDATE journal SET payload = ?, hash = ? WHERE seq = 3", (forged, h))
    assert journal.verify().problems == [("4", "prev_hash does not match previous row")]


def test_verify_catches_undecodable_payload(store: tuple[Journal, RawConn]) -> None:
    journal, raw = store
    _fill(journal)
    _tamper(raw, "UPDATE journal SET payload = ? WHERE seq = 2", (b"{not json",))
    problems = journal.verify().problems
    assert [p[0] for p in problems] == ["2", "2"]
    assert problems[0][1] == "hash mismatch: row was altered"
    assert problems[1][1].startswith("payload does not decode")
    with pytest.raises(JournalError, match="event 2 does not decode"):
        journal.get(2)


def test_verify_catches_deleted_row(store: tuple[Journal, RawConn]) -> None:
    journal, raw = store
    _fill(journal)
    _tamper(raw, "DELETE FROM journal WHERE seq = 2")
    report = journal.verify()
    assert report.events == 4
    assert report.problems == [
        ("3", "seq gap: expected 2, found 3"),
        ("3", "prev_hash does not match previous row"),
    ]


def test_verify_catches_missing_blob(store: tuple[Journal, RawConn]) -> None:
    journal, raw = store
    _fill(journal)
    _tamper(raw, "DELETE FROM journal_blobs WHERE sha256 = ?", (sha256_hex(OTHER),))
    assert journal.verify().problems == [("3", "body blob missing")]


# -- safety ------------------------------------------------------------------------------------


def test_secret_query_params_are_redacted_on_append(store: tuple[Journal, RawConn]) -> None:
    journal, _ = store
    ev = RequestFailed(
        endpoint="races",
        path="/Rest/races",
        query={"API_KEY": "k", "format": "json", "Api_Secret": "s", "rsu_api_key": "v2"},
    )
    seq = journal.append(ev)
    assert journal.get(seq).event == RequestFailed(
        endpoint="races", path="/Rest/races", query={"format": "json"}
    )
    payload = journal.db.conn.execute("SELECT payload FROM journal").fetchone()[0]
    assert b"API_KEY" not in payload and b'"k"' not in payload


def test_declared_body_hash_must_match_body(store: tuple[Journal, RawConn]) -> None:
    journal, _ = store
    with pytest.raises(ValueError, match="declares body sha256"):
        journal.append(_response(1, sha="ab" * 32), BODY)
    seq = journal.append(_response(1, sha=sha256_hex(BODY), size=len(BODY)), BODY)
    assert seq == 1


def test_scope_ids_must_be_integers(store: tuple[Journal, RawConn]) -> None:
    journal, _ = store
    with pytest.raises(TypeError):
        journal.append(RunStarted(mode="full"), race_id="7")  # type: ignore[arg-type]
    assert journal.last_seq() == 0


def test_concurrent_appends_from_threads(store: tuple[Journal, RawConn]) -> None:
    journal, _ = store
    bodies = [f'{{"page":{i}}}'.encode() * 50 for i in range(10)]

    def worker(t: int) -> None:
        for i in range(25):
            journal.append(_response(i), bodies[(t + i) % 10], race_id=t, event_id=i)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    rows = [r for b in journal.read() for r in b]
    assert [r.seq for r in rows] == list(range(1, 101))
    for t in range(4):
        assert [r.event_id for r in rows if r.race_id == t] == list(range(25))
    report = journal.verify()
    assert (report.ok, report.events, report.blobs) == (True, 100, 10)


def test_db_file_mode_is_0600(tmp_path: Path) -> None:
    path = tmp_path / "rsu.db"
    with Journal.open(path) as journal:
        journal.append(_response(1), BODY)
        for p in (path, Path(f"{path}-wal")):
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    path.chmod(0o644)
    open_db(path).conn.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_open_db_on_a_non_database_file(tmp_path: Path) -> None:
    path = tmp_path / "not.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(JournalError, match=r"not\.db"):
        Journal.open(path)


@pytest.mark.parametrize(
    "key",
    [
        "api_key",
        "API_KEY",
        "api_secret",
        "Api_Secret",
        "rsu_api_key",
        "RSU_API_KEY",
        "sp_api_key",
        "tmp_key",
        "tmp_secret",
        "access_token",
        "Authorization",
        "X-RSU-API-SECRET",
    ],
)
def test_redact_query_drops_secrets_case_insensitively(key: str) -> None:
    query = {"format": "json", key: "secret-value", "event_id": "5"}
    assert redact_query(query) == {"format": "json", "event_id": "5"}
    assert list(redact_query(query)) == ["format", "event_id"]


def test_redact_query_keeps_lookalikes() -> None:
    query = {"api_keys_count": "1", "key": "x", "secret_santa": "y"}
    assert redact_query(query) == query


# -- property: any sequence of appends reads back identically and verifies ----------------------

_ids = st.none() | st.integers(min_value=0, max_value=2**62)
_query = st.dictionaries(
    st.sampled_from(["format", "page", "event_id", "API_KEY", "api_secret", "sort"]),
    st.text(max_size=8),
    max_size=4,
)
_events = st.one_of(
    st.builds(
        RunStarted, mode=st.sampled_from(["full", "incremental"]), tool_version=st.text(max_size=5)
    ),
    st.builds(
        ResponseReceived,
        endpoint=st.sampled_from(["races", "race", "participants"]),
        path=st.text(max_size=20),
        query=_query,
        status=st.integers(100, 599),
        page=st.none() | st.integers(1, 10_000),
        cursor=st.none() | st.integers(0, 2**40),
    ),
    st.builds(
        ListingCompleted,
        endpoint=st.just("participants"),
        race_id=st.integers(0, 10**9),
        event_id=st.integers(0, 10**9),
        listing_id=st.text(max_size=10),
        page_seqs=st.lists(st.integers(1, 10**6), max_size=5),
    ),
    st.builds(
        RunFinished,
        status=st.sampled_from(["ok", "failed"]),
        failures=st.lists(st.text(max_size=10), max_size=3),
    ),
)
_pool = [b"", b"\x00\xff\r\n", b'{"races":[]}', bytes(range(256)) * 4]
_bodies = st.none() | st.sampled_from(_pool) | st.binary(max_size=300)
_appends = st.lists(
    st.tuples(_events, _bodies, _ids, _ids, _ids, st.none() | st.text(max_size=6)), max_size=25
)


def _expected(ev: object) -> object:
    q = getattr(ev, "query", None)
    return msgspec.structs.replace(ev, query=redact_query(q)) if q else ev  # type: ignore[type-var]


def _check(journal: Journal, appends: list, rows: list) -> None:
    assert [r.seq for r in rows] == list(range(1, len(appends) + 1))
    for (ev, body, partner, race, event, run), row in zip(appends, rows, strict=True):
        assert row.event == _expected(ev)
        assert (row.run_id, row.timing_partner_id, row.race_id, row.event_id) == (
            run,
            partner,
            race,
            event,
        )
        if body is None:
            assert row.body_sha256 is None
        else:
            assert journal.body(row.body_sha256) == body
    report = journal.verify()
    assert (report.problems, report.events) == ([], len(appends))
    assert report.blobs == len({b for _, b, *_ in appends if b is not None})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_appends)
def test_property_sequential_appends_read_back_and_verify(appends: list) -> None:
    with Journal(open_db(":memory:")) as journal:
        for ev, body, partner, race, event, run in appends:
            journal.append(
                ev, body, run_id=run, timing_partner_id=partner, race_id=race, event_id=event
            )
        rows = [r for b in journal.read(0, batch_size=7) for r in b]
        _check(journal, appends, rows)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_appends, min_size=2, max_size=4))
def test_property_threaded_appends_read_back_and_verify(chunks: list) -> None:
    with Journal(open_db(":memory:")) as journal:
        seqs: list[list[int]] = [[] for _ in chunks]

        def worker(i: int) -> None:
            for ev, body, partner, race, event, run in chunks[i]:
                seqs[i].append(
                    journal.append(
                        ev,
                        body,
                        run_id=run,
                        timing_partner_id=partner,
                        race_id=race,
                        event_id=event,
                    )
                )

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(chunks))]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        # Put the appends back in seq order: each thread's own appends keep their order.
        by_seq = {
            s: a for i, chunk in enumerate(chunks) for s, a in zip(seqs[i], chunk, strict=True)
        }
        for own in seqs:
            assert own == sorted(own)
        appends = [by_seq[s] for s in sorted(by_seq)]
        rows = [r for b in journal.read() for r in b]
        _check(journal, appends, rows)


def test_verify_reports_dropped_append_only_triggers(store: tuple[Journal, RawConn]) -> None:
    journal, raw = store
    journal.append(_response(1), b"{}")
    conn = raw()
    conn.execute("DROP TRIGGER journal_no_delete")
    conn.commit()
    assert journal.verify().problems == [
        ("schema", "trigger journal_no_delete is missing: the journal is not append-only")
    ]
