"""Opening the one SQLite file that holds the journal, the credentials and the projection.

The file is created with mode 0600 (it holds API secrets in ``partner_provider_credentials``), put
in WAL mode so the projector and readers can work while the fetcher appends, and given a busy
timeout so two processes wait for each other instead of failing (``RSU_BUSY_TIMEOUT`` seconds,
default 30). Read-only commands open it with ``readonly=True``: nothing is created, written or
chmod-ed, so they work on a read-only file or folder.

Every ``sqlite3`` (or file system) error is wrapped once, by :func:`database_error`, into a
:class:`JournalError` whose one-line message names the file and the cause (locked, full disk,
read-only, not a database ...).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

import sqlite_utils

#: Environment variable naming the database file when ``--db`` is not given.
DB_ENV = "RSU_DB"
#: Default database file, relative to the working directory.
DEFAULT_DB = "rsu.db"
#: How long (seconds) a connection waits for another writer before failing, unless
#: :data:`BUSY_TIMEOUT_ENV` says otherwise.
BUSY_TIMEOUT_S = 30.0
#: Environment variable: seconds to wait for another writer (e.g. ``RSU_BUSY_TIMEOUT=120``).
BUSY_TIMEOUT_ENV = "RSU_BUSY_TIMEOUT"

#: :attr:`JournalError.cause` values.
LOCKED, DISK_FULL, READ_ONLY, CANNOT_OPEN, NOT_A_DATABASE, OTHER = (
    "locked",
    "disk_full",
    "read_only",
    "cannot_open",
    "not_a_database",
    "other",
)


class JournalError(Exception):
    """Any failure of the journal store: a wrapped ``sqlite3`` error, or a broken invariant.

    The message is one line naming the database file, the operation and the cause; it never
    contains a secret (the journal holds none). ``cause`` is one of ``"locked"`` (another process
    holds the write lock longer than the busy timeout), ``"disk_full"``, ``"read_only"``,
    ``"cannot_open"``, ``"not_a_database"`` or ``"other"``.
    """

    def __init__(self, message: str, cause: str = OTHER) -> None:
        super().__init__(message)
        self.cause = cause


def default_db_path() -> Path:
    """``$RSU_DB`` when set, else ``./rsu.db``."""
    return Path(os.environ.get(DB_ENV) or DEFAULT_DB)


def busy_timeout() -> float:
    """Seconds to wait for another writer: ``$RSU_BUSY_TIMEOUT`` or :data:`BUSY_TIMEOUT_S`.

    Raises :class:`JournalError` when the variable is not a number >= 0.
    """
    raw = os.environ.get(BUSY_TIMEOUT_ENV, "").strip()
    if not raw:
        return BUSY_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1e6:
        raise JournalError(f"{BUSY_TIMEOUT_ENV}={raw!r} is not a number of seconds >= 0")
    return value


def file_of(conn: sqlite3.Connection) -> str:
    """The file of ``conn``'s main database (``:memory:``; ``?`` when unknown)."""
    try:
        for _seq, name, file in conn.execute("PRAGMA database_list").fetchall():
            if name == "main":
                return str(file or ":memory:")
    except sqlite3.Error:
        pass
    return "?"


def _cause(exc: BaseException) -> tuple[str, str]:
    """``(cause, explanation)`` of a ``sqlite3`` or ``OSError`` exception."""
    if isinstance(exc, OSError):
        if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
            return DISK_FULL, "the disk is full"
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return READ_ONLY, "permission denied (the file or its folder is read-only)"
        return OTHER, exc.strerror or str(exc)
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(exc)
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in text:
        try:
            waited = busy_timeout()
        except JournalError:  # reported when the next connection opens
            waited = BUSY_TIMEOUT_S
        return LOCKED, (
            f"another process holds its write lock (waited {waited:g} s; "
            f"{BUSY_TIMEOUT_ENV} sets how long to wait)"
        )
    if primary == sqlite3.SQLITE_FULL or "disk is full" in text:
        return DISK_FULL, "the disk is full (or the database reached its size limit)"
    if primary == sqlite3.SQLITE_READONLY or "readonly" in text:
        return READ_ONLY, (
            "the file or its folder is read-only (writing needs write access to both: SQLite "
            "creates -wal and -shm files beside it)"
        )
    if primary == sqlite3.SQLITE_CANTOPEN or "unable to open" in text:
        return CANNOT_OPEN, (
            "SQLite cannot open it (is it readable, and its folder writable for the -wal and "
            "-shm files?)"
        )
    if primary in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT) or "not a database" in text:
        return NOT_A_DATABASE, f"it is not an SQLite database or is damaged ({text})"
    return OTHER, text


