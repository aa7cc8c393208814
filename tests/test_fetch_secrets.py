"""No secret leaks: canary credentials never appear outside the secrets file ``<db>.secrets``."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, quote_plus, urlencode

import pytest
from fetch_helpers import SMALL, fast_options, seed_credentials, stored_bodies
from typer.testing import CliRunner

from rsu.cli.main import app
from rsu.fetcher import run_fetch
from rsu.fetcher.credentials import ensure_schema
from rsu.fetcher.redact import scrub
from rsu.journal import FetchFailed, Journal, RequestFailed, ResponseReceived, open_db, sha256_hex
from rsu.simulator import Credential, Faults, LoopbackServer, SimulatorServer, World
from rsu.simulator.api import SimulatorApp
from rsu.simulator.wire import CallerRegistrationSpec, Request, Response

CANARIES = {
    "api_key": ("CANARYKEY-a1b2c3d4e5f6", "CANARY/secret+api=qzxwvk"),
    "rsu_api_key": ("CANARYRSU-f6e5d4c3b2a1", "CANARY/secret+rsu=pqrsyz"),
    "bearer": ("", "CANARY/bearer+token=wxyzuv"),
}


def _needles() -> list[bytes]:
    out: set[bytes] = set()
    for principal, secret in CANARIES.values():
        for value in (principal, secret):
            if value:
                for v in (value, quote(value, safe=""), quote_plus(value), quote(value)):
                    out.add(v.encode())
    # the distinctive cores, in case something re-encodes the separators differently (the short
    # ones use letters beyond f, so a sha256 or chain hash in hex can never contain them)
    out.update({b"a1b2c3d4e5f6", b"f6e5d4c3b2a1", b"qzxwvk", b"pqrsyz", b"wxyzuv"})
    return sorted(out)


def _scan_db(path: Path, needles: list[bytes]) -> list[str]:
    hits = []
    bodies = stored_bodies(path)
    conn = sqlite3.connect(path)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    assert "journal" in tables and "journal_blobs" in tables
    for table in tables:
        cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
        for row in conn.execute(f"SELECT * FROM {table}"):
            for col, value in zip(cols, row, strict=True):
                blobs: list[bytes] = []
                if isinstance(value, str):
                    blobs.append(value.encode())
                elif isinstance(value, bytes):
                    blobs.append(value)
                    if table == "journal_blobs" and col == "data":
                        blobs.append(bodies[row[cols.index("sha256")]])
                for data in blobs:
                    hits += [f"{table}.{col}: {n!r}" for n in needles if n in data]
    conn.close()
    return hits + _scan_files(path, needles)


def _scan_files(path: Path, needles: list[bytes]) -> list[str]:
    """Needles in the raw bytes of the database file and its ``-wal`` (free pages included)."""
    hits = []
    for suffix in ("", "-wal"):
        f = Path(f"{path}{suffix}")
        data = f.read_bytes() if f.exists() else b""
        hits += [f"file {f.name}: {n!r}" for n in needles if n in data]
    return hits


def _canary_world(tmp_path: Path) -> tuple[World, Path]:
    """The small world with the canary credentials, stored in ``tmp_path/rsu.db``."""
    world = World.generate(SMALL)
    world.credentials = [
        Credential(c.timing_partner_id, c.auth, CANARIES[c.auth][0], CANARIES[c.auth][1])
        for c in world.credentials
    ]
    db = tmp_path / "rsu.db"
    seed_credentials(db, world.credentials)
    return world, db


def test_no_secret_anywhere(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    world, db = _canary_world(tmp_path)
    runner = CliRunner()
    outputs: list[str] = []
    faults = Faults(
        seed=4, http_5xx=0.15, throttle=0.05, truncated=0.05, html_error=0.05, drop_connection=0.1
    )
    common = ["--db", str(db), "--all-races", "--max-rps", "0", "--backoff", "0.001"]
    with SimulatorServer(world, faults=faults) as sim:
        res = runner.invoke(
            app, ["fetch", "--base-url", sim.base_url, "--max-attempts", "8", *common]
        )
        outputs += [res.stdout, res.stderr]
        assert res.exit_code == 0, res.output
        assert any(r.fault == "drop_connection" for r in sim.requests)
        res = runner.invoke(
            app, ["credentials", "test", "--db", str(db), "--base-url", sim.base_url]
        )
        outputs += [res.stdout, res.stderr]
        dead_url = sim.base_url
    # connection refused: requests puts the full URL with its query into the exception message
    res = runner.invoke(app, ["fetch", "--base-url", dead_url, "--max-attempts", "2", *common])
    outputs += [res.stdout, res.stderr]
    assert res.exit_code == 1
    res = runner.invoke(app, ["credentials", "list", "--db", str(db)])
    outputs += [res.stdout, res.stderr]
    res = runner.invoke(
        app,
        ["credentials", "test", "--db", str(db), "--base-url", dead_url, "--max-attempts", "2"],
    )
    outputs += [res.stdout, res.stderr]
    assert res.exit_code == 1

    needles = _needles()
    files = {
        "log": (tmp_path / "runsignup_sync.log").read_bytes(),
        "summary": (tmp_path / "runsignup_sync_summary.json").read_bytes(),
    }
    # the refused connections (their exception names the URL with its query) reached the log
    refused = b"auth_check /Rest/races attempt 2 gave up: ConnectionError: connection refused"
    gave_up = [line.split(b" ", 4)[4] for line in files["log"].splitlines() if b"gave up" in line]
    assert sorted(gave_up) == [b"partner %d %s" % (tp, refused) for tp in (100, 109, 116)]
    hits = [f"output: {n!r}" for o in outputs for n in needles if n in o.encode()]
    hits += [f"{name}: {n!r}" for name, data in files.items() for n in needles if n in data]
    hits += _scan_db(db, needles)
    assert hits == []
    # the secrets file does hold them (the same scan finds them there)
    secrets_file = Path(f"{db}.secrets")
    assert secrets_file.stat().st_mode & 0o777 == 0o600
    raw = secrets_file.read_bytes()
    assert all(s.encode() in raw for _, s in CANARIES.values())
    conn = sqlite3.connect(db)
    blanks = conn.execute("SELECT principal, secret FROM partner_provider_credentials").fetchall()
    conn.close()
    assert blanks == [("", "")] * len(world.credentials)


# A token pasted with a trailing CR (a Windows file, a copied line) or holding a line break:
# requests refuses the header with an InvalidHeader whose message holds the whole header value.
BAD_TOKENS = [
    ("bearer", "", "4c44e3913d93596540651ef41dce5024\r"),
    ("rsu_api_key", "CANARYRSU-0d9c8b7a6f5e", "CANARYv2secret0d9c\nCANARYtail7x8y9z"),
]


@pytest.mark.parametrize(("auth", "principal", "secret"), BAD_TOKENS)
def test_unsendable_secret_stored_directly_never_leaks(
    tmp_path: Path, monkeypatch, auth: str, principal: str, secret: str
) -> None:
    monkeypatch.chdir(tmp_path)
    world = World.generate(SMALL)
    pid = world.credentials[0].timing_partner_id
    db = tmp_path / "rsu.db"
    conn = open_db(db)
    ensure_schema(conn)
    with conn.conn:  # bypasses add_credential, which would refuse the value
        conn.execute(
            "INSERT INTO partner_provider_credentials (timing_partner_id, provider_id, principal, "
            "secret, auth_kind, created_at) VALUES (?, 2, ?, ?, ?, '2026-01-01T00:00:00Z')",
            (pid, principal, secret, auth),
        )
    conn.conn.close()
    runner = CliRunner()
    common = ["--db", str(db), "--all-races", "--max-rps", "0", "--backoff", "0.001"]
    with SimulatorServer(world) as sim:
        res = runner.invoke(app, ["sync", "--base-url", sim.base_url, "--no-progress", *common])
        check = runner.invoke(
            app, ["credentials", "test", "--db", str(db), "--base-url", sim.base_url]
        )
        sent = sim.requests
    assert res.exit_code == 1 and check.exit_code == 1
    assert sent == []  # nothing could be sent
    with Journal.open(db) as j:
        attempts = [r.event for r in j.find(kind="request_failed")]
        failed = [r.event for r in j.find(kind="fetch_failed")]
    assert all(isinstance(a, RequestFailed) for a in attempts)
    assert all(isinstance(f, FetchFailed) for f in failed)
    assert [(a.endpoint, a.error_class, a.attempt, a.final) for a in attempts] == [
        ("auth_check", "InvalidHeader", 1, True)
    ]
    assert [(f.endpoint, f.attempts, f.http_status) for f in failed] == [("auth_check", 1, None)]
    # the core of the secret, which every variant (raw, stripped, escaped, encoded) contains
    cores = [secret.strip().split("\n")[0].encode(), secret.strip().split("\n")[-1].encode()]
    needles = sorted({*cores, *([principal.encode()] if principal else [])})
    outputs = [res.stdout, res.stderr, check.stdout, check.stderr]
    files = {
        "log": (tmp_path / "runsignup_sync.log").read_bytes(),
        "summary": (tmp_path / "runsignup_sync_summary.json").read_bytes(),
    }
    assert b"InvalidHeader" in files["log"]
    hits = [f"output: {n!r}" for o in outputs for n in needles if n in o.encode()]
    hits += [f"{name}: {n!r}" for name, data in files.items() for n in needles if n in data]
    hits += _scan_db(db, needles)
    assert hits == []
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT count(*) FROM sync_history").fetchone()[0] > 0


def test_scrub_header_patterns_and_escaped_variants() -> None:
    token = "4c44e3913d93596540651ef41dce5024\r"
    message = (
        "InvalidHeader: Invalid leading whitespace, reserved character(s), or return "
        f"character(s) in header value: {'Bearer ' + token!r}"
    )
    tail = "in header value: 'Bearer ***'"
    assert scrub(message).endswith(tail)  # by pattern, even without knowing the token
    assert scrub(message, [token]).endswith(tail)
    assert scrub("X-RSU-API-SECRET: abc\\ndef sent") == "X-RSU-API-SECRET: *** sent"
    assert scrub("{'X-RSU-API-SECRET': 'abc', 'A': 'b'}") == "{'X-RSU-API-SECRET': '***', 'A': 'b'}"
    assert scrub("got ab\\tcd and ab%09cd and abcd", ["ab\tcd", " abcd\n"]) == (
        "got *** and *** and ***"
    )


CALLER = CallerRegistrationSpec("40417", "CANARYregtoken5g6h7j8k", "CANARY/regsecret+9z8y7x")


def _echoing(sim: SimulatorApp) -> Callable[[Request], Response]:
    """The simulator, but every JSON object body also echoes the request back: its URL (query
    URL-encoded), its query and its headers, as a debugging proxy or gateway might."""

    def app(req: Request) -> Response:
        resp = sim(req)
        doc = json.loads(resp.body)
        if isinstance(doc, dict):
            url = f"{req.path}?{urlencode(req.query)}"
            doc["echo"] = {"url": url, "query": req.query, "headers": req.headers}
            return Response(resp.status, json.dumps(doc).encode(), resp.content_type, resp.headers)
        return resp

    return app


def test_echoed_secrets_are_scrubbed_before_the_body_is_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    world, db = _canary_world(tmp_path)
    runner = CliRunner()
    monkeypatch.setenv("RSU_API_REG_SECRET", CALLER.secret)
    res = runner.invoke(app, ["credentials", "caller", "--db", str(db), "--token", CALLER.param])
    monkeypatch.delenv("RSU_API_REG_SECRET")
    assert res.exit_code == 0, res.output
    sim = SimulatorApp(world, caller=CALLER)
    with LoopbackServer(_echoing(sim)) as api:
        args = ["fetch", "--db", str(db), "--base-url", api.base_url, "--all-races", "--all"]
        res = runner.invoke(app, [*args, "--max-rps", "0", "--no-progress"])
    assert res.exit_code == 0, res.output
    needles = _needles() + [v.encode() for v in (CALLER.token, CALLER.secret, "9z8y7x")]
    assert _scan_db(db, needles) == []
    kinds = {c.timing_partner_id: c.auth for c in world.credentials}
    with Journal.open(db) as j:
        rows = [r for r in j.find(kind="response_received")]
        echoed = {}
        for r in rows:
            ev = r.event
            assert isinstance(ev, ResponseReceived)
            body = j.body(ev.body_sha256)
            assert (len(body), sha256_hex(body)) == (ev.body_size, ev.body_sha256)
            if ev.endpoint in ("participants", "removed_participants"):
                assert ev.body_scrubbed == 0  # nothing echoed: stored exactly as received
                continue
            echo = json.loads(body)["echo"]
            assert echo["headers"]["x-rsu-api-reg-secret"] == "***"
            echoed.setdefault(kinds[r.timing_partner_id], set()).add(ev.body_scrubbed)
        seq = rows[0].seq
    # url: key, secret and caller param; query: the same; headers: the caller secret
    assert echoed == {"api_key": {7}, "rsu_api_key": {6}, "bearer": {4}}
    shown = runner.invoke(app, ["journal", "show", str(seq), "--db", str(db)])
    assert shown.exit_code == 0
    assert json.loads(shown.stdout)["event"]["body_scrubbed"] > 0
    assert "secret value(s) in this body; they were replaced by *** before it was stored" in (
        shown.stderr
    )


def test_a_log_left_readable_by_all_becomes_private(tmp_path: Path) -> None:
    """The log names partners: one an older version (or a ``touch``) left mode 0644 is appended
    to with mode 0600 from now on, its lines kept."""
    from rsu.fetcher.report import log_file

    path = tmp_path / "runsignup_sync.log"
    path.write_text("old line\n")
    path.chmod(0o644)
    with log_file(path) as status:
        pass
    assert status.error is None
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text() == "old line\n"


def test_a_log_or_summary_path_that_is_no_regular_file_is_written_into_never_chmodded(
    tmp_path: Path,
) -> None:
    """``--log-file /dev/null`` / ``--summary-file /dev/null`` made /dev/null mode 0600 (root
    only) or replaced it with a file. Shown with FIFOs, which behave the same and are safe to
    make in a test: each keeps its kind and mode, and the summary is written through it."""
    import os
    import stat
    import threading

    from rsu.fetcher.report import log_file, write_summary

    log_fifo, summary_fifo = tmp_path / "log", tmp_path / "summary"
    for fifo in (log_fifo, summary_fifo):
        os.mkfifo(fifo, 0o644)
        fifo.chmod(0o644)
    got: dict[str, bytes] = {}

    def drain(name: str, fifo: Path) -> None:
        got[name] = fifo.read_bytes()

    readers = [
        threading.Thread(target=drain, args=("log", log_fifo)),
        threading.Thread(target=drain, args=("summary", summary_fifo)),
    ]
    for reader in readers:
        reader.start()
    with log_file(log_fifo) as status:
        pass
    write_summary(summary_fifo, {"status": "ok"})
    for reader in readers:
        reader.join(timeout=30)
    assert status.error is None
    for fifo in (log_fifo, summary_fifo):
        mode = fifo.stat().st_mode
        assert stat.S_ISFIFO(mode) and stat.S_IMODE(mode) == 0o644
    assert got["summary"] == b'{\n  "status": "ok"\n}\n'


def test_secrets_echoed_into_response_headers_are_not_journaled(tmp_path: Path) -> None:
    """A gateway that echoes the request's credential headers into the Content-Type and Date
    of its answer: those two headers are journaled, so they are scrubbed too."""
    world, db = _canary_world(tmp_path)
    sim = SimulatorApp(world)

    def echoing(req: Request) -> Response:
        resp = sim(req)
        echo = " ".join(f"{k}={v}" for k, v in sorted(req.headers.items()))
        return Response(resp.status, resp.body, f"{resp.content_type}; echo={echo}", {"Date": echo})

    with LoopbackServer(echoing) as api:
        assert run_fetch(db, fast_options(api.base_url, tmp_path)).exit_code == 0
    assert _scan_db(db, _needles()) == []
    with Journal.open(db) as j:
        types = {r.event.content_type for r in j.find(kind="response_received")}  # type: ignore[union-attr]
    assert any("x-rsu-api-secret=***" in t for t in types)
