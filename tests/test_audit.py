"""``rsu audit --registration ID``: every version of one registration, from hand-written raw
bodies fed through the real journal; exact versions and diffs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from project_helpers import Builder, new_journal, removed_registration
from typer.testing import CliRunner

from rsu.cli.main import app
from rsu.journal import Journal, ListingCompleted, ResponseReceived
from rsu.journal.registration_audit import Change, audit_registration
from rsu.projector import project

runner = CliRunner()
RACE = 1649


def reg(reg_id: int, event_id: int, bib: Any, last: str = "Lee", **extra: Any) -> dict[str, Any]:
    """A /participants row as RunSignUp sends it (shape of shared/docs/runsignup-api.md §4)."""
    return {
        "registration_id": reg_id,
        "event_id": event_id,
        "user": {
            "user_id": 90000 + reg_id,
            "first_name": "Ann",
            "last_name": last,
            "dob": "1990-04-01",
            "gender": "F",
            "address": {"city": "Boulder", "zipcode": "80301"},
        },
        "bib_num": bib,
        "chip_num": None,
        "last_modified": 1790000000 + extra.pop("tick", 0),
        **extra,
    }


def removed(
    reg_id: int, event_id: int, bib: Any, reason: str, new_id: int | None
) -> dict[str, Any]:
    """A /removed-participants row (``removed_registration``) of this file's runner and dates."""
    return removed_registration(reg_id, event_id, reason, new_id, when=1793800000) | {
        "user": {"user_id": 90000 + reg_id, "first_name": "Ann", "last_name": "Lee-Smith"},
        "bib_num": bib,
        "registration_date": "2026-10-01 08:00:00",
        "last_modified": "2026-11-04 09:00:00",
    }


def page(event_id: int, rows: list[dict[str, Any]]) -> bytes:
    doc = [{"event": {"event_id": event_id, "participants": []}, "participants": rows}]
    return json.dumps(doc).replace("/", "\\/").encode()


def removed_page(event_id: int, rows: list[dict[str, Any]]) -> bytes:
    return json.dumps([{"event": {"event_id": event_id, "participants": rows}}]).encode()


class World:
    """Appends listings as the fetcher would: pages (response_received with the server's Date
    header) and their listing_completed."""

    def __init__(self, journal: Journal, tp: int = 12) -> None:
        self.b = Builder(journal, tp=tp)
        self.n = 0

    def listing(
        self,
        endpoint: str,
        event_id: int,
        body: bytes,
        *,
        date: str = "",
        complete: bool = True,
    ) -> int:
        self.n += 1
        lid = f"l{self.n}"
        ev = ResponseReceived(
            endpoint=endpoint,
            path=f"/Rest/race/{RACE}/{endpoint.replace('_', '-')}",
            body_size=len(body),
            listing_id=lid,
            race_id=RACE,
            event_id=event_id,
            server_date=date,
        )
        seq = self.b.append(ev, body, race_id=RACE, event_id=event_id)
        done = ListingCompleted(
            endpoint=endpoint,
            race_id=RACE,
            event_id=event_id,
            listing_id=lid,
            mode="full" if complete else "incremental",
            complete=complete,
            pages=1,
            page_seqs=[seq],
        )
        self.b.append(done, race_id=RACE, event_id=event_id)
        return seq


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    j = new_journal(tmp_path / "rsu.db")
    w = World(j)
    # 1: first seen; 5010 and 50 must not be taken for 501.
    w.listing(
        "participants",
        11,
        page(11, [reg(50, 11, 50), reg(501, 11, 1234), reg(5010, 11, 9)]),
        date="Sun, 01 Nov 2026 10:00:00 GMT",
    )
    # 3: served again unchanged (an incremental overlap): the same version, seen twice.
    w.listing(
        "participants",
        11,
        page(11, [reg(501, 11, 1234)]),
        date="Sun, 01 Nov 2026 11:00:00 GMT",
        complete=False,
    )
    # 5: bib changed (now a string, as sent) and last name; no Date header recorded.
    w.listing(
        "participants", 11, page(11, [reg(501, 11, "1243", "Lee-Smith", tick=60)]), complete=False
    )
    # 7: moved to event 12 of the same race.
    w.listing(
        "participants",
        12,
        page(12, [reg(501, 12, "1243", "Lee-Smith", tick=120)]),
        date="Tue, 03 Nov 2026 15:30:00 GMT",
        complete=False,
    )
    # 9: transferred to registration 777; 11: 777 appears.
    w.listing(
        "removed_participants",
        12,
        removed_page(12, [removed(501, 12, "1243", "transferred", 777)]),
        date="Wed, 04 Nov 2026 14:00:05 GMT",
    )
    w.listing(
        "participants",
        12,
        page(12, [reg(777, 12, "1243", "Lee-Smith")]),
        date="Wed, 04 Nov 2026 14:00:06 GMT",
        complete=False,
    )
    # 13: a complete listing of event 11 without registration 50: silently gone.
    w.listing(
        "participants", 11, page(11, [reg(5010, 11, 9)]), date="Thu, 05 Nov 2026 06:00:00 GMT"
    )
    return j


