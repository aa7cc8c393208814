"""Reading one HTTP answer bounded in time and size: whatever a server sends, an attempt ends.

``requests`` bounds each socket operation (connect, each read) but not a whole answer: a server
that trickles one byte a second keeps a request alive forever, and ``Response.content`` inflates
a gzip body of 1 MB into gigabytes. This module adds the two missing bounds:

* **deadline** (seconds, from the start of the attempt): :class:`Deadline` arms a timer; when it
  fires, the socket of the connection in use is shut down, which ends any read blocked on it
  (status line, headers, TLS or body alike) and :class:`DeadlineExceeded` is raised. The
  connection is found through :class:`BoundedAdapter`, whose urllib3 connections tell the
  calling thread's :class:`Deadline` which connection they are using;
* **size cap** (bytes): :func:`read_body` streams the raw body (``stream=True``) and decodes
  ``Content-Encoding`` itself (``gzip``, ``deflate``; the session only asks for those), at most
  :data:`CHUNK` decoded bytes at a time, counting raw and decoded bytes; past ``max_bytes`` it
  raises :class:`BodyTooLarge` at once (a ``Content-Length`` over the cap is refused unread).
  Memory stays at about ``max_bytes`` + :data:`CHUNK` whatever the compression ratio.

Errors are ``requests``' own where they mean the same (``ChunkedEncodingError`` for a body cut
off, ``ContentDecodingError`` for a corrupt or unsupported encoding, ``ConnectionError`` for a
read timeout), so :data:`rsu.fetcher.client.TRANSPORT_ERRORS` classifies them as before.
:class:`DeadlineExceeded` is a ``requests.Timeout`` (retried like one); :class:`BodyTooLarge`
is not a transport error (never retried: the server would send the same body again).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import ProtocolError, ReadTimeoutError

#: Default cap of one body, decoded (bytes): 64 MiB.
DEFAULT_MAX_BODY_BYTES = 64 * 2**20
#: Default deadline of one attempt (seconds).
DEFAULT_DEADLINE = 120.0
#: Raw bytes read, and decoded bytes produced, per step (bytes).
CHUNK = 256 * 1024
#: The only content codings asked for (and decoded).
ACCEPT_ENCODING = "gzip, deflate"


class DeadlineExceeded(requests.Timeout):
    """No complete answer within the attempt's deadline (a ``requests.Timeout``: retried)."""


