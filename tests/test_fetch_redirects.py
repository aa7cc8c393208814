"""Redirects are never followed (the credential would go to the host ``Location`` names), and a
secret inside ``--base-url`` is refused before anything is sent or journaled."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import pytest
from fetch_helpers import SMALL, fast_options, seed_credentials
from typer.testing import CliRunner

from rsu.cli.main import app as cli_app
from rsu.fetcher import run_fetch
from rsu.fetcher.client import redirect_host, redirect_message
from rsu.journal import FetchFailed, Journal, RequestFailed, ResponseReceived
from rsu.simulator import LoopbackServer, World
from rsu.simulator.api import SimulatorApp
from rsu.simulator.wire import Request, Response


def _redirector(target_base_url: str, status: int):
    """An API whose every ``/Rest/races`` answer is ``status`` to the same path and query (the
    credential included, as a hostile or misconfigured proxy would echo it) on another host."""

    def app(req: Request) -> Response:
        location = f"{target_base_url}{req.path}?{urlencode(req.query)}"
        return Response(status, b"moved", "text/plain", {"Location": location})

    return app


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_to_another_host_is_not_followed(tmp_path: Path, status: int) -> None:
    world = World.generate(SMALL)
    cred = world.credentials[0]
    db = tmp_path / "rsu.db"
    seed_credentials(db, [cred])
    with (
        LoopbackServer(SimulatorApp(world)) as other,
        LoopbackServer(_redirector(other.base_url, status)) as api,
    ):
        result = run_fetch(db, fast_options(api.base_url, tmp_path, max_attempts=5))
        sent, received_elsewhere = api.requests, other.requests
        other_host = f"127.0.0.1:{other.port}"
    assert received_elsewhere == []  # nothing, not even a connection that carried a request
    assert [(r.path, r.status) for r in sent] == [("/Rest/races", status)]  # not retried
    assert result.exit_code == 1
    expected = f"HTTP {status} redirect to {other_host} not followed"
    assert result.failures == [f"partner {cred.timing_partner_id}: auth_check: {expected}"]
    with Journal.open(db) as j:
        events = [r.event for r in j.find()]
    answers = [e for e in events if isinstance(e, ResponseReceived)]
    assert [(a.status, a.attempt) for a in answers] == [(status, 1)]
    assert not [e for e in events if isinstance(e, RequestFailed)]
    failed = [e for e in events if isinstance(e, FetchFailed)]
    assert [(f.http_status, f.attempts, f.error_msg) for f in failed] == [(status, 1, expected)]
    log = (tmp_path / "runsignup_sync.log").read_text()
    assert expected in log
    assert cred.secret not in log
    assert "api_key=" not in log and "?" not in expected


@pytest.mark.parametrize(
    ("location", "host"),
    [
        ("http://127.0.0.1:8081/Rest/races?api_key=K&api_secret=S", "127.0.0.1:8081"),
        ("https://user:pw@Evil.Example/x?api_secret=S", "evil.example"),
        ("//other.example:9/Rest", "other.example:9"),
        ("http://[::1]:8443/", "[::1]:8443"),
        ("/Rest/races?page=2", None),
        ("", None),
        (None, None),
        ("http://host:99999999/", "an unreadable host"),
        ("http://bad<host>/", "an unreadable host"),
    ],
)
def test_redirect_host_names_only_the_host(location: str | None, host: str | None) -> None:
    assert redirect_host(location) == host


def test_redirect_message_without_a_host() -> None:
    assert redirect_message(302, "/x?api_secret=S") == (
        "HTTP 302 redirect to the same host not followed"
    )
    assert redirect_message(301, None) == "HTTP 301 redirect without a Location not followed"


@pytest.mark.parametrize(
    "base_url",
    [
        "http://operator:hunter2pw@127.0.0.1:9",
        "https://:hunter2pw@runsignup.com",
        "http://127.0.0.1:9?api_secret=hunter2pw",
        "http://127.0.0.1:9/?api_key=1&api_secret=hunter2pw",
        "http://127.0.0.1:9?rsu_api_reg=7.hunter2pw",
        "https://runsignup.com/?API_KEY=hunter2pw",
        "http://127.0.0.1:9#access_token=hunter2pw",
    ],
)
def test_secret_in_base_url_is_refused_without_echo(tmp_path: Path, base_url: str) -> None:
    db = tmp_path / "rsu.db"
    seed_credentials(db, World.generate(SMALL).credentials[:1])
    r = CliRunner().invoke(
        cli_app,
        ["fetch", "--db", str(db), "--base-url", base_url, "--all-races", "--no-progress"],
    )
    assert r.exit_code == 2, r.output
    assert "--base-url must be the API root only" in r.stderr
    assert "hunter2pw" not in r.output and "hunter2pw" not in r.stderr
    with Journal.open(db) as j:  # refused before the run started: nothing journaled
        assert list(j.find()) == []


@pytest.mark.parametrize(
    "userinfo_query",
    [
        ("operator:hunter2pw@", ""),
        (":hunter2pw@", ""),
        ("", "?api_secret=hunter2pw"),
        ("", "#t=hunter2pw"),
    ],
)
def test_credentials_test_refuses_a_secret_in_base_url_before_sending(
    tmp_path: Path, userinfo_query: tuple[str, str]
) -> None:
    userinfo, query = userinfo_query
    world = World.generate(SMALL)
    db = tmp_path / "rsu.db"
    seed_credentials(db, world.credentials[:1])
    with LoopbackServer(SimulatorApp(world)) as api:
        base_url = f"http://{userinfo}127.0.0.1:{api.port}{query}"
        r = CliRunner().invoke(
            cli_app, ["credentials", "test", "--db", str(db), "--base-url", base_url]
        )
        sent = api.requests
    assert r.exit_code == 2, r.output
    assert "--base-url must be the API root only" in r.stderr
    assert "hunter2pw" not in r.output and "hunter2pw" not in r.stderr
    assert sent == []  # nothing reached the host, not even with the userinfo
