"""The fetcher's entry point: :func:`run_fetch` (one fetch run) and :func:`check_credentials`.

Both are plain Python (no typer), for ``rsu fetch``, ``rsu credentials test``, ``rsu sync`` and
``rsu demo``.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from rsu.journal import Journal, RunFinished, RunStarted, head_json, open_db

from .bounded import DEFAULT_DEADLINE, DEFAULT_MAX_BODY_BYTES
from .cadence import DEFAULT_CADENCE, Cadence
from .client import (
    CALLER_CODE,
    ApiClient,
    RateLimiter,
    RetryPolicy,
    RunContext,
    SessionPool,
    Timeouts,
)
from .credentials import (
    CallerRegistration,
    Credential,
    load_caller_registration,
    load_credentials,
)
from .oauth import refresh_due_tokens
from .report import (
    NullProgress,
    Progress,
    RunStats,
    SummaryInputs,
    build_summary,
    failure_lines,
    log,
    log_file,
    output_error,
    write_summary,
)
from .walk import Walker, WalkSettings

DEFAULT_BASE_URL = "https://runsignup.com"
#: Calls one API caller may have in flight at once (RunSignUp's 2027 rules, as integrators read
#: the announcement; ``runsignup-api.md`` section 5).
CALLER_MAX_IN_FLIGHT = 2
ADD_HINT = (
    "add one with: rsu credentials add --partner ID --api-key KEY "
    "(the secret is then prompted, or read from RSU_API_SECRET)"
)


class FetchUsageError(ValueError):
    """The run cannot start as asked (no credentials, unknown partner ...): exit code 2."""


class Terminated(KeyboardInterrupt):
    """A termination signal (SIGTERM: systemd stopping the service), raised in the main thread
    by the CLI's handler. A ``KeyboardInterrupt``, so a run handles it like Ctrl-C; its argument
    is the signal's name."""


