"""The secrets file beside the database, the legacy migration, the caller registration and OAuth2
refresh (against the simulator). Canary values must never reach the data database (its raw bytes
and ``-wal`` included), an output, a message or an exception."""

from __future__ import annotations

import io
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from fetch_helpers import fast_options
from requests.structures import CaseInsensitiveDict
from typer.testing import CliRunner
from urllib3.response import HTTPResponse

from rsu.cli.main import app
from rsu.fetcher import run_fetch
from rsu.fetcher.credentials import (
    CredentialError,
    add_credential,
    list_credentials,
    load_caller_registration,
    load_credentials,
    parse_caller_token,
    remove_caller_registration,
    remove_credential,
    secrets_path,
    set_caller_registration,
    token_expiry,
)
from rsu.fetcher.oauth import (
    MAX_BODY_BYTES,
    PRODUCTION_REFRESH_URL,
    TIMEOUTS,
    OAuthError,
    ReauthoriseError,
    expiry_warnings,
    refresh_due_tokens,
    refresh_if_due,
    refresh_url,
)
from rsu.journal import open_db
from rsu.simulator import SimulatorServer, World, WorldConfig

runner = CliRunner()

KEY = "CANARYKEY-9f8e7d6c5b4a"
SECRET = "CANARYSECRET-1a2b3c4d5e6f"
BEARER = "CANARYBEARER-0a1b2c3d4e5f"
REFRESH = "CANARYREFRESH-6f5e4d3c2b1a"
CLIENT_SECRET = "CANARYCLIENT-a9b8c7d6e5f4"
REG_TOKEN = "CANARYREGTOKEN-77aa88bb99cc"
REG_SECRET = "CANARYREGSECRET-33dd44ee55ff"
CANARIES = [KEY, SECRET, BEARER, REFRESH, CLIENT_SECRET, REG_TOKEN, REG_SECRET]


def _raw_hits(db: Path, needles: list[str]) -> list[str]:
    """Needles in the raw bytes of the data database file and its ``-wal``."""
    hits = []
    for suffix in ("", "-wal"):
        f = Path(f"{db}{suffix}")
        data = f.read_bytes() if f.exists() else b""
        hits += [f"{f.name}: {n}" for n in needles if n.encode() in data]
    return hits


