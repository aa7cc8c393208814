"""Blob codecs of the journal: zstd, deltas against an earlier body of the same listing page,
the chain bound, old zlib blobs, and fetch/import/rebuild across codecs."""

from __future__ import annotations

import sqlite3
import zlib
from pathlib import Path

import pytest
from fetch_helpers import fast_options, replay_into, seeded_world, stored_bodies
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from project_helpers import dump, participants_body, registration
from typer.testing import CliRunner

from rsu.cli.main import app
from rsu.fetcher import run_fetch
from rsu.journal import (
    Journal,
    JournalError,
    ResponseReceived,
    encode_event,
    open_db,
    sha256_hex,
)
from rsu.journal import codecs as jc
from rsu.journal.schema import m001_journal
from rsu.journal.store import GENESIS, chain_hash
from rsu.projector import project
from rsu.simulator import SimulatorServer

EVENT = 11


def _page(reg_ids: range | list[int], versions: dict[int, int] | None = None) -> bytes:
    versions = versions or {}
    return participants_body(EVENT, [registration(i, EVENT, versions.get(i, 0)) for i in reg_ids])


def _response(
    body: bytes, *, listing: str | None = None, cursor: int | None = None, page: int | None = None
) -> ResponseReceived:
    return ResponseReceived(
        endpoint="participants",
        path="/Rest/race/7/participants",
        query={"event_id": str(EVENT), "results_per_page": "2500"},
        body_sha256=sha256_hex(body),
        body_size=len(body),
        listing_id=listing,
        cursor=cursor,
        page=page,
        race_id=7,
        event_id=EVENT,
    )


def _append(journal: Journal, body: bytes, **kw: object) -> int:
    return journal.append(
        _response(body, **kw), body, timing_partner_id=3, race_id=7, event_id=EVENT
    )  # type: ignore[arg-type]


def _blobs(journal: Journal) -> dict[str, tuple[str, str | None, int]]:
    """sha256 -> (codec, base_sha256, stored bytes)."""
    return {
        r[0]: (r[1], r[2], r[3])
        for r in journal.db.conn.execute(
            "SELECT sha256, codec, base_sha256, LENGTH(data) FROM journal_blobs"
        )
    }


def _assert_every_blob_decodes_to_its_hash(journal: Journal) -> None:
    for sha in _blobs(journal):
        assert sha256_hex(journal.body(sha)) == sha
    assert journal.verify().problems == []


def test_a_relisted_page_is_a_small_delta_against_the_first() -> None:
    journal = Journal(open_db(":memory:"))
    day1 = _page(range(1, 201))
    day2 = _page([*range(1, 50), *range(51, 206)], {7: 1, 120: 2})  # 1 gone, 5 new, 2 edited
    _append(journal, day1, listing="a")
    _append(journal, day2, listing="b")
    blobs = _blobs(journal)
    whole = jc.encode_whole(day1)
    assert blobs[sha256_hex(day1)] == (jc.ZSTD, None, len(whole.data))
    codec, base, size = blobs[sha256_hex(day2)]
    assert (codec, base) == (jc.ZSTD_DELTA, sha256_hex(day1))
    assert size * 10 < len(jc.encode_whole(day2).data)
    assert journal.body(sha256_hex(day2)) == day2
    _assert_every_blob_decodes_to_its_hash(journal)


def test_keyset_pages_delta_against_the_same_page_of_the_last_listing() -> None:
    journal = Journal(open_db(":memory:"))
    first = [_page(range(1, 101)), _page(range(101, 201)), _page(range(201, 230))]
    # a day later one row of page 1 is gone, so the cursors of pages 2 and 3 moved
    second = [
        _page([*range(1, 40), *range(41, 102)]),
        _page(range(102, 202)),
        _page(range(202, 231)),
    ]
    for listing, pages in (("a", first), ("b", second)):
        for i, body in enumerate(pages):
            _append(
                journal,
                body,
                listing=listing,
                cursor=None if i == 0 else 100 * i + (listing == "b"),
            )
    blobs = _blobs(journal)
    for old, new in zip(first, second, strict=True):
        assert blobs[sha256_hex(new)][:2] == (jc.ZSTD_DELTA, sha256_hex(old))
    _assert_every_blob_decodes_to_its_hash(journal)


def test_a_delta_that_is_no_longer_small_stores_the_body_whole_again() -> None:
    journal = Journal(open_db(":memory:"))
    regs = range(1, 201)
    day = 0
    codecs_seen = []
    bases = []
    while day < 12:
        day += 1
        # every day another 10% of the rows is edited: the delta against day 1 keeps growing
        body = _page(regs, {i: day for i in regs if i % 10 < day})
        _append(journal, body, listing=f"l{day}")
        codec, base, _ = _blobs(journal)[sha256_hex(body)]
        codecs_seen.append(codec)
        bases.append(base)
    assert codecs_seen[0] == jc.ZSTD
    assert codecs_seen[1] == jc.ZSTD_DELTA
    assert jc.ZSTD in codecs_seen[2:], codecs_seen  # a new whole body once the delta grew
    _assert_every_blob_decodes_to_its_hash(journal)


