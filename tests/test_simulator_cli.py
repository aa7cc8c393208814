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
