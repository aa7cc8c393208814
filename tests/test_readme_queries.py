"""The SQL examples in README.md run on a projected database and give the rows they promise."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from project_helpers import (
    Builder,
    new_journal,
    participants_body,
    race_obj,
    registration,
    removed_body,
    removed_registration,
)

from rsu.cli.demo_cmd import DEMO_SEED, DemoState, demo_world
from rsu.journal import Journal
from rsu.projector import project

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
QUERIES = README.split("### 6. Query the tables", 1)[1].split("```sql", 1)[1].split("```", 1)[0]
STATEMENTS = [s.strip() for s in QUERIES.split(";") if s.strip()]


def _statement(comment: str) -> str:
    return next(s for s in STATEMENTS if comment in s)


def _reg(reg_id: int, event_id: int, bib: str, team_id: int | None = None) -> dict[str, Any]:
    row = registration(reg_id, event_id)
    row["bib_num"] = bib
    row["team_id"] = team_id
    return row


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    j = new_journal(tmp_path / "rsu.db")
    b = Builder(j)
    b.run_started()
    b.race(json.dumps({"race": race_obj(1649, event_ids=(11, 12))}).encode(), 1649)
    b.listing(
        1649,
        11,
        [
            participants_body(
                11,
                [
                    _reg(101, 11, "7"),
                    _reg(103, 11, "20", team_id=900),  # one relay team: one bib on purpose
                    _reg(104, 11, "20", team_id=900),
                    _reg(105, 11, "30", team_id=901),
                    _reg(107, 11, "40"),
                    _reg(108, 11, "40"),
                ],
            )
        ],
    )
    b.listing(1649, 12, [participants_body(12, [_reg(102, 12, "7"), _reg(106, 12, "30")])])
    b.listing(
        1649,
        11,
        [removed_body(11, [removed_registration(107, 11, "removed", None, 1_700_000_000)])],
        endpoint="removed_participants",
    )
    b.run_finished()
    project(j.db)
    return j


def test_every_readme_query_runs(journal: Journal) -> None:
    assert len(STATEMENTS) >= 6
    for sql in STATEMENTS:
        journal.db.conn.execute(sql).fetchall()


def test_duplicate_bibs_across_the_events_of_a_race_without_relay_teams(journal: Journal) -> None:
    rows = journal.db.conn.execute(_statement("duplicate bibs within a race")).fetchall()
    got = {(race, bib, n, tuple(sorted(ids.split(",")))) for race, bib, n, ids in rows}
    assert got == {
        (1649, "7", 2, ("101", "102")),  # across two events of the race
        (1649, "30", 2, ("105", "106")),  # a team member and someone else
    }


def test_start_list_example_uses_an_event_of_the_demo_database() -> None:
    sql = _statement("start list of one event")
    event_id = int(re.search(r"event_id = (\d+)", sql).group(1))  # type: ignore[union-attr]
    world = demo_world(DemoState(DEMO_SEED, 1_800_000_000, 0))
    assert event_id in {e for race in world.races.values() for e in race.events}
