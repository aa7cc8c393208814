"""A rebuild keeps what users add to the database: their views, indexes, triggers and full-text
tables over the projection tables (before, a user view made every rebuild fail at the swap)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import sqlite_utils
from project_helpers import Builder, new_journal, participants_body, race_obj, registration
from typer.testing import CliRunner

from rsu.cli.main import app
from rsu.journal import Journal
from rsu.projector import project
from rsu.projector.schema import PROJECTION_VERSION
from rsu.projector.user_objects import legacy_alter_table

runner = CliRunner()

VIEW = (
    "CREATE VIEW start_list AS SELECT event_id, registration_id, bib_num "
    "FROM runsignup_participants WHERE removed_at IS NULL"
)
VIEW_OF_VIEW = "CREATE VIEW start_list_11 AS SELECT * FROM start_list WHERE event_id = 11"
INDEX = "CREATE INDEX my_bibs ON runsignup_participants (bib_num, last_name)"


def _journal(path: Path, regs: list[int]) -> Journal:
    journal = new_journal(path)
    b = Builder(journal)
    b.run_started()
    b.race(json.dumps({"race": race_obj(1649)}).encode(), 1649)
    b.listing(1649, 11, [participants_body(11, [registration(r, 11) for r in regs])])
    b.run_finished()
    return journal


def _add_user_objects(db: Path) -> None:
    database = sqlite_utils.Database(db)
    database.execute(VIEW)
    database.execute(VIEW_OF_VIEW)
    database.execute(INDEX)
    # What `sqlite-utils enable-fts rsu.db runsignup_participants ... --create-triggers` makes:
    # an external-content FTS5 table plus insert/update/delete triggers.
    database["runsignup_participants"].enable_fts(["first_name", "last_name"], create_triggers=True)
    # A standalone full-text table of the user's own.
    database.execute("CREATE VIRTUAL TABLE notes USING fts5(body)")
    database.execute("INSERT INTO notes (body) VALUES ('bring the timing mats')")
    database.conn.commit()
    database.conn.close()


def _schema(conn: sqlite3.Connection) -> dict[str, str]:
    return {
        name: sql
        for name, sql in conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE name NOT LIKE 'ix_%' AND "
            "(type IN ('view', 'index', 'trigger') OR sql LIKE 'CREATE VIRTUAL%')"
        )
    }


def _searched(conn: sqlite3.Connection, term: str) -> list[int]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT p.registration_id FROM runsignup_participants p JOIN "
            "runsignup_participants_fts f ON f.rowid = p.rowid "
            "WHERE runsignup_participants_fts MATCH ? ORDER BY p.registration_id",
            (term,),
        )
    ]


def test_measured_sqlite_rename_fails_on_a_user_view_without_legacy_alter_table() -> None:
    """What SQLite does, measured: DROP + RENAME under a dependent view fails, unless
    legacy_alter_table is on; then the view reads the renamed table."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE p (a)")
    conn.execute("CREATE TABLE p_new (a)")
    conn.execute("INSERT INTO p_new VALUES (5)")
    conn.execute("CREATE VIEW v AS SELECT a FROM p")
    conn.execute("BEGIN")
    conn.execute("DROP TABLE p")
    with pytest.raises(sqlite3.OperationalError, match=r"error in view v: no such table: main\.p"):
        conn.execute("ALTER TABLE p_new RENAME TO p")
    conn.execute("ROLLBACK")
    with legacy_alter_table(conn):
        conn.execute("BEGIN")
        conn.execute("DROP TABLE p")
        conn.execute("ALTER TABLE p_new RENAME TO p")
        conn.execute("COMMIT")
    assert conn.execute("PRAGMA legacy_alter_table").fetchone()[0] == 0
    assert conn.execute("SELECT * FROM v").fetchall() == [(5,)]


