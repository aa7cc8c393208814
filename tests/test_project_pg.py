"""The PostgreSQL target: the same rows as SQLite (golden), idempotent replay, chunks, rebuild
swap, one checkpoint per target, SIGKILL mid-batch, the CLI (``--target``, ``RSU_TARGET``) and
the DSN password rule. Needs ``RSU_TEST_PG_DSN`` (``.ci/run`` starts a private server)."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from crash_helpers import killed_at
from fetch_helpers import seed_credentials, seeded_world, world_registrations
from pg_helpers import DSN_ENV, fresh_database, pg_rows
from project_helpers import (
    Builder,
    big_listing_run,
    j,
    new_journal,
    participants_body,
    race_obj,
    registration,
    removed_body,
    removed_registration,
)
from test_e2e import TODAY
from test_project_pipeline import worker_always
from test_project_properties import build
from test_replay_e2e import write_manifest
from typer.testing import CliRunner

from rsu.cli.main import app
from rsu.projector import TargetError, project
from rsu.projector import apply as apply_module
from rsu.projector import pg as pg_module
from rsu.projector.dsn import mask_dsn
from rsu.projector.pg import JSON_COLUMNS
from rsu.projector.schema import TABLES, Table
from rsu.simulator import Credential, ReplayServer, SimulatorServer

REASONS = ("cleared", "removed", "transferred", "deferred")

#: Every kind of step over two timing partners: races, a race listing, full and incremental
#: listings, refunds/transfers/deferrals, a failed listing (502), a bad body, abandoned and
#: denied requests.
GOLDEN_STEPS = [
    (("race", 0, (11, 12)), 1),
    (("race", 1, (11, 12)), 1),
    (("races", True, True), 1),
    (("denied",), 1),
    (("race", 3, (11,)), 1),
    (("full", 11, {i: i % 3 for i in range(1, 26)}, 7), 1),
    (("full", 12, {i: 0 for i in range(1, 21)}, 6), 2),
    (("incremental", 11, {2: 2, 3: 1, 30: 0}, 2), 1),
    (("failed", 12, [1, 2, 3]), 1),
    (("bad", 11), 1),
    (("fetch_failed", 0), 2),
    (("full", 11, {i: 1 for i in range(1, 20)}, 8), 1),
    (("full", 12, {i: 2 for i in range(1, 25)}, 8), 1),
    (("removed", 11, {3: "transferred", 4: "deferred", 5: "cleared", 6: "removed"}), 1),
    (("removed", 12, {7: "transferred"}), 1),
    (("race", 2, (11, 12)), 1),
]


def _golden_journal(path: str | Path = ":memory:"):
    jn = new_journal(path)
    build(jn, GOLDEN_STEPS, dup=True)
    return jn


def _canon(table: Table, row: tuple[Any, ...], from_sqlite: bool) -> tuple[Any, ...]:
    """A row with JSON columns as Python values (SQLite keeps text, PostgreSQL JSONB)."""
    out = []
    for (name, _), value in zip(table.columns, row, strict=True):
        if name in JSON_COLUMNS and value is not None and from_sqlite:
            value = json.loads(value)
        out.append(value)
    return tuple(out)


def sqlite_tables(conn: sqlite3.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every projection table, JSON parsed, in primary-key order."""
    out = {}
    for t in TABLES:
        rows = conn.execute(f"SELECT {', '.join(t.column_names)} FROM {t.name}").fetchall()
        out[t.name] = sorted((_canon(t, r, True) for r in rows), key=repr)
    return out