class BodyTooLarge(Exception):
    """The body (decoded, or as sent) is larger than the cap; it was not read to its end.
    ``http_status`` is the answer's status."""

    def __init__(self, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status


_local = threading.local()


class Deadline:
    """The deadline of one attempt in the calling thread (a context manager).

    ``seconds`` from entering; ``clock`` is monotonic seconds. On expiry the socket of the
    connection in use is shut down (see module docstring) and :attr:`expired` is set; use
    :meth:`check` after each step to raise :class:`DeadlineExceeded`."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._ends = 0.0
        self._lock = threading.Lock()
        self._conn: HTTPConnection | None = None
        self._timer: threading.Timer | None = None
        self.expired = False

    def __enter__(self) -> Deadline:
        self._ends = self._clock() + self.seconds
        self._timer = threading.Timer(self.seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()
        _local.deadline = self
        return self

    def __exit__(self, *exc: object) -> None:
        _local.deadline = None
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            self._conn = None

    def using(self, conn: HTTPConnection) -> None:
        """Called by the connection about to send or connect: the one to cut on expiry."""
        with self._lock:
            self._conn = conn
            expired = self.expired
        if expired:
            _shutdown(conn)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            conn = self._conn
        if conn is not None:
            _shutdown(conn)

    def check(self) -> None:
        """Raise :class:`DeadlineExceeded` when the deadline has passed."""
        if self.expired or self._clock() >= self._ends:
            self.expired = True
            raise DeadlineExceeded(self.message)

    @property
    def message(self) -> str:
        """``"no complete answer within the 120 s deadline"``."""
        return f"no complete answer within the {self.seconds:g} s deadline"


def _shutdown(conn: HTTPConnection) -> None:
    sock = getattr(conn, "sock", None)
    if sock is None:
        return
    with contextlib.suppress(OSError):  # the plain socket call, also for TLS: it ends a
        socket.socket.shutdown(sock, socket.SHUT_RDWR)  # recv blocked in another thread


def _register(conn: HTTPConnection) -> None:
    deadline = getattr(_local, "deadline", None)
    if deadline is not None:
        deadline.using(conn)


class _Registering:
    """Mixin of the urllib3 connections: report to the thread's deadline before connecting
    and before each request."""

    def connect(self) -> None:
        _register(self)  # type: ignore[arg-type]
        super().connect()  # type: ignore[misc]

    def request(self, *args: Any, **kwargs: Any) -> None:
        _register(self)  # type: ignore[arg-type]
        super().request(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_Registering, HTTPConnection):
    pass


class _HTTPSConnection(_Registering, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class BoundedAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose connections report themselves to the thread's
    :class:`Deadline`, so that a deadline can cut the one in use."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


class _Decoder:
    """Incremental ``Content-Encoding`` decoding with a bounded output per step."""

    def __init__(self, content_encoding: str) -> None:
        codings = [c.strip().lower() for c in content_encoding.split(",")]
        codings = [c for c in codings if c and c != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in ("gzip", "x-gzip", "deflate")):
            raise requests.exceptions.ContentDecodingError(
                f"unsupported Content-Encoding {content_encoding[:40]!r} (asked for "
                f"{ACCEPT_ENCODING})"
            )
        self.coding = codings[0] if codings else ""
        self._z: Any = None
        if self.coding in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self.coding == "deflate":
            self._z = zlib.decompressobj()
        self._started = False
        #: A gzip member ended: bytes after it that are no member are ignored (urllib3 does the
        #: same; servers pad gzip bodies with zeros).
        self._member_done = False
        self._ignore_rest = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decoded bytes of ``data``, in pieces of at most :data:`CHUNK` bytes."""
        if self._z is None:
            yield data
            return
        if self._ignore_rest:
            return
        try:
            yield from self._inflate(data)
        except zlib.error as exc:
            if self.coding != "deflate" and self._member_done:
                self._ignore_rest = True  # trailing padding or garbage after a complete member
                return
            if self.coding == "deflate" and not self._started:  # raw deflate, no zlib header
                self._z = zlib.decompressobj(-zlib.MAX_WBITS)
                self._started = True  # a second failure is an error
                yield from self.feed(data)
                return
            raise requests.exceptions.ContentDecodingError(
                f"{self.coding} body could not be decoded: {exc}"
            ) from exc

    def _inflate(self, data: bytes) -> Iterator[bytes]:
        while data:
            out = self._z.decompress(data, CHUNK)
            self._started = True
            if out:
                yield out
            data = self._z.unconsumed_tail
            if self.coding != "deflate" and self._z.eof and self._z.unused_data:  # next member
                data = self._z.unused_data
                self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self._member_done = True

    def flush(self) -> bytes:
        """What the decoder still holds at the end of the body."""
        return self._z.flush() if self._z is not None and not self._ignore_rest else b""


def _too_large(max_bytes: int, what: str, status: int) -> BodyTooLarge:
    return BodyTooLarge(
        f"response body {what} the {_size(max_bytes)} cap; not read to its end", status
    )


def _size(n: int) -> str:
    return f"{n / 2**20:g} MiB" if n >= 2**20 else f"{n} bytes"


def bounded_request(
    send: Callable[[], requests.Response], seconds: float, max_bytes: int
) -> tuple[requests.Response, bytes]:
    """``(response, body)`` of ``send()`` (a ``requests`` call made with ``stream=True``, e.g.
    ``partial(session.get, url, stream=True)``), whole within ``seconds`` (the
    :class:`Deadline`) and its body read by :func:`read_body` under ``max_bytes``.

    Raises what ``requests`` raises, :class:`DeadlineExceeded` (also when the deadline cut the
    connection before the answer began) or :class:`BodyTooLarge`."""
    with Deadline(seconds) as deadline:
        try:
            resp = send()
        except requests.RequestException:
            deadline.check()  # the deadline cut the connection: say so
            raise
        return resp, read_body(resp, max_bytes, deadline)


def read_body(resp: requests.Response, max_bytes: int, deadline: Deadline) -> bytes:
    """The decoded body of ``resp`` (sent with ``stream=True``), at most ``max_bytes`` bytes
    (decoded, and as sent), read before ``deadline``. Always releases the connection.

    Raises :class:`BodyTooLarge` (the body is larger: only part of it was read),
    :class:`DeadlineExceeded`, ``requests.exceptions.ChunkedEncodingError`` (body cut off),
    ``requests.exceptions.ContentDecodingError`` (bad or unsupported encoding) or
    ``requests.ConnectionError`` (a read timed out)."""
    status = resp.status_code
    try:
        declared = resp.headers.get("Content-Length", "").strip()
        if declared.isascii() and declared.isdigit() and int(declared[:30]) > max_bytes:
            what = f"of {declared[:30]} bytes (Content-Length) is over"
            raise _too_large(max_bytes, what, status)
        decoder = _Decoder(resp.headers.get("Content-Encoding", ""))
        parts: list[bytes] = []
        raw = decoded = 0
        try:
            for data in resp.raw.stream(CHUNK, decode_content=False):
                deadline.check()
                raw += len(data)
                if raw > max_bytes:
                    raise _too_large(max_bytes, "as sent is over", status)
                for piece in decoder.feed(data):
                    decoded += len(piece)
                    if decoded > max_bytes:
                        raise _too_large(max_bytes, "decoded is over", status)
                    parts.append(piece)
            tail = decoder.flush()
        except requests.RequestException:  # ours (decoding, deadline): already the right kind
            raise
        except ReadTimeoutError as exc:
            deadline.check()
            raise requests.ConnectionError(exc) from exc
        except (ProtocolError, OSError, Urllib3Error) as exc:
            deadline.check()  # the deadline cut the socket: say so, not "connection reset"
            raise requests.exceptions.ChunkedEncodingError(exc) from exc
        if decoded + len(tail) > max_bytes:
            raise _too_large(max_bytes, "decoded is over", status)
        deadline.check()  # a body cut short by the deadline may look complete
        parts.append(tail)
        return b"".join(parts)
    finally:
        resp.close()
