"""Projection targets: the database the tables live in, and its dialect.

The runner and the :class:`~rsu.projector.apply.Applier` talk to a target's :attr:`Target.conn`
(anything with ``execute(sql, params)`` returning a cursor with ``fetchone``/iteration/``rowcount``,
and ``executemany``; SQL uses ``?`` placeholders) and ask the target only for what differs
between engines: transactions, DDL, the rebuild swap and probing an old table shape.

- :class:`SqliteTarget`: the default, the tables beside the journal in the SQLite file;
- :class:`rsu.projector.pg.PgTarget`: a PostgreSQL database (``--target postgresql://...``).

Each target keeps its own checkpoint (``projector_state``) in its own database, so several
targets may follow one journal.
"""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from typing import Any, Protocol

from . import user_objects
from .schema import NEW_SUFFIX, TABLES, create_indexes, create_tables, drop_tables, tables_exist


class TargetError(Exception):
    """A projection target could not be reached or used (the message never holds a password)."""


class Target(Protocol):
    """What the runner needs from a projection database."""

    #: A short name for messages (``sqlite``, or the masked PostgreSQL DSN).
    label: str

    @property
    def conn(self) -> Any:
        """The connection the Applier and the runner execute ``?``-style SQL on."""
        ...

    def begin(self) -> None:
        """Start a write transaction that excludes other projectors of this target."""

    def commit(self) -> None:
        """Commit the current transaction."""

    def rollback(self) -> None:
        """Roll the current transaction back (nothing when none is open)."""

    def create_tables(self, suffix: str = "") -> None:
        """Create every projection table ``name + suffix`` if missing (no secondary indexes)."""

    def create_indexes(self, *, lookup: bool = True) -> None:
        """Create the look-up indexes on the live tables if missing; without ``lookup`` only
        those the projector's queries use (see ``schema.create_indexes``)."""

    def drop_tables(self, suffix: str = "") -> None:
        """Drop every projection table ``name + suffix`` if present."""

    def tables_exist(self, suffix: str = "") -> bool:
        """Whether ``projector_state + suffix`` exists."""

    def swap_session(self) -> AbstractContextManager[Any]:
        """The connection settings the swap transaction runs under (entered before BEGIN)."""
        ...

    def swap_in_new(self) -> list[str]:
        """Inside a transaction: drop the live tables, rename ``*_new`` to them, add indexes;
        returns operator messages (e.g. a user's view that no longer fits)."""
        ...

    def probe(self, sql: str) -> tuple[Any, ...] | None:
        """The first row of ``sql``, or ``None`` when the tables it reads have another shape
        (inside a transaction, which stays usable)."""

    def wrap_error(self, exc: BaseException) -> TargetError | None:
        """``exc`` as a :class:`TargetError` when it is this target's database failing (its
        message without secrets), else ``None``."""

    def close(self) -> None:
        """Close the connection (only when this target opened it)."""


class SqliteTarget:
    """The projection tables in the SQLite file of the journal (the default target)."""

    label = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @property
    def conn(self) -> sqlite3.Connection:
        return self._conn

    def begin(self) -> None:
        # IMMEDIATE takes the write lock now, so the checkpoint read next is the current one.
        self._conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self._conn.execute("COMMIT")

    def rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def create_tables(self, suffix: str = "") -> None:
        create_tables(self._conn, suffix)

    def create_indexes(self, *, lookup: bool = True) -> None:
        create_indexes(self._conn, lookup=lookup)

    def drop_tables(self, suffix: str = "") -> None:
        drop_tables(self._conn, suffix)

    def tables_exist(self, suffix: str = "") -> bool:
        return tables_exist(self._conn, suffix)

    def swap_session(self) -> AbstractContextManager[Any]:
        return user_objects.legacy_alter_table(self._conn)

    def swap_in_new(self) -> list[str]:
        conn = self._conn
        names = [table.name for table in TABLES]
        saved = user_objects.user_objects(conn, names)
        drop_tables(conn)
        for table in TABLES:
            conn.execute(f"ALTER TABLE {table.name}{NEW_SUFFIX} RENAME TO {table.name}")
        create_indexes(conn)
        messages = user_objects.restore(conn, saved)
        messages += user_objects.refresh_fts(conn, user_objects.content_fts_tables(conn, names))
        messages += user_objects.broken_views(conn)
        return messages

    def probe(self, sql: str) -> tuple[Any, ...] | None:
        try:
            row = self._conn.execute(sql).fetchone()
        except sqlite3.OperationalError:
            return None
        return None if row is None else tuple(row)

    def wrap_error(self, exc: BaseException) -> TargetError | None:
        return None  # sqlite3 errors keep their own type (the journal's database)

    def close(self) -> None:
        """The SQLite connection belongs to the journal's database: the caller closes it."""
