"""Issue 15: a page RunSignUp sends again unchanged is not merged row by row, and the tables are
exactly those of a row-by-row projection (the property test compares them on random journals)."""

from __future__ import annotations

from project_helpers import (
    Builder,
    copy_db,
    dump,
    j,
    new_journal,
    participants_body,
    race_obj,
    registration,
    removed_body,
    removed_registration,
)

from rsu.journal import Journal
from rsu.projector import project

RACE, EVENT = 100, 11


def _listing(b: Builder, regs: range) -> int:
    pages = [
        participants_body(EVENT, [registration(r, EVENT) for r in regs[k : k + 3]])
        for k in range(0, len(regs), 3)
    ]
    return b.listing(RACE, EVENT, pages)


def _bodies_read(journal: Journal, monkeypatch) -> list[str]:
    read: list[str] = []
    real = Journal.body

    def body(self, sha256):
        read.append(sha256)
        return real(self, sha256)

    monkeypatch.setattr(Journal, "body", body)
    return read


def test_an_unchanged_relisting_only_moves_last_seen(monkeypatch) -> None:
    jn = new_journal()
    b = Builder(jn)
    b.race(j({"race": race_obj(RACE, event_ids=(EVENT,))}), RACE)
    _listing(b, range(1, 8))
    project(jn.db)
    before = dump(jn.db.conn, ("runsignup_participants",), exclude=("last_seen_seq",))
    done = _listing(b, range(1, 8))
    read = _bodies_read(jn, monkeypatch)
    assert project(jn.db).rows_upserted == 0
    assert read == []  # not one body was read: every page was the same as before
    conn = jn.db.conn
    assert dump(conn, ("runsignup_participants",), exclude=("last_seen_seq",)) == before
    pages = conn.execute(
        "SELECT rows, num_new, num_changed, num_unchanged, event_ids FROM projector_pages "
        "WHERE seq > ? - 4 AND seq < ? ORDER BY seq",
        (done, done),
    ).fetchall()
    assert pages == [(3, 0, 0, 3, "11"), (3, 0, 0, 3, "11"), (1, 0, 0, 1, "11")]
    assert {r[0] for r in conn.execute("SELECT last_seen_seq FROM runsignup_participants")} == {
        done - 3,
        done - 2,
        done - 1,
    }


def test_a_registration_written_since_is_merged_row_by_row(monkeypatch) -> None:
    jn = new_journal()
    b = Builder(jn)
    b.race(j({"race": race_obj(RACE, event_ids=(EVENT,))}), RACE)
    _listing(b, range(1, 4))
    project(jn.db)
    # registration 2 is refunded, then the same page shows it again: it must come back
    b.listing(
        RACE,
        EVENT,
        [removed_body(EVENT, [removed_registration(2, EVENT, "removed", None, 1_800_000_000)])],
        endpoint="removed_participants",
    )
    done = _listing(b, range(1, 4))
    slow = copy_db(jn.db.conn)
    read = _bodies_read(jn, monkeypatch)
    project(jn.db)
    # the page was read (a row was written since), its two untouched rows were not merged
    assert jn.db.conn.execute(
        "SELECT rows, num_new, num_changed, num_unchanged FROM projector_pages WHERE seq = ?",
        (done - 1,),
    ).fetchone() == (3, 0, 1, 2)
    assert len(read) == 3  # the removed page, the page, and the page that last saw its rows
    project(slow.db, shortcuts=False)
    assert dump(jn.db.conn) == dump(slow.db.conn)
    assert jn.db.conn.execute(
        "SELECT COUNT(*) FROM runsignup_participants WHERE removed_at IS NULL"
    ).fetchone() == (3,)
