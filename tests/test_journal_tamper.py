"""Tampering with the journal file: a forged blob is refused on read (``rsu project --rebuild``
stops naming the seq), ``verify`` names every event whose blob is bad, and a deleted tail is
caught against a head (seq, hash) kept outside the file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from fetch_helpers import SMALL, fast_options, seed_credentials
from project_helpers import dump
from typer.testing import CliRunner

from rsu.cli.main import app
from rsu.fetcher import run_fetch
from rsu.journal import Journal, JournalError, sha256_hex
from rsu.journal.codecs import WHOLE_CODECS, ZSTD, encode_whole
from rsu.journal.schema import append_only_triggers
from rsu.journal.store import APPEND_ONLY_TRIGGERS
from rsu.projector import project
from rsu.simulator import SimulatorServer, World


def _tamper(db: Path, sql: str, params: tuple[object, ...] = ()) -> None:
    """Run ``sql`` on ``db`` with the append-only triggers dropped, then put them back."""
    conn = sqlite3.connect(db, isolation_level=None)
    for trig in APPEND_ONLY_TRIGGERS:
        conn.execute(f"DROP TRIGGER IF EXISTS {trig}")
    conn.execute("PRAGMA foreign_keys=OFF")
    conn.execute(sql, params)
    for statement in append_only_triggers():
        conn.execute(statement)
    conn.close()


@pytest.fixture
def fetched(tmp_path: Path) -> Path:
    """A database with one complete fetch of a small world, projected."""
    world = World.generate(SMALL)
    db = tmp_path / "rsu.db"
    seed_credentials(db, world.credentials)
    with SimulatorServer(world) as sim:
        assert run_fetch(db, fast_options(sim.base_url, tmp_path)).exit_code == 0
    assert project(db).exit_code == 0
    return db


def _participants_blob(db: Path) -> tuple[str, list[int]]:
    """A participants body stored whole, and the seqs of the events that carry it."""
    conn = sqlite3.connect(db)
    sha, codec = conn.execute(
        "SELECT b.sha256, b.codec FROM journal j JOIN journal_blobs b ON b.sha256 = j.body_sha256 "
        "WHERE j.kind = 'response_received' "
        'AND CAST(j.payload AS TEXT) LIKE \'%"endpoint":"participants"%\' '
        "AND b.size > 1000 ORDER BY j.seq LIMIT 1"
    ).fetchone()
    seqs = [r[0] for r in conn.execute("SELECT seq FROM journal WHERE body_sha256 = ?", (sha,))]
    conn.close()
    assert codec in WHOLE_CODECS
    return sha, seqs


def _forge(db: Path, sha: str) -> bytes:
    """Replace blob ``sha``'s content by a plausible forgery (a changed last name), keeping its
    key; returns the forged body."""
    journal = Journal.open(db)
    body = journal.body(sha)
    journal.close()
    doc = json.loads(body)
    doc[0]["participants"][0]["user"]["last_name"] = "Forged"
    forged = json.dumps(doc).encode()
    _tamper(
        db,
        "UPDATE journal_blobs SET codec = ?, data = ?, size = ? WHERE sha256 = ?",
        (ZSTD, encode_whole(forged).data, len(forged), sha),
    )
    return forged


def test_project_rebuild_refuses_a_forged_blob_naming_the_seq(fetched: Path) -> None:
    sha, seqs = _participants_blob(fetched)
    before = dump(sqlite3.connect(fetched))
    _forge(fetched, sha)
    journal = Journal.open(fetched)
    with pytest.raises(JournalError, match=f"blob {sha[:12]}: content does not match sha256"):
        journal.body(sha)
    journal.close()
    res = CliRunner().invoke(app, ["project", "--rebuild", "--db", str(fetched)])
    assert res.exit_code == 1
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert "Traceback" not in res.output
    assert f"journal event {seqs[0]}: blob {sha[:12]}: content does not match sha256" in res.output
    assert dump(sqlite3.connect(fetched)) == before  # the old tables stay, nothing forged in them
    assert "Forged" not in before


def test_verify_names_the_seq_of_every_event_whose_blob_is_bad(fetched: Path) -> None:
    sha, seqs = _participants_blob(fetched)
    journal = Journal.open(fetched)
    # a later body of the same listing page, stored as a delta on the forged blob, is bad too
    deltas = journal.db.conn.execute(
        "SELECT sha256 FROM journal_blobs WHERE base_sha256 = ?", (sha,)
    ).fetchall()
    journal.close()
    _forge(fetched, sha)
    res = CliRunner().invoke(app, ["journal", "verify", "--db", str(fetched)])
    assert res.exit_code == 1
    lines = res.output.splitlines()
    for seq in seqs:
        assert f"BROKEN seq {seq}: body blob {sha[:12]} is bad: content does not match sha256" in (
            lines
        )
    assert f"BROKEN blob {sha[:12]}: content does not match sha256" in lines
    assert deltas == []  # one fetch: nothing deltas on it yet (covered in test_journal_codecs)


def _head(db: Path) -> str:
    res = CliRunner().invoke(app, ["status", "--json", "--db", str(db)])
    return json.loads(res.stdout)["journal_head"]["text"]


def test_a_deleted_tail_is_caught_against_the_head_kept_outside(fetched: Path) -> None:
    head = _head(fetched)
    seq, hash_ = head.split(":")
    journal = Journal.open(fetched)
    assert journal.head() == (int(seq), hash_)
    journal.close()
    ok = CliRunner().invoke(app, ["journal", "verify", "--db", str(fetched), "--expect-head", head])
    assert ok.exit_code == 0
    assert ok.stdout.strip().endswith(f"chain intact, head {head} as expected")

    _tamper(fetched, "DELETE FROM journal WHERE seq > ?", (int(seq) - 2,))
    plain = CliRunner().invoke(app, ["journal", "verify", "--db", str(fetched)])
    assert plain.exit_code == 0  # the chain alone cannot tell a shorter journal
    res = CliRunner().invoke(
        app, ["journal", "verify", "--db", str(fetched), "--expect-head", head]
    )
    assert res.exit_code == 1
    conn = sqlite3.connect(fetched)
    now = conn.execute("SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1").fetchone()
    conn.close()
    assert (
        f"BROKEN head: expected head {head} is not in the journal, whose head is "
        f"{now[0]}:{now[1]}: events were deleted from its tail"
    ) in res.output


def test_a_rewritten_head_is_caught(fetched: Path) -> None:
    head = _head(fetched)
    seq = int(head.split(":")[0])
    other = sha256_hex(b"x")
    res = CliRunner().invoke(
        app, ["journal", "verify", "--db", str(fetched), "--expect-head", f"{seq}:{other}"]
    )
    assert res.exit_code == 1
    assert f"expected head {seq}:{other}, but seq {seq} has hash {head.split(':')[1]}" in (
        res.output
    )


@pytest.mark.parametrize("bad", ["12", "x:ab", "0:" + "a" * 64, "3:" + "g" * 64, "3:abc"])
def test_a_malformed_expected_head_is_a_usage_error(fetched: Path, bad: str) -> None:
    res = CliRunner().invoke(app, ["journal", "verify", "--db", str(fetched), "--expect-head", bad])
    assert res.exit_code == 2
    assert "--expect-head" in res.output


def test_the_fetch_summary_prints_the_journal_head(tmp_path: Path) -> None:
    world = World.generate(SMALL)
    db = tmp_path / "rsu.db"
    seed_credentials(db, world.credentials)
    with SimulatorServer(world) as sim:
        options = fast_options(sim.base_url, tmp_path)
        assert run_fetch(db, options).exit_code == 0
    summary = json.loads(options.summary_file.read_text())
    journal = Journal.open(db)
    seq, hash_ = journal.head()  # type: ignore[misc]
    journal.close()
    assert summary["journal_head"] == {"seq": seq, "hash": hash_, "text": f"{seq}:{hash_}"}


def test_a_blob_whose_data_was_overwritten_with_text_is_a_problem_not_a_traceback(
    fetched: Path,
) -> None:
    sha, seqs = _participants_blob(fetched)
    _tamper(
        fetched, "UPDATE journal_blobs SET codec = 'zlib', data = 'abc' WHERE sha256 = ?", (sha,)
    )
    res = CliRunner().invoke(app, ["journal", "verify", "--db", str(fetched)])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit)
    assert f"blob {sha[:12]} holds str, not bytes" in res.output
    res = CliRunner().invoke(app, ["project", "--rebuild", "--db", str(fetched)])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit)
    assert f"journal event {seqs[0]}: blob {sha[:12]} holds str, not bytes" in res.output


#: A zstd frame header declaring 1 TiB of content (decompressing it allocated that up front).
_TIB_FRAME = b"\x28\xb5\x2f\xfd\xe0" + (1 << 40).to_bytes(8, "little") + b"\x01\x00\x00"


@pytest.mark.parametrize("size_column", ["row", "forged"])
def test_a_blob_declaring_a_terabyte_is_refused_not_allocated(
    fetched: Path, size_column: str
) -> None:
    sha, seqs = _participants_blob(fetched)
    size = "size" if size_column == "row" else str(1 << 40)
    _tamper(
        fetched,
        f"UPDATE journal_blobs SET codec = 'zstd', data = ?, size = {size} WHERE sha256 = ?",
        (_TIB_FRAME, sha),
    )
    res = CliRunner().invoke(app, ["journal", "verify", "--db", str(fetched)])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output
    assert f"blob {sha[:12]}" in res.output
    res = CliRunner().invoke(app, ["project", "--rebuild", "--db", str(fetched)])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output
    assert f"journal event {seqs[0]}: blob {sha[:12]}" in res.output