def _links(blobs: dict[str, tuple[str, str | None, int]], sha: str) -> int:
    """Base links from blob ``sha`` to a blob stored whole."""
    codec, base, _ = blobs[sha]
    if codec in jc.WHOLE_CODECS:
        assert base is None
        return 0
    assert codec == jc.ZSTD_DELTA and base is not None
    return 1 + _links(blobs, base)


def _assert_chain_bound(journal: Journal) -> None:
    blobs = _blobs(journal)
    assert jc.MAX_CHAIN == 2
    assert all(_links(blobs, sha) <= jc.MAX_CHAIN for sha in blobs)


# A day of one listing page: which rows exist and their versions.
_DAY = st.tuples(
    st.sets(st.integers(1, 120), min_size=0, max_size=120),
    st.dictionaries(st.integers(1, 120), st.integers(0, 5), max_size=20),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    days=st.lists(
        st.tuples(_DAY, st.sampled_from(["zstd", "zlib"]), st.integers(0, 2)),
        min_size=1,
        max_size=8,
    ),
    raw=st.lists(st.binary(max_size=6000), max_size=3),
)
def test_every_blob_decodes_to_bytes_with_its_own_hash_across_codecs(
    days: list[tuple[tuple[set[int], dict[int, int]], str, int]], raw: list[bytes]
) -> None:
    db = open_db(":memory:")
    for n, ((rows, versions), codec, cursor) in enumerate(days):
        journal = Journal(db, blob_codec=codec)  # same database, the codec of the day
        _append(journal, _page(sorted(rows), versions), listing=f"l{n}", cursor=cursor or None)
        for body in raw:
            _append(journal, body, listing=f"r{n}")
    journal = Journal(db)
    _assert_every_blob_decodes_to_its_hash(journal)
    _assert_chain_bound(journal)


def _old_database(path: Path, body: bytes) -> None:
    """A database as written before zstd: schema m001 only, one event with a zlib blob."""
    db = open_db(path)
    m001_journal(db)
    sha = sha256_hex(body)
    ev = _response(body)
    payload = encode_event(ev)
    h = chain_hash(
        GENESIS, 1, "2026-01-01T00:00:00.000Z", "response_received", "r", 3, 7, EVENT, payload, sha
    )
    db.conn.execute(
        "INSERT INTO journal_blobs VALUES (?, ?, 'zlib', ?)",
        (sha, len(body), zlib.compress(body, 1)),
    )
    db.conn.execute(
        "INSERT INTO journal VALUES (1, ?, 'response_received', 'r', 3, 7, ?, ?, ?, ?, ?)",
        ("2026-01-01T00:00:00.000Z", EVENT, payload, sha, GENESIS, h),
    )
    db.conn.commit()
    db.conn.close()


