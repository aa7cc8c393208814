"""One API exchange: session, auth, timeout, rate limit, retries, a journal event per attempt.

:meth:`ApiClient.get` sends ``GET <base_url><path>?format=json&...`` with the partner's credential
applied (query parameters and/or headers, see :class:`~rsu.fetcher.credentials.Credential`), and
journals **every attempt** before looking at it: a ``ResponseReceived`` with the body, or a
``RequestFailed`` with the exception class and a scrubbed message. Only then is the body parsed
(:func:`rsu.fetcher.shapes.parse`). After the last attempt it journals one ``FetchFailed``.

Each step is one small function: :meth:`ApiClient._send` makes one attempt, bounded by
:class:`Timeouts` (connect and read timeouts, a ``deadline`` for the whole attempt and a
``max_body_bytes`` cap, see :mod:`rsu.fetcher.bounded`); :meth:`ApiClient._record_answer` /
:meth:`ApiClient._record_error` journal it; :func:`classify_answer` / :func:`classify_error`
turn it into a :class:`Verdict`; :meth:`RetryState.increment` decides the next attempt (an
immutable state, the shape of urllib3's ``Retry``).

Bodies are stored as received (decoded from ``gzip``/``deflate``), except that the known secret
values of this client (the partner's credential, the caller registration) are replaced by
``***`` first (:class:`~rsu.fetcher.redact.BodyScrubber`): a server that echoes the request back
must not put them into the journal. ``ResponseReceived.body_scrubbed`` counts the
replacements, and ``body_sha256``/``body_size`` are those of the stored body.

Retry rules (:class:`RetryPolicy`):

* retried with exponential backoff and jitter: connection errors and timeouts (the deadline
  included), HTTP 429 and 5xx, RunSignUp error 14 (throttled), and bodies that are not JSON
  (truncated JSON, HTML error pages); ``Retry-After`` is honoured, capped at
  ``RetryPolicy.retry_after_cap`` seconds;
* never retried: RunSignUp errors 6 (key authentication failed), 7 (permission denied) and every
  other code (3 invalid parameters, 201 race not found, 301 event not found, ...), HTTP 4xx
  other than 429, and exceptions that are not transport failures (``InvalidHeader``,
  ``InvalidURL``, ``MissingSchema`` ...: the same request would fail the same way again; only
  :data:`TRANSPORT_ERRORS` are retried), valid JSON of an unexpected shape, and a body over
  the size cap (``BodyTooLarge``: journaled as a ``RequestFailed``, the body not stored).
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import requests
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

from .bounded import (
    ACCEPT_ENCODING,
    DEFAULT_DEADLINE,
    DEFAULT_MAX_BODY_BYTES,
    BodyTooLarge,
    BoundedAdapter,
    bounded_request,
)
from .credentials import CallerRegistration, Credential
from .redact import BodyScrubber, scrub
from .report import RunStats, log
from .shapes import ApiErrorBody, PageInfo, ShapeError, parse

#: RunSignUp error codes worth retrying (14: "Request throttled.").
RETRYABLE_CODES = frozenset({14})
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
    is the circuit breaker's threshold (consecutive requests of the run, any partner, that got no
    HTTP response; 0 = never give up early).
    """

    max_attempts: int = 6
    backoff_factor: float = 0.25
    backoff_max: float = 30.0
    jitter: float = 0.5
    retry_after_cap: float = 30.0
    unreachable_after: int = 3


@dataclass(frozen=True)
class Timeouts:
    """Bounds of one request attempt: ``connect`` (TCP connect) and ``read`` (each socket read)
    timeouts and the ``deadline`` of the whole attempt, in seconds; ``max_body_bytes``, the
    largest body accepted (bytes, decoded), see :mod:`rsu.fetcher.bounded`."""

    connect: float = 10.0
    read: float = 60.0
    deadline: float = DEFAULT_DEADLINE
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES


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

    def release(self) -> None:
        """Called when a request's answer is in; nothing to do here (see
        :class:`rsu.fetcher.budget.PartnerBudget`, which also bounds requests in flight)."""


