"""Operator conventions every command follows: ``--version``, ``-h``, help without ``<bool>``
after flags, durations with units (one parser, exit 2 on bad input), and times labelled with
their zone."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from project_helpers import Builder, new_journal, race_obj
from typer.testing import CliRunner

from rsu.cli.common import duration
from rsu.cli.main import app
from rsu.cli.ops_cmd import event_start_text
from rsu.fetcher import FetchOptions, FetchUsageError
from rsu.fetcher.cadence import CadenceError, parse_duration
from rsu.fetcher.run import tool_version
from rsu.journal import open_db
from rsu.projector import project
from rsu.projector.reports import RaceStatus, sync_status

runner = CliRunner()


def _command_paths() -> list[list[str]]:
    """Every command and sub-command of ``rsu`` as its argument path (root first)."""
    paths: list[list[str]] = []

    def walk(cmd: typer.core.TyperCommand | typer.core.TyperGroup, path: list[str]) -> None:
        paths.append(path)
        if hasattr(cmd, "commands"):
            for name, sub in sorted(cmd.commands.items()):
                walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return paths


COMMANDS = _command_paths()


def test_every_command_is_walked() -> None:
    names = {" ".join(p) for p in COMMANDS}
    assert {"", "sync", "status", "journal log", "credentials add", "simulator serve"} <= names


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"rsu {tool_version()}\n"


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "rsu")
def test_short_help_and_no_bool_metavar(path: list[str]) -> None:
    env = {"COLUMNS": "200", "TERM": "dumb"}
    short = runner.invoke(app, [*path, "-h"], env=env)
    long = runner.invoke(app, [*path, "--help"], env=env)
    assert short.exit_code == 0, short.output
    assert short.output == long.output
    assert "Usage: rsu" in short.output
    # typer 0.29.0-0.29.2 print "<bool>" after every flag (pyproject bounds typer below 0.29).
    assert "<bool>" not in short.output
    assert "BOOLEAN" not in short.output


@pytest.mark.parametrize(
    ("text", "bare_unit", "seconds"),
    [
        ("1h", "s", 3600.0),
        ("90m", "s", 5400.0),
        ("3600", "s", 3600.0),
        (" 45s ", "s", 45.0),
        ("1.5h", "s", 5400.0),
        ("2d", "s", 172800.0),
        ("1w", "s", 604800.0),
        ("24", "h", 86400.0),
        ("0", None, 0.0),
    ],
)
def test_parse_duration(text: str, bare_unit: str | None, seconds: float) -> None:
    assert parse_duration(text, bare_unit=bare_unit) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1x", "'1x' is not a duration such as 90m, 6h or 7d"),
        ("h", "'h' is not a duration"),
        ("", "'' is not a duration"),
        ("-5m", "'-5m': a duration cannot be negative"),
        ("90", "'90' needs a unit"),
    ],
)
def test_parse_duration_refuses(text: str, message: str) -> None:
    with pytest.raises(CadenceError) as info:
        parse_duration(text)
    assert message in str(info.value)


def test_duration_option_parser_minimum_and_bare_unit() -> None:
    assert duration("h")("2") == 7200.0
    assert duration("s")(3600.0) == 3600.0  # a default given as a number passes through
    with pytest.raises(typer.BadParameter, match="shorter than the minimum, 1 s"):
        duration("s", minimum=1)("0.5")
    with pytest.raises(typer.BadParameter, match="a bare number means hours"):
        duration("h")("soon")


def _empty_db(tmp_path: Path) -> Path:
    db = tmp_path / "rsu.db"
    open_db(db).conn.close()
    return db


@pytest.mark.parametrize(("value", "seconds"), [("90m", 5400.0), ("3600", 3600.0), ("1h", 3600.0)])
def test_status_max_age_takes_units(tmp_path: Path, value: str, seconds: float) -> None:
    db = _empty_db(tmp_path)
    result = runner.invoke(app, ["status", "--db", str(db), "--max-age", value, "--json"])
    assert result.exit_code == 1  # nothing synced yet
    assert json.loads(result.stdout)["max_age_seconds"] == seconds


@pytest.mark.parametrize(
    "args",
    [
        ["status", "--max-age", "1x"],
        ["status", "--max-age", "-1h"],
        ["fetch", "--full-every", "often"],
        ["sync", "--read-timeout", "0"],
        ["fetch", "--overlap", "10 s"],
        ["fetch", "--backoff", "fast"],
        ["fetch", "--deadline", "0"],
        ["credentials", "test", "--timeout", "0s"],
        ["simulator", "serve", "--duration", "5y"],
    ],
)
def test_bad_duration_is_a_usage_error(tmp_path: Path, args: list[str]) -> None:
    db = _empty_db(tmp_path)
    db_args = [] if args[0] == "simulator" else ["--db", str(db)]
    result = runner.invoke(app, [*args, *db_args], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert f"Invalid value for '{args[-2]}'" in result.output
    assert "Traceback" not in result.output


def test_status_shows_event_start_in_race_zone(tmp_path: Path) -> None:
    journal = new_journal(tmp_path / "rsu.db")
    b = Builder(journal)
    b.run_started()
    race = race_obj(1649)  # America/Denver, events start 11/18/2017 09:00 local
    race["events"][1]["start_time"] = "11/19/2017 08:30"
    b.race(json.dumps({"race": race}).encode(), 1649)
    b.run_finished()
    project(journal.db)
    report = sync_status(
        journal.db.conn, max_age_seconds=3600, now=datetime(2017, 11, 18, 17, tzinfo=UTC)
    )
    (status,) = report.partners[0].races
    # 09:00 MST on the 18th is 16:00 UTC, past at 17:00 UTC: the next start is the 19th's.
    assert (status.next_event_utc, status.next_event_local, status.timezone) == (
        "2017-11-19T15:30:00Z",
        "2017-11-19T08:30:00-07:00",
        "America/Denver",
    )
    assert event_start_text(status) == "2017-11-19 08:30 America/Denver"


@pytest.mark.parametrize(
    ("local", "zone", "text"),
    [
        ("2027-03-14T07:00:00-05:00", None, "2027-03-14 07:00 UTC-05:00"),
        ("2027-03-14T07:00:00+01:00", " ", "2027-03-14 07:00 UTC+01:00"),
        ("2027-06-01T06:45:00-04:00", "America/New_York", "2027-06-01 06:45 America/New_York"),
        (None, "America/New_York", ""),
    ],
)
def test_event_start_text_labels_the_zone(local: str | None, zone: str | None, text: str) -> None:
    race = RaceStatus(1, 2, "r", None, 0, 0, next_event_local=local, timezone=zone)
    assert event_start_text(race) == text


def test_status_table_labels_zones(tmp_path: Path) -> None:
    db = tmp_path / "rsu.db"
    journal = new_journal(db)
    b = Builder(journal)
    b.run_started()
    race = race_obj(1649)  # America/Denver
    race["events"][0]["start_time"] = "7/4/2099 07:30"  # MDT, UTC-6
    b.race(json.dumps({"race": race}).encode(), 1649)
    b.run_finished()
    project(journal.db)
    journal.close()
    result = runner.invoke(app, ["status", "--db", str(db)])
    assert "2099-07-04 07:30 America/Denver" in result.output
    header = " ".join(result.output.split())
    assert "next event (race time)" in header
    assert "last ok (UTC)" in header and "next due (UTC)" in header
    history = runner.invoke(app, ["history", "--db", str(db)])
    assert "time (UTC)" in history.output


def test_fetch_durations_reach_the_fetcher_in_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[FetchOptions] = []

    def fake_run_fetch(db: Path, options: FetchOptions, progress: object) -> None:
        seen.append(options)
        raise FetchUsageError("stop here")

    monkeypatch.setattr("rsu.cli.fetch_cmd.run_fetch", fake_run_fetch)
    db = _empty_db(tmp_path)
    args = ["--full-every", "2", "--overlap", "1m", "--read-timeout", "2m"]
    args += ["--connect-timeout", "1.5", "--retry-after-cap", "1h", "--backoff", "0.5"]
    args += ["--deadline", "3m"]
    result = runner.invoke(app, ["fetch", "--db", str(db), "--no-progress", *args])
    assert result.exit_code == 2, result.output
    (options,) = seen
    assert (
        options.full_every,  # a bare number means hours for --full-every
        options.overlap_seconds,
        options.read_timeout,
        options.connect_timeout,
        options.retry_after_cap,
        options.backoff_factor,
        options.deadline,
    ) == (7200.0, 60, 120.0, 1.5, 3600.0, 0.5, 180.0)
    seen.clear()
    assert runner.invoke(app, ["fetch", "--db", str(db), "--no-progress"]).exit_code == 2
    assert (seen[0].full_every, seen[0].overlap_seconds, seen[0].read_timeout) == (
        86400.0,
        10,
        60.0,
    )
