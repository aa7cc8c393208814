"""Consistent copies of the database (``rsu backup``) while other processes hold it open.

The database is in WAL mode: the latest committed syncs may live in ``<db>-wal`` until a
checkpoint moves them into the main file, so a plain ``cp rsu.db`` can miss them (and a copy
taken mid-checkpoint can be torn). :func:`backup_file` uses SQLite's online backup API instead:
it reads one snapshot inside a read transaction (writers go on meanwhile), writes it to a private
temporary file beside the target, switches the copy to a rollback journal so that it is one
self-contained file, checks it (``PRAGMA quick_check``) and only then moves it into place.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from .db import BUSY_TIMEOUT_S

#: Files beside the database that belong to it (SQLite's, rsu's secrets file and run lock).
COMPANION_SUFFIXES = ("-wal", "-shm", "-journal", ".secrets", ".lock")


class BackupError(Exception):
    """A backup that cannot be made. ``usage`` is true when the request itself is wrong (the
    target exists and ``force`` was not given, its folder is missing, the source is missing), so
    the CLI exits 2; otherwise (a read or write failure) it exits 1. The message names the
    file."""

    def __init__(self, message: str, *, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


@dataclass(frozen=True)
class BackupResult:
    """One copy made by :func:`backup_file`: ``source``, ``target`` and its size in bytes."""

    source: Path
    target: Path
    size: int


def check_target(source: Path, target: Path, *, force: bool) -> None:
    """Raise :class:`BackupError` (``usage``) unless ``source`` is a file, ``target``'s folder
    exists, ``target`` is no symbolic link (even with ``force``: replacing the link or writing
    through it to a file elsewhere would both surprise), ``target`` is not ``source`` and
    ``target`` does not exist (or ``force``)."""
    if not source.is_file():
        raise BackupError(f"{source} does not exist or is not a file", usage=True)
    if target.is_symlink():
        raise BackupError(
            f"{target} is a symbolic link (to {os.readlink(target)}); give the file's own path "
            "or a new one, rsu backup neither replaces a link nor writes through it",
            usage=True,
        )
    if not target.parent.is_dir():
        raise BackupError(
            f"cannot write {target}: folder {target.parent} does not exist", usage=True
        )
    if target.exists() and target.resolve() == source.resolve():
        raise BackupError(f"{target} is the database itself; choose another file", usage=True)
    companions = {Path(f"{source.resolve()}{s}") for s in COMPANION_SUFFIXES}
    if target.resolve() in companions:
        # replacing the live -wal would drop the syncs committed in it; .secrets the credentials
        raise BackupError(
            f"{target} is a file of the database {source} itself; choose another file", usage=True
        )
    if target.is_dir():
        raise BackupError(f"{target} is a directory", usage=True)
    if target.exists() and not target.resolve().is_file():
        raise BackupError(f"{target} is not a regular file (a device or a FIFO)", usage=True)
    if target.exists() and not force:
        raise BackupError(f"{target} exists; pass --force to overwrite it", usage=True)


def backup_file(source: Path, target: Path, *, force: bool = False) -> BackupResult:
    """Copy the SQLite database ``source`` to ``target`` (mode 0600, rollback-journal mode) as
    one consistent snapshot, while other connections may read and write ``source``.

    The copy is written to a temporary file in ``target``'s folder and renamed into place, so
    ``target`` is never half-written; without ``force`` an existing ``target`` is refused (also
    when it appears during the copy). Raises :class:`BackupError` (see there).
    """
    check_target(source, target, force=force)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
        src = sqlite3.connect(str(source), timeout=BUSY_TIMEOUT_S)
        try:
            dst = sqlite3.connect(str(tmp))
            try:
                src.backup(dst)  # pages=-1: the whole database from one read snapshot
                dst.execute("PRAGMA journal_mode=DELETE")
                check = dst.execute("PRAGMA quick_check").fetchone()[0]
            finally:
                dst.close()
        finally:
            src.close()
        if check != "ok":
            raise BackupError(f"the copy of {source} failed its check: {check}")
        os.chmod(tmp, 0o600)  # our own new file, before it takes the name (never via a link)
        size = tmp.stat().st_size
        if force:
            os.replace(tmp, target)
        else:
            try:
                os.link(tmp, target)  # fails if target appeared meanwhile: never overwrite
            except FileExistsError:
                raise BackupError(
                    f"{target} exists; pass --force to overwrite it", usage=True
                ) from None
        return BackupResult(source, target, size)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot back up {source} to {target}: {exc}") from exc
    except OSError as exc:
        raise BackupError(f"cannot write {target}: {exc.strerror}") from exc
    finally:
        for leftover in (tmp, Path(f"{tmp}-journal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
