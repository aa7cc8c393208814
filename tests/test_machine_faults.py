"""The machine's own faults: a full disk, a locked, read-only or empty database, a symlinked
``--db``, overlapping runs, SIGTERM, private log and summary files, and hostile strings from
the API on the operator's terminal. Each is one clean line and a defined exit code, never a
traceback (issue 9)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from crash_helpers import killed_at
from fetch_helpers import seed_credentials
from project_helpers import Builder, j, participants_body, race_obj, registration
from typer.testing import CliRunner, Result

from rsu.cli.main import app
from rsu.journal import Journal, JournalError, open_db
from rsu.journal.printable import printable
from rsu.journal.runlock import RunLock, lock_path
from rsu.projector import project
from rsu.simulator import Credential, ReplayServer, SimulatorServer, World, WorldConfig

WORLD = WorldConfig(
    seed=4, partners=1, races_per_partner=2, events_per_race=(1, 2), registrations_per_event=(5, 30)
)

#: Race names and an error message as a hostile or careless server might send them.
MARKUP_NAME = "Fun Run [/bold]"
BRACKET_NAME = "Run [w/ dog]"
ESCAPE_NAME = "Evil \x1b]0;pwned\x07Race\x1b[2J\x9b31m"
ESCAPE_ERROR = "boom \x1b[31m[red]red[/red]\x1b[0m\x9b2J\u202e\nforged line"
SHOWN_ERROR = "boom \ufffd[31m[red]red[/red]\ufffd[0m\ufffd2J\ufffd forged line"


def rsu(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def clean_exit(result: Result) -> bool:
    """The command ended through ``typer.Exit`` (or returned), not through an exception."""
    return result.exception is None or isinstance(result.exception, SystemExit)


def _journal(path: Path, names: tuple[str, ...] = ("Race 1",), error: str | None = None) -> None:
    """A small journal: one race per name (race ids 1..), each with one event of 3
    registrations, plus a failed race listing with ``error`` when given."""
    with Journal.open(path) as journal:
        b = Builder(journal, tp=7)
        b.run_started()
        for race_id, name in enumerate(names, start=1):
            race = race_obj(race_id, event_ids=(race_id * 10,))
            race["name"] = name
            b.race(j({"race": race}), race_id)
            regs = [registration(race_id * 100 + i, race_id * 10) for i in range(3)]
            b.listing(race_id, race_id * 10, [participants_body(race_id * 10, regs)])
        if error is not None:
            b.fetch_failed("races", None, code=3, msg=error)
        b.run_finished()


@pytest.fixture
def projected(tmp_path: Path) -> Path:
    db = tmp_path / "rsu.db"
    _journal(db)
    project(db)
    return db


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- full disk, locked database ---------------------------------------------------------------


def test_full_disk_during_projection_is_one_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "rsu.db"
    _journal(db)

    def full_disk_open(path: str | Path, **kwargs: Any) -> Any:
        database = open_db(path, **kwargs)  # a disk with no page left to give
        pages = database.conn.execute("PRAGMA page_count").fetchone()[0]
        database.conn.execute(f"PRAGMA max_page_count = {pages}")
        return database

    monkeypatch.setattr("rsu.projector.runner.open_db", full_disk_open)
    result = rsu("project", "--db", db)
    assert clean_exit(result), result.exception
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: database {db}: cannot project the journal: the disk is full (or the database "
        "reached its size limit)"
    ]
    monkeypatch.undo()  # space again: the next run projects everything
    again = rsu("project", "--db", db)
    assert again.exit_code == 0, again.output
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*) FROM runsignup_participants").fetchone() == (3,)
    conn.close()


def test_full_disk_during_fetch_is_one_line_and_exit_1(
    tmp_path: Path, world_db: tuple[World, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "rsu.db"
    Journal.open(db).close()

    def full_disk_open(path: str | Path, **kwargs: Any) -> Any:
        database = open_db(path, **kwargs)
        pages = database.conn.execute("PRAGMA page_count").fetchone()[0]
        database.conn.execute(f"PRAGMA max_page_count = {pages + 1}")  # room for a few events
        return database

    monkeypatch.setattr("rsu.journal.store.open_db", full_disk_open)
    result = _sync(tmp_path, world_db[1])
    assert clean_exit(result), result.exception
    assert result.exit_code == 1
    last = result.output.strip().splitlines()[-1]
    assert last.startswith(f"error: database {db}: cannot append ") and last.endswith(
        " to the journal: the disk is full (or the database reached its size limit)"
    ), last
    with Journal.open(db) as journal:
        assert journal.verify().ok


def test_locked_database_fails_in_one_line_after_the_busy_timeout(tmp_path: Path) -> None:
    projected = tmp_path / "rsu.db"
    _journal(projected)  # not projected yet: `rsu project` has to write
    other = sqlite3.connect(projected, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the database (as for 40 s)
    try:
        result = rsu("project", "--db", projected, env={"RSU_BUSY_TIMEOUT": "0.05"})
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert clean_exit(result), result.exception
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: database {projected}: cannot project the journal: another process holds its "
        "write lock (waited 0.05 s; RSU_BUSY_TIMEOUT sets how long to wait)"
    ]


def test_a_bad_busy_timeout_is_named(projected: Path) -> None:
    result = rsu("project", "--db", projected, env={"RSU_BUSY_TIMEOUT": "soon"})
    assert clean_exit(result) and result.exit_code == 1
    assert "RSU_BUSY_TIMEOUT='soon' is not a number of seconds >= 0" in result.output


# -- read-only database file or folder ----------------------------------------------------------


def _unprivileged() -> list[str]:
    """A command prefix under which file permissions apply (root ignores them: drop its
    capabilities with setpriv)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:  # pragma: no cover - root without util-linux
        pytest.skip("running as root without setpriv: file permissions cannot be tested")
    return [setpriv, "--inh-caps=-all", "--bounding-set=-all"]