def _legacy_db(path: Path) -> None:
    """A database as an older rsu wrote it: the secrets in ``partner_provider_credentials``."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(
        "CREATE TABLE partner_provider_credentials (partner_provider_credential_id INTEGER "
        "PRIMARY KEY, timing_partner_id INTEGER NOT NULL, provider_id INTEGER NOT NULL, "
        "principal TEXT NOT NULL DEFAULT '', secret TEXT NOT NULL, auth_kind TEXT NOT NULL, "
        "created_at TEXT NOT NULL)"
    )
    conn.executemany(
        "INSERT INTO partner_provider_credentials (timing_partner_id, provider_id, principal, "
        "secret, auth_kind, created_at) VALUES (?, 2, ?, ?, ?, '2026-01-01T00:00:00Z')",
        [(12, KEY, SECRET, "api_key"), (34, "", BEARER, "bearer")],
    )
    conn.commit()
    conn.close()
    assert _raw_hits(path, [KEY, SECRET, BEARER])  # the scan finds them while they are there


def test_secrets_file_beside_the_database_and_none_in_it(tmp_path: Path) -> None:
    db = tmp_path / "rsu.db"
    conn = open_db(db)
    try:
        cred, replaced = add_credential(conn, 12, "api_key", SECRET, KEY)
        add_credential(conn, 34, "bearer", BEARER, refresh_token=REFRESH, client_id="cid")
        assert secrets_path(conn) == tmp_path / "rsu.db.secrets"
        assert replaced is False and KEY not in repr(cred) and SECRET not in repr(cred)
        loaded = load_credentials(conn)
        assert [(c.timing_partner_id, c.principal, c.secret) for c in loaded] == [
            (12, KEY, SECRET),
            (34, "", BEARER),
        ]
        assert loaded[1].oauth is not None and loaded[1].oauth.refresh_token == REFRESH
        infos = list_credentials(conn)
        assert [(i.timing_partner_id, i.secret_stored, i.refreshable) for i in infos] == [
            (12, True, False),
            (34, True, True),
        ]
    finally:
        conn.conn.close()
    secrets = tmp_path / "rsu.db.secrets"
    assert secrets.stat().st_mode & 0o777 == 0o600
    assert all(v.encode() in secrets.read_bytes() for v in (KEY, SECRET, BEARER, REFRESH))
    assert _raw_hits(db, CANARIES) == []
    with sqlite3.connect(db) as c:
        rows = c.execute(
            "SELECT timing_partner_id, principal, secret, key_fingerprint "
            "FROM partner_provider_credentials ORDER BY 1"
        ).fetchall()
    assert rows == [(12, "", "", "3a3d1e5f"[:0] + rows[0][3]), (34, "", "", "")]
    assert len(rows[0][3]) == 8


def test_removed_secrets_leave_the_secrets_file(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "rsu.db")
    try:
        add_credential(conn, 12, "api_key", SECRET, KEY)
        assert remove_credential(conn, 12) == 1
        assert load_credentials(conn) == []
    finally:
        conn.conn.close()
    assert SECRET.encode() not in (tmp_path / "rsu.db.secrets").read_bytes()  # secure_delete


@pytest.mark.parametrize("suffix", ["", "-journal"])
def test_a_symlinked_secrets_file_is_refused_and_never_chmodded(
    tmp_path: Path, suffix: str
) -> None:
    """A link at ``rsu.db.secrets`` (or its ``-journal``) could send the chmod, or the
    secrets, to any file: it is refused by name, and the file it names keeps its mode."""
    db = tmp_path / "rsu.db"
    conn = open_db(db)
    try:
        add_credential(conn, 12, "api_key", SECRET, KEY)
    finally:
        conn.conn.close()
    secrets = Path(f"{db}.secrets{suffix}")
    shared = tmp_path / "shared.db"
    if suffix:
        shared.write_bytes(b"")
    else:
        secrets.rename(shared)
    shared.chmod(0o644)
    secrets.symlink_to(shared)
    r = runner.invoke(app, ["credentials", "list", "--db", str(db)], env={"COLUMNS": "300"})
    assert r.exit_code == 1
    assert r.stderr == (
        f"error: cannot open the secrets file {secrets}: it is a symbolic link (to {shared}); "
        "rsu does not follow it: put the file itself there\n"
    )
    assert shared.stat().st_mode & 0o777 == 0o644
    assert secrets.is_symlink()
    conn = open_db(db)
    try:
        with pytest.raises(CredentialError, match="is a symbolic link"):
            load_credentials(conn)
    finally:
        conn.conn.close()


def test_a_dangling_secrets_link_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    db = tmp_path / "rsu.db"
    target = tmp_path / "elsewhere.secrets"
    Path(f"{db}.secrets").symlink_to(target)
    conn = open_db(db)
    try:
        with pytest.raises(CredentialError) as info:
            add_credential(conn, 12, "api_key", SECRET, KEY)
    finally:
        conn.conn.close()
    assert str(info.value) == (
        f"cannot open the secrets file {db}.secrets: it is a symbolic link (to {target}); rsu "
        "does not follow it: put the file itself there"
    )
    assert not target.exists()


def test_a_loose_secrets_file_is_tightened_to_0600(tmp_path: Path) -> None:
    db = tmp_path / "rsu.db"
    conn = open_db(db)
    try:
        add_credential(conn, 12, "api_key", SECRET, KEY)
        secrets = Path(f"{db}.secrets")
        secrets.chmod(0o644)
        assert [c.secret for c in load_credentials(conn)] == [SECRET]
    finally:
        conn.conn.close()
    assert secrets.stat().st_mode & 0o777 == 0o600


def test_a_database_copied_without_its_secrets_file_names_the_partners(tmp_path: Path) -> None:
    db = tmp_path / "rsu.db"
    conn = open_db(db)
    add_credential(conn, 12, "api_key", SECRET, KEY)
    conn.conn.close()
    (tmp_path / "rsu.db.secrets").unlink()
    conn = open_db(db)
    try:
        with pytest.raises(CredentialError) as err:
            load_credentials(conn)
        assert list_credentials(conn)[0].secret_stored is False
    finally:
        conn.conn.close()
    assert str(err.value).startswith("the secrets of partner(s) 12 are missing from ")
    assert SECRET not in str(err.value) and KEY not in str(err.value)
    r = runner.invoke(app, ["credentials", "list", "--db", str(db)])
    assert r.exit_code == 0 and "MISSING" in r.stdout


def test_legacy_secrets_move_to_the_secrets_file_on_first_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "rsu.db"
    _legacy_db(db)
    conn = open_db(db)
    try:
        creds = load_credentials(conn)
        first = capsys.readouterr().err
        again = load_credentials(conn)
        second = capsys.readouterr().err
    finally:
        conn.conn.close()
    expected = [(12, "api_key", KEY, SECRET), (34, "bearer", "", BEARER)]
    assert [(c.timing_partner_id, c.auth_kind, c.principal, c.secret) for c in creds] == expected
    assert again == creds
    assert first.count("\n") == 1
    assert f"into {tmp_path / 'rsu.db.secrets'} (mode 0600)" in first
    assert second == ""
    assert not any(v in first for v in CANARIES)
    assert _raw_hits(db, CANARIES) == []  # blanked, VACUUMed, WAL truncated
    assert (tmp_path / "rsu.db.secrets").stat().st_mode & 0o777 == 0o600
    with sqlite3.connect(db) as c:
        assert c.execute(
            "SELECT principal, secret FROM partner_provider_credentials"
        ).fetchall() == [("", ""), ("", "")]


def test_legacy_secrets_move_on_credentials_list(tmp_path: Path) -> None:
    db = tmp_path / "rsu.db"
    _legacy_db(db)
    r = runner.invoke(app, ["credentials", "list", "--db", str(db)])
    assert r.exit_code == 0, r.output
    assert "secrets now live only there" in r.stderr
    assert not any(v in r.output for v in CANARIES)
    assert _raw_hits(db, CANARIES) == []


# ---------------------------------------------------------------------- caller registration
def test_caller_registration_store_and_validation(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "rsu.db")
    try:
        assert load_caller_registration(conn) is None
        assert parse_caller_token(f"1234.{REG_TOKEN}") == ("1234", REG_TOKEN)
        reg, replaced = set_caller_registration(conn, "1234", REG_TOKEN, REG_SECRET)
        assert replaced is False
        assert load_caller_registration(conn) == reg
        assert reg.query_params() == {"rsu_api_reg": f"1234.{REG_TOKEN}"}
        assert reg.headers() == {"X-RSU-API-REG-SECRET": REG_SECRET}
        assert REG_TOKEN not in repr(reg) and REG_SECRET not in repr(reg)
        _, replaced = set_caller_registration(conn, "1234", REG_TOKEN, REG_SECRET)
        assert replaced is True
        for bad in ("1234", ".zqx", "1234.", "12 34.zqx", "1234.zq\x00x", "1234.zqö"):
            with pytest.raises(CredentialError) as err:
                parse_caller_token(bad)
            assert "zq" not in str(err.value)
        with pytest.raises(CredentialError, match="caller registration secret is empty"):
            set_caller_registration(conn, "1234", REG_TOKEN, " ")
        assert remove_caller_registration(conn) is True
        assert remove_caller_registration(conn) is False
        assert load_caller_registration(conn) is None
    finally:
        conn.conn.close()
    assert _raw_hits(tmp_path / "rsu.db", CANARIES) == []


def test_caller_cli(tmp_path: Path) -> None:
    db = str(tmp_path / "rsu.db")
    r = runner.invoke(
        app,
        ["credentials", "add", "--db", db, "--partner", "7", "--api-key", "K"],
        env={"RSU_API_SECRET": SECRET},
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["credentials", "list", "--db", db])
    assert "caller registration: not set" in r.stdout
    assert "requires one on every call from 2027-01-01" in " ".join(r.stderr.split())
    r = runner.invoke(
        app,
        ["credentials", "caller", "--db", db, "--token", f"1234.{REG_TOKEN}"],
        env={"RSU_API_REG_SECRET": REG_SECRET},
    )
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("stored the caller registration (id 1234, secret ")
    r2 = runner.invoke(
        app, ["credentials", "caller", "--db", db, "--token", f"1234.{REG_TOKEN}"], input="x y\n"
    )
    assert r2.exit_code == 2 and "whitespace" in r2.stderr  # piped secret, checked
    r3 = runner.invoke(app, ["credentials", "list", "--db", db])
    assert "caller registration: set (id 1234)" in r3.stdout and r3.stderr == ""
    for res in (r, r2, r3):
        assert not any(v in res.output for v in CANARIES)
    assert _raw_hits(tmp_path / "rsu.db", CANARIES) == []
    bad = runner.invoke(
        app,
        ["credentials", "caller", "--db", db, "--token", "1234"],
        env={"RSU_API_REG_SECRET": "s"},
    )
    assert bad.exit_code == 2 and "ID.TOKEN" in bad.stderr
    assert runner.invoke(app, ["credentials", "caller", "--db", db]).exit_code == 2
    assert runner.invoke(app, ["credentials", "caller", "--db", db, "--remove"]).exit_code == 0
    gone = runner.invoke(app, ["credentials", "caller", "--db", db, "--remove"])
    assert gone.exit_code == 1 and "no caller registration" in gone.stderr


# ---------------------------------------------------------------------- OAuth2
def test_bearer_with_refresh_token_from_the_cli(tmp_path: Path) -> None:
    db = tmp_path / "rsu.db"
    args = ["credentials", "add", "--db", str(db), "--partner", "9", "--bearer-token", "-"]
    env = {
        "RSU_BEARER_TOKEN": BEARER,
        "RSU_REFRESH_TOKEN": REFRESH,
        "RSU_CLIENT_SECRET": CLIENT_SECRET,
    }
    oauth = ["--refresh-token", "-", "--client-id", "cid", "--client-secret", "-"]
    r = runner.invoke(app, [*args, *oauth, "--expires-in", "3600"], env=env)
    assert r.exit_code == 0, r.output
    assert "refreshable" in r.stdout and not any(v in r.output for v in CANARIES)
    conn = open_db(db)
    try:
        (cred,) = load_credentials(conn)
        expiry = token_expiry(conn, 9)
    finally:
        conn.conn.close()
    assert cred.oauth is not None
    assert (cred.secret, cred.oauth.refresh_token, cred.oauth.client_id) == (BEARER, REFRESH, "cid")
    assert cred.oauth.client_secret == CLIENT_SECRET
    assert expiry is not None and cred.expires_at == expiry
    assert not any(v in repr(cred) for v in CANARIES)
    assert _raw_hits(db, CANARIES) == []
    listed = runner.invoke(app, ["credentials", "list", "--db", str(db)])
    assert "UTC (refreshable)" in listed.stdout
    key = ["credentials", "add", "--db", str(db), "--partner", "8", "--api-key", "K"]
    r = runner.invoke(app, [*key, "--refresh-token", "-"], env={"RSU_API_SECRET": "S", **env})
    assert r.exit_code == 2 and "need --bearer-token" in r.stderr
    r = runner.invoke(app, [*args, "--refresh-token", "-"], env=env)
    assert r.exit_code == 2 and "--client-id" in r.stderr


def test_refresh_url_rule() -> None:
    assert refresh_url("https://runsignup.com") == PRODUCTION_REFRESH_URL
    assert refresh_url("https://api.runsignup.com/") == PRODUCTION_REFRESH_URL
    assert refresh_url("https://test.runsignup.com") == (
        "https://test.runsignup.com/rest/v2/auth/refresh-token.json"
    )
    assert refresh_url("http://127.0.0.1:8123/") == (
        "http://127.0.0.1:8123/rest/v2/auth/refresh-token.json"
    )


LIFETIME = 3600


def _oauth_world() -> World:
    return World.generate(
        WorldConfig(
            seed=5,
            partners=3,
            races_per_partner=1,
            registrations_per_event=(3, 5),
            token_lifetime_s=LIFETIME,
        )
    )


def _bearer_db(tmp_path: Path, world: World, refresh: str | None = None) -> tuple[Path, int, str]:
    bearer = next(c for c in world.credentials if c.auth == "bearer")
    pid = bearer.timing_partner_id
    db = tmp_path / "rsu.db"
    conn = open_db(db)
    add_credential(
        conn,
        pid,
        "bearer",
        bearer.secret,
        refresh_token=refresh or world.tokens.refresh_token_for(pid),
        client_id=world.tokens.client_id,
        client_secret=world.tokens.client_secret,
        expires_in=LIFETIME,
        now=float(world.now),
    )
    conn.conn.close()
    return db, pid, bearer.secret


def _races(base_url: str, token: str) -> dict[str, Any]:
    resp = requests.get(
        f"{base_url}/Rest/races",
        params={"format": "json"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert resp.status_code == 200
    return resp.json()


def test_simulator_expires_and_refreshes_bearer_tokens(tmp_path: Path) -> None:
    world = _oauth_world()
    db, pid, first_token = _bearer_db(tmp_path, world)
    first_refresh = world.tokens.refresh_token_for(pid)
    start = world.now
    with SimulatorServer(world) as sim:
        assert "races" in _races(sim.base_url, first_token)
        conn = open_db(db)
        try:
            creds = load_credentials(conn)
            # not due yet: 3600 s left, margin 900 s
            same, messages = refresh_due_tokens(conn, creds, sim.base_url, now=float(start))
            assert same == creds and messages == [] and world.tokens.refreshes == 0
            world.now = start + LIFETIME  # the simulated clock reaches the expiry
            assert _races(sim.base_url, first_token) == {
                "error": {"error_code": 6, "error_msg": "Key authentication failed"}
            }
            now = float(world.now)
            fresh, messages = refresh_due_tokens(conn, creds, sim.base_url, now=now)
            stored = load_credentials(conn)
            expiry = token_expiry(conn, pid)
        finally:
            conn.conn.close()
        assert "races" in _races(sim.base_url, fresh[0].secret)
        refresh_calls = [q for q in sim.requests if "refresh-token" in q.path]
    assert world.tokens.refreshes == 1
    assert [(q.method, q.path, q.status) for q in refresh_calls] == [
        ("POST", "/rest/v2/auth/refresh-token.json", 200)
    ]
    assert fresh[0].secret != first_token and fresh[0].expires_at == now + LIFETIME
    assert stored == fresh and expiry == now + LIFETIME
    assert stored[0].oauth is not None and stored[0].oauth.refresh_token not in ("", first_refresh)
    assert messages == [f"partner {pid}: bearer token refreshed, valid until 2026-01-01 02:00 UTC"]
    needles = [
        first_token,
        fresh[0].secret,
        first_refresh,
        stored[0].oauth.refresh_token,
        world.tokens.client_secret,
    ]
    assert not any(n in m for n in needles for m in messages)
    assert _raw_hits(db, needles) == []


def test_refresh_keeps_the_old_refresh_token_when_none_comes_back(tmp_path: Path) -> None:
    world = _oauth_world()
    world.tokens.rotate_refresh_tokens = False
    db, pid, _ = _bearer_db(tmp_path, world)
    with SimulatorServer(world) as sim:
        conn = open_db(db)
        try:
            (cred,) = load_credentials(conn)
            new = refresh_if_due(
                conn,
                cred,
                base_url=sim.base_url,
                session=requests.Session(),
                now=float(world.now + LIFETIME - 60),
                margin_s=900,
            )
            (stored,) = load_credentials(conn)
        finally:
            conn.conn.close()
    assert new.secret != cred.secret and stored == new
    assert stored.oauth is not None and stored.oauth.refresh_token == (
        world.tokens.refresh_token_for(pid)
    )


def test_invalid_grant_says_reauthorise_and_never_shows_a_token(tmp_path: Path) -> None:
    world = _oauth_world()
    db, pid, token = _bearer_db(tmp_path, world, refresh=REFRESH)  # unknown to the simulator
    with SimulatorServer(world) as sim:
        conn = open_db(db)
        try:
            (cred,) = load_credentials(conn)
            with pytest.raises(ReauthoriseError) as err:
                refresh_if_due(
                    conn,
                    cred,
                    base_url=sim.base_url,
                    session=requests.Session(),
                    now=float(world.now + LIFETIME),
                )
            kept, messages = refresh_due_tokens(
                conn, [cred], sim.base_url, now=float(world.now + LIFETIME)
            )
            (stored,) = load_credentials(conn)
        finally:
            conn.conn.close()
        statuses = [q.status for q in sim.requests if "refresh-token" in q.path]
    assert statuses == [400, 400]
    text = str(err.value)
    assert "\n" not in text and f"re-authorise partner {pid}" in text
    assert text.startswith(f"partner {pid}: RunSignUp refused the refresh token (invalid_grant)")
    assert kept == [cred] and stored == cred and messages == [text]
    secrets = [token, REFRESH, world.tokens.client_secret]
    assert not any(s in text for s in secrets)


class _FakeSession:
    """Records the POST and answers ``body`` with ``status`` (no network)."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or {}
        self.calls: list[dict[str, Any]] = []

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        self.calls.append({"url": url, **kwargs})
        resp = requests.Response()
        resp.status_code = self.status
        resp.headers = CaseInsensitiveDict(self.headers)
        resp.raw = HTTPResponse(
            io.BytesIO(self.body), self.headers, self.status, preload_content=False
        )
        return resp


