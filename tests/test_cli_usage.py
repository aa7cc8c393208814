"""Usage errors an operator makes at 5 a.m.: each is refused up front with exit 2 and a message
that names what was wrong, and nothing is created or journaled."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from fetch_helpers import fast_options, seed_credentials
from typer.testing import CliRunner

from rsu.cli.main import app
from rsu.fetcher import FetchUsageError, run_fetch
from rsu.fetcher.credentials import load_credentials
from rsu.journal import Journal, open_db
from rsu.simulator import Credential, SimulatorServer, World
from rsu.simulator.testing import SMALL

runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "rsu.db"
    seed_credentials(path, [Credential(12, "api_key", "key", "secret")])
    return path


@pytest.mark.parametrize(
    ("base_url", "message"),
    [
        ("127.0.0.1:8080", "is not an http(s) URL"),
        ("http://127.0.0.1:8080/Rest", "ends in /Rest"),
        ("https://runsignup.com/rest/", "ends in /Rest"),
        # a password with "/" is not a user info to a URL parser: it must still be refused
        ("https://user:pa/sswd@runsignup.com", "without a user name, password"),
    ],
)
def test_bad_base_url(db: Path, tmp_path: Path, base_url: str, message: str) -> None:
    result = runner.invoke(app, ["fetch", "--db", str(db), "--base-url", base_url])
    assert result.exit_code == 2
    assert message in result.output
    assert "sswd" not in result.output
    with Journal.open(db) as j:
        assert j.last_seq() == 0


@pytest.mark.parametrize("cmd", ["fetch", "sync"])
def test_a_negative_max_rps_is_a_usage_error(db: Path, cmd: str) -> None:
    """``--max-rps -1`` used to run unlimited, as ``0`` does, without a word."""
    result = runner.invoke(app, [cmd, "--db", str(db), "--max-rps", "-1"])
    assert result.exit_code == 2
    assert "--max-rps" in result.output and "-1" in result.output
    with Journal.open(db) as j:
        assert j.last_seq() == 0


HUGE = "1" * 400  # float() of it is inf


@pytest.mark.parametrize(
    ("args", "option", "value"),
    [
        (["fetch", "--max-rps", "nan"], "--max-rps", "nan"),
        (["sync", "--max-rps", "inf"], "--max-rps", "inf"),
        (["sync", "--max-rps", "1e400"], "--max-rps", "1e400"),
        (["sync", "--max-rps", "-inf"], "--max-rps", "-inf"),
        (["sync", "--deadline", HUGE], "--deadline", HUGE),
        (["fetch", "--full-every", HUGE], "--full-every", HUGE),
        (["status", "--max-age", HUGE], "--max-age", HUGE),
        (["simulator", "serve", "--http-5xx", "nan"], "--http-5xx", "nan"),
        (["simulator", "serve", "--drop-connection", "inf"], "--drop-connection", "inf"),
        (["simulator", "serve", "--latency-ms", "inf"], "--latency-ms", "inf"),
        (["simulator", "serve", "--advance-every", HUGE], "--advance-every", HUGE),
    ],
)
def test_a_float_option_that_is_not_finite_is_a_usage_error(
    db: Path, args: list[str], option: str, value: str
) -> None:
    """``--max-rps nan`` and ``inf`` passed ``min=0`` (no comparison with nan is true) and ran
    unlimited; an overflowing duration (``float`` of 400 digits is inf) waited forever."""
    extra = ["--duration", "0.001"] if args[0] == "simulator" else ["--db", str(db)]
    if args[0] in ("fetch", "sync"):
        extra += ["--base-url", "http://127.0.0.1:9", "--max-attempts", "1"]
    result = runner.invoke(app, [*args, *extra], env={"COLUMNS": "1000"})
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}': {value!r} is not a finite number" in result.output
    with Journal.open(db) as j:
        assert j.last_seq() == 0


LONG = "1000000000000000s"  # finite, but past time_t as a socket timeout, past 9999 as a date


@pytest.mark.parametrize(
    "args",
    [
        ["fetch", "--full-every"],
        ["sync", "--connect-timeout"],
        ["sync", "--read-timeout"],
        ["fetch", "--deadline"],
        ["sync", "--backoff"],
        ["sync", "--retry-after-cap"],
        ["fetch", "--overlap"],
        ["status", "--max-age"],
        ["credentials", "test", "--timeout"],
        ["credentials", "add", "--partner", "9", "--bearer-token", "t", "--expires-in"],
        ["simulator", "serve", "--advance-every"],
        ["simulator", "serve", "--duration"],
    ],
)
def test_a_duration_option_over_100_years_is_a_usage_error(db: Path, args: list[str]) -> None:
    """``--connect-timeout 1000000000000000s`` used to fail each request with an
    ``OverflowError`` (exit 1): every duration option now refuses more than 100 years up front,
    as ``--cadence`` does."""
    extra = [] if args[0] == "simulator" else ["--db", str(db)]
    if args[0] in ("fetch", "sync"):
        extra += ["--base-url", "http://127.0.0.1:9", "--max-attempts", "1"]
    result = runner.invoke(app, [*args, LONG, *extra], env={"COLUMNS": "1000"})
    assert result.exit_code == 2, result.output
    message = f"Invalid value for '{args[-1]}': {LONG!r} is longer than the maximum, 36500 days"
    assert message in result.output
    with Journal.open(db) as j:
        assert j.last_seq() == 0
    assert [c.timing_partner_id for c in load_credentials(open_db(db))] == [12]


def test_a_duration_option_of_100_years_is_still_taken() -> None:
    from rsu.cli.common import duration

    assert duration("s", 0.001)("36500d") == 36500 * 86400.0
    assert duration("h")("876000") == 36500 * 86400.0


@pytest.mark.parametrize(
    ("cadence", "message"),
    [
        (f"*={HUGE}d", f"rule '*={HUGE}d': '{HUGE}d' is not a finite number"),
        (f"{HUGE}d=1h,*=24h", f"rule '{HUGE}d=1h': '{HUGE}d' is not a finite number"),
        (f"-{HUGE}w=1h,*=24h", f"rule '-{HUGE}w=1h': '-{HUGE}w' is not a finite number"),
        ("*=inf", "rule '*=inf': 'inf' is not a duration such as 90m, 6h or 7d"),
        ("nan=1h", "rule 'nan=1h': 'nan' is not a duration such as 90m, 6h or 7d"),
        # finite, but no date that far ahead can be shown (status crashed on year 1918558)
        (
            "*=100000000w",
            "rule '*=100000000w': longer than 36500d (100 years), the most a cadence rule takes",
        ),
        (
            "36501d=1h,*=24h",
            "rule '36501d=1h': longer than 36500d (100 years), the most a cadence rule takes",
        ),
    ],
)
@pytest.mark.parametrize("cmd", ["fetch", "sync", "status"])
def test_a_cadence_that_is_not_finite_is_a_usage_error(
    db: Path, cmd: str, cadence: str, message: str
) -> None:
    extra = [] if cmd == "status" else ["--base-url", "http://127.0.0.1:9", "--max-attempts", "1"]
    result = runner.invoke(
        app, [cmd, "--db", str(db), "--cadence", cadence, *extra], env={"COLUMNS": "2000"}
    )
    assert result.exit_code == 2, result.output
    assert f"Invalid value for --cadence: {message}" in " ".join(result.output.split())
    assert "Traceback" not in result.output
    with Journal.open(db) as j:
        assert j.last_seq() == 0


def test_a_cadence_of_100_years_is_still_taken() -> None:
    from rsu.fetcher.cadence import parse_cadence

    assert parse_cadence("36500d=36500d,-36500d=1h,*=0").rules == (
        (3153600000.0, 3153600000.0),
        (-3153600000.0, 3600.0),
        (float("-inf"), 0.0),
    )


@pytest.mark.parametrize("option", ["--log-file", "--summary-file"])
def test_output_file_in_a_missing_folder(db: Path, tmp_path: Path, option: str) -> None:
    target = tmp_path / "no" / "such" / "x.txt"
    result = runner.invoke(app, ["sync", "--db", str(db), option, str(target)])
    assert result.exit_code == 2
    assert "does not exist" in result.output
    assert not (tmp_path / "no").exists()


def test_output_file_that_is_a_directory(db: Path, tmp_path: Path) -> None:
    with pytest.raises(FetchUsageError, match="is a directory"):
        run_fetch(db, fast_options("http://127.0.0.1:9", tmp_path, summary_file=tmp_path))


@pytest.mark.parametrize("cmd", [["list"], ["test"], ["remove", "--partner", "1"]])
def test_credentials_commands_do_not_create_a_database(tmp_path: Path, cmd: list[str]) -> None:
    missing = tmp_path / "typo.db"
    result = runner.invoke(app, ["credentials", *cmd, "--db", str(missing)])
    assert result.exit_code == 2
    assert "does not exist" in result.output
    assert not missing.exists()


def test_non_ascii_secret_is_refused_without_echoing_it(tmp_path: Path) -> None:
    db = tmp_path / "rsu.db"
    result = runner.invoke(
        app,
        ["credentials", "add", "--db", str(db), "--partner", "5", "--bearer-token", "-"],
        env={"RSU_BEARER_TOKEN": "SECRETCCC€DDD"},
    )
    assert result.exit_code == 2
    assert "non-ASCII" in result.output and "character 10 of 13" in result.output
    assert "SECRET" not in result.output and "€" not in result.output


def test_demo_refuses_a_database_with_a_journal_but_no_credentials(db: Path) -> None:
    with Journal.open(db):
        pass  # a real database whose credentials were removed still has its journal
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM partner_provider_credentials")
    conn.commit()
    conn.close()
    result = runner.invoke(app, ["demo", "--db", str(db)])
    assert result.exit_code == 2
    assert "not a demo database" in result.output


def test_summary_counts_only_partners_that_synced(tmp_path: Path) -> None:
    world = World.generate(SMALL)
    db = tmp_path / "rsu.db"
    good, bad, *_ = world.credentials
    broken = Credential(bad.timing_partner_id, bad.auth, bad.principal, "wrong-secret")
    seed_credentials(db, [good, broken])
    with SimulatorServer(world) as sim:
        result = run_fetch(db, fast_options(sim.base_url, tmp_path))
    assert result.exit_code == 1
    summary = json.loads((tmp_path / "runsignup_sync_summary.json").read_text())
    assert summary["timing_partners_synced"] == 1


def test_piped_secret_must_be_one_line(tmp_path: Path) -> None:
    db = tmp_path / "rsu.db"
    args = ["credentials", "add", "--db", str(db), "--partner", "7", "--bearer-token", "-"]
    two = runner.invoke(app, args, input="SECRETCCC\nDDD\n")
    assert two.exit_code == 2
    assert "2 non-empty lines" in two.output and "SECRET" not in two.output
    one = runner.invoke(app, args, input="\nTOKEN123\n\n")
    assert one.exit_code == 0, one.output
    conn = open_db(db)
    assert [c.secret for c in load_credentials(conn)] == ["TOKEN123"]
    conn.conn.close()


def test_a_database_in_a_missing_folder_is_not_created(tmp_path: Path) -> None:
    target = tmp_path / "typo" / "dir" / "rsu.db"
    result = runner.invoke(
        app, ["credentials", "add", "--db", str(target), "--partner", "3", "--bearer-token", "t"]
    )
    assert result.exit_code == 1
    assert "folder" in result.output and "does not exist" in result.output
    assert not (tmp_path / "typo").exists()
