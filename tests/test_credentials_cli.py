"""``rsu credentials add|list|test|remove`` through typer's CliRunner."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from fetch_helpers import SMALL, seed_credentials
from typer.testing import CliRunner

from rsu.cli.main import app
from rsu.fetcher.credentials import (
    CredentialError,
    add_credential,
    fingerprint,
    load_credentials,
)
from rsu.journal import open_db
from rsu.simulator import SimulatorServer, World

runner = CliRunner()
RSU = str(Path(sys.executable).parent / "rsu")


def _rows(db: Path) -> list[tuple]:
    """``(partner, provider, kind, principal, secret)``: partners from the data database, which
    holds no secret (checked here), principal and secret from the secrets file beside it."""
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT timing_partner_id, provider_id, auth_kind, principal, secret "
        "FROM partner_provider_credentials ORDER BY timing_partner_id"
    ).fetchall()
    conn.close()
    assert all(r[3] == "" and r[4] == "" for r in rows)  # no secret in the data database
    database = open_db(db)
    try:
        stored = {c.timing_partner_id: c for c in load_credentials(database)}
    finally:
        database.conn.close()
    return [(r[0], r[1], r[2], stored[r[0]].principal, stored[r[0]].secret) for r in rows]


def _stored(db: Path) -> list[tuple]:
    """The credential rows, ``[]`` when the file or the table does not exist."""
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    return _rows(db) if "partner_provider_credentials" in names else []


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
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 6
    assert lines[1].split() == ["7", "api_key", fingerprint("K1"), fingerprint("S1secret"), "-"]
    assert lines[3].split() == ["9", "bearer", "-", fingerprint("S3prompted"), "-"]
    assert lines[4] == "caller registration: not set"
    assert lines[5] == f"secrets are kept in {db}.secrets (mode 0600), not in {db}"
    assert "RunSignUp requires one on every call from 2027-01-01" in " ".join(r.stderr.split())
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


TOKEN = "4c44e3913d93596540651ef41dce5024"


def test_add_strips_surrounding_whitespace(tmp_path: Path) -> None:
    db = str(tmp_path / "rsu.db")
    r = runner.invoke(
        app,
        ["credentials", "add", "--db", db, "--partner", "120", "--bearer-token", "-"],
        env={"RSU_BEARER_TOKEN": TOKEN + "\r"},
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app,
        ["credentials", "add", "--db", db, "--partner", "121", "--api-key", " K1\t"],
        env={"RSU_API_SECRET": "\tS1secret \r\n"},
    )
    assert r.exit_code == 0, r.output
    assert _rows(tmp_path / "rsu.db") == [
        (120, 2, "bearer", "", TOKEN),
        (121, 2, "api_key", "K1", "S1secret"),
    ]


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ["--bearer-token", "-"],
            {"RSU_BEARER_TOKEN": TOKEN[:16] + "\r\n" + TOKEN[16:]},
            "the secret contains whitespace (U+000D) at character 17 of 34",
        ),
        (
            ["--api-key", "K1", "--api-secret", TOKEN[:16] + "\x00" + TOKEN[16:]],
            {},
            "the secret contains a control character (U+0000) at character 17 of 33",
        ),
        (
            ["--rsu-api-key", "KEY " + TOKEN, "--rsu-api-secret", "S"],
            {},
            "the key contains whitespace (U+0020) at character 4 of 36",
        ),
    ],
)
def test_add_rejects_whitespace_and_control_characters_inside(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    db = tmp_path / "rsu.db"
    r = runner.invoke(
        app, ["credentials", "add", "--db", str(db), "--partner", "7", *args], env=env
    )
    assert r.exit_code == 2
    assert message in r.stderr
    assert TOKEN[:16] not in r.output and TOKEN[16:] not in r.output
    assert _stored(db) == []


def test_add_credential_refuses_inner_control_characters(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "rsu.db")
    with pytest.raises(CredentialError) as err:
        add_credential(conn, 7, "bearer", "abc\rdef")
    assert str(err.value) == (
        "the secret contains whitespace (U+000D) at character 4 of 7; credentials are single "
        "tokens without spaces or line breaks (was it pasted with extra text?)"
    )
    cred, _ = add_credential(conn, 7, "bearer", "\n abcdef \r\n")
    assert cred.secret == "abcdef"
    conn.conn.close()


def test_partner_must_be_positive(tmp_path: Path) -> None:
    db = str(tmp_path / "rsu.db")
    for partner in ("0", "-5"):
        r = runner.invoke(
            app,
            ["credentials", "add", "--db", db, "--partner", partner, "--api-key", "K"],
            env={"RSU_API_SECRET": "S"},
        )
        assert r.exit_code == 2
        r = runner.invoke(app, ["credentials", "remove", "--db", db, "--partner", partner])
        assert r.exit_code == 2
    assert not (tmp_path / "rsu.db").exists()


def test_add_help_names_the_env_vars() -> None:
    r = runner.invoke(app, ["credentials", "add", "--help"], env={"COLUMNS": "250"})
    assert r.exit_code == 0
    text = " ".join(r.output.split())
    assert "(better left out: then read from RSU_API_SECRET, else prompted)" in text
    assert "(better left out: then read from RSU_RSU_API_SECRET, else prompted)" in text
    assert "'-' to read it from RSU_BEARER_TOKEN, else prompted" in text
    assert "API secret ." not in r.output and "API v2 secret ." not in r.output


def test_secret_from_piped_stdin_and_empty_secret(tmp_path: Path) -> None:
    db = str(tmp_path / "rsu.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RSU_")}
    cmd = [RSU, "credentials", "add", "--db", db, "--partner", "9", "--bearer-token", "-"]
    # a new session has no controlling terminal: getpass would fall back to stdin and warn
    proc = subprocess.run(
        cmd, input=f"  {TOKEN}\r\n", capture_output=True, text=True, env=env, start_new_session=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and TOKEN not in proc.stdout
    assert _rows(tmp_path / "rsu.db") == [(9, 2, "bearer", "", TOKEN)]
    proc = subprocess.run(
        cmd, input=" \n", capture_output=True, text=True, env=env, start_new_session=True
    )
    assert proc.returncode == 2
    assert (
        "the Bearer token is empty (give it with the option, RSU_BEARER_TOKEN, or on standard "
        in (" ".join(proc.stderr.split()))
    )
    r = runner.invoke(
        app, ["credentials", "add", "--db", db, "--partner", "8", "--api-key", "K"], input="\n"
    )
    assert r.exit_code == 2 and "the API secret is empty" in r.stderr


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["credentials", "remove", "--partner", "8"], 1),
        (["credentials", "list"], 1),
        (["credentials", "caller", "--remove"], 2),
        (["credentials", "test", "--base-url", "http://127.0.0.1:9"], 1),
        (["fetch", "--base-url", "http://127.0.0.1:9", "--no-progress"], 1),
    ],
)
def test_unopenable_secrets_file_is_one_clean_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], code: int
) -> None:
    monkeypatch.chdir(tmp_path)  # rsu fetch writes its log and summary files here
    db = tmp_path / "rsu.db"
    env = {"RSU_API_SECRET": "s3cret", "COLUMNS": "400"}
    r = runner.invoke(
        app, ["credentials", "add", "--db", str(db), "--partner", "8", "--api-key", "k"], env=env
    )
    assert r.exit_code == 0, r.output
    secrets = Path(f"{db}.secrets")
    secrets.unlink()
    secrets.mkdir()  # a directory where the secrets file should be: it cannot be opened
    r = runner.invoke(app, [*args, "--db", str(db)], env=env)
    assert (r.exit_code, r.stderr.splitlines()[0].split(":")[:2]) == (
        code,
        ["error", " cannot open the secrets file " + str(secrets)],
    )
    assert "Traceback" not in r.output


def test_add_says_added_the_same_way_first_and_later(tmp_path: Path) -> None:
    """A tester saw "Added" for the first credential and "added" later: the bytes on stdout are
    lowercase every time (the capital came from the tester's terminal view, not from rsu)."""
    db = tmp_path / "rsu.db"
    secrets = f"{db}.secrets"
    lines = []
    for partner in ("5", "6", "5"):
        done = subprocess.run(
            [RSU, "credentials", "add", "--db", str(db), "--partner", partner, "--api-key", "k"],
            env={**os.environ, "RSU_API_SECRET": "s"},
            capture_output=True,
            check=True,
        )
        assert done.stderr == b""
        lines.append(done.stdout.decode())
    fp = fingerprint("s")
    assert lines == [
        f"added api_key credential for partner 5 (secret {fp}); secrets are kept in {secrets}\n",
        f"added api_key credential for partner 6 (secret {fp}); secrets are kept in {secrets}\n",
        f"replaced api_key credential for partner 5 (secret {fp}); secrets are kept in {secrets}\n",
    ]
