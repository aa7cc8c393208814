"""Issue 12: a first projection writes the registrations without the readers' look-up indexes
(bib, name, registration) and creates them once at its end; any projection that ends creates
those still missing (a first projection killed before its end left them out)."""

from __future__ import annotations

import sqlite3
from typing import Any

from project_helpers import Builder, j, new_journal, participants_body, race_obj, registration

from rsu.projector import project
from rsu.projector.apply import Applier
from rsu.projector.schema import PARTICIPANTS, TABLES

ALL = {f"ix_{t.name}_{name}" for t in TABLES for name, _ in t.indexes}
LOOKUP = {f"ix_{PARTICIPANTS.name}_{name}" for name in PARTICIPANTS.lookup_only}


def _indexes(conn: sqlite3.Connection) -> set[str]:
    return {
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'ix_%'"
        )
    }


def _journal() -> Any:
    jn = new_journal()
    b = Builder(jn, tp=1, run_id="r1")
    b.race(j({"race": race_obj(100, event_ids=[11])}), 100)
    b.listing(100, 11, [participants_body(11, [registration(i, 11) for i in range(1, 20)])])
    return jn


def test_first_projection_creates_the_lookup_indexes_at_its_end(monkeypatch):
    jn = _journal()
    during: list[set[str]] = []
    apply = Applier.apply

    def spy(self: Applier, row: Any) -> None:
        if row.kind == "response_received" and not during:
            during.append(_indexes(self.conn))
        apply(self, row)

    monkeypatch.setattr(Applier, "apply", spy)
    project(jn.db)
    assert {
        "ix_runsignup_participants_bib",
        "ix_runsignup_participants_name",
        "ix_runsignup_participants_registration",
    } == LOOKUP
    assert during == [ALL - LOOKUP]  # the projector's own (event_seen ...) from the start
    assert _indexes(jn.db.conn) == ALL
    bib = jn.db.conn.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM runsignup_participants "
        "WHERE timing_partner_id = 1 AND event_id = 11 AND bib_num = '5'"
    ).fetchall()
    assert "ix_runsignup_participants_bib" in str(bib)


def test_a_projection_restores_lookup_indexes_a_killed_first_projection_left_out():
    jn = _journal()
    project(jn.db)
    for name in LOOKUP:  # as a first projection killed before its end leaves the tables
        jn.db.conn.execute(f"DROP INDEX {name}")
    assert _indexes(jn.db.conn) == ALL - LOOKUP
    result = project(jn.db)
    assert (result.events, result.exit_code) == (0, 0)  # nothing left to project
    assert _indexes(jn.db.conn) == ALL
