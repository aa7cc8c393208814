"""One API exchange: session, auth, timeout, rate limit, retries, a journal event per attempt.

:meth:`ApiClient.get` sends ``GET <base_url><path>?format=json&...`` with the partner's credential
applied (query parameters and/or headers, see :class:`~rsu.fetcher.credentials.Credential`), and
journals **every attempt** before looking at it: a ``ResponseReceived`` with the exact body, or a
``RequestFailed`` with the exception class and a scrubbed message. Only then is the body parsed
(:func:`rsu.fetcher.shapes.parse`). After the last attempt it journals one ``FetchFailed``.

Retry rules (:class:`RetryPolicy`):

* retried with exponential backoff and jitter: connection errors and timeouts, HTTP 429 and 5xx,
  RunSignUp error 14 (throttled), and bodies that do not parse or have an unexpected shape
  (truncated JSON, HTML error pages); ``Retry-After`` is honoured, capped at
  ``RetryPolicy.retry_after_cap`` seconds;
* never retried: RunSignUp errors 6 (key authentication failed), 7 (permission denied) and every
  other code (3 invalid parameters, 201 race not found, 301 event not found, ...), HTTP 4xx
  other than 429, and exceptions that are not transport failures (``InvalidHeader``,
  ``InvalidURL``, ``MissingSchema`` ...: the same request would fail the same way again; only
  :data:`TRANSPORT_ERRORS` are retried).
* never followed nor retried: redirects (HTTP 3xx). Following one would re-send the credential
  (``X-RSU-API-SECRET``, ``api_key``/``api_secret`` in the query) to whatever host ``Location``
  names; the answer is journaled and the request fails with a message naming only that host
  (:func:`redirect_message`).

Circuit breaker (:class:`CircuitBreaker`, one per fetch run, shared by every partner's client,
since they all talk to the same API host): after ``RetryPolicy.unreachable_after`` consecutive
requests that each ended in a transport failure (no HTTP response at all), the remaining requests
of every partner are not sent: :meth:`ApiClient.get`
journals one ``FetchFailed`` (``attempts`` 0, ``error_msg`` starting with ``skipped:``) and
returns an :class:`Exchange` with ``skipped`` set. Requests already retrying stop retrying.

The retry loop is ours (not an ``HTTPAdapter(max_retries=Retry(...))``) because every attempt must
become a journal event; the backoff and ``Retry-After`` arithmetic is urllib3's ``Retry``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import RequestHistory, Retry

from rsu.journal import (
    FetchFailed,
    Journal,
    RequestFailed,
    ResponseReceived,
    redact_query,
    sha256_hex,
)

from .credentials import CallerRegistration, Credential
from .redact import scrub
from .report import RunStats, log
from .shapes import ApiErrorBody, PageInfo, ShapeError, parse

#: RunSignUp error codes worth retrying (14: "Request throttled.").
RETRYABLE_CODES = frozenset({14})
#: Codes that mean the credential itself is refused (never retried).
AUTH_CODES = frozenset({6, 7})
#: "Invalid API caller credentials.": the installation's caller registration is wrong (or, from
#: 2027-01-01, missing). Sent with HTTP 400; stops the whole run (every call would fail).
CALLER_CODE = 17
USER_AGENT = "rsu-fetcher/0.1 (+https://github.com/; python-requests)"
#: Exceptions that mean no (complete) HTTP response arrived: retried, and counted by the
#: circuit breaker. Every other exception fails the request after one attempt.
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """Retry limits. ``max_attempts`` counts the first try; delays are seconds.

    Delay before retry ``n`` (1-based) is ``backoff_factor * 2**n`` plus up to ``jitter``
    seconds of random jitter, at most ``backoff_max`` (urllib3 ``Retry`` arithmetic); a
    ``Retry-After`` header replaces it, capped at ``retry_after_cap``. ``unreachable_after``
    is the circuit breaker's threshold (consecutive requests of one credential that got no HTTP
    response; 0 = never give up early).
    """

    max_attempts: int = 6
    backoff_factor: float = 0.25
    backoff_max: float = 30.0
    jitter: float = 0.5
    retry_after_cap: float = 30.0
    unreachable_after: int = 3


@dataclass(frozen=True)
class Timeouts:
    """Per-request timeouts in seconds: TCP connect, and each socket read."""

    connect: float = 10.0
    read: float = 60.0


def backoff_seconds(retry_number: int, policy: RetryPolicy) -> float:
    """Delay (seconds) before retry ``retry_number`` (1 = the first retry), computed by urllib3's
    ``Retry.get_backoff_time`` with ``retry_number + 1`` consecutive errors in its history."""
    history = tuple(RequestHistory("GET", None, None, None, None) for _ in range(retry_number + 1))
    retry = Retry(
        total=None,
        backoff_factor=policy.backoff_factor,
        backoff_max=policy.backoff_max,
        backoff_jitter=policy.jitter,
        history=history,
    )
    return retry.get_backoff_time()


def retry_after_seconds(header: str | None, policy: RetryPolicy) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delta seconds or HTTP date), capped at
    ``policy.retry_after_cap``; ``None`` when absent or unparseable."""
    if not header:
        return None
    try:
        seconds = Retry(total=None).parse_retry_after(header)
    except InvalidHeader:
        return None
    return max(0.0, min(float(seconds), policy.retry_after_cap))


