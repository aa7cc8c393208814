"""Fault injection: which (if any) fault a request gets, decided deterministically from a seed.

Each rate is a probability per request in ``[0, 1]``. The decision for the n-th request is a
pure function of ``(seed, fault kind, n)`` (and, for throttling, of the credential and that
credential's own request counter), so the same request sequence gets the same faults.

Kinds, in the order they are checked:
- ``drop_connection``: the socket is closed without any response;
- ``http_5xx``: HTTP 500/502/503/504 with an nginx-style HTML body;
- ``html_error``: HTTP 200 with an HTML maintenance page (``text/html``);
- ``throttle``: RunSignUp error 14 ``Request throttled.`` under HTTP 200, or, with
  ``throttle_http_429=True``, HTTP 429 with ``Retry-After: <retry_after_s>`` and the same body;
- ``truncated``: the normal body cut short (``Content-Length`` matches the cut body);
- ``latency_ms`` (+ up to ``latency_jitter_ms``): a delay before answering, in milliseconds.
"""

from __future__ import annotations

import hashlib
import struct
import threading
from dataclasses import dataclass, replace

FAULT_KINDS = ("drop_connection", "http_5xx", "html_error", "throttle", "truncated")


@dataclass(frozen=True)
class Faults:
    """Fault rates (probability per request, 0..1) and latency in milliseconds.

    ``throttle_every`` (if > 0) throttles every n-th request of each credential, on top of
    the random ``throttle`` rate, which makes throttling easy to assert in tests.
    """

    seed: int = 0
    http_5xx: float = 0.0
    throttle: float = 0.0
    throttle_http_429: bool = False
    retry_after_s: int = 1
    throttle_every: int = 0
    truncated: float = 0.0
    html_error: float = 0.0
    drop_connection: float = 0.0
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0

    def with_(self, **changes: object) -> Faults:
        """A copy with some fields replaced (``dataclasses.replace``)."""
        return replace(self, **changes)  # type: ignore[arg-type]


def unit(seed: int, kind: str, key: str, n: int) -> float:
    """A deterministic pseudo-random float in ``[0, 1)`` for (seed, kind, key, n)."""
    digest = hashlib.blake2b(f"{seed}|{kind}|{key}|{n}".encode(), digest_size=8).digest()
    return struct.unpack(">Q", digest)[0] / 2**64


@dataclass(frozen=True)
class Decision:
    """What to do with one request: ``kind`` is one of ``FAULT_KINDS`` or ``None``."""

    kind: str | None
    delay_s: float = 0.0
    status: int = 200
    cut_fraction: float = 0.5


class FaultPlan:
    """Thread-safe counters that turn a :class:`Faults` into per-request :class:`Decision` s."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._n = 0
        self._per_key: dict[str, int] = {}

    def decide(self, faults: Faults, credential_key: str | None) -> Decision:
        """Decide the fault for the next request made with ``credential_key`` (None: anonymous)."""
        key = credential_key or "-"
        with self._lock:
            self._n += 1
            n = self._n
            self._per_key[key] = k = self._per_key.get(key, 0) + 1
        s = faults.seed
        delay = 0.0
        if faults.latency_ms or faults.latency_jitter_ms:
            delay = (faults.latency_ms + faults.latency_jitter_ms * unit(s, "jitter", "", n)) / 1000
        if unit(s, "drop_connection", "", n) < faults.drop_connection:
            return Decision("drop_connection", delay)
        if unit(s, "http_5xx", "", n) < faults.http_5xx:
            status = (500, 502, 503, 504)[int(unit(s, "status", "", n) * 4)]
            return Decision("http_5xx", delay, status)
        if unit(s, "html_error", "", n) < faults.html_error:
            return Decision("html_error", delay)
        every = faults.throttle_every > 0 and k % faults.throttle_every == 0
        if every or unit(s, "throttle", key, k) < faults.throttle:
            return Decision("throttle", delay, 429 if faults.throttle_http_429 else 200)
        if unit(s, "truncated", "", n) < faults.truncated:
            return Decision("truncated", delay, 200, 0.1 + 0.8 * unit(s, "cut", "", n))
        return Decision(None, delay)


HTML_5XX = (
    b"<html>\r\n<head><title>%d Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>%d Bad Gateway</h1></center>\r\n"
    b"<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)

HTML_MAINTENANCE = (
    b"<!DOCTYPE html>\n<html><head><title>RunSignUp - Maintenance</title></head>"
    b"<body><h1>We'll be right back</h1><p>RunSignUp is undergoing scheduled maintenance.</p>"
    b"</body></html>\n"
)