def _stored_bearer(tmp_path: Path) -> tuple[Any, Any]:
    conn = open_db(tmp_path / "rsu.db")
    add_credential(
        conn,
        5,
        "bearer",
        BEARER,
        refresh_token=REFRESH,
        client_id="cid",
        client_secret=CLIENT_SECRET,
        expires_in=100,
        now=1000.0,
    )
    return conn, load_credentials(conn)[0]


def test_refresh_is_bounded_and_sends_the_documented_form(tmp_path: Path) -> None:
    conn, cred = _stored_bearer(tmp_path)
    try:
        big = _FakeSession(200, b'{"access_token": "' + b"a" * MAX_BODY_BYTES + b'"}')
        with pytest.raises(OAuthError, match="larger than 64 KiB"):
            refresh_if_due(conn, cred, base_url="https://runsignup.com", session=big, now=1050.0)  # type: ignore[arg-type]
        call = big.calls[0]
        assert call["url"] == PRODUCTION_REFRESH_URL
        assert call["data"] == {
            "grant_type": "refresh_token",
            "refresh_token": REFRESH,
            "client_id": "cid",
            "client_secret": CLIENT_SECRET,
        }
        assert call["timeout"] == TIMEOUTS and call["allow_redirects"] is False
        declared = _FakeSession(200, b"{}", {"Content-Length": str(MAX_BODY_BYTES + 1)})
        with pytest.raises(OAuthError, match="larger than 64 KiB"):
            refresh_if_due(
                conn, cred, base_url="https://runsignup.com", session=declared, now=1050.0
            )  # type: ignore[arg-type]
        answer = {
            "access_token": "NEWTOKEN123",
            "token_type": "Bearer",
            "expires_in": "7200",
            "scope": "rsu_api_read",
        }
        ok = _FakeSession(200, json.dumps(answer).encode())
        new = refresh_if_due(conn, cred, base_url="https://runsignup.com", session=ok, now=1050.0)  # type: ignore[arg-type]
        assert (new.secret, new.expires_at) == ("NEWTOKEN123", 1050.0 + 7200)
        assert new.oauth is not None and new.oauth.refresh_token == REFRESH
        assert load_credentials(conn) == [new] and token_expiry(conn, 5) == 8250.0
        # not due any more: no call at all
        idle = _FakeSession(500, b"")
        assert (
            refresh_if_due(conn, new, base_url="https://runsignup.com", session=idle, now=1050.0)
            is new
        )  # type: ignore[arg-type]
        assert idle.calls == []
        with pytest.raises(OAuthError, match="https only"):
            refresh_if_due(conn, new, base_url="http://example.com", session=idle, now=9000.0)  # type: ignore[arg-type]
        broken = _FakeSession(
            401, b'{"error": "invalid_client", "error_description": "' + REFRESH.encode() + b'"}'
        )
        with pytest.raises(OAuthError) as err:
            refresh_if_due(conn, new, base_url="https://runsignup.com", session=broken, now=9000.0)  # type: ignore[arg-type]
        assert str(err.value) == "partner 5: token refresh failed: HTTP 401, invalid_client"
    finally:
        conn.conn.close()