def test_versions_and_diffs_of_one_registration(journal: Journal) -> None:
    report = audit_registration(journal, 501)
    (timeline,) = report.timelines
    assert (timeline.timing_partner_id, timeline.race_id, timeline.transferred_from) == (
        12,
        RACE,
        [],
    )
    got = [
        (
            v.seq,
            v.served_at,
            v.served_at_source,
            v.endpoint,
            v.event_id,
            v.status,
            v.removed_reason,
            v.new_registration_id,
            v.seen,
            v.last_seen_seq,
            v.changes,
        )
        for v in timeline.versions
    ]
    assert got == [
        (
            1,
            "2026-11-01T10:00:00Z",
            "Date header",
            "participants",
            11,
            "active",
            None,
            None,
            2,
            3,
            [],
        ),
        (
            5,
            "2024-01-01T00:00:05.000Z",
            "recorded_at",
            "participants",
            11,
            "active",
            None,
            None,
            1,
            5,
            [Change("last_name", "Lee", "Lee-Smith"), Change("bib_num", 1234, "1243")],
        ),
        (
            7,
            "2026-11-03T15:30:00Z",
            "Date header",
            "participants",
            12,
            "active",
            None,
            None,
            1,
            7,
            [Change("event_id", 11, 12)],
        ),
        (
            9,
            "2026-11-04T14:00:05Z",
            "Date header",
            "removed_participants",
            12,
            "removed",
            "transferred",
            777,
            1,
            9,
            [
                Change("status", "active", "removed"),
                Change("removed_reason", None, "transferred"),
                Change("new_registration_id", None, 777),
            ],
        ),
    ]
    assert timeline.versions[0].record == {
        "registration_id": 501,
        "event_id": 11,
        "user_id": 90501,
        "first_name": "Ann",
        "last_name": "Lee",
        "dob": "1990-04-01",
        "gender": "F",
        "city": "Boulder",
        "zipcode": "80301",
        "bib_num": 1234,
        "chip_num": None,
        "last_modified": 1790000000,
    }


def test_transfer_target_and_silent_removal(journal: Journal) -> None:
    (target,) = audit_registration(journal, 777).timelines
    assert target.transferred_from == [501]
    assert [(v.seq, v.status, v.event_id, v.changes) for v in target.versions] == [
        (11, "active", 12, [])
    ]
    (gone,) = audit_registration(journal, 50).timelines
    assert [(v.seq, v.endpoint, v.status, v.removed_reason, v.changes) for v in gone.versions] == [
        (1, "participants", "active", None, []),
        (
            14,
            "listing_completed",
            "removed",
            "missing_from_listing",
            [
                Change("status", "active", "removed"),
                Change("removed_reason", None, "missing_from_listing"),
            ],
        ),
    ]
    # 5010 is its own registration: only the pages that hold it, never 501's or 50's.
    (other,) = audit_registration(journal, 5010).timelines
    assert [(v.seq, v.seen, v.last_seen_seq) for v in other.versions] == [(1, 2, 13)]


