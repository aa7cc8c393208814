"""`rsu demo`: a full sync of a simulated world, then an incremental one after it moved on."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from fetch_helpers import seed_credentials
from typer.testing import CliRunner

from rsu.cli.main import app
from rsu.simulator import Credential


def _value(output: str, label: str) -> int:
    match = re.search(rf"{re.escape(label)}\s*│\s*([\d,]+)", output)
    assert match, f"{label!r} not in demo output:\n{output}"
    return int(match.group(1).replace(",", ""))


def test_demo_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    first = runner.invoke(app, ["demo"])
    assert first.exit_code == 0, first.output
    db = tmp_path / "rsu-demo.db"
    conn = sqlite3.connect(db)
    active = conn.execute(
        "SELECT COUNT(*) FROM runsignup_participants WHERE removed_at IS NULL"
    ).fetchone()[0]
    conn.close()
    assert _value(first.output, "registrations active") == active
    assert 15_000 <= active <= 25_000  # "about 20,000 registrations"
    assert _value(first.output, "timing partners") == 3
    said = " ".join(first.output.split())
    assert "secrets live in rsu-demo.db.secrets (mode 0600), never in rsu-demo.db" in said
    assert (tmp_path / "rsu-demo.db.secrets").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "runsignup_sync_summary.json").exists()

    second = runner.invoke(app, ["demo"])
    assert second.exit_code == 0, second.output
    assert "The world moved on" in second.output
    new, removed = (
        _value(second.output, "new in this run"),
        _value(second.output, "removed in this run"),
    )
    assert new > 0 and removed > 0
    conn = sqlite3.connect(db)
    modes = {r[0] for r in conn.execute("SELECT DISTINCT mode FROM sync_history")}
    now_active = conn.execute(
        "SELECT COUNT(*) FROM runsignup_participants WHERE removed_at IS NULL"
    ).fetchone()[0]
    conn.close()
    assert "incremental" in modes
    assert _value(second.output, "registrations active") == now_active


def test_demo_refuses_a_real_database(tmp_path: Path) -> None:
    db = tmp_path / "rsu.db"
    seed_credentials(db, [Credential(12, "api_key", "real-key", "real-secret")])
    result = CliRunner().invoke(app, ["demo", "--db", str(db)])
    assert result.exit_code == 2
    assert "not a demo database" in result.output
    conn = sqlite3.connect(db)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    partners = [
        r[0] for r in conn.execute("SELECT timing_partner_id FROM partner_provider_credentials")
    ]
    conn.close()
    assert "demo_state" not in tables and "journal" not in tables
    assert partners == [12]