class RateLimiter:
    """At most ``max_rps`` request starts per second (evenly spaced); ``max_rps <= 0`` = no limit.

    Thread-safe; one per credential, shared by every thread using that credential.
    """

    def __init__(
        self,
        max_rps: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = 1.0 / max_rps if max_rps > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep

    def acquire(self) -> None:
        """Block until this caller may start a request (``clock``/``sleep``: seconds)."""
        if not self.interval:
            return
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            self._sleep(start - now)


class CircuitBreaker:
    """Counts consecutive requests (of every partner of a run: they share the API host) that got
    no HTTP response at all; open (requests are skipped) once ``threshold`` is reached
    (``threshold <= 0``: never). Any HTTP response closes the count again. Thread-safe."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self._failures = 0
        self._open = False
        self._halt_reason: str | None = None
        self._lock = threading.Lock()

    @property
    def open(self) -> bool:
        """True once the API is considered unreachable (or the run halted) for the rest of it."""
        return self._open

    @property
    def halt_reason(self) -> str | None:
        """Why :meth:`halt` stopped the run (secret-free), or ``None``."""
        return self._halt_reason

    def halt(self, reason: str) -> bool:
        """Open the breaker for a reason that concerns every request of the run (RunSignUp
        refused the caller registration); True when this call halted it."""
        with self._lock:
            if self._halt_reason is not None:
                return False
            self._halt_reason = reason
            self._open = True
            return True

    @property
    def message(self) -> str:
        """The ``error_msg`` of a skipped request."""
        if self._halt_reason is not None:
            return f"skipped: {self._halt_reason}"
        return (
            f"skipped: RunSignUp unreachable after {self.threshold} consecutive requests "
            "without an answer"
        )

    def record(self, no_response: bool) -> bool:
        """Record one finished request (``no_response``: it ended in a transport failure);
        returns True when this call opened the breaker."""
        with self._lock:
            if not no_response:
                self._failures = 0
                return False
            self._failures += 1
            if self._open or self.threshold <= 0 or self._failures < self.threshold:
                return False
            self._open = True
            return True


class SessionPool:
    """One ``requests.Session`` per thread (sessions are not thread-safe), closed together."""

    def __init__(self, pool_size: int = 4) -> None:
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()
        self._pool_size = pool_size

    def get(self) -> requests.Session:
        """The calling thread's session (created on first use)."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_maxsize=self._pool_size, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers["User-Agent"] = USER_AGENT
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def close(self) -> None:
        """Close every session created so far."""
        with self._lock:
            for s in self._sessions:
                s.close()
            self._sessions.clear()


@dataclass
class Exchange:
    """The outcome of :meth:`ApiClient.get` after all attempts.

    ``ok`` with ``info`` (the parsed page) and ``seq`` (journal seq of the good response), or not
    ok with ``error_code`` (RunSignUp code or ``None``), ``http_status`` (last status or ``None``)
    and ``error_msg`` (secret-free). ``attempts`` counts tries (1-based; 0 when ``skipped``: the
    circuit breaker was open and nothing was sent). ``server_time`` is the good response's HTTP
    ``Date`` as epoch seconds (``None`` when absent or unreadable).
    """

    ok: bool
    info: PageInfo | None = None
    seq: int | None = None
    attempts: int = 1
    error_code: int | None = None
    http_status: int | None = None
    error_msg: str = ""
    skipped: bool = False
    server_time: int | None = None


@dataclass
class RunContext:
    """What every exchange of one run shares: the journal, the ``run_id`` and run totals."""

    journal: Journal
    run_id: str | None
    stats: RunStats


def http_date_epoch(value: str | None) -> int | None:
    """An HTTP ``Date`` header (``"Mon, 30 Nov 2026 05:00:00 GMT"``) as epoch seconds (UTC), or
    ``None`` when absent or unreadable."""
    if not value:
        return None
    try:
        return int(parsedate_to_datetime(value).timestamp())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


#: Fragments of urllib3/requests messages and the short words an operator reads instead.
_BRIEF = (
    ("Connection refused", "connection refused"),
    ("Connection reset", "connection reset by the server"),
    ("RemoteDisconnected", "connection closed by the server without a response"),
    ("Read timed out", "no answer within the read timeout"),
    ("ConnectTimeout", "could not connect within the connect timeout"),
    ("timed out", "timed out"),
    ("NameResolutionError", "host name not found"),
    ("Name or service not known", "host name not found"),
    ("CERTIFICATE_VERIFY_FAILED", "TLS certificate not trusted"),
    ("IncompleteRead", "response cut off"),
)


def brief_transport_error(error_class: str, message: str) -> str:
    """A one-line operator message for a failed request (the journal keeps the full one):
    ``"ConnectionError: connection refused"`` instead of urllib3's pool/retry/URL chain."""
    for needle, text in _BRIEF:
        if needle in message:
            return f"{error_class}: {text}"
    return message[:200]


#: What a redirect target's host may look like to be named in a message (anything else from
#: the wire is replaced by a placeholder).
_HOST_TEXT = re.compile(r"[A-Za-z0-9.\-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]")


def redirect_host(location: str | None) -> str | None:
    """The ``host`` or ``host:port`` a ``Location`` header points to (lower case, IPv6 in
    brackets), or ``None`` when it names no host (a relative redirect, a missing header). Only
    the host is ever kept: never the userinfo, path or query (they may carry the credential).
    A host that is not plain host-name or IP text is returned as ``"an unreadable host"``."""
    if not location:
        return None
    try:
        parts = urlsplit(location.strip())
        host = parts.hostname
        port = parts.port
    except ValueError:
        return "an unreadable host"
    if not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    if not _HOST_TEXT.fullmatch(host):
        return "an unreadable host"
    return f"{host}:{port}" if port is not None else host


def redirect_message(status: int, location: str | None) -> str:
    """The failure message of a 3xx answer, which the fetcher never follows (``requests``
    would re-send the API key/secret headers and query to whatever host ``Location`` names):
    ``"HTTP 302 redirect to other.example:8443 not followed"``. Names only the host."""
    host = redirect_host(location)
    if host is None:
        where = "to the same host" if location else "without a Location"
        return f"HTTP {status} redirect {where} not followed"
    return f"HTTP {status} redirect to {host} not followed"


def _caller_error(endpoint: str, body: bytes) -> str | None:
    """The operator message when ``body`` (of a non-2xx answer) is RunSignUp error 17, else
    ``None``. Error 17 concerns the installation, not the timing partner's key."""
    try:
        info = parse(endpoint, body)
    except ShapeError:
        return None
    if not isinstance(info, ApiErrorBody) or info.code != CALLER_CODE:
        return None
    return (
        f"RunSignUp refused this installation's caller registration (error {CALLER_CODE}: "
        f"{info.message[:200]}); check it with 'rsu credentials caller --token ID.TOKEN' "
        "(the partner keys were not the problem); the run stopped asking"
    )


class ApiClient:
    """Exchanges of one timing partner (one credential) against ``base_url``.

    ``base_url`` is the site root (``https://runsignup.com``, ``https://test.runsignup.com`` or
    a simulator); paths start with ``/Rest/``. ``journal`` may be ``None`` only for checks that
    must leave no trace (``rsu credentials test``).
    """

    def __init__(
        self,
        base_url: str,
        credential: Credential,
        context: RunContext | None,
        sessions: SessionPool,
        limiter: RateLimiter,
        policy: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
        sleep: Callable[[float], None] = time.sleep,
        breaker: CircuitBreaker | None = None,
        caller: CallerRegistration | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.credential = credential
        self.caller = caller
        self.context = context
        self.sessions = sessions
        self.limiter = limiter
        self.policy = policy or RetryPolicy()
        self.timeouts = timeouts or Timeouts()
        self.sleep = sleep
        self._secrets = credential.secret_values() + (caller.secret_values() if caller else [])
        self.breaker = breaker or CircuitBreaker(self.policy.unreachable_after)

    def scrub(self, message: str) -> str:
        """``message`` without query strings or this credential's secrets."""
        return scrub(message, self._secrets)

    def _log_attempt(
        self, endpoint: str, path: str, attempt: int, final: bool, message: str
    ) -> None:
        log.log(
            logging.WARNING if final else logging.INFO,
            "partner %s %s %s attempt %d %s: %s",
            self.credential.timing_partner_id,
            endpoint,
            path,
            attempt,
            "gave up" if final else "will retry",
            message,
        )

    def _append(self, event: Any, body: bytes | None, race_id: int | None, event_id: int | None):
        ctx = self.context
        if ctx is None:
            return None
        return ctx.journal.append(
            event,
            body,
            run_id=ctx.run_id,
            timing_partner_id=self.credential.timing_partner_id,
            race_id=race_id,
            event_id=event_id,
        )

    def get(
        self,
        endpoint: str,
        path: str,
        params: dict[str, str],
        *,
        race_id: int | None = None,
        event_id: int | None = None,
        listing_id: str | None = None,
        page: int | None = None,
        cursor: int | None = None,
    ) -> Exchange:
        """``GET path`` with ``format=json`` + ``params`` (+ credential), retried per policy.

        ``endpoint`` is the stable name journaled and used to parse the body (``auth_check``,
        ``races``, ``race``, ``participants``, ``removed_participants``). ``race_id``/``event_id``
        set the journal row scope; ``listing_id``/``page``/``cursor`` tie pages together.
        Raises only :class:`rsu.journal.JournalError` (the journal refused a write).
        """
        query = redact_query({"format": "json", **params})
        send = {**query, **self.credential.query_params()}
        headers = self.credential.headers()
        if self.caller is not None:  # the installation's registration, on every call
            send.update(self.caller.query_params())
            headers = {**headers, **self.caller.headers()}
        url = self.base_url + path
        stats = self.context.stats if self.context else RunStats()
        if self.breaker.open:
            return self._skip(endpoint, path, query, race_id, event_id, stats)
        policy = self.policy
        last = Exchange(ok=False)
        last_seq: int | None = None
        no_response = False
        for attempt in range(1, policy.max_attempts + 1):
            final = attempt == policy.max_attempts
            if attempt > 1:
                if self.breaker.open:
                    break  # other requests of this partner found it unreachable meanwhile
                stats.add(retries=1)
            self.limiter.acquire()
            stats.add(requests=1)
            started = time.perf_counter()
            try:
                resp = self.sessions.get().get(
                    url,
                    params=send,
                    headers=headers,
                    timeout=(self.timeouts.connect, self.timeouts.read),
                    allow_redirects=False,  # never re-send the credential to another host
                )
                body = resp.content
            except Exception as exc:  # any failure to get a response is journaled, then judged
                no_response = isinstance(exc, TRANSPORT_ERRORS)
                final = final or not no_response
                message = self.scrub(f"{type(exc).__name__}: {exc}")[:500]
                last_seq = self._append(
                    RequestFailed(
                        endpoint=endpoint,
                        path=path,
                        query=query,
                        error_class=type(exc).__name__,
                        message=message,
                        attempt=attempt,
                        final=final,
                        listing_id=listing_id,
                        race_id=race_id,
                        event_id=event_id,
                    ),
                    None,
                    race_id,
                    event_id,
                )
                brief = brief_transport_error(type(exc).__name__, message)
                last = Exchange(ok=False, attempts=attempt, error_msg=brief)
                self._log_attempt(endpoint, path, attempt, final, brief)
                if final:
                    break
                self.sleep(backoff_seconds(attempt, policy))
                continue
            no_response = False
            elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
            sha = sha256_hex(body)
            if self.context is not None and not self.context.journal.has_body(sha):
                stats.add(new_bodies=1)
            stats.add(bytes_received=len(body))
            seq = self._append(
                ResponseReceived(
                    endpoint=endpoint,
                    path=path,
                    query=query,
                    status=resp.status_code,
                    elapsed_ms=elapsed_ms,
                    attempt=attempt,
                    content_type=resp.headers.get("Content-Type", ""),
                    body_sha256=sha,
                    body_size=len(body),
                    page=page,
                    cursor=cursor,
                    listing_id=listing_id,
                    race_id=race_id,
                    event_id=event_id,
                    server_date=resp.headers.get("Date", ""),
                ),
                body,
                race_id,
                event_id,
            )
            last_seq = seq
            status = resp.status_code
            retry_after = retry_after_seconds(resp.headers.get("Retry-After"), policy)
            if status == 429 or status >= 500:
                last = Exchange(
                    False, attempts=attempt, http_status=status, error_msg=f"HTTP {status}"
                )
                self._log_attempt(endpoint, path, attempt, final, last.error_msg)
                if not final:
                    self.sleep(
                        retry_after if retry_after is not None else backoff_seconds(attempt, policy)
                    )
                continue
            if 300 <= status < 400:  # not followed, not retried: see redirect_message
                last = Exchange(
                    False,
                    attempts=attempt,
                    http_status=status,
                    error_msg=self.scrub(redirect_message(status, resp.headers.get("Location"))),
                )
                self._log_attempt(endpoint, path, attempt, True, last.error_msg)
                break
            if not 200 <= status < 300:
                last = Exchange(
                    False, attempts=attempt, http_status=status, error_msg=f"HTTP {status}"
                )
                caller_error = _caller_error(endpoint, body)
                if caller_error is not None:
                    last = Exchange(
                        False,
                        attempts=attempt,
                        error_code=CALLER_CODE,
                        http_status=status,
                        error_msg=self.scrub(caller_error)[:500],
                    )
                    if self.breaker.halt(last.error_msg):
                        log.error("%s", last.error_msg)
                break
            try:
                info = parse(endpoint, body)
            except ShapeError as exc:
                last = Exchange(
                    False, attempts=attempt, http_status=status, error_msg=self.scrub(str(exc))
                )
                self._log_attempt(
                    endpoint, path, attempt, final or not exc.transient, last.error_msg
                )
                if not exc.transient:
                    break
                if not final:
                    self.sleep(backoff_seconds(attempt, policy))
                continue
            if isinstance(info, ApiErrorBody):
                last = Exchange(
                    False,
                    attempts=attempt,
                    error_code=info.code,
                    http_status=status,
                    error_msg=self.scrub(f"RunSignUp error {info.code}: {info.message}")[:500],
                )
                caller_error = _caller_error(endpoint, body)
                if caller_error is not None:  # error 17 with HTTP 200: the same meaning
                    last.error_msg = self.scrub(caller_error)[:500]
                    if self.breaker.halt(last.error_msg):
                        log.error("%s", last.error_msg)
                    break
                self._log_attempt(
                    endpoint,
                    path,
                    attempt,
                    final or info.code not in RETRYABLE_CODES,
                    last.error_msg,
                )
                if info.code in RETRYABLE_CODES and not final:
                    self.sleep(
                        retry_after if retry_after is not None else backoff_seconds(attempt, policy)
                    )
                    continue
                break
            self.breaker.record(False)
            return Exchange(
                True,
                info=info,
                seq=seq,
                attempts=attempt,
                http_status=status,
                server_time=http_date_epoch(resp.headers.get("Date")),
            )
        if self.breaker.record(no_response):
            log.warning(
                "RunSignUp unreachable after %d consecutive requests without an answer (last "
                "one for partner %s); the remaining requests of every partner are skipped",
                self.breaker.threshold,
                self.credential.timing_partner_id,
            )
        self._append(
            FetchFailed(
                endpoint=endpoint,
                path=path,
                query=query,
                error_code=last.error_code,
                http_status=last.http_status,
                error_msg=last.error_msg,
                attempts=last.attempts,
                last_seq=last_seq,
                race_id=race_id,
                event_id=event_id,
            ),
            None,
            race_id,
            event_id,
        )
        stats.add(fetch_failed=1)
        return last

    def _skip(
        self,
        endpoint: str,
        path: str,
        query: dict[str, str],
        race_id: int | None,
        event_id: int | None,
        stats: RunStats,
    ) -> Exchange:
        """Journal the ``FetchFailed`` of a request not sent because the breaker is open."""
        message = self.breaker.message
        self._append(
            FetchFailed(
                endpoint=endpoint,
                path=path,
                query=query,
                error_msg=message,
                attempts=0,
                race_id=race_id,
                event_id=event_id,
            ),
            None,
            race_id,
            event_id,
        )
        stats.add(fetch_failed=1, skipped_requests=1)
        return Exchange(False, attempts=0, error_msg=message, skipped=True)