@dataclass
class FetchOptions:
    """Options of one fetch run. Durations are seconds; dates are ``datetime.date`` (UTC).

    Scope: ``partner_ids`` (empty = every partner with credentials), ``race_ids`` (empty = every
    race; when given, the date window is dropped so the races are found whatever their date),
    ``test`` (first partner only, as in the original system).
    Races window: races dated from ``today - days_back`` to ``today + days_ahead`` (default 30 days
    back, 365 ahead; ``today`` defaults to the current UTC date); ``start_date``/``end_date``
    replace either end; ``all_races`` sends no window.
    Listings: ``full`` forces complete listings; otherwise a listing is incremental from the
    journal's cursor, and complete when the last complete one is older than ``full_every``
    (default 24 h). ``overlap_seconds`` re-reads that many seconds before the cursor (see
    :mod:`rsu.fetcher.cursor`). ``page_size`` <= 2500 registrations per page; ``races_page_size``
    <= 1000 races per page. ``events_per_call``: events of a race asked for in one listing call
    (``event_id`` as a comma list; 1 = one call per event).
    Transport: ``concurrency`` worker threads, each with at most one request in flight, so at
    most ``concurrency`` requests are in flight across the whole run; RunSignUp limits a caller
    to :data:`CALLER_MAX_IN_FLIGHT` (2), and more needs ``beyond_caller_limit``;
    ``max_rps`` requests per second per credential
    (<= 0: unlimited); timeouts and retry policy (``max_attempts`` includes the first try);
    ``deadline``: seconds one attempt may take in all (a server trickling its answer is cut
    off), ``max_body_bytes``: the largest body accepted, decoded (see
    :mod:`rsu.fetcher.bounded`);
    ``unreachable_after`` consecutive requests of one partner without any HTTP response make
    the rest of that partner's requests be skipped (0: never).
    Cadence (:mod:`rsu.fetcher.cadence`): a race gets requests beyond the races listing only
    when it is due by ``cadence`` (default :data:`~rsu.fetcher.cadence.DEFAULT_CADENCE`);
    ``ignore_cadence`` (``--all``), ``full`` and ``race_ids`` walk every race in scope. ``now``
    (epoch seconds, UTC; default the run's start) is the clock of the cadence and ``full_every``
    decisions; tests set it.
    Output: ``log_file`` and ``summary_file`` (``None`` = not written).
    """

    base_url: str = DEFAULT_BASE_URL
    partner_ids: tuple[int, ...] = ()
    race_ids: tuple[int, ...] = ()
    test: bool = False
    full: bool = False
    full_every: float = 24 * 3600.0
    all_races: bool = False
    days_back: int = 30
    days_ahead: int = 365
    today: date | None = None
    start_date: date | None = None
    end_date: date | None = None
    overlap_seconds: int = 10
    page_size: int = 2500
    races_page_size: int = 1000
    concurrency: int = 2
    events_per_call: int = 100
    beyond_caller_limit: bool = False
    max_rps: float = 5.0
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    deadline: float = DEFAULT_DEADLINE
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_attempts: int = 6
    backoff_factor: float = 0.25
    backoff_max: float = 30.0
    backoff_jitter: float = 0.5
    retry_after_cap: float = 30.0
    unreachable_after: int = 3
    log_file: Path | None = Path("runsignup_sync.log")
    summary_file: Path | None = Path("runsignup_sync_summary.json")
    cadence: Cadence = DEFAULT_CADENCE
    ignore_cadence: bool = False
    now: float | None = None

    def validate(self) -> None:
        """Raise :class:`FetchUsageError` for out-of-range values, and for a ``base_url`` that
        may carry a secret (userinfo ``user:pw@``, a query or fragment: they would be journaled and
        logged); that message never echoes it."""
        if not 1 <= self.page_size <= 2500:
            raise FetchUsageError("page size must be between 1 and 2500 (RunSignUp's maximum)")
        if not 1 <= self.races_page_size <= 1000:
            raise FetchUsageError("races page size must be between 1 and 1000")
        if self.concurrency < 1:
            raise FetchUsageError("concurrency must be at least 1")
        if self.concurrency > CALLER_MAX_IN_FLIGHT and not self.beyond_caller_limit:
            raise FetchUsageError(
                f"--concurrency {self.concurrency} exceeds RunSignUp's limit of "
                f"{CALLER_MAX_IN_FLIGHT} calls in flight per caller; RunSignUp throttles or "
                "refuses the calls beyond it. Add --beyond-caller-limit only for a server "
                "that allows more (a local simulator, a benchmark)"
            )
        if not 1 <= self.events_per_call <= 500:
            raise FetchUsageError("events per call must be between 1 and 500")
        if self.max_attempts < 1:
            raise FetchUsageError("max attempts must be at least 1")
        if self.connect_timeout <= 0 or self.read_timeout <= 0 or self.deadline <= 0:
            raise FetchUsageError("timeouts and the deadline must be positive")
        if self.max_body_bytes < 1:
            raise FetchUsageError("the body size cap must be at least 1 byte")
        start, end = self.window()
        if start and end and start > end:
            raise FetchUsageError(f"start date {start} is after end date {end}")
        check_base_url(self.base_url)
        for what, path in (("--log-file", self.log_file), ("--summary-file", self.summary_file)):
            if path is None:
                continue
            if path.is_dir():
                raise FetchUsageError(f"{what} {path} is a directory; give a file name")
            if not path.parent.is_dir():
                raise FetchUsageError(f"{what} {path}: folder {path.parent} does not exist")

    def cadence_in_effect(self) -> Cadence | None:
        """The cadence that decides which races are walked, or ``None`` when every race in scope
        is (``ignore_cadence``, ``full`` or given ``race_ids``)."""
        if self.ignore_cadence or self.full or self.race_ids:
            return None
        return self.cadence

    def retry_policy(self) -> RetryPolicy:
        """The :class:`RetryPolicy` these options describe."""
        return RetryPolicy(
            max_attempts=self.max_attempts,
            backoff_factor=self.backoff_factor,
            backoff_max=self.backoff_max,
            jitter=self.backoff_jitter,
            retry_after_cap=self.retry_after_cap,
            unreachable_after=self.unreachable_after,
        )

    def timeouts(self) -> Timeouts:
        """The per-attempt bounds (:class:`~rsu.fetcher.client.Timeouts`) these options set."""
        return Timeouts(self.connect_timeout, self.read_timeout, self.deadline, self.max_body_bytes)

    def window(self) -> tuple[str | None, str | None]:
        """``(start_date, end_date)`` as ``YYYY-MM-DD`` for ``/Rest/races``, or ``(None, None)``."""
        if self.all_races or self.race_ids:
            return None, None
        today = self.today or datetime.now(UTC).date()
        start = self.start_date or today - timedelta(days=self.days_back)
        end = self.end_date or today + timedelta(days=self.days_ahead)
        return start.isoformat(), end.isoformat()


