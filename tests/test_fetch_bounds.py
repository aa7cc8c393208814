"""Every answer is bounded: a server that trickles its answer hits the per-attempt deadline, and a
body over the size cap (also one that inflates from a small gzip) fails its request unstored and
is never retried (issue 9). No test here measures time: a trickling server never finishes, so
the only way a test ends is the deadline (pytest-timeout is the guard)."""

from __future__ import annotations

import contextlib
import functools
import gzip
import socket
import threading
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from fetch_helpers import SMALL, fast_options, seed_credentials

from rsu.fetcher import run_fetch
from rsu.fetcher.client import ApiClient, RateLimiter, SessionPool
from rsu.fetcher.credentials import Credential
from rsu.journal import FetchFailed, Journal, RequestFailed, ResponseReceived
from rsu.simulator import LoopbackServer, World
from rsu.simulator.api import SimulatorApp
from rsu.simulator.wire import Request, Response

MiB = 2**20
Handler = Callable[[socket.socket, bytes, threading.Event], None]


class RawServer:
    """A loopback TCP server that answers each connection with ``handler(conn, request, stop)``
    (``request``: the request line and headers) in its own thread, one request per connection;
    counts connections. Stops (and closes every socket) on exit."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.stop = threading.Event()
        self.connections = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self.base_url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> RawServer:
        accept = threading.Thread(target=self._accept, daemon=True)
        accept.start()
        self._threads.append(accept)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self._threads:
            t.join(timeout=5)
        self._sock.close()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            with contextlib.suppress(OSError):  # the client cut the connection (the deadline)
                self.handler(conn, data, self.stop)


def trickle(head: bytes, body_head: bytes = b"") -> Handler:
    """Send ``head`` then ``body_head`` at once, then one byte at a time, forever (until the
    client goes away or the server stops)."""

    def handler(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
        conn.sendall(head + body_head)
        while not stop.wait(0.2):
            conn.sendall(b" ")

    return handler


TRICKLES = {
    # the status line arrives, then the headers never end
    "headers": trickle(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Slow: "),
    # complete headers, then a body that never ends
    "body": trickle(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n",
        b'{"races": [',
    ),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("where", sorted(TRICKLES))
def test_trickling_server_ends_at_the_deadline(tmp_path: Path, where: str) -> None:
    world = World.generate(SMALL)
    cred = world.credentials[0]
    db = tmp_path / "rsu.db"
    seed_credentials(db, [cred])
    with RawServer(TRICKLES[where]) as api:
        options = fast_options(api.base_url, tmp_path, max_attempts=2, deadline=0.5)
        result = run_fetch(db, options)
        connections = api.connections
    message = "DeadlineExceeded: no complete answer within the 0.5 s deadline"
    assert result.exit_code == 1
    assert result.failures == [f"partner {cred.timing_partner_id}: auth_check: {message}"]
    assert connections == 2  # the deadline is retried like a timeout
    with Journal.open(db) as j:
        events = [r.event for r in j.find()]
    attempts = [e for e in events if isinstance(e, RequestFailed)]
    assert [(a.error_class, a.message, a.attempt, a.final) for a in attempts] == [
        ("DeadlineExceeded", message, 1, False),
        ("DeadlineExceeded", message, 2, True),
    ]
    failed = [e for e in events if isinstance(e, FetchFailed)]
    assert [(f.endpoint, f.http_status, f.attempts, f.error_msg) for f in failed] == [
        ("auth_check", None, 2, message)
    ]
    assert not [e for e in events if isinstance(e, ResponseReceived)]
    assert [e.status for e in events if e.__struct_config__.tag == "run_finished"] == ["failed"]  # type: ignore[attr-defined]


def _big_races_app(world: World, body: bytes, headers: dict[str, str]) -> Callable:
    """The simulator, except the races listing (not the auth check) answers ``body``."""
    sim = SimulatorApp(world)

    def app(req: Request) -> Response:
        if req.path == "/Rest/races" and req.query.get("results_per_page") != "1":
            return Response(200, body, headers=headers)
        return sim(req)

    return app


@functools.cache
def _gzip_bomb(decoded_mib: int) -> bytes:
    """A gzip body of ``decoded_mib`` MiB of zeros (about 1 KB per MiB)."""
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(MiB)
    return b"".join(z.compress(zeros) for _ in range(decoded_mib)) + z.flush()


def _assert_refused_unstored(db: Path, result, cap_text: str, pid: int) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 1
    assert len(result.failures) == 1
    line = result.failures[0]
    assert line.startswith(f"partner {pid}: races: BodyTooLarge: response body "), line
    assert line.endswith(f"the {cap_text} cap; not read to its end"), line
    with Journal.open(db) as j:
        events = [r.event for r in j.find()]
        stored = max(j.body(sha) and len(j.body(sha)) for sha in _shas(events))
    attempts = [e for e in events if isinstance(e, RequestFailed)]
    assert [(a.endpoint, a.error_class, a.attempt, a.final) for a in attempts] == [
        ("races", "BodyTooLarge", 1, True)  # never retried
    ]
    failed = [e for e in events if isinstance(e, FetchFailed)]
    assert [(f.endpoint, f.http_status, f.attempts) for f in failed] == [("races", 200, 1)]
    answers = [e for e in events if isinstance(e, ResponseReceived)]
    assert [a.endpoint for a in answers] == ["auth_check"]  # the big body was not stored
    assert stored < 10_000


def _shas(events: list) -> list[str]:  # type: ignore[type-arg]
    return [e.body_sha256 for e in events if isinstance(e, ResponseReceived)]


def _streamed(body: bytes) -> Handler:
    """Answer the auth check with an empty races page, anything else with ``body`` without a
    ``Content-Length`` (it ends when the connection closes)."""

    def handler(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
        if b"results_per_page=1&" in request.split(b"\r\n")[0] + b"&":
            small = b'{"races": []}'
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(small), small))
            return
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        conn.sendall(b"Connection: close\r\n\r\n" + body)

    return handler


@pytest.mark.timeout(60)
@pytest.mark.parametrize("declared", [True, False], ids=["content_length", "streamed"])
def test_body_over_the_cap_fails_unstored_and_is_not_retried(
    tmp_path: Path, declared: bool
) -> None:
    world = World.generate(SMALL)
    cred = world.credentials[0]
    db = tmp_path / "rsu.db"
    seed_credentials(db, [cred])
    body = b'{"races": [' + b" " * (3 * MiB) + b"]}"
    options = {"max_attempts": 5, "max_body_bytes": MiB}
    if declared:
        with LoopbackServer(_big_races_app(world, body, {})) as api:
            result = run_fetch(db, fast_options(api.base_url, tmp_path, **options))
            sent = [r for r in api.requests if r.query.get("results_per_page") == "1000"]
        assert len(sent) == 1
        assert "(Content-Length) is over" in result.failures[0]
    else:
        with RawServer(_streamed(body)) as raw:
            result = run_fetch(db, fast_options(raw.base_url, tmp_path, **options))
            assert raw.connections == 2  # the auth check and one races listing: no retry
        assert "as sent is over" in result.failures[0]
    _assert_refused_unstored(db, result, "1 MiB", cred.timing_partner_id)


@pytest.mark.timeout(120)
def test_gzip_bomb_stops_at_the_cap_with_bounded_memory(tmp_path: Path) -> None:
    world = World.generate(SMALL)
    cred = world.credentials[0]
    db = tmp_path / "rsu.db"
    seed_credentials(db, [cred])
    bomb = _gzip_bomb(256)  # 256 MiB of zeros in about 256 KB
    assert len(bomb) < MiB
    app = _big_races_app(world, bomb, {"Content-Encoding": "gzip"})
    with LoopbackServer(app) as api:
        options = fast_options(api.base_url, tmp_path, max_attempts=5, max_body_bytes=4 * MiB)
        tracemalloc.start()
        try:
            result = run_fetch(db, options)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        races_requests = [r for r in api.requests if r.query.get("results_per_page") == "1000"]
    assert len(races_requests) == 1
    assert peak < 32 * MiB, peak  # the cap plus a few decoding steps, never the 256 MiB
    _assert_refused_unstored(db, result, "4 MiB", cred.timing_partner_id)
    assert "decoded is over" in result.failures[0]


BODY = b'{"races": [' + b'{"race": {"race_id": 1}}, ' * 2000 + b'{"race": {"race_id": 2}}]}'


def _client(base_url: str, *args: Any, **kwargs: Any) -> ApiClient:
    """An :class:`ApiClient` of the first partner of the ``SMALL`` world against ``base_url``,
    without a journal or rate limit; ``args``/``kwargs`` go on to ``ApiClient`` after its rate
    limiter (the retry policy, ``breaker=`` ...)."""
    cred = World.generate(SMALL).credentials[0]
    credential = Credential(cred.timing_partner_id, cred.auth, cred.principal, cred.secret)
    return ApiClient(base_url, credential, None, SessionPool(), RateLimiter(0), *args, **kwargs)


def _raw_deflate(data: bytes) -> bytes:
    z = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return z.compress(data) + z.flush()


@pytest.mark.parametrize(
    ("encoding", "sent", "expected"),
    [
        ("", BODY, BODY),
        ("identity", BODY, BODY),
        ("gzip", gzip.compress(BODY), BODY),
        ("x-gzip", gzip.compress(BODY), BODY),
        ("deflate", zlib.compress(BODY), BODY),
        ("deflate", _raw_deflate(BODY), BODY),  # raw deflate, as some servers send it
        ("gzip", gzip.compress(BODY[:100]) + gzip.compress(BODY[100:]), BODY),  # two members
        ("br", BODY, "ContentDecodingError: unsupported Content-Encoding 'br'"),
        ("gzip, br", BODY, "ContentDecodingError: unsupported Content-Encoding 'gzip, br'"),
        ("gzip", b"\x1f\x8b\x08\x00garbage" * 10, "ContentDecodingError: gzip body could not"),
        ("gzip", gzip.compress(BODY) + b"\x00" * 8, BODY),  # zero padding, as urllib3 takes it
        ("gzip", gzip.compress(BODY) + b"trailing garbage", BODY),
    ],
    ids=["none", "identity", "gzip", "x-gzip", "zlib", "raw-deflate", "members", "br", "two",
         "corrupt", "zero-padding", "trailing-garbage"],
)  # fmt: skip
def test_content_encodings_are_decoded_within_the_cap(
    encoding: str, sent: bytes, expected: bytes | str
) -> None:
    headers = {"Content-Encoding": encoding} if encoding else {}
    with LoopbackServer(lambda req: Response(200, sent, headers=headers)) as api:
        client = _client(api.base_url)
        call = client.call("races", "/Rest/races", {})
        if isinstance(expected, bytes):
            assert client._send(call).body == expected
        else:
            with pytest.raises(requests.exceptions.ContentDecodingError) as caught:
                client._send(call)
            assert f"{type(caught.value).__name__}: {caught.value}".startswith(expected)


@pytest.mark.timeout(60)
def test_trickling_token_endpoint_does_not_hang_the_refresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rsu.fetcher import oauth
    from rsu.fetcher.credentials import add_credential, load_credentials
    from rsu.journal import open_db

    monkeypatch.setattr(oauth, "DEADLINE", 0.5)
    conn = open_db(tmp_path / "rsu.db")
    try:
        add_credential(
            conn, 5, "bearer", "tok-0123456789", refresh_token="ref-0123456789", client_id="c",
            expires_in=100, now=1000.0,
        )  # fmt: skip
        creds = load_credentials(conn)
        slow = trickle(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", b'{"access_token": "')
        with RawServer(slow) as api:
            kept, messages = oauth.refresh_due_tokens(conn, creds, api.base_url, now=1050.0)
            assert api.connections == 1
    finally:
        conn.conn.close()
    assert kept == creds  # the old token is kept; the run goes on with it
    assert messages == ["partner 5: token refresh failed (DeadlineExceeded)"]


@pytest.mark.timeout(30)
def test_an_interrupt_ends_the_retry_backoff_and_skips_what_is_not_sent() -> None:
    """Ctrl-C (or SIGTERM) while a request is answered with a 5xx: the backoff before its retry
    (here 20 s) ends at once, no retry is sent, and a request asked for afterwards is skipped, so
    an interrupted run stops within one attempt instead of after every retry in flight."""
    from rsu.fetcher.client import CircuitBreaker, RetryPolicy

    breaker = CircuitBreaker(3)
    seen: list[str] = []

    def app(req: Request) -> Response:
        seen.append(req.path)
        breaker.interrupt()  # the operator presses Ctrl-C while this answer is on its way
        return Response(503, b"busy")

    policy = RetryPolicy(max_attempts=4, backoff_factor=10.0, backoff_max=20.0, jitter=0.0)
    with LoopbackServer(app) as api:
        client = _client(api.base_url, policy, breaker=breaker)
        first = client.get("races", "/Rest/races", {})
        second = client.get("race", "/Rest/race/1", {})
    assert seen == ["/Rest/races"]
    # the interrupted request is not failed for its 503: the interrupt cut its retries short
    interrupted = (False, True, "skipped: the run was interrupted")
    for ex in (first, second):
        assert (ex.ok, ex.skipped, ex.error_msg) == interrupted
