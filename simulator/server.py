"""Threaded HTTP/1.1 server on loopback that runs an app and injects faults.

:class:`SimulatorServer` serves a :class:`World` (RunSignUp look-alike), and
:class:`rsu.simulator.replay.ReplayServer` serves recorded exchanges; both share
:class:`LoopbackServer`: an ephemeral port on 127.0.0.1, one thread per connection (keep-alive),
a thread-safe request log, runtime-switchable :class:`Faults`, and a clean shutdown that also
closes idle keep-alive connections.

``POST /_admin/faults`` (JSON body of :class:`Faults` fields) switches faults over HTTP;
``GET /_admin/requests`` returns the request log.

Concurrency limit: with ``max_in_flight`` > 0, a request arriving while that many are being
answered is refused at once (RunSignUp's 2027 rule, read as "2 concurrent calls per caller";
counted over all callers, as a test simulator serves one installation): error 14 ``Request
throttled.`` under HTTP 200, or with ``in_flight_http_429`` HTTP 429 with ``Retry-After:
<faults.retry_after_s>`` and the same body. Logged with fault ``"over_concurrency"``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import msgspec

from .api import SimulatorApp, error_response
from .faults import HTML_5XX, HTML_MAINTENANCE, Decision, FaultPlan, Faults
from .formats import ERR_THROTTLED, encode_json
from .wire import (
    HTML_TYPE,
    JSON_TYPE,
    CallerRegistrationSpec,
    LoggedRequest,
    Request,
    Response,
    auth_kind,
    caller_status,
    masked_query,
)
from .world import World

App = Callable[[Request], Response]

_LOOPBACK = ("127.0.0.1", "localhost")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], owner: LoopbackServer) -> None:
        self.owner = owner
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(addr, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "nginx"
    sys_version = ""
    timeout = 30
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: _HTTPServer

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The ``Date`` header: the simulated world's clock when there is one (as RunSignUp's
        ``Date`` follows the clock its ``last_modified`` values come from), else real time."""
        clock = self.server.owner.clock
        return super().date_time_string(clock() if clock is not None else timestamp)

    def setup(self) -> None:
        super().setup()
        with self.server.sockets_lock:
            self.server.open_sockets.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.sockets_lock:
                self.server.open_sockets.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        t0 = time.perf_counter()
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        req = Request(
            method=self.command,
            path=parts.path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        owner = self.server.owner
        if req.path.startswith("/_admin/"):
            self._send(owner.admin(req))
            return
        over_limit = owner.enter_flight()
        self._in_flight = True
        try:
            self._answer(owner, req, t0, over_limit)
        finally:
            self._leave_flight(owner)

    def _leave_flight(self, owner: LoopbackServer) -> None:
        # Counted out before the answer's first byte is written: once a client has the answer
        # this request no longer counts, so a client that sends its next request at once is
        # never seen above its own in-flight count (the handler thread may be slow to finish).
        if getattr(self, "_in_flight", False):
            self._in_flight = False
            owner.leave_flight()

    def _answer(self, owner: LoopbackServer, req: Request, t0: float, over_limit: bool) -> None:
        if over_limit:
            resp = error_response(req, ERR_THROTTLED, 429 if owner.in_flight_http_429 else 200)
            if resp.status == 429:
                resp.headers["Retry-After"] = str(owner.faults.retry_after_s)
            owner.log(req, resp.status, len(resp.body), "over_concurrency", t0)
            self._send(resp)
            return
        decision = owner.plan.decide(owner.faults, req.credential_key())
        if decision.delay_s > 0:
            time.sleep(decision.delay_s)
        gate = owner.gate
        if gate is not None:
            try:
                gate()
            except Exception:  # e.g. a broken test barrier: answer 500, never hang
                resp = Response(500, HTML_5XX % (500, 500), HTML_TYPE)
                owner.log(req, resp.status, len(resp.body), "gate", t0)
                self._send(resp)
                return
        if decision.kind == "drop_connection":
            owner.log(req, 0, 0, decision.kind, t0)  # log first: the client may look at once
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        resp = _faulty_response(owner, req, decision)
        owner.log(req, resp.status, len(resp.body), decision.kind, t0)
        self._send(resp)

    def _send(self, resp: Response) -> None:
        self._leave_flight(self.server.owner)
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        self.send_header("Access-Control-Allow-Origin", "*")
        for key, value in resp.headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp.body)


