"""What users add to the database, kept across a rebuild of the projection tables.

Users open ``rsu.db`` in Datasette or sqlite3 and add their own views, indexes, triggers and
full-text tables over the projection tables. A rebuild drops every live table and renames the new
one into its place; measured on SQLite 3.40 (``tests/test_project_user_objects.py``):

- a view over a projection table makes ``ALTER TABLE ... RENAME`` fail (``error in view v: no such
  table: main.runsignup_participants``), because since SQLite 3.26 a rename re-checks every view
  and trigger of the schema. :func:`legacy_alter_table` switches that off for the swap (the
  procedure the SQLite documentation gives for rebuilding a table, "Making Other Kinds Of Table
  Schema Changes"); the view names the table, so it reads the new one afterwards;
- indexes and triggers on a projection table disappear with ``DROP TABLE``:
  :func:`user_objects` saves their SQL before the swap and :func:`restore` creates them again;
- an external-content full-text table (``fts4``/``fts5`` with ``content=<projection table>``, as
  ``sqlite-utils enable-fts`` makes) survives but indexes the old rows: :func:`refresh_fts`
  rebuilds it from the new table.

An object that no longer fits the new tables (a column it names is gone) is not restored: the
rebuild goes on and the operator gets a message with its SQL, so a sync never fails over it.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .schema import TABLES


@dataclass(frozen=True)
class UserObject:
    """One index or trigger a user created on a projection table: its ``kind`` (``index`` or
    ``trigger``), ``name``, the table it is on and its ``CREATE`` statement."""

    kind: str
    name: str
    table: str
    sql: str


def _own_index_names() -> frozenset[str]:
    return frozenset(f"ix_{t.name}_{ix}" for t in TABLES for ix, _ in t.indexes)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def user_objects(conn: sqlite3.Connection, tables: Iterable[str]) -> list[UserObject]:
    """The indexes and triggers on ``tables`` that ``rsu`` did not create, in creation order
    (automatic indexes of primary keys and ``rsu``'s own ``ix_*`` indexes are left out)."""
    names = list(tables)
    own = _own_index_names()
    marks = ",".join("?" * len(names))
    rows = conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master "
        f"WHERE type IN ('index', 'trigger') AND sql IS NOT NULL AND tbl_name IN ({marks}) "
        "ORDER BY rowid",
        names,
    ).fetchall()
    return [UserObject(k, n, t, sql) for k, n, t, sql in rows if n not in own]


def restore(conn: sqlite3.Connection, objects: Iterable[UserObject]) -> list[str]:
    """Create ``objects`` again (after the swap); returns one message per object that could not
    be created, with the reason and its SQL. Each object is tried in its own savepoint, so a
    failure leaves the surrounding transaction intact."""
    messages: list[str] = []
    for obj in objects:
        conn.execute("SAVEPOINT rsu_user_object")
        try:
            conn.execute(obj.sql)
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK TO rsu_user_object")
            messages.append(
                f"your {obj.kind} {obj.name} on {obj.table} no longer fits the rebuilt table "
                f"({exc}) and was not recreated; its SQL was: {obj.sql}"
            )
        conn.execute("RELEASE rsu_user_object")
    return messages


_CONTENT = re.compile(r"""\bcontent\s*=\s*['"\[`]?([A-Za-z_][A-Za-z0-9_]*)""", re.IGNORECASE)


def content_fts_tables(conn: sqlite3.Connection, tables: Iterable[str]) -> list[str]:
    """Names of the external-content FTS tables (``USING fts4/fts5(..., content=T)``) whose
    content table ``T`` is one of ``tables``."""
    wanted = set(tables)
    out = []
    for name, sql in conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL%'"
    ):
        using = re.search(r"\bUSING\s+(fts[345])\b", sql or "", re.IGNORECASE)
        content = _CONTENT.search(sql or "")
        if using and content and content.group(1) in wanted:
            out.append(name)
    return out


def refresh_fts(conn: sqlite3.Connection, fts_tables: Iterable[str]) -> list[str]:
    """Rebuild each external-content FTS index from its (new) content table; returns one message
    per table that could not be rebuilt."""
    messages: list[str] = []
    for name in fts_tables:
        conn.execute("SAVEPOINT rsu_fts")
        try:
            conn.execute(f"INSERT INTO {_quote(name)} ({_quote(name)}) VALUES ('rebuild')")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK TO rsu_fts")
            messages.append(
                f"your full-text table {name} could not be rebuilt from the new table ({exc}); "
                f"run: INSERT INTO {name}({name}) VALUES('rebuild')"
            )
        conn.execute("RELEASE rsu_fts")
    return messages


def broken_views(conn: sqlite3.Connection) -> list[str]:
    """One message per view of the database that cannot be read (e.g. it names a column the
    rebuilt tables no longer have); the view itself is left as the user wrote it."""
    messages: list[str] = []
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'view'").fetchall():
        try:
            conn.execute(f"SELECT * FROM {_quote(name)} LIMIT 0").fetchall()
        except sqlite3.Error as exc:
            messages.append(f"your view {name} no longer works on the rebuilt tables: {exc}")
    return messages


@contextlib.contextmanager
def legacy_alter_table(conn: sqlite3.Connection) -> Iterator[None]:
    """``PRAGMA legacy_alter_table=ON`` for the block (then back to what it was): ``ALTER TABLE
    ... RENAME`` then neither rewrites nor re-checks views and triggers, so the user's views over
    a dropped-and-renamed projection table survive the swap."""
    before = conn.execute("PRAGMA legacy_alter_table").fetchone()[0]
    conn.execute("PRAGMA legacy_alter_table=ON")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA legacy_alter_table={'ON' if before else 'OFF'}")
