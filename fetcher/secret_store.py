"""The secrets file: every API secret of an installation, beside (never inside) the data database.

Users open the data database in Datasette, copy it and hand it around, so it holds no secret.
The secrets live in a second, small SQLite file whose path is derived from the data database's
path (``PRAGMA database_list``): **``<database file>.secrets``**, e.g. ``/var/lib/rsu/rsu.db``
-> ``/var/lib/rsu/rsu.db.secrets``. It is created with mode 0600 (and tightened to 0600 when
found looser; a symbolic link there is refused, never followed or chmod-ed), uses a rollback
journal (so its ``-journal`` file is short-lived and gets the file's own mode) and
``secure_delete`` (so replaced or removed secrets are zeroed, not left in free pages). Tables:

* ``credential_secrets``: per ``(timing_partner_id, provider_id)``: ``auth_kind``,
  ``principal`` (the api key, secret-ish), ``secret``, and for OAuth2 bearer tokens
  ``refresh_token``, ``client_id``, ``client_secret``, ``expires_at`` (access token expiry, UTC
  epoch seconds, NULL = unknown), ``updated_at`` (UTC ISO 8601);
* ``caller_registration``: at most one row (``id`` = 1): ``reg_id``, ``token``, ``secret``,
  ``updated_at`` (the installation's RunSignUp API caller registration).

This module is the low level (paths, opening, transactions); :mod:`rsu.fetcher.credentials` is
the API the rest of ``rsu`` uses.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

#: Appended to the data database's file name to name the secrets file.
SECRETS_SUFFIX = ".secrets"
#: Format version of the secrets file (``PRAGMA user_version``).
FORMAT_VERSION = 1
#: Seconds a connection waits for another process holding the secrets file's write lock (a token
#: refresh holds it for the length of one HTTP exchange).
BUSY_TIMEOUT_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS credential_secrets (
    timing_partner_id INTEGER NOT NULL,
    provider_id INTEGER NOT NULL,
    auth_kind TEXT NOT NULL,
    principal TEXT NOT NULL DEFAULT '',
    secret TEXT NOT NULL,
    refresh_token TEXT NOT NULL DEFAULT '',
    client_id TEXT NOT NULL DEFAULT '',
    client_secret TEXT NOT NULL DEFAULT '',
    expires_at REAL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (timing_partner_id, provider_id)
);
CREATE TABLE IF NOT EXISTS caller_registration (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    reg_id TEXT NOT NULL,
    token TEXT NOT NULL,
    secret TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""


class CredentialError(ValueError):
    """A credential that cannot be stored or used (bad auth kind, empty secret, secrets file
    missing ...). The message never holds a secret."""


def database_file(db: sqlite_utils.Database) -> str:
    """The file of ``db``'s main database (``PRAGMA database_list``); ``""`` when in memory."""
    for _seq, name, file in db.conn.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return str(file or "")
    return ""


def secrets_path(db: sqlite_utils.Database) -> Path:
    """``<database file>.secrets``, beside the data database ``db``.

    Raises :class:`CredentialError` for an in-memory database (it has no file to sit beside).
    """
    main = database_file(db)
    if not main:
        raise CredentialError(
            "an in-memory database has no secrets file; credentials need a database file"
        )
    return Path(main + SECRETS_SUFFIX)


def _tighten(path: Path) -> None:
    """Take the group and other bits off the secrets file and its ``-journal``, through a
    descriptor opened without following a link. Raises :class:`CredentialError` naming the
    path when either is a symbolic link (its target could be any file, and a chmod or the
    secrets would go there) or no regular file."""
    for suffix in ("", "-journal"):
        p = Path(f"{path}{suffix}")
        try:
            mode = os.lstat(p).st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(mode):
            raise CredentialError(
                f"cannot open the secrets file {p}: it is a symbolic link (to {os.readlink(p)}); "
                "rsu does not follow it: put the file itself there"
            )
        if not stat.S_ISREG(mode):
            raise CredentialError(f"cannot open the secrets file {p}: it is not a regular file")
        if not mode & 0o077:
            continue
        try:
            fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except PermissionError:  # its owner may not read it: lstat just saw a regular file
            os.chmod(p, 0o600)
            continue
        try:
            os.fchmod(fd, 0o600)
        finally:
            os.close(fd)


@contextmanager
def open_store(path: Path, *, create: bool) -> Iterator[sqlite3.Connection | None]:
    """Open the secrets file at ``path`` for the duration of the block.

    Yields an autocommit connection (use :func:`transaction` to write), or ``None`` when the
    file does not exist and ``create`` is false. ``create`` makes the file with mode 0600.
    Raises :class:`CredentialError` (naming the path, never a value) when it cannot be opened,
    or when it (or its ``-journal``) is a symbolic link or no regular file.
    """
    old_umask = os.umask(0o077)
    try:
        if not os.path.lexists(path):  # a dangling link exists too: _tighten refuses it
            if not create:
                yield None
                return
            fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o600)
            os.close(fd)
        _tighten(path)
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except CredentialError:
        raise
    except (OSError, sqlite3.Error) as exc:
        raise CredentialError(f"cannot open the secrets file {path}: {exc}") from exc
    finally:
        os.umask(old_umask)
    try:
        try:
            conn.execute("PRAGMA journal_mode=DELETE")
            conn.execute("PRAGMA secure_delete=ON")
            conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            if conn.execute("PRAGMA user_version").fetchone()[0] < FORMAT_VERSION:
                with transaction(conn):
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(f"PRAGMA user_version={FORMAT_VERSION}")
        except sqlite3.Error as exc:
            raise CredentialError(f"cannot read the secrets file {path}: {exc}") from exc
        yield conn
    finally:
        conn.close()


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on an exception) on an autocommit
    connection: the block holds the secrets file's write lock, so two processes (a sync
    refreshing a token, an operator adding one) never lose each other's update."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