def _faulty_response(owner: LoopbackServer, req: Request, decision: Decision) -> Response:
    if decision.kind == "http_5xx":
        return Response(decision.status, HTML_5XX % (decision.status, decision.status), HTML_TYPE)
    if decision.kind == "html_error":
        return Response(200, HTML_MAINTENANCE, HTML_TYPE)
    if decision.kind == "throttle":
        resp = error_response(req, ERR_THROTTLED, decision.status)
        if decision.status == 429:
            resp.headers["Retry-After"] = str(owner.faults.retry_after_s)
        return resp
    try:
        resp = owner.app(req)
    except Exception:  # an app bug must not kill the connection thread silently
        resp = Response(500, HTML_5XX % (500, 500), HTML_TYPE)
    if decision.kind == "truncated" and len(resp.body) > 1:
        cut = max(1, min(len(resp.body) - 1, int(len(resp.body) * decision.cut_fraction)))
        resp = Response(resp.status, resp.body[:cut], resp.content_type, dict(resp.headers))
    return resp


class LoopbackServer:
    """Run ``app`` on ``http://127.0.0.1:<port>`` in a background thread.

    Use as a context manager (or ``start()``/``stop()``). ``port=0`` picks a free port.
    ``faults`` may be reassigned at any time (``server.faults = Faults(...)``).
    """

    def __init__(
        self, app: App, faults: Faults | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        if host not in _LOOPBACK:
            raise ValueError(f"the simulator binds to loopback only, not {host!r}")
        self.app = app
        #: Epoch seconds for the ``Date`` header (``None``: real time).
        self.clock: Callable[[], float] | None = None
        self.faults: Faults = faults or Faults()
        self.plan = FaultPlan()
        self._host = "127.0.0.1"
        self._port = port
        self._log: list[LoggedRequest] = []
        self._log_lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        #: Requests (admin calls excluded) answered at once with error 14 once more than this
        #: many are in flight, as RunSignUp limits a caller to 2 concurrent calls (0: no limit).
        self.max_in_flight = 0
        #: Refuse requests over :attr:`max_in_flight` with HTTP 429 + ``Retry-After`` (the
        #: error 14 body) instead of error 14 under HTTP 200.
        self.in_flight_http_429 = False
        #: Test hook: called by each handler thread before it answers (e.g. a
        #: ``threading.Barrier(n).wait`` proves that n requests are served at once).
        self.gate: Callable[[], object] | None = None
        self._in_flight = 0
        self._peak_in_flight = 0
        self._flight_lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> LoopbackServer:
        """Bind and start serving; returns ``self``."""
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer((self._host, self._port), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="rsu-simulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open keep-alive connections and the listening socket."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        with httpd.sockets_lock:
            open_sockets = list(httpd.open_sockets)
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ properties
    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._httpd is None:
            raise RuntimeError("server is not running")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """``"http://127.0.0.1:<port>"`` (no trailing slash; the API lives under ``/Rest``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[LoggedRequest]:
        """A snapshot of the request log, oldest first (admin calls are not logged)."""
        with self._log_lock:
            return list(self._log)

    def clear_requests(self) -> None:
        """Empty the request log (and reset :attr:`peak_in_flight`)."""
        with self._log_lock:
            self._log.clear()
        with self._flight_lock:
            self._peak_in_flight = self._in_flight

    @property
    def peak_in_flight(self) -> int:
        """The most API requests (admin calls excluded) ever served at the same time."""
        with self._flight_lock:
            return self._peak_in_flight

    def enter_flight(self) -> bool:
        """Count one request in; True when it is over :attr:`max_in_flight`."""
        with self._flight_lock:
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
            return 0 < self.max_in_flight < self._in_flight

    def leave_flight(self) -> None:
        """Count one request out."""
        with self._flight_lock:
            self._in_flight -= 1

    def set_faults(self, faults: Faults | None = None, **changes: Any) -> Faults:
        """Replace faults (``faults``, else the current ones, with ``changes``); return them.
        Per-request counters (``throttle_every``, the seeded draws) start again from zero, so a
        test's faults do not depend on how many requests came before them."""
        new = (faults or self.faults).with_(**changes) if changes else (faults or Faults())
        self.faults = new
        self.plan = FaultPlan()
        return new

    def log(self, req: Request, status: int, size: int, fault: str | None, t0: float) -> None:
        """Append one entry to the request log (called by the handler threads)."""
        entry = LoggedRequest(
            method=req.method,
            path=req.path,
            query=masked_query(req.query),
            auth=auth_kind(req),
            status=status,
            bytes=size,
            fault=fault,
            elapsed_ms=(time.perf_counter() - t0) * 1000,
            caller=self.caller_of(req),
        )
        with self._log_lock:
            self._log.append(entry)

    def caller_of(self, req: Request) -> str | None:
        """What the log records about the request's API caller registration (never its values):
        here ``"present"`` or ``None``, as this server knows no registration to check."""
        return caller_status(req, None)

    def admin(self, req: Request) -> Response:
        """Shared admin endpoints: ``/_admin/faults`` and ``/_admin/requests``; else the app's."""
        path = req.path.rstrip("/")
        if path == "/_admin/faults":
            if req.method == "POST":
                try:
                    data = msgspec.json.decode(req.body) if req.body.strip() else {}
                    known = {fl.name for fl in fields(Faults)}
                    if not isinstance(data, dict) or set(data) - known:
                        raise ValueError(f"known fault fields: {sorted(known)}")
                    self.faults = Faults(**data)
                except (ValueError, TypeError, msgspec.DecodeError) as exc:
                    return Response(
                        400, encode_json({"error": str(exc)}, php_escapes=False), JSON_TYPE
                    )
            return Response(200, encode_json(asdict(self.faults), php_escapes=False), JSON_TYPE)
        if path == "/_admin/requests" and req.method == "GET":
            body = [asdict(r) for r in self.requests]
            return Response(200, encode_json(body, php_escapes=False), JSON_TYPE)
        return self.app(req)


class SimulatorServer(LoopbackServer):
    """A RunSignUp look-alike serving ``world`` on loopback (see :mod:`rsu.simulator.api`).

    >>> with SimulatorServer(world, faults=Faults(seed=1, http_5xx=0.1)) as sim:
    ...     params = {"format": "json", **cred.query_params()}
    ...     requests.get(sim.base_url + "/Rest/races", params=params, headers=cred.headers())

    Options (all changeable later through the attributes of the same name):
    ``caller`` is the API caller registration accepted (default ``world.caller``);
    ``require_caller`` makes a call without one fail with HTTP 400 error 17 (a wrong one always
    does); ``max_in_flight`` (default 0: no limit) and ``in_flight_http_429`` set the
    concurrency limit (see the module docstring); ``multi_event_paging`` is ``"per_event"``
    (default) or ``"total"``; ``participants_shape``/``removed_shape`` (``"array"`` or
    ``"object"``) and ``max_page_size`` (rows a page at most, 0: as asked) are the listing shapes
    and page cap of :class:`~rsu.simulator.api.SimulatorApp` (see :mod:`rsu.simulator.api`).
    """

    def __init__(
        self,
        world: World,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        caller: CallerRegistrationSpec | None = None,
        require_caller: bool = False,
        max_in_flight: int = 0,
        in_flight_http_429: bool = False,
        multi_event_paging: str = "per_event",
        participants_shape: str = "array",
        removed_shape: str = "array",
        max_page_size: int = 0,
    ) -> None:
        self.world = world
        if max_in_flight < 0:
            raise ValueError(f"max_in_flight must be 0 (no limit) or more, not {max_in_flight}")
        #: The app answering API calls (its options can be changed at any time).
        self.api = SimulatorApp(
            world,
            caller=caller,
            require_caller=require_caller,
            multi_event_paging=multi_event_paging,
            participants_shape=participants_shape,
            removed_shape=removed_shape,
            max_page_size=max_page_size,
        )
        super().__init__(self.api, faults, host, port)
        self.max_in_flight = max_in_flight
        self.in_flight_http_429 = in_flight_http_429
        self.clock = lambda: float(world.now)

    @property
    def caller(self) -> CallerRegistrationSpec:
        """The API caller registration this server accepts."""
        return self.api.caller

    @caller.setter
    def caller(self, value: CallerRegistrationSpec) -> None:
        self.api.caller = value

    @property
    def require_caller(self) -> bool:
        """Whether a call without an API caller registration fails (HTTP 400, error 17)."""
        return self.api.require_caller

    @require_caller.setter
    def require_caller(self, value: bool) -> None:
        self.api.require_caller = value

    @property
    def multi_event_paging(self) -> str:
        """``"per_event"`` or ``"total"``: how a several-event participant listing is paged."""
        return self.api.multi_event_paging

    @multi_event_paging.setter
    def multi_event_paging(self, value: str) -> None:
        self.api.multi_event_paging = value

    def caller_of(self, req: Request) -> str | None:
        """``"valid"``, ``"invalid"`` or ``None``: the request's API caller registration
        checked against :attr:`caller` (for the request log; values are never logged)."""
        return caller_status(req, self.api.caller)

    def __enter__(self) -> SimulatorServer:
        self.start()
        return self