def check_base_url(base_url: str) -> None:
    """Raise :class:`FetchUsageError` unless ``base_url`` is a plain ``http(s)://host[:port]
    [/path]`` API root. A user name, password, query or fragment is refused first, with a
    message that never echoes the URL (it may carry a secret that would be journaled in
    ``RunStarted.base_url``, logged, or sent to the host)."""
    # any "@": a password holding "/" ("https://user:p/ss@host") ends a URL parser's authority
    # before the "@", and an API root never needs one
    if re.search(r"[@?#]", base_url):
        raise FetchUsageError(
            "--base-url must be the API root only, without a user name, password, query or "
            f"fragment ('@', '?', '#'), e.g. {DEFAULT_BASE_URL}; keys and secrets are stored "
            "with 'rsu credentials add' and 'rsu credentials caller'"
        )
    if not re.fullmatch(r"https?://[^/\s?#]+(/[^\s?#]*)?", base_url):
        raise FetchUsageError(
            f"--base-url {base_url!r} is not an http(s) URL such as "
            f"{DEFAULT_BASE_URL} (the API root, without /Rest)"
        )
    if re.search(r"/rest/?$", base_url, re.IGNORECASE):
        raise FetchUsageError(
            f"--base-url {base_url!r} ends in /Rest; give the API root without it, "
            f"e.g. {re.sub(r'/rest/?$', '', base_url, flags=re.IGNORECASE)}"
        )


@dataclass
class FetchResult:
    """Outcome of :func:`run_fetch`: ``exit_code`` 0 (all went well) or 1 (a partner, race or
    event failed); ``counts`` the run totals (requests, retries, bytes_received, new_bodies,
    races, events, participants, ...); ``failures`` one line each; ``summary`` the document
    written to the summary file; ``warnings`` operator messages that are not failures (OAuth
    token refreshes done or failed)."""

    run_id: str
    exit_code: int
    status: str
    counts: dict[str, int]
    failures: list[str]
    duration_seconds: float
    summary: dict[str, object] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def tool_version() -> str:
    """The installed ``rsu`` version (``"0+unknown"`` when not installed)."""
    try:
        return version("rsu")
    except PackageNotFoundError:  # pragma: no cover
        return "0+unknown"


def select_credentials(db_path: str | Path, options: FetchOptions) -> list[Credential]:
    """The credentials in scope. Raises :class:`FetchUsageError` when none are configured or a
    requested partner has none."""
    db = open_db(db_path)
    try:
        every = load_credentials(db)
    finally:
        db.conn.close()
    if not every:
        raise FetchUsageError(f"no RunSignUp credentials configured in {db_path}; {ADD_HINT}")
    creds = every
    if options.partner_ids:
        known = {c.timing_partner_id for c in every}
        missing = sorted(set(options.partner_ids) - known)
        if missing:
            raise FetchUsageError(
                f"no credentials for partner(s) {', '.join(map(str, missing))}; {ADD_HINT}"
            )
        creds = [c for c in every if c.timing_partner_id in set(options.partner_ids)]
    if options.test:
        creds = creds[:1]
    return creds


def load_caller(db_path: str | Path) -> CallerRegistration | None:
    """The installation's caller registration stored beside ``db_path``, or ``None``."""
    db = open_db(db_path)
    try:
        return load_caller_registration(db)
    finally:
        db.conn.close()