def test_audit_cli_text(journal: Journal, tmp_path: Path) -> None:
    journal.close()
    db = tmp_path / "rsu.db"
    result = runner.invoke(app, ["audit", "--db", str(db), "--registration", "501"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "registration 501, partner 12, race 1649: 4 versions, oldest first (time RunSignUp "
        "served it, from its Date header unless marked rsu clock)",
        "  seq 1  2026-11-01 10:00:00 UTC  participants, event 11: active; served 2 times, "
        "last in seq 3",
        '      first seen: event_id=11 bib_num=1234 chip_num=null first_name="Ann" '
        'last_name="Lee" gender="F" dob="1990-04-01"',
        "  seq 5  2024-01-01 00:00:05 UTC (rsu clock)  participants, event 11: active",
        '      last_name: "Lee" -> "Lee-Smith"',
        '      bib_num: 1234 -> "1243"',
        "  seq 7  2026-11-03 15:30:00 UTC  participants, event 12: active",
        "      event_id: 11 -> 12",
        "  seq 9  2026-11-04 14:00:05 UTC  removed_participants, event 12: REMOVED "
        "(transferred), transferred to registration 777",
        '      status: "active" -> "removed"',
        '      removed_reason: null -> "transferred"',
        "      new_registration_id: null -> 777",
    ]


def test_audit_cli_json_and_partner_filter(journal: Journal, tmp_path: Path) -> None:
    journal.close()
    db = tmp_path / "rsu.db"
    result = runner.invoke(
        app, ["audit", "--db", str(db), "--registration", "777", "--partner", "12", "--json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["registration_id"] == 777
    (timeline,) = doc["timelines"]
    assert timeline["transferred_from"] == [501]
    assert [(v["seq"], v["served_at"], v["status"]) for v in timeline["versions"]] == [
        (11, "2026-11-04T14:00:06Z", "active")
    ]

    result = runner.invoke(
        app, ["audit", "--db", str(db), "--registration", "501", "--partner", "34"]
    )
    assert result.exit_code == 1
    assert "registration 501 is not in the journal for partner 34" in result.output
    result = runner.invoke(app, ["audit", "--db", str(db), "--registration", "4242"])
    assert result.exit_code == 1
    assert "registration 4242 is not in the journal" in result.output


def test_audit_needs_an_existing_db(tmp_path: Path) -> None:
    result = runner.invoke(app, ["audit", "--db", str(tmp_path / "x.db"), "--registration", "1"])
    assert result.exit_code == 2
    assert not (tmp_path / "x.db").exists()


def test_audit_prints_no_control_characters_from_the_network(tmp_path: Path) -> None:
    j = new_journal(tmp_path / "rsu.db")
    w = World(j)
    w.listing("participants", 11, page(11, [reg(9, 11, 1, last="Ev\x1b[31mil\x9b2J")]))
    w.listing("participants", 11, page(11, [reg(9, 11, 1, last="Good")]), complete=False)
    j.close()
    for extra in ([], ["--json"]):
        result = runner.invoke(
            app, ["audit", "--db", str(tmp_path / "rsu.db"), "--registration", "9", *extra]
        )
        assert result.exit_code == 0, result.output
        assert "\x1b" not in result.output and "\x9b" not in result.output
    assert json.loads(result.stdout)["timelines"][0]["versions"][1]["changes"] == [
        {"field": "last_name", "old": "Ev\x1b[31mil\x9b2J", "new": "Good"}
    ]


def test_audit_shows_the_projected_event_changes(journal: Journal, tmp_path: Path) -> None:
    project(journal.db)
    journal.close()
    db = tmp_path / "rsu.db"
    result = runner.invoke(app, ["audit", "--db", str(db), "--registration", "501", "--json"])
    assert result.exit_code == 0, result.output
    moves = json.loads(result.stdout)["projected_event_changes"]
    assert [(m["from_event_id"], m["to_event_id"], m["source_seq"]) for m in moves] == [(11, 12, 7)]
    text = runner.invoke(app, ["audit", "--db", str(db), "--registration", "501"])
    assert text.output.splitlines()[-2:] == [
        "event changes in the tables (runsignup_event_changes):",
        f"  seq 7  {moves[0]['changed_at']}  partner 12, race 1649: event 11 -> 12",
    ]


def test_an_older_copy_is_marked(tmp_path: Path) -> None:
    j = new_journal(tmp_path / "rsu.db")
    w = World(j)
    w.listing("participants", 11, page(11, [reg(8, 11, 5, tick=100)]))
    w.listing("participants", 12, page(12, [reg(8, 12, 5, tick=200)]), complete=False)
    # RunSignUp serves a stale copy in the old event: shown, marked, not a move in the tables.
    w.listing("participants", 11, page(11, [reg(8, 11, 5, tick=100)]), complete=False)
    project(j.db)
    (timeline,) = audit_registration(j, 8).timelines
    assert [(v.seq, v.event_id, v.older_copy, v.changes) for v in timeline.versions] == [
        (1, 11, False, []),
        (3, 12, False, [Change("event_id", 11, 12)]),
        (5, 11, True, [Change("event_id", 12, 11)]),
    ]
    j.close()
    result = runner.invoke(app, ["audit", "--db", str(tmp_path / "rsu.db"), "--registration", "8"])
    assert (
        "  seq 5  2024-01-01 00:00:05 UTC (rsu clock)  participants, event 11: active; an older "
        "copy (earlier last_modified)"
    ) in result.output.splitlines()
    assert result.output.splitlines()[-1].endswith("partner 12, race 1649: event 11 -> 12")
