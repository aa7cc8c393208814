"""``rsu credentials add|list|test|remove`` through typer's CliRunner."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from fetch_helpers import SMALL, seed_credentials
from typer.testing import CliRunner

from rsu.cli.main import app
from rsu.fetcher.credentials import fingerprint
from rsu.simulator import SimulatorServer, World

runner = CliRunner()


def _rows(db: Path) -> list[tuple]:
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT timing_partner_id, provider_id, auth_kind, principal, secret "
        "FROM partner_provider_credentials ORDER BY timing_partner_id"
    ).fetchall()
    conn.close()
    return rows


def test_add_each_kind_list_and_remove(tmp_path: Path) -> None:
    db = str(tmp_path / "rsu.db")
    r = runner.invoke(
        app,
        [
            "credentials",
            "add",
            "--db",
            db,
            "--partner",
            "7",
            "--api-key",
            "K1",
            "--api-secret",
            "S1secret",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "S1secret" not in r.output and fingerprint("S1secret") in r.output
    r = runner.invoke(
        app,
        ["credentials", "add", "--db", db, "--partner", "8", "--rsu-api-key", "K2"],
        env={"RSU_RSU_API_SECRET": "S2fromenv"},
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app,
        ["credentials", "add", "--db", db, "--partner", "9", "--bearer-token", "-"],
        input="S3prompted\n",
    )
    assert r.exit_code == 0, r.output
    assert "S3prompted" not in r.output  # hidden prompt
    assert _rows(tmp_path / "rsu.db") == [
        (7, 2, "api_key", "K1", "S1secret"),
        (8, 2, "rsu_api_key", "K2", "S2fromenv"),
        (9, 2, "bearer", "", "S3prompted"),
    ]
    r = runner.invoke(app, ["credentials", "list", "--db", db])
    assert r.exit_code == 0
    for secret in ("S1secret", "S2fromenv", "S3prompted", "K1", "K2"):
        assert secret not in r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 4
    assert lines[1].split() == ["7", "api_key", fingerprint("K1"), fingerprint("S1secret")]
    assert lines[3].split() == ["9", "bearer", "-", fingerprint("S3prompted")]
    # replacing keeps one credential per partner
    r = runner.invoke(
        app,
        [
            "credentials",
            "add",
            "--db",
            db,
            "--partner",
            "7",
            "--api-key",
            "K9",
            "--api-secret",
            "S9",
        ],
    )
    assert r.exit_code == 0 and "replaced" in r.output
    assert len(_rows(tmp_path / "rsu.db")) == 3
    r = runner.invoke(app, ["credentials", "remove", "--db", db, "--partner", "8"])
    assert r.exit_code == 0
    assert [row[0] for row in _rows(tmp_path / "rsu.db")] == [7, 9]
    r = runner.invoke(app, ["credentials", "remove", "--db", db, "--partner", "8"])
    assert r.exit_code == 1


def test_add_usage_errors(tmp_path: Path) -> None:
    db = str(tmp_path / "rsu.db")
    r = runner.invoke(app, ["credentials", "add", "--db", db, "--partner", "7"])
    assert r.exit_code == 2
    r = runner.invoke(
        app,
        [
            "credentials",
            "add",
            "--db",
            db,
            "--partner",
            "7",
            "--api-key",
            "a",
            "--bearer-token",
            "b",
        ],
    )
    assert r.exit_code == 2
    r = runner.invoke(app, ["credentials", "add", "--db", db, "--api-key", "a"])
    assert r.exit_code == 2  # --partner is required
    r = runner.invoke(
        app, ["credentials", "add", "--db", db, "--partner", "7", "--api-key", "a"], input="\n\n"
    )
    assert r.exit_code != 0


def test_credentials_test_command(tmp_path: Path) -> None:
    world = World.generate(SMALL)
    db = tmp_path / "rsu.db"
    r = runner.invoke(
        app, ["credentials", "test", "--db", str(db), "--base-url", "http://127.0.0.1:9"]
    )
    assert r.exit_code == 2 and "rsu credentials add" in r.output
    seed_credentials(db, world.credentials)
    with SimulatorServer(world) as sim:
        r = runner.invoke(app, ["credentials", "test", "--db", str(db), "--base-url", sim.base_url])
        assert r.exit_code == 0, r.output
        assert r.output.count(": ok") == 3
        bad = world.credentials[0]
        runner.invoke(
            app,
            [
                "credentials",
                "add",
                "--db",
                str(db),
                "--partner",
                str(bad.timing_partner_id),
                "--api-key",
                bad.principal,
                "--api-secret",
                "wrong",
            ],
        )
        r = runner.invoke(app, ["credentials", "test", "--db", str(db), "--base-url", sim.base_url])
        assert r.exit_code == 1
        assert f"partner {bad.timing_partner_id} (api_key): FAILED code 6" in r.output
        assert r.output.count(": ok") == 2
        assert not any(q.path for q in sim.requests if q.path != "/Rest/races")
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "journal" not in tables  # a check leaves no journal trace
