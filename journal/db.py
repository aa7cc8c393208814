"""Opening the one SQLite file that holds the journal, the credentials and the projection.

The file is created with mode 0600 (it holds API secrets in ``partner_provider_credentials``), put
in WAL mode so the projector and readers can work while the fetcher appends, and given a busy
timeout so two processes wait for each other instead of failing.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import sqlite_utils

#: Environment variable naming the database file when ``--db`` is not given.
DB_ENV = "RSU_DB"
#: Default database file, relative to the working directory.
DEFAULT_DB = "rsu.db"
#: How long (seconds) a connection waits for another writer before failing.
BUSY_TIMEOUT_S = 30.0


class JournalError(Exception):
    """Any failure of the journal store: a wrapped ``sqlite3`` error, or a broken invariant.

    The message names the database file and the operation; it never contains a secret (the journal
    holds none).
    """


def default_db_path() -> Path:
    """``$RSU_DB`` when set, else ``./rsu.db``."""
    return Path(os.environ.get(DB_ENV) or DEFAULT_DB)


def _create_private(path: Path) -> None:
    """Create ``path`` (empty) with mode 0600 unless it exists; also tighten an existing file."""
    if str(path) == ":memory:":
        return
    if not path.parent.is_dir():
        raise JournalError(
            f"cannot create database file {path}: folder {path.parent} does not exist"
        )
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    for suffix in ("", "-wal", "-shm"):
        p = Path(f"{path}{suffix}")
        if p.exists() and (p.stat().st_mode & 0o077):
            p.chmod(0o600)


def open_db(path: str | Path) -> sqlite_utils.Database:
    """Open (creating with mode 0600) the SQLite file at ``path`` in WAL mode.

    ``path`` may be ``":memory:"`` for tests. The connection may be used from several threads (the
    caller serialises access). Raises :class:`JournalError` when the file cannot be opened.
    """
    path = Path(path) if str(path) != ":memory:" else path
    try:
        if isinstance(path, Path):
            old_umask = os.umask(0o077)  # the -wal and -shm files too
            try:
                _create_private(path)
                conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
            finally:
                os.umask(old_umask)
        else:
            conn = sqlite3.connect(":memory:", check_same_thread=False)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        return sqlite_utils.Database(conn, execute_plugins=False)
    except sqlite3.Error as exc:
        raise JournalError(f"cannot open database {path}: {exc}") from exc
    except OSError as exc:
        raise JournalError(f"cannot create database file {path}: {exc.strerror}") from exc
