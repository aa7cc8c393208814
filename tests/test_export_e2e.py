"""``rsu export`` end to end against the simulator: export, change the world, sync,
``--since last`` gives exactly the changes; ``--as-of`` replays the past; a rebuild keeps the
exports record."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fetch_helpers import fetch_and_project, seed_credentials
from typer.testing import CliRunner

from rsu.cli.main import app
from rsu.export.diff import REASONS
from rsu.export.record import TRACKED
from rsu.projector import project
from rsu.simulator import SimulatorServer, World, WorldConfig

TODAY = int(datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp())
#: Compared by the oracle below (team_bib is derived from several legs, so left out).
FIELDS = tuple(f for f in TRACKED if f != "team_bib")


def _world() -> World:
    return World.generate(
        WorldConfig(
            seed=23,
            partners=1,
            races_per_partner=1,
            events_per_race=(2, 2),
            registrations_per_event=(25, 40),
            start_epoch=TODAY,
        )
    )


def _world_rows(world: World, race: int) -> tuple[dict[int, dict[str, Any]], dict[int, dict]]:
    """(active: registration_id -> tracked values, removed: registration_id -> removed row),
    straight from the simulator's world (the oracle, independent of rsu)."""
    active: dict[int, dict[str, Any]] = {}
    removed: dict[int, dict] = {}
    for eid in world.event_ids(race):
        for reg, row in world.active_registrations(race, eid).items():
            user = row["user"]
            bib, chip = row.get("bib_num"), row.get("chip_num")
            active[reg] = {
                "event_id": eid,
                "bib_num": None if bib is None else str(bib),
                "chip_num": chip,
                "first_name": user.get("first_name"),
                "last_name": user.get("last_name"),
                "gender": user.get("gender"),
                "dob": user.get("dob"),
                "team_name": row.get("team_name"),
            }
        removed.update(world.removed_registrations(race, eid))
    return active, removed


def _expected(before: dict, after: dict, removed: dict) -> list[tuple]:
    out: list[tuple] = []
    for reg in sorted(set(before) | set(after)):
        old, new = before.get(reg), after.get(reg)
        if old is None:
            out.append(("added", reg, None, None, None, None, None))
        elif new is None:
            gone = removed[reg]
            reason = REASONS[gone["removed_reason"]]
            out.append(("removed", reg, None, None, None, reason, gone["new_registration_id"]))
        else:
            out += [
                ("changed", reg, f, old[f], new[f], None, None) for f in FIELDS if old[f] != new[f]
            ]
    return out


def _sync(db: Path, sim: SimulatorServer, tmp: Path) -> None:
    assert fetch_and_project(db, sim.base_url, tmp) == (0, 0)


def _export(db: Path, race: int, *args: str) -> Any:
    res = CliRunner().invoke(app, ["export", "--db", str(db), "--race", str(race), *args])
    assert res.exit_code == 0, res.stderr
    return res


def test_export_change_sync_since_last_gives_exactly_the_changes(tmp_path: Path) -> None:
    world = _world()
    [partner] = world.partner_ids
    [race] = world.race_ids(partner)
    db = tmp_path / "rsu.db"
    seed_credentials(db, world.credentials)
    with SimulatorServer(world) as sim:
        _sync(db, sim, tmp_path)
        first_csv = tmp_path / "first.csv"
        _export(db, race, "--format", "csv", "-o", str(first_csv))
        first_json = _export(db, race, "--format", "json").stdout
        assert len(first_json.splitlines()) == len(_world_rows(world, race)[0])
        conn = sqlite3.connect(db)
        [[known_at]] = conn.execute("SELECT MAX(recorded_at) FROM journal").fetchall()
        conn.close()

        before, _ = _world_rows(world, race)
        changes = world.advance(new=4, edits=6, refunds=2, transfers=2, deferrals=2)
        assert {c.kind for c in changes} == {"new", "edit", "refund", "transfer", "deferral"}
        after, removed = _world_rows(world, race)
        _sync(db, sim, tmp_path)

    res = _export(db, race, "--format", "json", "--since", "last")
    report = [json.loads(line) for line in res.stdout.splitlines()]
    got = [
        (
            c["change"],
            c["registration_id"],
            c["field"],
            c["old"],
            c["new"],
            c["reason"],
            c["new_registration_id"],
        )
        for c in report
        if c["field"] != "team_bib"
    ]
    got = [g if g[0] != "added" else (*g[:3], None, None, None, None) for g in got]
    assert got == _expected(before, after, removed)
    touched = {c.registration_id for c in changes} | {
        c.new_registration_id for c in changes if c.new_registration_id
    }
    assert {c["registration_id"] for c in report} <= touched
    # every change the world made is in the report, except an edit that changed nothing
    # (e.g. a bib edit in an event that assigns no bibs yet)
    assert {c.registration_id for c in changes if c.kind != "edit"} <= {
        c["registration_id"] for c in report
    }

    # --as-of the time of the first sync: the first start list again, replayed from the journal
    as_of = tmp_path / "as_of.csv"
    _export(db, race, "--format", "csv", "--as-of", known_at, "-o", str(as_of))
    assert as_of.read_bytes() == first_csv.read_bytes()

    # a rebuild of the projection keeps the exports record
    conn = sqlite3.connect(db)
    count = conn.execute("SELECT COUNT(*) FROM exports").fetchone()[0]
    recorded = conn.execute(
        "SELECT export_id, format, since_export_id, as_of IS NOT NULL FROM exports"
    ).fetchall()
    conn.close()
    assert recorded == [
        (1, "csv", None, 0),
        (2, "json", None, 0),
        (3, "json", 2, 0),
        (4, "csv", None, 1),
    ]
    assert project(db, rebuild=True).rebuilt
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*) FROM exports").fetchone()[0] == count
    assert conn.execute("SELECT COUNT(*) FROM export_rows WHERE export_id = 3").fetchone()[0] == (
        len(after)
    )
    conn.close()
    res = _export(db, race, "--format", "json", "--since", "last")
    assert res.stdout == ""
