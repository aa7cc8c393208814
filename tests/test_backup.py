"""``rsu backup``: a consistent 0600 copy while other connections hold the database open; `cp`
of a WAL database misses what is still in the -wal file."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsu.cli.main import app
from rsu.journal import Journal, RunStarted
from rsu.journal.backup import BackupError, backup_file

runner = CliRunner()


def _runs(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT run_id FROM journal ORDER BY seq")]
    finally:
        conn.close()


@pytest.fixture
def busy_db(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A WAL database with two committed events still in the -wal file (a journal connection
    holds it open, so nothing was checkpointed) and a third event in an open, uncommitted write
    transaction of another connection."""
    db = tmp_path / "rsu.db"
    journal = Journal.open(db)
    journal.db.conn.execute("PRAGMA wal_autocheckpoint=0")
    journal.append(RunStarted(mode="full"), run_id="run-1")
    journal.append(RunStarted(mode="full"), run_id="run-2")
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("CREATE TABLE uncommitted (x)")
    yield db
    writer.execute("ROLLBACK")
    writer.close()
    journal.close()


def test_cp_of_a_wal_database_misses_the_latest_sync(busy_db: Path, tmp_path: Path) -> None:
    """Why the README says not to `cp`: the committed events are in rsu.db-wal."""
    copy = tmp_path / "cp.db"
    shutil.copyfile(busy_db, copy)
    assert Path(f"{busy_db}-wal").stat().st_size > 0
    conn = sqlite3.connect(copy)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master")]
    finally:
        conn.close()
    assert "journal" not in tables  # even the journal table was created after the last checkpoint


def test_backup_copies_every_committed_event_while_others_hold_the_db(
    busy_db: Path, tmp_path: Path
) -> None:
    out = tmp_path / "copy.db"
    result = runner.invoke(app, ["backup", "--db", str(busy_db), "-o", str(out)])
    assert result.exit_code == 0, result.output
    size = out.stat().st_size
    assert result.output == f"{busy_db} -> {out} ({size} bytes, mode 0600)\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert _runs(out) == ["run-1", "run-2"]
    conn = sqlite3.connect(out)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one file
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    finally:
        conn.close()
    assert "uncommitted" not in names
    assert not Path(f"{out}-wal").exists()
    assert not Path(f"{out}.secrets").exists()
    with Journal.open(out) as copy:
        assert copy.verify().ok
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_backup_refuses_to_overwrite_without_force(busy_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "copy.db"
    out.write_bytes(b"yesterday's copy")
    result = runner.invoke(app, ["backup", "--db", str(busy_db), "-o", str(out)])
    assert result.exit_code == 2
    assert f"{out} exists; pass --force to overwrite it" in result.output
    assert out.read_bytes() == b"yesterday's copy"

    result = runner.invoke(app, ["backup", "--db", str(busy_db), "-o", str(out), "--force"])
    assert result.exit_code == 0, result.output
    assert _runs(out) == ["run-1", "run-2"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_backup_with_secrets(tmp_path: Path) -> None:
    db = tmp_path / "rsu.db"
    Journal.open(db).close()
    secrets = Path(f"{db}.secrets")
    conn = sqlite3.connect(secrets)
    conn.execute("CREATE TABLE credential_secrets (secret TEXT)")
    conn.execute("INSERT INTO credential_secrets VALUES ('s3cret')")
    conn.commit()
    conn.close()
    out = tmp_path / "copy.db"

    result = runner.invoke(app, ["backup", "--db", str(db), "-o", str(out), "--with-secrets"])

    assert result.exit_code == 0, result.output
    copy = Path(f"{out}.secrets")
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    conn = sqlite3.connect(copy)
    assert conn.execute("SELECT secret FROM credential_secrets").fetchall() == [("s3cret",)]
    conn.close()
    assert "s3cret" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "{tmp}/no/such/copy.db"], "folder {tmp}/no/such does not exist"),
        (["-o", "{tmp}/rsu.db"], "is the database itself"),
        (["-o", "{tmp}"], "is a directory"),
        (["-o", "{tmp}/c.db", "--with-secrets"], "--with-secrets: there is no secrets file"),
    ],
)
def test_backup_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    db = tmp_path / "rsu.db"
    Journal.open(db).close()
    argv = ["backup", "--db", str(db), *(a.format(tmp=tmp_path) for a in args)]
    result = runner.invoke(app, argv, env={"COLUMNS": "300"})
    assert result.exit_code == 2
    assert message.format(tmp=tmp_path) in result.output
    assert not (tmp_path / "c.db").exists()