def database_error(
    exc: sqlite3.Error | OSError, doing: str, path: str | Path | sqlite3.Connection | None = None
) -> JournalError:
    """Wrap ``exc`` into a :class:`JournalError` with a one-line message: ``"database {path}:
    cannot {doing}: {cause}"``. ``path`` is the database file (or a connection to it).
    Call it once, where the ``sqlite3`` error is first caught; raise the result ``from exc``."""
    if isinstance(path, sqlite3.Connection):
        path = file_of(path)
    cause, why = _cause(exc)
    where = f"database {path}: " if path is not None else ""
    return JournalError(f"{where}cannot {doing}: {why}", cause)


def _create_private(path: Path) -> None:
    """Create ``path`` (empty) with mode 0600 unless it exists; take the group and other bits
    off an existing file (and its -wal/-shm) when it is ours. A symlink is followed to open,
    never chmod-ed: its target belongs to whoever made the link."""
    if not path.parent.is_dir():
        raise JournalError(
            f"cannot create database file {path}: folder {path.parent} does not exist",
            CANNOT_OPEN,
        )
    if not path.exists():
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    for suffix in ("", "-wal", "-shm"):
        p = Path(f"{path}{suffix}")
        if p.is_symlink() or not p.exists():
            continue
        st = p.stat()
        if st.st_mode & 0o077 and st.st_uid == os.geteuid():
            p.chmod(st.st_mode & 0o700)  # a read-only (0444) file stays read-only (0400)


def _readonly_connect(path: Path) -> sqlite3.Connection:
    """A read-only connection to the existing file ``path``; falls back to ``immutable=1`` when
    SQLite cannot create the WAL index beside a read-only file (then no writer can exist)."""
    if not path.exists():
        raise JournalError(f"database {path} does not exist", CANNOT_OPEN)
    if path.is_file() and path.stat().st_size == 0:
        raise JournalError(
            f"database {path} is an empty file, not an rsu database (nothing to read)",
            NOT_A_DATABASE,
        )
    uri = "file:" + quote(str(path.resolve()))
    last: sqlite3.Error | None = None
    for params in ("?mode=ro", "?mode=ro&immutable=1"):
        try:
            conn = sqlite3.connect(
                uri + params, uri=True, timeout=busy_timeout(), check_same_thread=False
            )
        except sqlite3.Error as exc:
            last = exc
            continue
        try:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.Error as exc:
            conn.close()
            last = exc
            if _cause(exc)[0] not in (CANNOT_OPEN, READ_ONLY):
                break
    assert last is not None
    raise database_error(last, "read", path) from last


def open_db(path: str | Path, *, readonly: bool = False) -> sqlite_utils.Database:
    """Open (creating with mode 0600) the SQLite file at ``path`` in WAL mode.

    ``path`` may be ``":memory:"`` for tests. The connection may be used from several threads (the
    caller serialises access). With ``readonly`` the file must exist and is opened read-only
    (``mode=ro``, ``PRAGMA query_only``): nothing is created or changed, not even an empty file
    turned into a database. Raises :class:`JournalError` when the file cannot be opened.
    """
    timeout = busy_timeout()
    if str(path) == ":memory:":
        conn = sqlite3.connect(":memory:", check_same_thread=False)
        conn.execute("PRAGMA foreign_keys=ON")
        return sqlite_utils.Database(conn, execute_plugins=False)
    path = Path(path)
    try:
        if readonly:
            conn = _readonly_connect(path)
            conn.execute("PRAGMA query_only=ON")
        else:
            old_umask = os.umask(0o077)  # the -wal and -shm files too
            try:
                _create_private(path)
                conn = sqlite3.connect(str(path), timeout=timeout, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
            finally:
                os.umask(old_umask)
            conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        return sqlite_utils.Database(conn, execute_plugins=False)
    except (sqlite3.Error, OSError) as exc:
        raise database_error(exc, "open", path) from exc