class CircuitBreaker:
    """Counts consecutive requests (of every partner of a run: they share the API host) that got
    no HTTP response at all; open (requests are skipped) once ``threshold`` is reached
    (``threshold <= 0``: never). Any HTTP response closes the count again. Thread-safe.

    :meth:`interrupt` opens it for good when the run is interrupted (Ctrl-C, SIGTERM): requests
    not yet sent are skipped, and a retry backoff waiting in :meth:`sleep` ends at once, so the
    run stops within one request attempt rather than after every retry of the requests in
    flight."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self._failures = 0
        self._open = False
        self._halt_reason: str | None = None
        self._interrupted = threading.Event()
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

    def interrupt(self) -> None:
        """Open the breaker because the run was interrupted; wakes every :meth:`sleep`."""
        with self._lock:
            self._open = True
        self._interrupted.set()

    @property
    def interrupted(self) -> bool:
        """True once :meth:`interrupt` was called."""
        return self._interrupted.is_set()

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (a retry backoff), or less when the run is interrupted meanwhile."""
        self._interrupted.wait(seconds)

    @property
    def message(self) -> str:
        """The ``error_msg`` of a skipped request."""
        if self._interrupted.is_set():
            return "skipped: the run was interrupted"
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
            adapter = BoundedAdapter(pool_maxsize=self._pool_size, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers["User-Agent"] = USER_AGENT
            session.headers["Accept-Encoding"] = ACCEPT_ENCODING
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
        f"RunSignUp refused this installation's caller registration, or requires one and none "
        f"is set (error {CALLER_CODE}: {info.message[:200]}); set or check it with "
        "'rsu credentials caller --token ID.TOKEN' (the partner keys were not the problem); "
        "the run stopped asking"
    )


def secret_values(credential: Credential, caller: CallerRegistration | None) -> list[str]:
    """The values to scrub from whatever a request of ``credential`` (with the installation's
    ``caller`` registration, if any) leads to: messages, logs, journaled bodies."""
    return credential.secret_values() + (caller.secret_values() if caller else [])


@dataclass(frozen=True)
class Call:
    """One request as the client sends and journals it: ``endpoint`` (stable name), ``path``,
    ``query`` (journaled: no credential), ``send`` (the query sent: with the credential),
    ``headers`` and the journal scope (``race_id``, ``event_id``, ``listing_id``, ``page``,
    ``cursor``)."""

    endpoint: str
    path: str
    query: dict[str, str]
    send: dict[str, str]
    headers: dict[str, str]
    race_id: int | None = None
    event_id: int | None = None
    listing_id: str | None = None
    page: int | None = None
    cursor: int | None = None