def test_backup_file_of_a_missing_database(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="does not exist") as info:
        backup_file(tmp_path / "none.db", tmp_path / "copy.db")
    assert info.value.usage


def test_backup_refuses_a_target_that_is_no_regular_file(busy_db: Path, tmp_path: Path) -> None:
    """``-o /dev/null --force`` must not replace a device node: anything but a regular file is
    refused (shown with a FIFO, which behaves the same and is safe to make in a test)."""
    import os

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    result = runner.invoke(app, ["backup", "--db", str(busy_db), "-o", str(fifo), "--force"])
    assert result.exit_code == 2
    assert f"{fifo} is not a regular file" in result.output
    assert stat.S_ISFIFO(fifo.stat().st_mode)


@pytest.mark.parametrize("suffix", ["-wal", "-shm", ".secrets", ".lock"])
def test_backup_refuses_to_replace_a_file_of_the_database_itself(
    busy_db: Path, suffix: str
) -> None:
    """``-o rsu.db-wal --force`` would replace the live WAL and lose the syncs committed in it."""
    target = Path(f"{busy_db}{suffix}")
    if not target.exists():
        target.write_bytes(b"live")
    before = target.read_bytes()
    result = runner.invoke(app, ["backup", "--db", str(busy_db), "-o", str(target), "--force"])
    assert result.exit_code == 2
    assert f"{target} is a file of the database {busy_db} itself" in result.output
    assert target.read_bytes() == before
    assert _runs(busy_db) == ["run-1", "run-2"]


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("exists", [True, False])
def test_backup_refuses_a_target_that_is_a_symlink(
    busy_db: Path, tmp_path: Path, force: bool, exists: bool
) -> None:
    """``-o LINK`` neither replaces the link with the copy nor writes through it into the file
    it names (with or without --force, whether that file exists or not)."""
    elsewhere = tmp_path / "elsewhere.db"
    if exists:
        elsewhere.write_bytes(b"someone else's file")
    link = tmp_path / "copy.db"
    link.symlink_to(elsewhere)
    args = ["backup", "--db", str(busy_db), "-o", str(link)] + (["--force"] if force else [])
    result = runner.invoke(app, args, env={"COLUMNS": "300"})
    assert result.exit_code == 2
    assert " ".join(result.output.split()) == (
        f"error: {link} is a symbolic link (to {elsewhere}); give the file's own path or a new "
        "one, rsu backup neither replaces a link nor writes through it"
    )
    assert link.is_symlink() and os.readlink(link) == str(elsewhere)
    assert elsewhere.read_bytes() == b"someone else's file" if exists else not elsewhere.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["copy.db", "rsu.db", "rsu.db-shm", "rsu.db-wal"] + (["elsewhere.db"] if exists else [])
    )


def test_backup_refuses_a_secrets_target_that_is_a_symlink(tmp_path: Path) -> None:
    db = tmp_path / "rsu.db"
    Journal.open(db).close()
    Path(f"{db}.secrets").write_bytes(b"")
    out = tmp_path / "copy.db"
    link = Path(f"{out}.secrets")
    link.symlink_to(tmp_path / "shared" / "secrets")
    argv = ["backup", "--db", str(db), "-o", str(out), "--with-secrets", "--force"]
    result = runner.invoke(app, argv, env={"COLUMNS": "300"})
    assert result.exit_code == 2
    assert f"error: {link} is a symbolic link (to {tmp_path}/shared/secrets)" in result.output
    assert not out.exists() and link.is_symlink()