def test_expiry_warnings_and_status(tmp_path: Path) -> None:
    db = tmp_path / "rsu.db"
    conn = open_db(db)
    try:
        add_credential(conn, 1, "bearer", "tok1", expires_in=2 * 86400, now=0.0)
        add_credential(conn, 2, "bearer", "tok2", expires_in=30 * 86400, now=0.0)
        add_credential(
            conn, 3, "bearer", "tok3", refresh_token="r3", client_id="c", expires_in=60, now=0.0
        )
        add_credential(conn, 4, "api_key", "s4", "k4")
        assert token_expiry(conn, 1) == 2 * 86400 and token_expiry(conn, 4) is None
        assert expiry_warnings(conn, now=0.0) == [
            "partner 1: bearer token expires in 2.0 days (1970-01-03 00:00 UTC) and cannot be "
            "refreshed (no refresh token stored); re-authorise partner 1 before then"
        ]
        assert expiry_warnings(conn, now=3 * 86400.0) == [
            "partner 1: bearer token expired at 1970-01-03 00:00 UTC; re-authorise partner 1",
            "partner 3: bearer token expired at 1970-01-01 00:01 UTC and was not refreshed: run "
            "rsu sync (it refreshes due tokens) and check its messages",
        ]
        # relative to the real clock (rsu status has no --now): 2 days left is within 7 days
        # partner 2: 30 days left is outside the window; partner 3 stays expired since 1970
        add_credential(conn, 1, "bearer", "tok1", expires_in=2 * 86400)
        add_credential(conn, 2, "bearer", "tok2", expires_in=30 * 86400)
    finally:
        conn.conn.close()
    r = runner.invoke(app, ["status", "--db", str(db)])
    text = " ".join(r.output.split())
    assert "warning: partner 1: bearer token expires in" in text
    assert "re-authorise partner 1 before then" in text
    assert "partner 2" not in text
    r = runner.invoke(app, ["status", "--db", str(db), "--json"])
    doc = json.loads(r.stdout)
    assert [w.split(":")[0] for w in doc["token_warnings"]] == ["partner 1", "partner 3"]


