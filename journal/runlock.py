"""One writing run at a time per database: an exclusive OS file lock on ``<db>.lock``.

``rsu sync``, ``rsu fetch`` and ``rsu project`` hold it for their whole run, so a cron job that
starts while the previous one is still running stops at once (:class:`RunLocked`) instead of
racing it. The lock is ``flock(2)`` on a small file beside the database (the real path, so a
symlinked ``--db`` shares it); the kernel releases it when the process ends, however it ends, so
a killed run never leaves a stale lock behind. The file holds the holder's pid and command, for
the message; it is never deleted (deleting a lock file races with the next run taking it).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from .db import database_error

#: Suffix of the lock file beside the database file.
LOCK_SUFFIX = ".lock"


class RunLocked(Exception):
    """Another process holds the run lock of the database. The message names the database and,
    when known, the holder's pid and command."""


def lock_path(db: str | Path) -> Path:
    """``<real path of db>.lock``: the lock file of the database file ``db``."""
    return Path(os.path.realpath(db) + LOCK_SUFFIX)


def run_in_progress(db: str | Path) -> str | None:
    """The holder (``"PID: COMMAND"``) of database ``db``'s run lock while another process holds
    it (an ``rsu sync``, ``fetch``, ``project`` or ``journal import`` is running), else ``None``
    (also when the lock file is missing or cannot be read, e.g. a read-only copy). Never waits
    and never takes the lock for longer than the test."""
    try:
        fd = os.open(lock_path(db), os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
        except OSError:
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class RunLock:
    """The held run lock of one database; release it with :meth:`release` or use ``with``.

    :meth:`acquire` never waits. Raises :class:`RunLocked` when another process holds it, and
    :class:`rsu.journal.JournalError` when the lock file cannot be created (e.g. a read-only
    folder).
    """

    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    @classmethod
    def acquire(cls, db: str | Path, command: str) -> RunLock:
        """Take the run lock of database ``db`` for ``command`` (e.g. ``"rsu sync"``)."""
        path = lock_path(db)
        try:
            # O_NOFOLLOW: never truncate the file a symlink planted as the lock file points at.
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise database_error(exc, f"create its lock file {path}", db) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
            os.close(fd)
            who = f" (pid {holder})" if holder else ""
            raise RunLocked(
                f"another rsu run{who} is using database {db}; this run did nothing and exits. "
                "Runs overlapping is normal under cron: the next one carries on"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise database_error(exc, f"lock {path}", db) from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}: {command}\n".encode(), 0)
        return cls(fd, path)

    def release(self) -> None:
        """Release the lock (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
