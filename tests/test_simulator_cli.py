"""``rsu simulator`` typer sub-app (cli/simulator_cmd.py)."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from rsu.cli.simulator_cmd import app

runner = CliRunner()


def test_serve_prints_base_url_and_credentials() -> None:
    args = ["serve", "--duration", "0.2", "--seed", "2", "--partners", "3", "--races", "1"]
    result = runner.invoke(app, [*args, "--registrations", "5"])
    assert result.exit_code == 0, result.output
    assert re.search(r"^base URL: http://127\.0\.0\.1:\d+/Rest", result.output, re.M)
    assert (
        len(re.findall(r"^partner \d+ \((api_key|rsu_api_key|bearer)\)", result.output, re.M)) == 3
    )
    assert "api_secret=" in result.output and "X-RSU-API-SECRET" in result.output
    assert "Authorization: Bearer" in result.output
    assert result.output.rstrip().endswith("stopped")


def test_serve_refuses_non_loopback() -> None:
    result = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--duration", "0.1"])
    assert result.exit_code == 2


def test_credentials_command() -> None:
    result = runner.invoke(app, ["credentials", "--seed", "2", "--partners", "2"])
    assert result.exit_code == 0
    assert len(result.output.strip().splitlines()) == 2
