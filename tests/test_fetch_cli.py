"""``rsu fetch`` usage and exit codes through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fetch_helpers import SMALL, seed_credentials
from typer.testing import CliRunner

from rsu.cli.main import app
from rsu.journal import open_db
from rsu.simulator import Credential, SimulatorServer, World

runner = CliRunner()
FAST = ["--all-races", "--max-rps", "0", "--backoff", "0.001", "--no-progress"]


def test_no_credentials_is_usage_error(tmp_path: Path) -> None:
    db = tmp_path / "rsu.db"
    open_db(db).conn.close()  # an existing database without credentials
    r = runner.invoke(app, ["fetch", "--db", str(db)], env={"COLUMNS": "400"})
    assert r.exit_code == 2
    # the hint never suggests putting the secret on the command line
    assert r.stderr == (
        f"error: no RunSignUp credentials configured in {db}; add one with: rsu credentials "
        "add --partner ID --api-key KEY (the secret is then prompted, or read from "
        "RSU_API_SECRET)\n"
    )


@pytest.mark.parametrize(
    "args",
    [
        ["--page-size", "2501"],
        ["--page-size", "0"],
        ["--concurrency", "0"],
        ["--start-date", "2026-13-01"],
        ["--start-date", "2026-05-01", "--end-date", "2026-04-01"],
        ["--no-such-option"],
        ["--partner", "abc"],
    ],
)
def test_bad_options_exit_2(tmp_path: Path, args: list[str]) -> None:
    db = tmp_path / "rsu.db"
    seed_credentials(db, World.generate(SMALL).credentials)
    r = runner.invoke(app, ["fetch", "--db", str(db), "--base-url", "http://127.0.0.1:9", *args])
    assert r.exit_code == 2, r.output


def test_unknown_partner_is_usage_error(tmp_path: Path) -> None:
    db = tmp_path / "rsu.db"
    seed_credentials(db, World.generate(SMALL).credentials)
    r = runner.invoke(app, ["fetch", "--db", str(db), "--partner", "999999"])
    assert r.exit_code == 2 and "999999" in r.stderr


def test_fetch_ok_then_partner_failure(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    world = World.generate(SMALL)
    db = tmp_path / "rsu.db"
    seed_credentials(db, world.credentials)
    with SimulatorServer(world) as sim:
        r = runner.invoke(app, ["fetch", "--db", str(db), "--base-url", sim.base_url, *FAST])
        assert r.exit_code == 0, r.output
        assert r.stdout.startswith("partner ") and "fetch ok:" in r.stdout
        summary = json.loads(Path("runsignup_sync_summary.json").read_text())
        assert summary["exit_code"] == 0 and summary["timing_partners_synced"] == 3
        assert Path("runsignup_sync.log").read_text().count("finished: ok") == 1
        c = world.credentials[2]
        seed_credentials(db, [Credential(c.timing_partner_id, c.auth, c.principal, "bad")])
        r = runner.invoke(
            app,
            [
                "fetch",
                "--db",
                str(db),
                "--base-url",
                sim.base_url,
                "--summary-file",
                "s2.json",
                "--log-file",
                "l2.log",
                *FAST,
            ],
        )
    assert r.exit_code == 1
    assert f"partner {c.timing_partner_id}: auth_check (code 6)" in r.stderr
    assert json.loads(Path("s2.json").read_text())["failed_syncs"][0]["timing_partner_id"] == (
        c.timing_partner_id
    )
    assert "failed: partner" in Path("l2.log").read_text()


def test_help_lists_every_option() -> None:
    r = runner.invoke(app, ["fetch", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0
    for option in (
        "--partner",
        "--race",
        "--test",
        "--base-url",
        "--db",
        "--full",
        "--full-every",
        "--all-races",
        "--start-date",
        "--end-date",
        "--concurrency",
        "--max-rps",
        "--connect-timeout",
        "--read-timeout",
        "--log-file",
        "--summary-file",
    ):
        assert option in r.output


def _options(command: str) -> list[tuple[object, ...]]:
    """Each option of ``rsu COMMAND`` as typer builds it: flags, default, envvar, help."""
    import typer.main

    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    return [
        (tuple(p.opts), tuple(p.secondary_opts), p.default, p.envvar, getattr(p, "help", None))
        for p in click_command.params
    ]


def test_sync_takes_exactly_the_options_of_fetch_plus_target() -> None:
    fetch, sync = _options("fetch"), _options("sync")
    assert [o[:2] for o in fetch] == [
        (("--db",), ()),
        (("--base-url",), ()),
        (("--partner",), ()),
        (("--race",), ()),
        (("--test",), ()),
        (("--full",), ()),
        (("--full-every",), ()),
        (("--all-races",), ()),
        (("--all",), ()),
        (("--cadence",), ()),
        (("--start-date",), ()),
        (("--end-date",), ()),
        (("--concurrency",), ()),
        (("--events-per-call",), ()),
        (("--beyond-caller-limit",), ()),
        (("--max-rps",), ()),
        (("--connect-timeout",), ()),
        (("--read-timeout",), ()),
        (("--deadline",), ()),
        (("--max-body-mb",), ()),
        (("--max-attempts",), ()),
        (("--backoff",), ()),
        (("--retry-after-cap",), ()),
        (("--overlap",), ()),
        (("--unreachable-after",), ()),
        (("--page-size",), ()),
        (("--log-file",), ()),
        (("--summary-file",), ()),
        (("--progress",), ("--no-progress",)),
    ]
    assert sync[:-1] == fetch
    assert sync[-1][:4] == (("--target",), (), None, "RSU_TARGET")


@pytest.mark.parametrize("cmd", ["fetch", "sync"])
def test_unreachable_after_help_says_the_whole_run_stops_asking(cmd: str) -> None:
    """The circuit breaker is one per run, shared by every partner (fetcher/client.py): the help
    said "Stop asking for a partner", as if the other partners went on."""
    (help_text,) = [o[4] for o in _options(cmd) if o[0] == ("--unreachable-after",)]
    assert (
        help_text == "The whole run stops asking after this many requests in a row got no answer."
    )