def run_fetch(
    db_path: str | Path, options: FetchOptions, progress: Progress | None = None
) -> FetchResult:
    """Fetch every partner in scope from the RunSignUp API at ``options.base_url`` into the journal
    in ``db_path`` (see :mod:`rsu.fetcher.walk` for the requests made).

    Journals ``RunStarted``, every attempt, one ``ListingCompleted`` per (event, endpoint), one
    ``FetchFailed`` per abandoned request and ``RunFinished``; writes the log and summary files.
    Raises :class:`FetchUsageError` (exit 2) before anything is journaled when the run cannot
    start, and :class:`rsu.journal.JournalError` when the journal refuses a write.
    """
    options.validate()
    creds = select_credentials(db_path, options)
    caller = load_caller(db_path)
    progress = progress or NullProgress()
    started = time.time()
    started_mono = time.monotonic()
    run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    start_date, end_date = options.window()
    mode = "full" if options.full else "incremental"
    stats = RunStats()
    with log_file(options.log_file) as logged, Journal.open(db_path) as journal:
        scope = {
            "partner_ids": [c.timing_partner_id for c in creds],
            "race_ids": list(options.race_ids),
            "test": options.test,
            "all_races": options.all_races,
            "start_date": start_date,
            "end_date": end_date,
            "full_every": options.full_every,
            "overlap_seconds": options.overlap_seconds,
            "page_size": options.page_size,
            "concurrency": options.concurrency,
            "cadence": str(options.cadence_in_effect() or "off"),
            "caller_registration": "set" if caller is not None else "unset",
        }
        journal.append(
            RunStarted(
                mode=mode, scope=scope, tool_version=tool_version(), base_url=options.base_url
            ),
            run_id=run_id,
        )
        log.info(
            "run %s started: %s, %d partner(s), base %s, races %s..%s",
            run_id,
            mode,
            len(creds),
            options.base_url,
            start_date or "any",
            end_date or "any",
        )
        if caller is None:
            log.warning("%s", CALLER_WARNING)
        creds, warnings = refresh_tokens(db_path, creds, options)
        for line in warnings:
            log.warning("%s", line)
        settings = WalkSettings(
            base_url=options.base_url,
            race_ids=tuple(options.race_ids),
            start_date=start_date,
            end_date=end_date,
            full=options.full,
            full_every=options.full_every,
            overlap_seconds=options.overlap_seconds,
            page_size=options.page_size,
            races_page_size=options.races_page_size,
            max_rps=options.max_rps,
            policy=options.retry_policy(),
            timeouts=options.timeouts(),
            direct_races=len(creds) == 1,
            cadence=options.cadence_in_effect(),
            caller=caller,
            events_per_call=options.events_per_call,
        )
        sessions = SessionPool(pool_size=max(4, options.concurrency))
        now = started if options.now is None else options.now
        walker = Walker(settings, RunContext(journal, run_id, stats), sessions, progress, now)
        interrupted: KeyboardInterrupt | None = None
        try:
            walker.run(creds, options.concurrency)
        except KeyboardInterrupt as exc:
            interrupted = exc
        finally:
            sessions.close()
        duration = time.monotonic() - started_mono
        warnings = [*warnings, *stats.warnings]
        failures = failure_lines(stats.failures)
        halt = walker.breaker.halt_reason
        if halt is not None:  # one line for the installation, not one per partner and race
            failures = [
                halt,
                *failure_lines(
                    [f for f in stats.failures if not f.skipped and f.error_code != CALLER_CODE]
                ),
            ]
        if logged.error:  # a full disk for the log stops nothing, but the run is not ok
            failures.append(logged.error)
        if isinstance(interrupted, Terminated):
            failures.append(f"stopped by {interrupted} (the service was stopped)")
        elif interrupted:
            failures.append("interrupted by the operator")
        status = "interrupted" if interrupted else "failed" if failures else "ok"
        exit_code = 1 if failures else 0
        if interrupted:  # the shell's codes for SIGINT and SIGTERM
            exit_code = 143 if isinstance(interrupted, Terminated) else 130
        counts = stats.snapshot()
        counts["failed_partners"] = len(
            {f.timing_partner_id for f in stats.failures if f.timing_partner_id is not None}
        )
        counts["failed_races"] = len(
            {(f.timing_partner_id, f.race_id) for f in stats.failures if f.level == "race"}
        )
        counts["failed_events"] = len(
            {(f.race_id, f.event_id) for f in stats.failures if f.level == "event"}
        )
        journal.append(
            RunFinished(
                status=status,
                counts=counts,
                failures=failures[:1000],
                duration_seconds=round(duration, 3),
            ),
            run_id=run_id,
        )
        # an interrupted run synced only the partners whose walk ended before the interrupt
        partner_ids = {c.timing_partner_id for c in creds}
        synced_partners = (walker.finished_partners if interrupted else partner_ids) - {
            f.timing_partner_id for f in stats.failures
        }
        summary = build_summary(
            SummaryInputs(
                run_id=run_id,
                sync_time=datetime.fromtimestamp(started, UTC).isoformat(),
                duration_seconds=duration,
                mode=mode,
                base_url=options.base_url,
                timing_partners_synced=len(synced_partners),
                status=status,
                exit_code=exit_code,
                # the head (seq, hash) kept outside the database: rsu journal verify --expect-head
                extra={"journal_head": head_json(journal.head())},
            ),
            stats,
        )
        if interrupted:
            summary["interrupted"] = True
        if options.summary_file is not None:
            try:
                write_summary(options.summary_file, summary)
            except OSError as exc:
                failures.append(output_error("summary", options.summary_file, exc))
                log.error("%s", failures[-1])
        log.info(
            "run %s finished: %s in %.1f s; %d races, %d events, %d participants, %d requests, "
            "%d retries, %d new bodies, %d failures",
            run_id,
            status,
            duration,
            counts["races"],
            counts["events"],
            counts["participants"],
            counts["requests"],
            counts["retries"],
            counts["new_bodies"],
            len(failures),
        )
    if interrupted:
        raise interrupted
    if logged.error and logged.error not in failures:  # the last lines did not fit either
        failures.append(logged.error)
    if failures and status == "ok":
        status, exit_code = "failed", 1
    return FetchResult(run_id, exit_code, status, counts, failures, duration, summary, warnings)


