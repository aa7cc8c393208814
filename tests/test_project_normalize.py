"""Normalisation rules, value by value, and the recorded real RunSignUp responses."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from project_helpers import DATA, REAL, Builder, j, new_journal, participants_body, rows

from rsu.projector import normalize as n
from rsu.projector import project
from rsu.projector.normalize import MISSING
from rsu.projector.records import active_participant_values, participant_values


def need_real(name: str):
    path = REAL / name
    if not path.exists():
        pytest.skip(f"recorded RunSignUp fixture {path} is absent (../shared not checked out)")
    return path.read_bytes()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("T", 1), ("F", 0), (None, None), ("", None), (True, 1), ("t", 1)],
)
def test_flag(raw, expected):
    assert n.flag(raw) == expected


def test_flag_rejects_garbage():
    with pytest.raises(ValueError):
        n.flag("maybe")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("$55.00", 5500),
        ("$3.80", 380),
        ("$0.05", 5),
        ("$1,234.50", 123450),
        ("$7", 700),
        ("-$3.00", -300),
        ("$22.5", 2250),
        (12.34, 1234),
        (None, None),
        ("", None),
    ],
)
def test_cents(raw, expected):
    assert n.cents(raw) == expected


@pytest.mark.parametrize(
    ("raw", "tz", "expected"),
    [
        # M/D/YYYY HH:MM, Eastern, winter and summer
        (
            "2/8/2023 21:39",
            "America/New_York",
            ("2023-02-08T21:39:00-05:00", "2023-02-09T02:39:00Z"),
        ),
        (
            "5/21/2012 21:13",
            "America/New_York",
            ("2012-05-21T21:13:00-04:00", "2012-05-22T01:13:00Z"),
        ),
        # event time in the race's zone
        (
            "11/18/2017 09:00",
            "America/Denver",
            ("2017-11-18T09:00:00-07:00", "2017-11-18T16:00:00Z"),
        ),
        # MM/DD/YYYY
        ("04/06/2019", "America/New_York", ("2019-04-06T00:00:00-04:00", "2019-04-06T04:00:00Z")),
        # YYYY-MM-DD HH:MM:SS (removed participants)
        (
            "2023-11-14 17:13:20",
            "America/New_York",
            ("2023-11-14T17:13:20-05:00", "2023-11-14T22:13:20Z"),
        ),
        # epoch seconds
        (1541337024, "America/New_York", ("2018-11-04T08:10:24-05:00", "2018-11-04T13:10:24Z")),
        (None, "America/New_York", (None, None)),
        # unknown zone: local kept, no UTC
        ("1/2/2020 03:04", "Mars/Olympus", ("2020-01-02T03:04:00", None)),
    ],
)
def test_local_and_utc(raw, tz, expected):
    assert n.local_and_utc(raw, tz) == expected


def test_dates_and_epoch():
    assert n.date("04/06/2019") == "2019-04-06"
    assert n.date("1960-01-01") == "1960-01-01"
    assert n.epoch_utc(1631042122) == "2021-09-07T19:15:22Z"
    assert n.epoch("2023-11-14 17:13:20") == 1700000000
    with pytest.raises(ValueError):
        n.date("yesterday")


def test_text_ids_stay_as_sent():
    assert n.text("0042") == "0042"
    assert n.text(3) == "3"
    assert n.text("A12b") == "A12b"
    assert n.text("  José ") == "  José "
    assert n.obj([]) == {}
    assert n.logo_url("https://d368g9lw5ileu7.cloudfront.net/") is None


def test_independent_of_machine_tz():
    code = (
        "from rsu.projector import normalize as n;"
        "print(n.local_and_utc('11/18/2017 09:00', 'America/Denver'), n.eastern('3/9/2024 02:30'),"
        " n.epoch_utc(1541337024))"
    )
    outs = set()
    for tz in ("UTC", "Asia/Tokyo", "America/Los_Angeles", "Pacific/Chatham"):
        env = {**os.environ, "TZ": tz}
        outs.add(
            subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            ).stdout
        )
    assert outs == {
        "('2017-11-18T09:00:00-07:00', '2017-11-18T16:00:00Z') "
        "('2024-03-09T02:30:00-05:00', '2024-03-09T07:30:00Z') 2018-11-04T13:10:24Z\n"
    }


def test_fast_and_slow_paths_agree():
    body = json.loads((DATA / "quirks-participants.json").read_text())
    for reg in body[0]["participants"][:3]:
        slow = participant_values(reg, removed=False)
        assert active_participant_values(reg, MISSING) == slow
        assert active_participant_values(reg, None) == tuple(
            None if v is MISSING else v for v in slow
        )


def _project_body(endpoint: str, body: bytes, race_id: int = 100, event_id: int | None = None):
    jn = new_journal()
    b = Builder(jn)
    if endpoint in ("participants", "removed_participants"):
        b.listing(race_id, event_id or 0, [body], endpoint=endpoint)
    else:
        b.race(body, race_id, endpoint=endpoint)
    result = project(jn.db)
    return jn.db.conn, result


def test_participant_quirks_from_own_json():
    conn, result = _project_body(
        "participants", (DATA / "quirks-participants.json").read_bytes(), event_id=11
    )
    got = rows(conn, "SELECT * FROM runsignup_participants ORDER BY registration_id")
    assert len(got) == 2  # registration 2 repeated: once; the row without id: skipped
    a, b = got
    assert a["first_name"] == "  José Luis" and a["last_name"] == "Ólafsdóttir "
    assert a["gender"] == "X"
    assert (a["bib_num"], a["chip_num"], a["zipcode"], a["phone"]) == (
        "0042",
        "A00012",
        "00501",
        "0123",
    )
    assert (a["rsu_transaction_id"], a["transaction_id"]) == ("901", "ay_852631042119552C_0")
    assert (a["race_fee"], a["amount_paid"], a["processing_fee"], a["imported"]) == (
        123450,
        5500,
        5,
        1,
    )
    # 2:30 on the US spring-forward day does not exist; zoneinfo (fold=0) reads it as EST
    assert (a["registration_date"], a["registration_date_utc"]) == (
        "2024-03-09T02:30:00-05:00",
        "2024-03-09T07:30:00Z",
    )
    assert (a["last_modified"], a["last_modified_utc"]) == (1709969400, "2024-03-09T07:30:00Z")
    assert json.loads(a["question_responses"]) == [
        {"question_id": "1", "question_text": "Shirt?", "response": "M"},
        {"question_id": "2", "question_text": "Diet", "responses": ["vegan", "gf"]},
    ]
    assert b["bib_num"] == "3" and b["user_id"] is None and b["first_name"] is None
    assert b["imported"] == 0 and b["amount_paid"] == 0
    # 1:30 on the fall-back day is ambiguous: the first (EDT) reading
    assert b["registration_date"] == "2024-11-03T01:30:00-04:00"
    errors = rows(conn, "SELECT item, reason FROM projection_errors")
    assert errors == [{"item": 4, "reason": "registration without registration_id"}]
    assert result.exit_code == 1
    hist = rows(conn, "SELECT status, entries_success, entries_failed, reason FROM sync_history")
    assert hist == [
        {
            "status": "error",
            "entries_success": 2,
            "entries_failed": 1,
            "reason": "page 1: 1 rows could not be projected",
        }
    ]


def test_absent_key_keeps_value_null_clears():
    jn = new_journal()
    b = Builder(jn)
    full = {
        "registration_id": 5,
        "event_id": 11,
        "bib_num": "7",
        "chip_num": "C7",
        "team_name": "Old team",
        "user": {"first_name": "Ann", "last_name": "Lee"},
    }
    b.listing(100, 11, [participants_body(11, [full])])
    partial = {
        "registration_id": 5,
        "event_id": 11,
        "chip_num": None,
        "user": {"last_name": "Lee-Smith"},
    }
    b.listing(100, 11, [participants_body(11, [partial])], complete=False)
    project(jn.db)
    got = rows(
        jn.db.conn,
        "SELECT bib_num, chip_num, team_name, first_name, last_name FROM runsignup_participants",
    )
    assert got == [
        {
            "bib_num": "7",
            "chip_num": None,
            "team_name": "Old team",
            "first_name": "Ann",
            "last_name": "Lee-Smith",
        }
    ]


def test_real_race_1649_events_and_fees():
    body = need_real("race-detail-1649-events-periods.json")
    conn, result = _project_body("race", body, race_id=1649)
    assert result.exit_code == 0
    race = rows(conn, "SELECT * FROM runsignup_races")[0]
    assert race["race_id"] == 1649 and race["timezone"] == "America/Denver"
    assert (race["is_registration_open"], race["is_draft_race"]) == (1, 0)
    assert race["real_time_notifications_enabled"] == 1
    assert (race["next_date"], race["last_date"]) == ("2017-11-18", "2016-11-19")
    assert (race["created"], race["created_utc"]) == (
        "2012-05-21T21:13:00-04:00",
        "2012-05-22T01:13:00Z",
    )
    assert race["last_modified_utc"] == "2017-01-09T22:10:00Z"
    assert race["zipcode"] == "80007"
    events = rows(conn, "SELECT * FROM runsignup_events ORDER BY event_id")
    assert [(e["event_id"], e["distance"], e["giveaway"]) for e in events] == [
        (139165, "10K", None),
        (139166, "2K", "Children's t-shirt option"),
    ]
    e1 = events[0]
    assert (e1["start_time"], e1["start_time_utc"]) == (
        "2017-11-18T09:00:00-07:00",
        "2017-11-18T16:00:00Z",
    )
    assert e1["end_time"] is None
    assert (e1["require_dob"], e1["volunteer"]) == (1, 0)
    assert e1["registration_opens_utc"] == "2016-12-01T07:00:00Z"
    periods = json.loads(e1["registration_periods"])
    assert [p["race_fee"] for p in periods] == [3500, 4000, 4500]
    assert {p["processing_fee"] for p in periods} == {380}
    assert periods[0]["registration_closes_utc"] == "2017-06-01T05:59:00Z"
    assert [p["race_fee"] for p in json.loads(events[1]["registration_periods"])] == [
        2000,
        2500,
        2500,
    ]


def test_real_race_85675_php_escapes():
    conn, _ = _project_body("race", need_real("race-detail-85675-events-trimmed.json"), 85675)
    race = rows(conn, "SELECT * FROM runsignup_races")[0]
    assert race["description"] == "<p>A Race</p>"
    assert (race["last_date"], race["last_end_date"]) == ("2022-02-25", "2022-02-26")
    assert race["created"] == "2020-01-20T16:55:00-05:00"
    assert race["is_private_race"] == 0
    events = rows(
        conn,
        "SELECT event_id, start_time, end_time, end_time_utc FROM runsignup_events "
        "ORDER BY event_id",
    )
    # no race timezone in this trimmed body: local times kept without offset, no UTC
    assert events[0] == {
        "event_id": 661702,
        "start_time": "2023-02-10T18:00:00",
        "end_time": "2023-02-11T18:00:00",
        "end_time_utc": None,
    }


def test_real_races_list_and_2019_detail():
    conn, _ = _project_body("races", need_real("races-list-no-events-2018.json"))
    got = rows(
        conn,
        "SELECT race_id, name, fb_page_id, logo_url, is_registration_open "
        "FROM runsignup_races ORDER BY race_id",
    )
    assert got == [
        {
            "race_id": 16404,
            "name": " Chilly Cheeks 10 Mile, 5Mile, 5K, 1 Mile and Virtual Run",
            "fb_page_id": "chillycheeks5K",
            "logo_url": None,
            "is_registration_open": 0,
        },
        {
            "race_id": 29128,
            "name": '"Build a Church" Missions 5K',
            "fb_page_id": "Grace-Baptist-Church-Columbus-GA",
            "logo_url": None,
            "is_registration_open": 1,
        },
        {
            "race_id": 32827,
            "name": " Java Jog 5k and 2 mile walk",
            "fb_page_id": None,
            "logo_url": "https://d368g9lw5ileu7.cloudfront.net/races/race32827-logo.by28op.png",
            "is_registration_open": 0,
        },
    ]
    conn, _ = _project_body("race", need_real("race-detail-sanitized-2019.json"), 1)
    ev = rows(
        conn, "SELECT start_time_utc, sub_event_ids, registration_periods FROM runsignup_events"
    )[0]
    assert ev["start_time_utc"] == "2019-03-20T14:00:00Z"  # America/Chicago, CDT
    assert ev["sub_event_ids"] == "[]"
    assert json.loads(ev["registration_periods"])[0]["race_fee"] == 1100


def test_real_participants_2018_odd_first_element():
    conn, result = _project_body(
        "participants", need_real("participants-sanitized-2018.json"), race_id=9, event_id=1
    )
    assert result.exit_code == 0
    got = rows(conn, "SELECT * FROM runsignup_participants")
    assert len(got) == 1
    p = got[0]
    assert (p["registration_id"], p["event_id"], p["transaction_id"]) == (1, 1, "1")
    assert (p["registration_date"], p["registration_date_utc"]) == (
        "2011-10-21T11:25:00-04:00",
        "2011-10-21T15:25:00Z",
    )
    assert (p["last_modified"], p["last_modified_utc"]) == (1541337024, "2018-11-04T13:10:24Z")
    assert (p["race_fee"], p["amount_paid"], p["partner_fee"], p["processing_fee"]) == (
        2200,
        3200,
        75,
        300,
    )
    assert p["usatf_discount_amount_in_cents"] == 0
    assert (p["imported"], p["giveaway"], p["bib_num"], p["user_id"]) == (0, "M", None, None)
    assert json.loads(p["question_responses"])[2] == {
        "question_id": "3",
        "question_text": "Emergency Contact Phone",
        "response": None,
    }


def test_real_participants_page_without_registration_id():
    conn, result = _project_body(
        "participants", need_real("participants-page-event-661702-trimmed.json"), 85675, 661702
    )
    assert rows(conn, "SELECT COUNT(*) AS c FROM runsignup_participants") == [{"c": 0}]
    assert [r["reason"] for r in rows(conn, "SELECT reason FROM projection_errors")] == [
        "registration without registration_id"
    ] * 2
    assert result.exit_code == 1


@pytest.mark.parametrize(
    "name", ["error-201-race-not-found.json", "error-6-key-authentication-failed.json"]
)
def test_real_error_bodies_change_nothing(name):
    conn, result = _project_body("race", need_real(name), 85675)
    assert rows(conn, "SELECT COUNT(*) AS c FROM runsignup_races") == [{"c": 0}]
    assert rows(conn, "SELECT COUNT(*) AS c FROM projection_errors") == [{"c": 0}]
    assert result.exit_code == 0  # the attempt's outcome is reported by fetch_failed


def test_bad_shape_goes_to_projection_errors():
    conn, result = _project_body("race", j({"races": "nope"}), 5)
    assert rows(conn, "SELECT item, reason FROM projection_errors") == [
        {"item": -1, "reason": 'race body is not {"race": {...}}'}
    ]
    assert result.exit_code == 1


def test_projector_imports_no_http_fetcher_cli_or_simulator():
    import ast

    from project_helpers import REPO

    banned = ("requests", "urllib3", "rsu.fetcher", "rsu.cli", "rsu.simulator")
    for path in (REPO / "projector").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for name in names:
                assert not name.startswith(banned), f"{path.name} imports {name}"