def _rsu_unprivileged(cwd: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """``rsu ARGS`` in another process, without root's power over file permissions."""
    code = "import sys; from rsu.cli.main import app; app(prog_name='rsu')"
    return subprocess.run(
        [*_unprivileged(), sys.executable, "-c", code, *map(str, args)],
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(params=["file", "folder"])
def read_only(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A projected database whose file (0444) or folder (0555) is read-only."""
    folder = tmp_path / "data"
    folder.mkdir()
    db = folder / "rsu.db"
    _journal(db, names=(MARKUP_NAME,))
    project(db)
    target = db if request.param == "file" else folder
    mode = 0o444 if request.param == "file" else 0o555
    target.chmod(mode)
    try:
        yield db
    finally:
        folder.chmod(0o755)
        db.chmod(0o600)


READ_COMMANDS = [
    ["journal", "log"],
    ["journal", "show", "2"],
    ["journal", "verify"],
    ["journal", "stats"],
    ["history", "--json"],
    ["status", "--json", "--max-age", "36500d"],
]


#: Runs several ``rsu`` command lines (JSON argv[1]) in one process; prints for each
#: ``[exit code, output, unexpected exception or None]`` as JSON.
_MANY = """
import json, sys
from typer.testing import CliRunner
from rsu.cli.main import app
out = []
for args in json.loads(sys.argv[1]):
    r = CliRunner().invoke(app, args)
    bad = r.exception is not None and not isinstance(r.exception, SystemExit)
    out.append([r.exit_code, r.output, repr(r.exception) if bad else None])
print(json.dumps(out))
"""


def test_read_only_commands_work_on_a_read_only_database(read_only: Path) -> None:
    db = read_only
    before = _digest(db)
    files = sorted(os.listdir(db.parent))
    argv = [[*args, "--db", str(db)] for args in READ_COMMANDS]
    done = subprocess.run(
        [*_unprivileged(), sys.executable, "-c", _MANY, json.dumps(argv)],
        cwd=db.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    results = dict(zip(map(tuple, READ_COMMANDS), json.loads(done.stdout), strict=True))
    for args, (code, output, exception) in results.items():
        assert (code, exception) == (0, None), (args, output)
    log = results[("journal", "log")][1].splitlines()
    assert [line.split()[2] for line in log] == [
        "run_started",
        "response_received",
        "response_received",
        "listing_completed",
        "run_finished",
    ]
    status = json.loads(results[("status", "--json", "--max-age", "36500d")][1])
    assert [r["name"] for p in status["partners"] for r in p["races"]] == [MARKUP_NAME]
    assert _digest(db) == before
    # SQLite may leave the (empty) WAL files of a reader beside a read-only file, nothing else
    assert set(os.listdir(db.parent)) - set(files) <= {"rsu.db-wal", "rsu.db-shm"}


def test_writing_to_a_read_only_database_is_one_line_and_exit_1(read_only: Path) -> None:
    before = _digest(read_only)
    saved = read_only.parent.parent / "race.json"
    saved.write_text('{"race": {"race_id": 1}}')
    commands = [
        ["sync", "--base-url", "http://127.0.0.1:9", "--max-attempts", "1"],
        ["project", "--rebuild"],
        ["credentials", "add", "--partner", "5", "--api-key", "k"],
        ["credentials", "list"],
        ["journal", "import", str(saved), "--endpoint", "race", "--race-id", "1", "--partner", "5"],
    ]
    argv = [[*args, "--db", str(read_only)] for args in commands]
    done = subprocess.run(
        [*_unprivileged(), sys.executable, "-c", _MANY, json.dumps(argv)],
        cwd=read_only.parent,
        env={**os.environ, "RSU_API_SECRET": "s", "COLUMNS": "300"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    for args, (code, output, exception) in zip(commands, json.loads(done.stdout), strict=True):
        assert (code, exception) == (1, None), (args, output)
        lines = output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: database {read_only}"), lines
        assert "read-only" in lines[0], (args, lines)
    assert _digest(read_only) == before


def test_an_unreadable_secrets_file_is_one_line_and_exit_1(tmp_path: Path) -> None:
    db = tmp_path / "rsu.db"
    seed_credentials(db, [Credential(4242, "api_key", "key", "secret")])
    secrets = Path(f"{db}.secrets")
    secrets.chmod(0)
    try:
        done = _rsu_unprivileged(tmp_path, "sync", "--db", db, "--base-url", "http://127.0.0.1:9")
    finally:
        secrets.chmod(0o600)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: cannot open the secrets file {secrets}: unable to open database file"
    ]


# -- empty file, symlink -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [["status"], ["history"], ["journal", "log"], ["journal", "verify"], ["journal", "stats"]],
)
def test_a_read_only_command_leaves_an_empty_file_empty(tmp_path: Path, args: list[str]) -> None:
    db = tmp_path / "empty.db"
    db.touch()
    result = rsu(*args, "--db", db)
    assert clean_exit(result) and result.exit_code == 2
    assert f"database {db} is an empty file, not an rsu database" in result.output
    assert db.stat().st_size == 0 and sorted(os.listdir(tmp_path)) == ["empty.db"]


@pytest.mark.parametrize("args", [["journal", "log"], ["journal", "verify"], ["journal", "stats"]])
def test_a_journal_command_never_creates_the_journal(tmp_path: Path, args: list[str]) -> None:
    db = tmp_path / "rsu.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE notes (x)")  # e.g. only credentials were added so far
    conn.close()
    before = _digest(db)
    result = rsu(*args, "--db", db)
    assert clean_exit(result) and result.exit_code == 1
    assert result.output.strip() == (
        f"error: database {db} holds no journal yet (nothing was fetched into it; `rsu sync` "
        "starts one)"
    )
    assert _digest(db) == before


def test_a_symlinked_db_is_used_but_its_target_is_never_chmodded(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    target = real / "shared.db"
    _journal(target)
    target.chmod(0o644)  # the owner of the target chose this mode
    link = tmp_path / "rsu.db"
    link.symlink_to(target)
    result = rsu("project", "--db", link)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    conn = sqlite3.connect(target)
    assert conn.execute("SELECT COUNT(*) FROM runsignup_participants").fetchone() == (3,)
    conn.close()


def test_a_world_readable_db_loses_group_and_other_bits_but_stays_read_only(
    tmp_path: Path,
) -> None:
    db = tmp_path / "rsu.db"
    _journal(db)
    db.chmod(0o644)
    open_db(db).conn.close()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    db.chmod(0o444)  # made read-only by its owner: it stays read-only
    try:
        open_db(db).conn.close()
    except JournalError as exc:  # not root: SQLite says so
        assert exc.cause == "read_only"
    assert stat.S_IMODE(db.stat().st_mode) == 0o400
    db.chmod(0o600)


# -- one run at a time ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [["sync"], ["fetch"], ["project"], ["project", "--rebuild"]],
)
def test_a_second_run_on_the_same_database_exits_75_at_once(
    projected: Path, args: list[str]
) -> None:
    with Journal.open(projected) as journal:
        last = journal.last_seq()
    if args[0] != "project":
        args = [*args, "--base-url", "http://127.0.0.1:9"]  # nothing may be asked of it
    with RunLock.acquire(projected, "rsu sync"):
        result = rsu(*args, "--db", projected)
    assert clean_exit(result), result.exception
    assert result.exit_code == 75
    assert result.output.strip().splitlines() == [
        f"busy: another rsu run (pid {os.getpid()}: rsu sync) is using database {projected}; "
        "this run did nothing and exits. Runs overlapping is normal under cron: the next one "
        "carries on"
    ]
    with Journal.open(projected) as journal:
        assert journal.last_seq() == last
    assert stat.S_IMODE(lock_path(projected).stat().st_mode) == 0o600
    assert rsu("project", "--db", projected).exit_code == 0  # released: runs again


def test_the_run_lock_holds_across_processes(projected: Path) -> None:
    """The test process holds the lock; ``rsu project --rebuild`` in another process exits 75."""
    with RunLock.acquire(projected, "rsu project --rebuild"):
        done = _rsu_unprivileged(projected.parent, "project", "--rebuild", "--db", projected)
    assert done.returncode == 75, done.stderr
    assert "another rsu run" in done.stderr and "Traceback" not in done.stderr
    after = _rsu_unprivileged(projected.parent, "project", "--rebuild", "--db", projected)
    assert after.returncode == 0, after.stderr


def test_a_symlinked_db_shares_the_lock_of_its_target(projected: Path, tmp_path: Path) -> None:
    link = tmp_path / "link.db"
    link.symlink_to(projected)
    with RunLock.acquire(projected, "rsu sync"):
        assert rsu("project", "--db", link).exit_code == 75


# -- SIGTERM -------------------------------------------------------------------------------------


def test_sigterm_is_journaled_and_summarised_as_interrupted(tmp_path: Path) -> None:
    world = World.generate(WORLD)
    db = tmp_path / "rsu.db"
    seed_credentials(db, world.credentials)
    with SimulatorServer(world) as sim:
        done = subprocess.run(
            [
                *killed_at("term-append", 3, "fetch", "--db", str(db)),
                *("--base-url", sim.base_url, "--all-races", "--max-rps", "0"),
                *("--concurrency", "1", "--no-progress"),
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 143, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "error: stopped by SIGTERM; the journal holds everything fetched so far"
    )
    summary = json.loads((tmp_path / "runsignup_sync_summary.json").read_text())
    assert (summary["status"], summary["exit_code"], summary["interrupted"]) == (
        "interrupted",
        143,
        True,
    )
    with Journal.open(db) as journal:
        assert journal.verify().ok
        finished = journal.find(kind="run_finished")
    assert len(finished) == 1
    assert finished[0].event.status == "interrupted"  # type: ignore[union-attr]
    assert "stopped by SIGTERM (the service was stopped)" in finished[0].event.failures  # type: ignore[union-attr]


def test_sigterm_during_projection_rolls_the_batch_back_and_exits_143(tmp_path: Path) -> None:
    db = tmp_path / "rsu.db"
    _journal(db, names=("A", "B", "C"))
    done = subprocess.run(
        killed_at("term-apply", 5, "project", "--db", str(db), "--batch-size=3"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 143, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: projection stopped by SIGTERM; the tables stay at the last checkpoint"
    ]
    conn = sqlite3.connect(db)
    checkpoint = conn.execute(
        "SELECT value FROM projector_state WHERE name = 'checkpoint'"
    ).fetchone()
    conn.close()
    assert checkpoint == (3,)  # the first batch committed, the second rolled back
    assert rsu("project", "--db", db).exit_code == 0
    assert _participants(db) == 9


# -- log and summary files -------------------------------------------------------------------


def _sync(tmp_path: Path, sim_url: str, *extra: str) -> Result:
    return rsu(
        "sync",
        "--db",
        tmp_path / "rsu.db",
        "--base-url",
        sim_url,
        "--all-races",
        "--max-rps",
        "0",
        "--no-progress",
        "--summary-file",
        tmp_path / "summary.json",
        "--log-file",
        tmp_path / "sync.log",
        *extra,
    )


def _participants(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(
            conn.execute(
                "SELECT COUNT(*) FROM runsignup_participants WHERE removed_at IS NULL"
            ).fetchone()[0]
        )
    finally:
        conn.close()


def _world_participants(world: World) -> int:
    return sum(
        len(world.active_registrations(rid, eid))
        for pid in world.partner_ids
        for rid in world.race_ids(pid)
        for eid in world.event_ids(rid)
    )


@pytest.fixture
def world_db(tmp_path: Path) -> Iterator[tuple[World, str]]:
    world = World.generate(WORLD)
    seed_credentials(tmp_path / "rsu.db", world.credentials)
    with SimulatorServer(world) as sim:
        yield world, sim.base_url


def test_log_and_summary_files_are_created_0600(
    tmp_path: Path, world_db: tuple[World, str]
) -> None:
    old = os.umask(0o022)
    try:
        result = _sync(tmp_path, world_db[1])
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    for name in ("summary.json", "sync.log", "rsu.db.lock"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux /dev/full")
def test_a_full_disk_for_the_log_does_not_stop_the_sync(
    tmp_path: Path, world_db: tuple[World, str]
) -> None:
    world, url = world_db
    result = _sync(tmp_path, url, "--log-file", "/dev/full")  # every write: ENOSPC
    assert clean_exit(result), result.exception
    assert result.exit_code == 1
    assert "Traceback" not in result.output and "Logging error" not in result.output
    assert (
        "failed: could not write the log file /dev/full: No space left on device (the disk is "
        "full)" in result.output.splitlines()
    )
    assert _participants(tmp_path / "rsu.db") == _world_participants(world)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["exit_code"] == 1


def test_a_full_disk_for_the_summary_does_not_stop_the_sync(
    tmp_path: Path, world_db: tuple[World, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    world, url = world_db

    def disk_full(fd: int, data: bytes) -> None:
        os.write(fd, data[:10])  # a partial temp file, as a full disk leaves it
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("rsu.journal.files._write_all", disk_full)
    result = _sync(tmp_path, url)
    assert clean_exit(result), result.exception
    assert result.exit_code == 1
    summary = tmp_path / "summary.json"
    assert (
        f"failed: could not write the summary file {summary}: No space left on device (the disk "
        "is full)" in result.output.splitlines()
    )
    assert not summary.exists()
    assert [p.name for p in tmp_path.iterdir() if "summary" in p.name] == []  # no temp file
    assert _participants(tmp_path / "rsu.db") == _world_participants(world)
    assert "could not write the summary file" in (tmp_path / "sync.log").read_text()


# -- server strings on the terminal -----------------------------------------------------------


def test_printable_replaces_control_characters_and_keeps_text() -> None:
    assert printable(MARKUP_NAME) == MARKUP_NAME
    assert printable(ESCAPE_NAME) == "Evil \ufffd]0;pwned\ufffdRace\ufffd[2J\ufffd31m"
    assert printable("a\tb\r\nc\u202eevil") == "a b  c\ufffdevil"
    assert printable("line 1\nline 2", keep_newlines=True) == "line 1\nline 2"
    assert printable(None) == ""


def test_status_and_history_print_server_strings_as_text(tmp_path: Path) -> None:
    db = tmp_path / "rsu.db"
    _journal(db, names=(MARKUP_NAME, BRACKET_NAME, ESCAPE_NAME), error=ESCAPE_ERROR)
    project(db)
    env = {"COLUMNS": "250"}
    status = rsu("status", "--db", db, "--max-age", "36500d", env=env)
    assert clean_exit(status), status.exception
    assert MARKUP_NAME in status.output and BRACKET_NAME in status.output
    assert "Evil \ufffd]0;pwned\ufffdRace" in status.output
    assert SHOWN_ERROR in status.output
    history = rsu("history", "--db", db, env=env)
    assert clean_exit(history) and history.exit_code == 0, history.exception
    assert SHOWN_ERROR in history.output
    as_json = rsu("history", "--db", db, "--json", "--status", "error")
    assert as_json.exit_code == 0
    assert [json.loads(line)["reason"] for line in as_json.output.splitlines()] == [ESCAPE_ERROR]
    for out in (status.output, history.output, as_json.output):
        assert not any(c in out for c in "\x1b\x07\x9b\u202e"), out


def test_fetch_failures_and_the_log_show_server_messages_as_text(tmp_path: Path) -> None:
    hostile = "Race \x1b[2J[bold]gone\x1b]0;owned\x07\n2026-01-01 00:00:00 INFO forged line"
    body = json.dumps({"error": {"error_code": 201, "error_msg": hostile}})
    manifest = tmp_path / "manifest.json"
    exchange = {"method": "GET", "path": "/Rest/races", "query": {}, "body": body}
    manifest.write_text(json.dumps({"exchanges": [exchange]}))
    db = tmp_path / "rsu.db"
    seed_credentials(db, [Credential(4242, "api_key", "key", "secret")])
    with ReplayServer(manifest) as replay:
        result = rsu(
            "fetch",
            "--db",
            db,
            "--base-url",
            replay.base_url,
            "--max-rps",
            "0",
            "--no-progress",
            "--log-file",
            tmp_path / "sync.log",
            "--summary-file",
            tmp_path / "summary.json",
        )
    assert clean_exit(result) and result.exit_code == 1, result.output
    shown = (
        "RunSignUp error 201: Race \ufffd[2J[bold]gone\ufffd]0;owned\ufffd 2026-01-01 00:00:00 "
        "INFO forged line"
    )
    lines = result.output.splitlines()
    assert f"failed: partner 4242: auth_check (code 201): {shown}" in lines, lines
    assert f"partner 4242: auth check failed: {shown}" in lines  # the progress note
    log = (tmp_path / "sync.log").read_text()
    assert shown in log
    assert not any(c in result.output + log for c in "\x1b\x07")
    assert not any(line.startswith("2026-01-01") for line in log.splitlines())
