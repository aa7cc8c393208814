"""``rsu simulator`` typer sub-app (cli/simulator_cmd.py)."""

from __future__ import annotations

import re
from typing import Any

from typer.testing import CliRunner

from rsu.cli.simulator_cmd import app
from rsu.simulator import SimulatorServer, WorldConfig

runner = CliRunner()


def test_serve_prints_base_url_and_credentials() -> None:
    args = ["serve", "--duration", "0.2", "--seed", "2", "--partners", "3", "--races", "1"]
    result = runner.invoke(app, [*args, "--registrations", "5"])
    assert result.exit_code == 0, result.output
    assert re.search(r"^base URL: http://127\.0\.0\.1:\d+  ", result.output, re.M)
    kinds = re.findall(r"^partner \d+ \((api_key|rsu_api_key|bearer), races", result.output, re.M)
    assert sorted(kinds) == ["api_key", "bearer", "rsu_api_key"]
    base = re.search(r"^base URL: (\S+)", result.output, re.M)
    assert base and f"rsu sync --base-url {base.group(1)}" in result.output
    adds = re.findall(
        r"^  (RSU_\w+)=\S+ rsu credentials add --partner \d+ (--\S+)", result.output, re.M
    )
    assert sorted(adds) == [
        ("RSU_API_SECRET", "--api-key"),
        ("RSU_BEARER_TOKEN", "--bearer-token"),
        ("RSU_RSU_API_SECRET", "--rsu-api-key"),
    ]
    assert result.output.rstrip().endswith("stopped")


def test_serve_starts_its_clock_today_so_races_fall_in_the_sync_window() -> None:
    from datetime import UTC, datetime

    result = runner.invoke(app, ["serve", "--duration", "0.1", "--partners", "1", "--races", "1"])
    clock = int(re.search(r"\(clock (\d+)\)", result.output).group(1))  # type: ignore[union-attr]
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert clock == int(today.timestamp())


def test_serve_refuses_non_loopback() -> None:
    result = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--duration", "0.1"])
    assert result.exit_code == 2


def test_credentials_command() -> None:
    result = runner.invoke(app, ["credentials", "--seed", "2", "--partners", "2"])
    assert result.exit_code == 0
    assert len(re.findall(r"^partner ", result.output, re.M)) == 2


def _served(monkeypatch: Any, args: list[str]) -> tuple[Any, str]:
    """Run ``serve`` briefly and return the server it built (with its options) and the output."""
    import rsu.cli.simulator_cmd as cmd

    built: list[SimulatorServer] = []

    class Recording(SimulatorServer):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, **kw)
            built.append(self)

    monkeypatch.setattr(cmd, "SimulatorServer", Recording)
    base = ["serve", "--duration", "0.1", "--seed", "3", "--partners", "1", "--races", "1"]
    result = runner.invoke(app, [*base, "--registrations", "5", *args])
    assert result.exit_code == 0, result.output
    (server,) = built
    return server, result.output


def test_serve_defaults_two_in_flight_and_prints_the_caller_line(monkeypatch: Any) -> None:
    server, output = _served(monkeypatch, [])
    assert (server.max_in_flight, server.in_flight_http_429) == (2, False)
    assert (server.require_caller, server.multi_event_paging) == (False, "per_event")
    caller = server.world.caller
    assert f"caller registration {caller.reg_id} (optional, checked when sent):" in output
    line = f"  RSU_API_REG_SECRET={caller.secret} rsu credentials caller --token {caller.param}"
    assert line in output.splitlines()
    assert "limits: 2 calls in flight; multi-event paging per_event" in output


def test_serve_options_reach_the_server(monkeypatch: Any) -> None:
    args = ["--require-caller", "--max-in-flight", "0", "--in-flight-429"]
    server, output = _served(monkeypatch, [*args, "--multi-event-paging", "total"])
    assert (server.max_in_flight, server.in_flight_http_429) == (0, True)
    assert (server.require_caller, server.multi_event_paging) == (True, "total")
    assert f"caller registration {server.world.caller.reg_id} (required):" in output
    assert "limits: no in-flight limit; multi-event paging total" in output


def test_serve_refuses_unknown_multi_event_paging() -> None:
    result = runner.invoke(app, ["serve", "--duration", "0.1", "--multi-event-paging", "x"])
    assert result.exit_code == 2
    assert "multi_event_paging" in result.output


def test_credentials_command_prints_the_caller_registration() -> None:
    from rsu.simulator import World

    result = runner.invoke(app, ["credentials", "--seed", "2", "--partners", "2"])
    caller = World.generate(WorldConfig(seed=2, partners=2, races_per_partner=4)).caller
    assert f"RSU_API_REG_SECRET={caller.secret} rsu credentials caller --token {caller.param}" in (
        result.output
    )