def test_rebuild_keeps_user_views_indexes_triggers_and_fts(tmp_path: Path) -> None:
    db = tmp_path / "rsu.db"
    journal = _journal(db, [101, 102, 103])
    project(journal.db)
    journal.close()
    _add_user_objects(db)
    conn = sqlite3.connect(db)
    before_schema = _schema(conn)
    assert {
        "my_bibs",
        "notes",
        "runsignup_participants_ad",
        "runsignup_participants_ai",
        "runsignup_participants_au",
        "runsignup_participants_fts",
        "start_list",
        "start_list_11",
    } <= set(before_schema)
    before_view = conn.execute("SELECT * FROM start_list_11 ORDER BY registration_id").fetchall()
    before_search = _searched(conn, registration(102, 11)["user"]["last_name"].strip())
    conn.close()
    assert len(before_view) == 3 and 102 in before_search

    result = runner.invoke(app, ["project", "--db", str(db), "--rebuild"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("rebuilt: ")
    assert "your " not in result.output  # nothing had to be reported

    conn = sqlite3.connect(db)
    assert _schema(conn) == before_schema  # views, index, fts table, triggers: all there
    assert conn.execute("SELECT * FROM start_list_11 ORDER BY registration_id").fetchall() == (
        before_view
    )
    last_name = registration(102, 11)["user"]["last_name"].strip()
    assert _searched(conn, last_name) == before_search  # the FTS index was rebuilt
    assert conn.execute("SELECT body FROM notes WHERE notes MATCH 'mats'").fetchall() == [
        ("bring the timing mats",)
    ]
    assert (
        conn.execute("EXPLAIN QUERY PLAN SELECT * FROM runsignup_participants WHERE bib_num = '5'")
        .fetchall()[0][3]
        .endswith("USING INDEX my_bibs (bib_num=?)")
    )
    conn.close()

    # The restored triggers keep the FTS table current on the next incremental projection.
    journal = Journal.open(db)
    b = Builder(journal, run_id="run-2")
    b.tick = 100
    b.run_started()
    b.listing(1649, 11, [participants_body(11, [registration(104, 11)])], complete=False)
    b.run_finished()
    project(journal.db)
    journal.close()
    conn = sqlite3.connect(db)
    assert _searched(conn, registration(104, 11)["user"]["first_name"].strip()) == [104]
    assert [r[1] for r in conn.execute("SELECT * FROM start_list_11")] == [101, 102, 103, 104]
    conn.close()


def test_upgrade_rebuild_reports_user_objects_that_no_longer_fit(tmp_path: Path) -> None:
    """A column the user added by hand is gone after the rebuild: the index and the trigger on it
    are not recreated and the view over it no longer reads, each named in a message; the
    rebuild (here the one a new projection version starts in every `rsu sync`) succeeds."""
    db = tmp_path / "rsu.db"
    journal = _journal(db, [101, 102])
    project(journal.db)
    conn = journal.db.conn
    conn.execute("ALTER TABLE runsignup_participants ADD COLUMN my_note TEXT")
    conn.execute("CREATE INDEX my_notes ON runsignup_participants (my_note)")
    conn.execute("CREATE VIEW noted AS SELECT registration_id, my_note FROM runsignup_participants")
    conn.execute(VIEW)
    conn.execute("UPDATE projector_state SET value = 1 WHERE name = 'projection_version'")
    conn.commit()

    result = project(journal.db)

    assert result.rebuilt
    assert result.new_errors == 0
    assert result.messages[0] == (
        f"projection version changed (1 -> {PROJECTION_VERSION}): rebuilding the tables from "
        "the journal"
    )
    assert result.messages[1] == (
        "your index my_notes on runsignup_participants no longer fits the rebuilt table "
        "(no such column: my_note) and was not recreated; its SQL was: "
        "CREATE INDEX my_notes ON runsignup_participants (my_note)"
    )
    assert result.messages[2] == (
        "your view noted no longer works on the rebuilt tables: no such column: my_note"
    )
    assert len(result.messages) == 3
    assert conn.execute("SELECT registration_id FROM start_list").fetchall() == [(101,), (102,)]
    journal.close()