def test_old_zlib_blobs_still_read_and_new_ones_are_zstd(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = _page(range(1, 101))
    _old_database(path, old)
    journal = Journal.open(path)  # migrates: two columns added, nothing rewritten
    assert journal.body(sha256_hex(old)) == old
    new = _page(range(1, 102))
    _append(journal, new, listing="b")
    assert _blobs(journal) == {
        sha256_hex(old): ("zlib", None, len(zlib.compress(old, 1))),
        sha256_hex(new): ("zstd", None, len(jc.encode_whole(new).data)),
    }
    _assert_every_blob_decodes_to_its_hash(journal)
    journal.close()
    res = CliRunner().invoke(app, ["journal", "verify", "--db", str(path)])
    assert (res.exit_code, res.stdout.strip()) == (0, "OK: 2 events, 2 blobs, chain intact")


def test_daily_relistings_are_level_2_deltas_with_a_level_1_now_and_then() -> None:
    journal = Journal(open_db(":memory:"))
    regs = list(range(1, 401))
    versions: dict[int, int] = {}
    links = []
    for day in range(10):
        regs += range(401 + 8 * day, 409 + 8 * day)  # 8 new registrations a day, 8 edits
        versions.update({(day * 37 + k * 41) % 400 + 1: day + 1 for k in range(8)})
        body = _page(regs, versions)
        _append(journal, body, listing=f"d{day}")
        links.append(_links(_blobs(journal), sha256_hex(body)))
    # day 0 whole; day 1 against it; later days against the newest level-1 delta while that
    # costs at most half a new level-1 delta, else a new level-1 delta; on day 7 the level-1
    # delta is no longer small (15% of the rows changed): stored whole, and it starts again
    assert links == [0, 1, 1, 2, 1, 2, 2, 0, 1, 1]
    _assert_every_blob_decodes_to_its_hash(journal)
    _assert_chain_bound(journal)


def test_a_chain_longer_than_the_bound_is_refused() -> None:
    journal = Journal(open_db(":memory:"))
    a, b, c, d = (_page(range(1, n)) for n in (101, 102, 103, 104))
    _append(journal, a, listing="a")
    for body, base in ((b, a), (c, b), (d, c)):  # b -> a, c -> b -> a, d -> c -> b -> a
        delta = jc.encode_delta(body, base, sha256_hex(base))
        assert delta is not None
        journal.db.conn.execute(
            "INSERT INTO journal_blobs (sha256, size, codec, data, base_sha256) "
            "VALUES (?, ?, ?, ?, ?)",
            (sha256_hex(body), len(body), delta.codec, delta.data, sha256_hex(base)),
        )
    assert journal.body(sha256_hex(c)) == c  # two links: within the bound
    with pytest.raises(JournalError, match="chain longer than 2"):
        journal.body(sha256_hex(d))
    assert [p[0] for p in journal.verify().problems] == [f"blob {sha256_hex(d)[:12]}"]


def test_import_stores_a_similar_file_as_a_delta(tmp_path: Path) -> None:
    files = []
    for n, regs in enumerate((range(1, 151), range(1, 153))):
        f = tmp_path / f"p{n}.json"
        f.write_bytes(_page(regs))
        files.append(f)
    db = tmp_path / "rsu.db"
    for f in files:
        res = CliRunner().invoke(
            app,
            [
                "journal",
                "import",
                str(f),
                "--endpoint",
                "participants",
                "--race-id",
                "7",
                "--event-id",
                str(EVENT),
                "--partner",
                "3",
                "--db",
                str(db),
            ],
        )
        assert res.exit_code == 0, res.output
    journal = Journal.open(db)
    blobs = _blobs(journal)
    shas = [sha256_hex(f.read_bytes()) for f in files]
    assert blobs[shas[1]][:2] == (jc.ZSTD_DELTA, shas[0])
    assert stored_bodies(db) == {sha256_hex(f.read_bytes()): f.read_bytes() for f in files}
    journal.close()


def test_relisting_with_deltas_projects_like_zlib_and_rebuilds(tmp_path: Path) -> None:
    world, db = seeded_world(
        tmp_path,
        seed=5,
        partners=2,
        races_per_partner=2,
        events_per_race=(1, 2),
        registrations_per_event=(40, 120),
    )
    with SimulatorServer(world) as sim:
        assert run_fetch(db, fast_options(sim.base_url, tmp_path, page_size=50)).exit_code == 0
        world.advance(new=6, edits=4, refunds=1, transfers=1, deferrals=1, seconds=86400)
        again = fast_options(sim.base_url, tmp_path, page_size=50, full=True)
        assert run_fetch(db, again).exit_code == 0
    journal = Journal.open(db)
    codecs_used = {c for c, _, _ in _blobs(journal).values()}
    assert jc.ZSTD_DELTA in codecs_used and jc.ZSTD in codecs_used
    _assert_chain_bound(journal)
    _assert_every_blob_decodes_to_its_hash(journal)
    zlib_db = tmp_path / "zlib.db"
    plain = Journal.open(zlib_db, blob_codec="zlib")
    replay_into(journal, plain)
    assert {c for c, _, _ in _blobs(plain).values()} <= {"zlib"}
    journal.close()
    plain.close()
    assert project(db).exit_code == 0
    assert project(zlib_db).exit_code == 0
    tables = ("runsignup_races", "runsignup_events", "runsignup_participants")
    projected = dump(sqlite3.connect(db))
    # the replayed copy has its own recorded_at times, so removal times differ; nothing else
    assert dump(sqlite3.connect(db), tables, exclude=("removed_at",)) == dump(
        sqlite3.connect(zlib_db), tables, exclude=("removed_at",)
    )
    res = CliRunner().invoke(app, ["project", "--rebuild", "--db", str(db)])
    assert res.exit_code == 0, res.output
    assert dump(sqlite3.connect(db)) == projected


def test_a_pair_too_large_for_the_window_is_stored_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    base, body = _page(range(1, 101)), _page(range(1, 102))  # ~110 KB each
    assert jc.encode_delta(body, base, sha256_hex(base)) is not None
    monkeypatch.setattr(jc, "_MAX_WINDOW_LOG", 17)  # 128 KiB: base + body no longer fit
    assert jc.encode_delta(body, base, sha256_hex(base)) is None
    journal = Journal(open_db(":memory:"))
    _append(journal, base, listing="a")
    _append(journal, body, listing="b")
    assert _blobs(journal)[sha256_hex(body)][:2] == (jc.ZSTD, None)