@dataclass(frozen=True)
class Answer:
    """One HTTP response read whole: ``status``, ``headers``, ``body`` (decoded, as received)
    and ``elapsed_ms`` (milliseconds from sending to the end of the body)."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    elapsed_ms: float


@dataclass(frozen=True)
class Verdict:
    """The classification of one attempt (:func:`classify_answer`, :func:`classify_error`).

    ``exchange`` is what :meth:`ApiClient.get` returns if this attempt is the last word;
    ``retry``: another attempt may cure it; ``retry_after``: seconds the server asked to wait
    (``None``: the policy's backoff); ``no_response``: no (complete) HTTP response arrived (for
    the circuit breaker); ``halt``: a message that stops the whole run (error 17)."""

    exchange: Exchange
    retry: bool = False
    retry_after: float | None = None
    no_response: bool = False
    halt: str | None = None


@dataclass(frozen=True)
class RetryState:
    """Where one request stands in its retries (immutable, like urllib3's ``Retry``):
    ``attempt`` is the 1-based attempt about to be made, ``delay`` the seconds to wait before
    it. :meth:`increment` gives the next state or ``None`` (give up)."""

    policy: RetryPolicy
    attempt: int = 1
    delay: float = 0.0

    def increment(self, verdict: Verdict) -> RetryState | None:
        """The state of the next attempt after ``verdict``, or ``None`` when the request gives
        up: the verdict is not worth a retry, or this was the last attempt allowed."""
        if not verdict.retry or self.attempt >= self.policy.max_attempts:
            return None
        delay = verdict.retry_after
        if delay is None:
            delay = backoff_seconds(self.attempt, self.policy)
        return RetryState(self.policy, self.attempt + 1, delay)


def classify_error(exc: Exception, attempt: int, message: str) -> Verdict:
    """The verdict on an attempt that raised ``exc`` (``message``: its scrubbed text): retried
    only when it is a transport failure (:data:`TRANSPORT_ERRORS`, the deadline included); a
    body over the size cap is never retried (it arrived: the server would send it again)."""
    no_response = isinstance(exc, TRANSPORT_ERRORS)
    return Verdict(
        Exchange(
            False,
            attempts=attempt,
            error_msg=brief_transport_error(type(exc).__name__, message),
            http_status=exc.http_status if isinstance(exc, BodyTooLarge) else None,
        ),
        retry=no_response,
        no_response=no_response,
    )


def classify_answer(endpoint: str, answer: Answer, attempt: int, policy: RetryPolicy) -> Verdict:
    """The verdict on an HTTP answer (messages not yet scrubbed): 2xx with a page is ok; 429/5xx
    and RunSignUp error 14 are retried (``Retry-After`` honoured); a body that is not JSON is
    retried; 3xx, other 4xx, other error codes and wrong shapes are not; error 17 halts."""
    status = answer.status
    fail = partial(Exchange, False, attempts=attempt, http_status=status)
    retry_after = retry_after_seconds(answer.headers.get("Retry-After"), policy)
    if status == 429 or status >= 500:
        return Verdict(fail(error_msg=f"HTTP {status}"), retry=True, retry_after=retry_after)
    if 300 <= status < 400:  # not followed, not retried: see redirect_message
        return Verdict(fail(error_msg=redirect_message(status, answer.headers.get("Location"))))
    if not 200 <= status < 300:
        caller_error = _caller_error(endpoint, answer.body)
        if caller_error is None:
            return Verdict(fail(error_msg=f"HTTP {status}"))
        return Verdict(fail(error_code=CALLER_CODE, error_msg=caller_error), halt=caller_error)
    try:
        info = parse(endpoint, answer.body)
    except ShapeError as exc:
        return Verdict(fail(error_msg=str(exc)), retry=exc.transient)
    if isinstance(info, ApiErrorBody):
        message = f"RunSignUp error {info.code}: {info.message}"
        if info.code == CALLER_CODE:  # error 17 with HTTP 200: the same meaning
            caller_error = _caller_error(endpoint, answer.body) or message
            return Verdict(fail(error_code=info.code, error_msg=caller_error), halt=caller_error)
        retry = info.code in RETRYABLE_CODES
        return Verdict(fail(error_code=info.code, error_msg=message), retry, retry_after)
    return Verdict(
        Exchange(
            True,
            info=info,
            attempts=attempt,
            http_status=status,
            server_time=http_date_epoch(answer.headers.get("Date")),
        )
    )


class ApiClient:
    """Exchanges of one timing partner (one credential) against ``base_url``.

    ``base_url`` is the site root (``https://runsignup.com``, ``https://test.runsignup.com`` or
    a simulator); paths start with ``/Rest/``. ``journal`` may be ``None`` only for checks that
    must leave no trace (``rsu credentials test``).

    :meth:`get` is a small loop over four steps, each its own method or function: send one
    attempt (:meth:`_send`), journal it (:meth:`_record_answer`/:meth:`_record_error`),
    classify it (:func:`classify_answer`/:func:`classify_error`) and decide the next step
    (:meth:`RetryState.increment`).
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
        sleep: Callable[[float], None] | None = None,
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
        self._secrets = secret_values(credential, caller)
        self._body_secrets = BodyScrubber(self._secrets)
        self.breaker = breaker or CircuitBreaker(self.policy.unreachable_after)
        #: The retry backoff (seconds); by default it ends early when the run is interrupted.
        self.sleep = self.breaker.sleep if sleep is None else sleep

    def scrub(self, message: str) -> str:
        """``message`` without query strings or this credential's secrets."""
        return scrub(message, self._secrets)

    @property
    def stats(self) -> RunStats:
        """The run totals (a throw-away :class:`RunStats` when there is no run)."""
        return self.context.stats if self.context else RunStats()

    def _log_attempt(self, call: Call, attempt: int, final: bool, message: str) -> None:
        log.log(
            logging.WARNING if final else logging.INFO,
            "partner %s %s %s attempt %d %s: %s",
            self.credential.timing_partner_id,
            call.endpoint,
            call.path,
            attempt,
            "gave up" if final else "will retry",
            message,
        )

    def _append(self, event: Any, body: bytes | None, call: Call) -> int | None:
        ctx = self.context
        if ctx is None:
            return None
        return ctx.journal.append(
            event,
            body,
            run_id=ctx.run_id,
            timing_partner_id=self.credential.timing_partner_id,
            race_id=call.race_id,
            event_id=call.event_id,
        )

    def call(
        self,
        endpoint: str,
        path: str,
        params: dict[str, str],
        **scope: Any,
    ) -> Call:
        """The :class:`Call` of ``GET path`` with ``format=json`` + ``params``, this credential
        and the caller registration (``scope``: ``race_id``, ``event_id``, ``listing_id``,
        ``page``, ``cursor``)."""
        query = redact_query({"format": "json", **params})
        send = {**query, **self.credential.query_params()}
        headers = self.credential.headers()
        if self.caller is not None:  # the installation's registration, on every call
            send.update(self.caller.query_params())
            headers = {**headers, **self.caller.headers()}
        return Call(endpoint, path, query, send, headers, **scope)

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
        call = self.call(
            endpoint,
            path,
            params,
            race_id=race_id,
            event_id=event_id,
            listing_id=listing_id,
            page=page,
            cursor=cursor,
        )
        if self.breaker.open:
            return self._skip(call)
        state: RetryState | None = RetryState(self.policy)
        while state is not None:
            if state.attempt > 1:
                self.sleep(state.delay)
                if self.breaker.interrupted:  # Ctrl-C or SIGTERM: the retry is not sent
                    return self._skip(call)
                if self.breaker.open:
                    break  # other requests found the API unreachable meanwhile
                self.stats.add(retries=1)
            self.limiter.acquire()
            if self.breaker.open:  # halted (or found unreachable) while this one waited its turn
                self.limiter.release()
                if state.attempt == 1:
                    return self._skip(call)
                break
            verdict, seq = self._attempt(call, state)
            if verdict.exchange.ok:
                self.breaker.record(False)
                return replace(verdict.exchange, seq=seq)
            following = state.increment(verdict)
            message = verdict.exchange.error_msg
            if verdict.halt is None:
                self._log_attempt(call, state.attempt, following is None, message)
            elif self.breaker.halt(message):  # one line for the whole run
                log.error("%s", message)
            state = following
        return self._give_up(call, verdict, seq)

    def _attempt(self, call: Call, state: RetryState) -> tuple[Verdict, int | None]:
        """Send ``call`` once (its request slot already acquired, released here), journal the
        attempt, then classify it: ``(verdict, seq)``."""
        try:
            answer = self._send(call)
        except Exception as exc:  # any failure to get a response is journaled, then judged
            self.limiter.release()  # no answer: the request slot is free
            message = self.scrub(f"{type(exc).__name__}: {exc}")[:500]
            verdict = classify_error(exc, state.attempt, message)
            final = state.increment(verdict) is None
            return verdict, self._record_error(call, state.attempt, exc, message, final)
        try:
            seq = self._record_answer(call, state.attempt, answer)
        finally:
            self.limiter.release()  # answered and journaled: the request slot is free
        verdict = classify_answer(call.endpoint, answer, state.attempt, self.policy)
        if not verdict.exchange.ok:
            scrubbed = self.scrub(verdict.exchange.error_msg)[:500]
            verdict = replace(verdict, exchange=replace(verdict.exchange, error_msg=scrubbed))
        return verdict, seq

    def _send(self, call: Call) -> Answer:
        """One HTTP attempt, bounded by the deadline and the body cap (:mod:`.bounded`).
        Raises what ``requests`` raises, :class:`DeadlineExceeded` or :class:`BodyTooLarge`."""
        self.stats.add(requests=1)
        started = time.perf_counter()
        t = self.timeouts
        send = partial(
            self.sessions.get().get,
            self.base_url + call.path,
            params=call.send,
            headers=call.headers,
            timeout=(t.connect, t.read),
            allow_redirects=False,  # never re-send the credential to another host
            stream=True,  # the body is read by read_body, bounded in size
        )
        resp, body = bounded_request(send, t.deadline, t.max_body_bytes)
        elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
        return Answer(resp.status_code, resp.headers, body, elapsed_ms)

    def _record_answer(self, call: Call, attempt: int, answer: Answer) -> int | None:
        """Journal ``answer`` (its body with this client's secrets scrubbed, see
        :class:`~rsu.fetcher.redact.BodyScrubber`); returns its seq."""
        body, scrubbed = self._body_secrets.scrub(answer.body)
        sha = sha256_hex(body)
        if self.context is not None and not self.context.journal.has_body(sha):
            self.stats.add(new_bodies=1)
        self.stats.add(bytes_received=len(answer.body))
        return self._append(
            ResponseReceived(
                endpoint=call.endpoint,
                path=call.path,
                query=call.query,
                status=answer.status,
                elapsed_ms=answer.elapsed_ms,
                attempt=attempt,
                # headers are the server's too: one that echoes the request may put a secret there
                content_type=self.scrub(answer.headers.get("Content-Type", "")),
                body_sha256=sha,
                body_size=len(body),
                page=call.page,
                cursor=call.cursor,
                listing_id=call.listing_id,
                race_id=call.race_id,
                event_id=call.event_id,
                server_date=self.scrub(answer.headers.get("Date", "")),
                body_scrubbed=scrubbed,
            ),
            body,
            call,
        )

    def _record_error(
        self, call: Call, attempt: int, exc: Exception, message: str, final: bool
    ) -> int | None:
        """Journal an attempt that got no usable response; returns its seq."""
        return self._append(
            RequestFailed(
                endpoint=call.endpoint,
                path=call.path,
                query=call.query,
                error_class=type(exc).__name__,
                message=message,
                attempt=attempt,
                final=final,
                listing_id=call.listing_id,
                race_id=call.race_id,
                event_id=call.event_id,
            ),
            None,
            call,
        )

    def _give_up(self, call: Call, verdict: Verdict, last_seq: int | None) -> Exchange:
        """Journal the ``FetchFailed`` of a request that failed after its attempts."""
        if self.breaker.record(verdict.no_response):
            log.warning(
                "RunSignUp unreachable after %d consecutive requests without an answer (last "
                "one for partner %s); the remaining requests of every partner are skipped",
                self.breaker.threshold,
                self.credential.timing_partner_id,
            )
        return self._fetch_failed(call, verdict.exchange, last_seq)

    def _skip(self, call: Call) -> Exchange:
        """Journal the ``FetchFailed`` of a request not sent because the breaker is open."""
        self.stats.add(skipped_requests=1)
        skipped = Exchange(False, attempts=0, error_msg=self.breaker.message, skipped=True)
        return self._fetch_failed(call, skipped, None)

    def _fetch_failed(self, call: Call, last: Exchange, last_seq: int | None) -> Exchange:
        """Journal one ``FetchFailed`` for ``call`` ending as ``last``; returns ``last``."""
        self._append(
            FetchFailed(
                endpoint=call.endpoint,
                path=call.path,
                query=call.query,
                error_code=last.error_code,
                http_status=last.http_status,
                error_msg=last.error_msg,
                attempts=last.attempts,
                last_seq=last_seq,
                race_id=call.race_id,
                event_id=call.event_id,
            ),
            None,
            call,
        )
        self.stats.add(fetch_failed=1)
        return last