def refresh_tokens(
    db_path: str | Path, creds: list[Credential], options: FetchOptions
) -> tuple[list[Credential], list[str]]:
    """Refresh the due OAuth bearer tokens of ``creds`` before the run (see
    :func:`rsu.fetcher.oauth.refresh_due_tokens`); returns the credentials to use and one
    operator message per refresh done or failed. The refresh answers hold tokens, so they are
    stored in the secrets file only, never journaled."""
    if not any(c.auth_kind == "bearer" for c in creds):
        return creds, []
    db = open_db(db_path)
    try:
        return refresh_due_tokens(db, creds, options.base_url, now=options.now)
    finally:
        db.conn.close()


@dataclass
class CheckResult:
    """Outcome of one partner's access check: ``ok``, or ``error_code``/``message``;
    ``credential`` names which credential RunSignUp refused (see :func:`explain_refusal`)."""

    timing_partner_id: int
    auth_kind: str
    ok: bool
    error_code: int | None = None
    message: str = ""
    credential: str = ""


#: What each auth kind is called in operator messages.
CREDENTIAL_NAMES = {
    "api_key": "partner key",
    "rsu_api_key": "v2 key",
    "bearer": "OAuth token",
}
CALLER_WARNING = (
    "no caller registration is set: RunSignUp rejects calls without one from 2027-01-01; "
    "set it with: rsu credentials caller --token ID.TOKEN (the secret from RSU_API_REG_SECRET)"
)


def explain_refusal(
    timing_partner_id: int, auth_kind: str, error_code: int | None, message: str
) -> tuple[str, str]:
    """``(credential, one-line message)`` for a failed access check: which credential RunSignUp
    refused (``"caller registration"``, ``"partner key"``, ``"v2 key"``, ``"OAuth token"``, or
    ``""`` when the failure names none, e.g. no answer) and what to do. Error codes are
    RunSignUp's (``runsignup-api.md`` sections 2 and 5): 17 the caller registration, 6 the key
    or token, 7 no access."""
    pid = timing_partner_id
    name = CREDENTIAL_NAMES.get(auth_kind, auth_kind)
    if error_code == CALLER_CODE:
        return "caller registration", (
            "RunSignUp refused this installation's caller registration, or requires one and "
            "none is set (error 17: Invalid API caller credentials); set it with: "
            "rsu credentials caller --token ID.TOKEN"
        )
    if error_code == 6:
        hint = {
            "api_key": f"check the api_key and api_secret: rsu credentials add --partner {pid} "
            "--api-key KEY",
            "rsu_api_key": f"check the v2 key and its X-RSU-API-SECRET: rsu credentials add "
            f"--partner {pid} --auth rsu_api_key --api-key KEY",
            "bearer": f"the token expired or was revoked: re-authorise partner {pid} and add "
            "the new token",
        }.get(auth_kind, "check it")
        return name, f"RunSignUp refused the {name} of partner {pid} (error 6): {hint}"
    if error_code == 7:
        return name, (
            f"the {name} of partner {pid} was accepted but has no access (error 7: Permission "
            "Denied): is it a timing partner key?"
        )
    return "", message


def check_credentials(
    db_path: str | Path,
    base_url: str = DEFAULT_BASE_URL,
    partner_ids: tuple[int, ...] = (),
    timeouts: Timeouts | None = None,
    policy: RetryPolicy | None = None,
) -> list[CheckResult]:
    """Check each partner's access with ``GET /Rest/races?results_per_page=1&only_partner_races=T``
    (not journaled). Raises :class:`FetchUsageError` when no credentials are configured or
    ``base_url`` is not a plain API root (:func:`check_base_url`), before anything is sent."""
    check_base_url(base_url)
    creds = select_credentials(db_path, FetchOptions(partner_ids=partner_ids))
    caller = load_caller(db_path)
    sessions = SessionPool()
    results = []
    try:
        for cred in creds:
            client = ApiClient(
                base_url,
                cred,
                None,
                sessions,
                RateLimiter(0),
                policy or RetryPolicy(max_attempts=3),
                timeouts or Timeouts(),
                caller=caller,
            )
            ex = client.get(
                "auth_check", "/Rest/races", {"results_per_page": "1", "only_partner_races": "T"}
            )
            which, message = (
                ("", "")
                if ex.ok
                else explain_refusal(
                    cred.timing_partner_id, cred.auth_kind, ex.error_code, ex.error_msg
                )
            )
            results.append(
                CheckResult(
                    cred.timing_partner_id, cred.auth_kind, ex.ok, ex.error_code, message, which
                )
            )
    finally:
        sessions.close()
    return results