def test_fetch_refreshes_an_expired_token_and_completes(tmp_path: Path) -> None:
    """``run_fetch`` refreshes a due bearer token before it asks anything, so a token that
    expired overnight costs one refresh call, not a failed sync."""
    world = _oauth_world()
    db, pid, first_token = _bearer_db(tmp_path, world)
    world.now += LIFETIME  # the simulated clock passes the stored expiry
    with SimulatorServer(world) as sim:
        result = run_fetch(db, fast_options(sim.base_url, tmp_path, now=float(world.now)))
        paths = [q.path for q in sim.requests]
    assert result.exit_code == 0, result.failures
    assert paths[0] == "/rest/v2/auth/refresh-token.json" and world.tokens.refreshes == 1
    until = datetime.fromtimestamp(world.now + LIFETIME, UTC).strftime("%Y-%m-%d %H:%M UTC")
    assert result.warnings == [f"partner {pid}: bearer token refreshed, valid until {until}"]
    assert result.counts["participants"] > 0
    conn = open_db(db)
    try:
        assert load_credentials(conn)[0].secret != first_token
    finally:
        conn.conn.close()


@pytest.mark.parametrize("expires_in", ["1" + "0" * 400, "1e300", "Infinity", "NaN", "1e12"])
def test_an_absurd_expires_in_is_taken_as_unknown_not_a_crash(tmp_path: Path, expires_in) -> None:
    conn, cred = _stored_bearer(tmp_path)
    body = '{"access_token": "NEWTOKEN123", "expires_in": ' + expires_in + "}"
    session = _FakeSession(200, body.encode())
    fresh, messages = refresh_due_tokens(
        conn,
        [cred],
        "https://runsignup.com",
        now=1050.0,
        session=session,  # type: ignore[arg-type]
    )
    assert [(c.secret, c.expires_at) for c in fresh] == [("NEWTOKEN123", None)]
    assert messages == ["partner 5: bearer token refreshed, valid until unknown"]