def pg_tables(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    """:func:`sqlite_tables` of a PostgreSQL target."""
    out = {}
    for t in TABLES:
        rows = pg_rows(dsn, f"SELECT {', '.join(t.column_names)} FROM {t.name}")
        out[t.name] = sorted((_canon(t, r, False) for r in rows), key=repr)
    return out


#: every index of the live tables: primary keys, the projector's and the readers' look-up ones
ALL_INDEXES = {f"{t.name}_pkey" for t in TABLES} | {
    f"ix_{t.name}_{name}" for t in TABLES for name, _ in t.indexes
}


def _pg_indexes(dsn: str) -> set[str]:
    return {
        r[0] for r in pg_rows(dsn, "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")
    }


def _pg_checkpoint(dsn: str) -> int:
    try:
        rows = pg_rows(dsn, "SELECT value FROM projector_state WHERE name = 'checkpoint'")
    except psycopg.errors.UndefinedTable:
        return 0
    return rows[0][0] if rows else 0


def _summary(result) -> tuple[int, int, int, int]:
    return (result.events, result.rows_upserted, result.new_errors, result.checkpoint)


#: every batch staged through COPY (and ANALYZEd), or every batch pipelined
@pytest.mark.parametrize("copy_min_rows", [1, 10**9])
def test_golden_sqlite_and_postgresql_hold_the_same_rows(pg_dsn, copy_min_rows, monkeypatch):
    monkeypatch.setattr(pg_module, "COPY_MIN_ROWS", copy_min_rows)
    monkeypatch.setattr(pg_module, "ANALYZE_MIN_ROWS", copy_min_rows)
    jn = _golden_journal()
    on_sqlite = project(jn.db, batch_size=5)
    on_pg = project(jn.db, batch_size=5, target=pg_dsn)
    assert _summary(on_pg) == _summary(on_sqlite)
    expected = sqlite_tables(jn.db.conn)
    assert pg_tables(pg_dsn) == expected
    # the journal really has refunds, transfers, removals by listing, failures and bad bodies
    participants = expected["runsignup_participants"]
    reason_ix = [c for c, _ in TABLES[2].columns].index("removed_reason")
    reasons = {r[reason_ix] for r in participants}
    assert reasons == {None, *REASONS, "missing_from_listing"}
    statuses = [r[6] for r in expected["sync_history"]]
    assert (statuses.count("error"), statuses.count("success")) == (4, 7)
    assert len(participants) == 26 + 24
    assert len(expected["projection_errors"]) == 1
    assert on_sqlite.new_errors == 5 and on_sqlite.checkpoint == jn.last_seq() == 46
    # JSONB: question responses kept as sent, registration periods as JSON values
    qr = [c for c, _ in TABLES[2].columns].index("question_responses")
    assert participants[0][qr] == [
        {"question_id": "1", "question_text": "First race?", "response": "No"},
        {"question_id": "2", "question_text": "Shirt", "responses": ["S", "M"]},
    ]
    types = dict(
        pg_rows(
            pg_dsn,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'runsignup_participants'",
        )
    )
    assert (types["registration_id"], types["bib_num"], types["question_responses"]) == (
        "bigint",
        "text",
        "jsonb",
    )


def test_replay_chunks_and_rebuild_match_one_pass(pg_dsn):
    one = _golden_journal()
    project(one.db)
    expected = sqlite_tables(one.db.conn)
    # projecting while the journal grows, in batches of 3
    growing = new_journal()
    build(
        growing,
        GOLDEN_STEPS,
        dup=True,
        after_step=lambda i: project(growing.db, batch_size=3, target=pg_dsn) if i % 4 else None,
    )
    project(growing.db, batch_size=3, target=pg_dsn)
    assert pg_tables(pg_dsn) == expected
    # replay changes nothing
    again = project(growing.db, target=pg_dsn)
    assert (again.events, again.rows_upserted, again.new_errors) == (0, 0, 0)
    # rebuild (twice: the swapped-in tables and their keys take the live names) gives the same
    for _ in range(2):
        rebuilt = project(growing.db, rebuild=True, batch_size=4, target=pg_dsn)
        assert rebuilt.rebuilt and rebuilt.new_errors == 0
        assert pg_tables(pg_dsn) == expected
    names = [
        r[0] for r in pg_rows(pg_dsn, "SELECT relname FROM pg_class WHERE relname LIKE '%new%'")
    ]
    assert names == []
    assert _pg_indexes(pg_dsn) == ALL_INDEXES


def test_each_target_keeps_its_own_checkpoint(pg_dsn):
    jn = new_journal()
    b = Builder(jn)
    b.run_started()
    b.race(j({"race": race_obj(1)}), 1)
    b.listing(1, 11, [participants_body(11, [registration(r, 11) for r in range(1, 30)])])
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA second")
    second = urlunsplit(urlsplit(pg_dsn)._replace(query="options=-csearch_path%3Dsecond"))
    first_cp = project(jn.db, target=pg_dsn).checkpoint
    b.listing(1, 11, [removed_body(11, [removed_registration(2, 11, "transferred", 99, 5)])])
    b.run_finished()
    assert project(jn.db).checkpoint == jn.last_seq() > first_cp  # SQLite: all of it
    assert _pg_checkpoint(pg_dsn) == first_cp  # the first PostgreSQL target: untouched
    assert project(jn.db, target=second).checkpoint == jn.last_seq()
    assert _pg_checkpoint(pg_dsn) == first_cp
    caught_up = project(jn.db, target=pg_dsn)
    assert (caught_up.events, caught_up.checkpoint) == (jn.last_seq() - first_cp, jn.last_seq())
    expected = sqlite_tables(jn.db.conn)
    assert pg_tables(pg_dsn) == expected == pg_tables(second)
    assert pg_rows(second, "SELECT current_schema()") == [("second",)]


def test_sigkill_during_postgresql_projection_then_rerun(pg_dsn, tmp_path):
    path = tmp_path / "rsu.db"
    jn = new_journal(path)
    big_listing_run(Builder(jn), registrations=1000, per_page=100, changed=89)
    last = jn.last_seq()
    project(jn.db)
    expected = sqlite_tables(jn.db.conn)
    jn.close()

    checkpoints = []
    for batch_size, n in [(1, 1), (4, 6), (1, 3), (7, 9), (1, 5)]:
        before = _pg_checkpoint(pg_dsn)
        proc = subprocess.run(
            [
                *killed_at("apply", n, "project", "--db", str(path), "--target", pg_dsn),
                *("--batch-size", str(batch_size)),
            ],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == -signal.SIGKILL, (batch_size, n, proc.stderr)
        cp = _pg_checkpoint(pg_dsn)
        assert cp == before + (n - 1) // batch_size * batch_size, (before, batch_size, n)
        checkpoints.append(cp)
    assert 0 < checkpoints[-1] < last and checkpoints == sorted(checkpoints)
    # a rebuild killed mid-way leaves the live tables as they were (the *_new ones are dropped by
    # the next rebuild)
    live = pg_tables(pg_dsn)
    killed_rebuild = subprocess.run(
        [
            *killed_at("apply", 9, "project", "--db", str(path)),
            *("--rebuild", "--target", pg_dsn, "--batch-size", "2"),
        ],
        capture_output=True,
        text=True,
    )
    assert killed_rebuild.returncode == -signal.SIGKILL, killed_rebuild.stderr
    assert pg_tables(pg_dsn) == live and _pg_checkpoint(pg_dsn) == checkpoints[-1]
    done = subprocess.run(
        killed_at("apply", 10**9, "project", "--db", str(path), "--target", pg_dsn),
        capture_output=True,
        text=True,
    )
    assert done.returncode in (0, 1), done.stderr
    assert _pg_checkpoint(pg_dsn) == last
    assert pg_tables(pg_dsn) == expected
    # the first projection, killed, left the readers' look-up indexes out (the killed rebuild's
    # *_new tables stay until the next rebuild)
    assert {i for i in _pg_indexes(pg_dsn) if "_new_" not in i} == ALL_INDEXES
    assert project(path, rebuild=True, target=pg_dsn).rebuilt
    assert pg_tables(pg_dsn) == expected
    assert pg_rows(pg_dsn, "SELECT COUNT(*) FROM pg_class WHERE relname LIKE '%\\_new%'") == [(0,)]


def test_readers_never_see_empty_tables_during_rebuild(pg_dsn):
    jn = _golden_journal()
    project(jn.db, target=pg_dsn)
    query = (
        "SELECT (SELECT COUNT(*) FROM runsignup_participants), "
        "(SELECT COUNT(*) FROM runsignup_participants WHERE removed_at IS NULL), "
        "(SELECT COUNT(*) FROM sync_history)"
    )
    expected = pg_rows(pg_dsn, query)[0]
    stop = threading.Event()
    seen: list[tuple[Any, ...]] = []
    failures: list[BaseException] = []

    def reader() -> None:
        try:
            with psycopg.connect(pg_dsn, autocommit=True) as conn:
                while not stop.is_set() or len(seen) < 5:
                    seen.append(tuple(conn.execute(query.encode()).fetchone() or ()))
        except BaseException as exc:
            failures.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    try:
        for _ in range(3):
            project(jn.db, rebuild=True, batch_size=2, target=pg_dsn)
    finally:
        stop.set()
        t.join()
    assert not failures
    assert set(seen) == {expected}


def test_two_projectors_on_one_target_apply_each_event_once(pg_dsn, tmp_path):
    path = tmp_path / "rsu.db"
    _golden_journal(path).close()
    reference = _golden_journal()
    project(reference.db)
    expected = sqlite_tables(reference.db.conn)
    results: list[Any] = []
    failures: list[BaseException] = []

    def run() -> None:
        try:
            results.append(project(path, batch_size=2, target=pg_dsn))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    # the advisory lock serialises batches: together they applied every event exactly once
    assert sum(r.events for r in results) == reference.last_seq()
    assert pg_tables(pg_dsn) == expected


@pytest.mark.parametrize("size", [2, 150])  # pipelined executemany, staged COPY
def test_nul_characters_never_stop_the_postgresql_projection(pg_dsn, size):
    jn = new_journal()
    b = Builder(jn)
    reg = registration(1, 11)
    reg["user"]["first_name"] = "Ann\x00e"
    reg["question_responses"][0]["response"] = "N\x00o"
    others = [registration(r, 11) for r in range(2, size + 1)]
    b.listing(1, 11, [participants_body(11, [reg, *others])])
    assert project(jn.db, target=pg_dsn).new_errors == 0
    rows = pg_rows(
        pg_dsn,
        "SELECT registration_id, first_name, question_responses->0->>'response' "
        "FROM runsignup_participants ORDER BY 1 LIMIT 2",
    )
    assert rows == [(1, "Ann\ufffde", "N\ufffdo"), (2, "José", "No")]
    assert pg_rows(pg_dsn, "SELECT COUNT(*) FROM runsignup_participants") == [(size,)]
    assert project(jn.db, target=pg_dsn).rows_upserted == 0


def test_sync_target_of_recorded_real_responses_matches_sqlite(pg_dsn, tmp_path):
    manifest = write_manifest(tmp_path)
    db = tmp_path / "rsu.db"
    seed_credentials(db, [Credential(4242, "api_key", "recorded-key", "recorded-secret")])
    with ReplayServer(manifest) as replay:
        result = CliRunner().invoke(
            app,
            [
                *("sync", "--db", str(db), "--base-url", replay.base_url, "--target", pg_dsn),
                *("--race", "1649", "--race", "85675", "--race", "16404"),
                *("--max-rps", "0", "--backoff", "0", "--log-file", str(tmp_path / "sync.log")),
                *("--summary-file", str(tmp_path / "summary.json")),
            ],
        )
    assert result.exit_code == 1, result.output  # RunSignUp errors were recorded
    assert "project: " in result.stdout and _password(pg_dsn) not in result.output
    written = [*tmp_path.glob("rsu.db*"), tmp_path / "sync.log", tmp_path / "summary.json"]
    for path in written:  # the journal (with its WAL and secrets file), the log, the summary
        assert _password(pg_dsn).encode() not in path.read_bytes(), path
    # the SQLite tables were not written by the sync; project them now from the same journal
    assert project(db).events == _pg_checkpoint(pg_dsn) > 0
    conn = sqlite3.connect(db)
    expected = sqlite_tables(conn)
    conn.close()
    assert pg_tables(pg_dsn) == expected
    races = {r[1]: r for r in expected["runsignup_races"]}
    assert set(races) == {16404, 32827, 29128, 1649, 85675}
    assert pg_rows(pg_dsn, "SELECT name, zipcode FROM runsignup_races WHERE race_id = 1649") == [
        ("10k Turkey Trek & 2k Turkey Toddle", "80007")
    ]
    errors = {r[15] for r in expected["sync_history"] if r[6] == "error"}  # error_code
    assert {7, 201, 301} <= errors
    assert len(expected["runsignup_events"]) >= 5


def test_sync_target_of_a_simulated_world_matches_sqlite_and_the_world(pg_dsn, tmp_path):
    """``rsu sync --target`` in CI, which has no ../shared: the simulator's world, its every
    active and removed registration, the same rows as a SQLite projection of the same journal."""
    world, db = seeded_world(
        tmp_path,
        seed=6,
        partners=2,
        races_per_partner=2,
        events_per_race=(1, 2),
        registrations_per_event=(5, 40),
        removed_fraction=0.1,
        start_epoch=TODAY,
    )
    with SimulatorServer(world) as sim:
        result = CliRunner().invoke(
            app,
            [
                *("sync", "--db", str(db), "--base-url", sim.base_url, "--target", pg_dsn),
                *("--all-races", "--max-rps", "0", "--backoff", "0"),
                *("--log-file", str(tmp_path / "sync.log")),
                *("--summary-file", str(tmp_path / "summary.json")),
            ],
        )
    assert result.exit_code == 0, result.output
    assert _password(pg_dsn) not in result.output
    for path in [*tmp_path.glob("rsu.db*"), tmp_path / "sync.log", tmp_path / "summary.json"]:
        assert _password(pg_dsn).encode() not in path.read_bytes(), path
    keys = "SELECT race_id, event_id, registration_id FROM runsignup_participants"
    assert {tuple(r) for r in pg_rows(pg_dsn, f"{keys} WHERE removed_at IS NULL")} == set(
        world_registrations(world)
    )
    assert {tuple(r) for r in pg_rows(pg_dsn, f"{keys} WHERE removed_at IS NOT NULL")} == set(
        world_registrations(world, removed=True)
    )
    races = {rid for pid in world.partner_ids for rid in world.race_ids(pid)}
    assert {r[0] for r in pg_rows(pg_dsn, "SELECT race_id FROM runsignup_races")} == races
    # the SQLite tables were not written by the sync; project them now from the same journal
    assert project(db).events == _pg_checkpoint(pg_dsn) > 0
    conn = sqlite3.connect(db)
    expected = sqlite_tables(conn)
    conn.close()
    assert pg_tables(pg_dsn) == expected


def test_a_postgresql_failure_stops_the_run_and_a_refused_value_is_the_events_fault(
    pg_dsn, monkeypatch
):
    jn = new_journal()
    b = Builder(jn)
    b.run_started()
    b.race(j({"race": race_obj(3)}), 3)
    b.run_finished()
    fail_with: list[Exception] = [psycopg.errors.AdminShutdown("terminating connection")]

    def failing(self, *args):
        raise fail_with[0]

    monkeypatch.setattr(apply_module.Applier, "_race", failing)
    with pytest.raises(TargetError) as raised:
        project(jn.db, batch_size=1, target=pg_dsn)
    assert "terminating connection" in str(raised.value) and ":***@" in str(raised.value)
    assert _pg_checkpoint(pg_dsn) == 1  # not past the event
    assert pg_rows(pg_dsn, "SELECT COUNT(*) FROM projection_errors") == [(0,)]
    # a value PostgreSQL refuses is recorded against the event, and the run goes on
    fail_with[0] = psycopg.errors.NumericValueOutOfRange("bigint out of range")
    result = project(jn.db, batch_size=1, target=pg_dsn)
    assert (result.checkpoint, result.new_errors) == (jn.last_seq(), 2)
    reason = "could not be projected (NumericValueOutOfRange): bigint out of range"
    assert pg_rows(pg_dsn, "SELECT seq, item, reason FROM projection_errors") == [(2, -1, reason)]
    assert pg_rows(pg_dsn, "SELECT status, reason FROM sync_history") == [("error", reason)]


# -- the CLI and the password rule -------------------------------------------------------------


def _password(dsn: str) -> str:
    return urlsplit(dsn).password or ""


def test_cli_project_target_option_and_env(pg_dsn, tmp_path):
    path = tmp_path / "rsu.db"
    jn = _golden_journal(path)
    jn.close()
    runner = CliRunner()
    first = runner.invoke(app, ["project", "--db", str(path), "--target", pg_dsn])
    assert first.exit_code == 1, first.output  # the journal holds failures: new errors
    assert first.stdout.startswith("projected: ")
    assert f"checkpoint {_pg_checkpoint(pg_dsn)}" in first.stdout
    second = runner.invoke(app, ["project", "--db", str(path)], env={"RSU_TARGET": pg_dsn})
    assert second.exit_code == 0, second.output
    assert "projected: 0 journal events, 0 rows upserted, 0 new errors" in second.stdout
    # the SQLite tables were never written: the PostgreSQL target has its own checkpoint
    conn = sqlite3.connect(path)
    tables = conn.execute("SELECT name FROM sqlite_master WHERE name = 'projector_state'")
    assert tables.fetchall() == []
    conn.close()


def test_cli_never_shows_a_target_password(pg_dsn, tmp_path):
    path = tmp_path / "rsu.db"
    new_journal(path).close()
    runner = CliRunner()
    parts = urlsplit(pg_dsn)
    assert parts.password
    wrong = urlunsplit(
        parts._replace(netloc=f"{parts.username}:S3cretWrong@{parts.hostname}:{parts.port}")
    )
    bad = runner.invoke(app, ["project", "--db", str(path), "--target", wrong])
    assert bad.exit_code == 1
    assert "S3cretWrong" not in bad.output
    assert (
        f"cannot connect to postgresql://{parts.username}:***@{parts.hostname}:{parts.port}/"
        in bad.output
    )
    assert "password authentication failed" in bad.output
    # a usage error: not a PostgreSQL URL (exit 2), shown masked
    mysql = runner.invoke(
        app, ["project", "--db", str(path), "--target", "mysql://rsu:S3cretMy@db/x"]
    )
    assert mysql.exit_code == 2
    assert "S3cretMy" not in mysql.output and "mysql://rsu:***@db/x" in mysql.output
    # sync checks the target before fetching
    sync = runner.invoke(
        app, ["sync", "--db", str(path)], env={"RSU_TARGET": "sqlite://u:S3cretSync@h/x"}
    )
    assert sync.exit_code == 2 and "S3cretSync" not in sync.output
    # the real password never shows either, in success or failure
    ok = runner.invoke(app, ["project", "--db", str(path), "--target", pg_dsn])
    assert ok.exit_code == 0 and _password(pg_dsn) not in ok.output
    # an error during the projection names the target masked
    with pytest.raises(TargetError) as err:
        project(path, target=pg_dsn + "?options=-cdefault_transaction_read_only%3Don", rebuild=True)
    assert _password(pg_dsn) not in str(err.value)
    assert "read-only transaction" in str(err.value) and ":***@" in str(err.value)


def test_mask_dsn():
    assert mask_dsn("postgresql://u:p%40ss@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert mask_dsn("postgres://u@h/db") == "postgres://u@h/db"
    assert mask_dsn("postgresql://h/db?password=x&sslmode=require") == (
        "postgresql://h/db?password=***&sslmode=require"
    )
    assert mask_dsn("postgresql://u:a:b@c@h/db") == "postgresql://u:***@h/db"
    assert mask_dsn("host=h password='a b' user=u") == "host=h password=*** user=u"
    assert mask_dsn("postgresql://u:p@[::1") == "postgresql://***"


def test_a_set_but_unreachable_test_server_fails_instead_of_skipping(monkeypatch):
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(DSN_ENV, f"postgresql://rsu:S3cret@127.0.0.1:{port}/postgres")
    with pytest.raises(pytest.fail.Exception) as failed:
        next(fresh_database())
    assert "is set (postgresql://rsu:***@127.0.0.1" in str(failed.value)
    assert "S3cret" not in str(failed.value)
    monkeypatch.delenv(DSN_ENV)
    with pytest.raises(pytest.skip.Exception):
        next(fresh_database())


def test_pages_the_worker_prepared_hold_the_same_rows_in_postgresql(pg_dsn, tmp_path):
    """The golden journal in a file, every page prepared by the worker process (the first
    listings' pages as new-registration rows, bound whole on PostgreSQL)."""
    plain = _golden_journal()
    on_sqlite = project(plain.db, batch_size=5)
    expected = sqlite_tables(plain.db.conn)
    with worker_always() as counts:
        on_pg = project(_golden_journal(tmp_path / "g.db").db, batch_size=5, target=pg_dsn)
    assert counts["new"] > 0 and counts["prepared"] > counts["new"]
    assert _summary(on_pg) == _summary(on_sqlite)
    assert pg_tables(pg_dsn) == expected


def test_a_race_denied_again_is_the_same_warning_in_postgresql(pg_dsn):
    jn = new_journal()
    b = Builder(jn)
    b.race(j({"race": race_obj(100)}), 100)
    for run in ("run-2", "run-3"):  # the first denial an error, the second a warning
        b.run_id = run
        b.fetch_failed("race", 100, code=7, msg="Permission Denied")
        b.run_id = run
        b.fetch_failed("race", 200, code=7, msg="Permission Denied")  # a race never read
    on_sqlite = project(jn.db)
    on_pg = project(jn.db, target=pg_dsn)
    assert _summary(on_pg) == _summary(on_sqlite)
    assert on_pg.new_errors == 2
    expected = sqlite_tables(jn.db.conn)
    assert pg_tables(pg_dsn) == expected
    sync_history = next(t for t in TABLES if t.name == "sync_history")
    status = sync_history.column_names.index("status")
    assert sorted(r[status] for r in expected["sync_history"]) == [
        "error",
        "error",
        "warning",
        "warning",
    ]
