"""Run totals, failures, the operator log file, the JSON summary and progress reporting.

Nothing here ever sees a secret: messages are scrubbed by the client before they get here, and
URLs are never logged with their query.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import stat
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

from rsu.journal.files import write_atomically
from rsu.journal.printable import printable

#: The fetcher's logger; the log file handler is attached here only (never to the root logger,
#: so urllib3's debug lines, which carry full URLs, can never reach the file).
log = logging.getLogger("rsu.fetcher")

COUNTERS = (
    "requests",
    "retries",
    "bytes_received",
    "new_bodies",
    "fetch_failed",
    "skipped_requests",
    "pages",
    "races",
    "events",
    "participants",
    "removed_participants",
    "listings",
    "complete_listings",
    "incremental_listings",
    "races_not_due",
)


def run_mode(requested: str, counts: dict[str, int]) -> str:
    """The summary's ``mode``: what the run read, from its listing counters (see
    :data:`COUNTERS`). ``"full"`` when no listing read from a cursor (the first run of a
    database, ``--full``), ``"incremental"`` when at least one did (``incremental_listings`` of
    ``listings``: an empty listing has no cursor yet, a ``--full-every`` read is whole); the
    ``requested`` mode (``"full"`` for ``--full``, else ``"incremental"``) when no listing was
    read at all."""
    if counts["listings"] == 0:
        return requested
    return "incremental" if counts["incremental_listings"] else "full"


@dataclass(frozen=True)
class Failure:
    """One failed scope. ``level`` is ``"partner"``, ``"race"`` or ``"event"``; ``endpoint`` the
    request that failed; ``error_code`` the RunSignUp code (``None`` for HTTP/transport errors);
    ``message`` secret-free. ``timing_partner_id`` is ``None`` for a failure of no partner (a
    requested race no partner listed): its line is ``message`` alone. ``skipped``: the request
    was not sent (the partner's circuit breaker was open); such failures are reported grouped
    per partner (:func:`failure_lines`)."""

    level: str
    timing_partner_id: int | None
    race_id: int | None = None
    event_id: int | None = None
    endpoint: str = ""
    error_code: int | None = None
    message: str = ""
    skipped: bool = False

    def line(self) -> str:
        """One human-readable line, e.g. ``partner 101 race 12 event 7: participants: ...``."""
        if self.timing_partner_id is None:
            return self.message
        scope = f"partner {self.timing_partner_id}"
        if self.race_id is not None:
            scope += f" race {self.race_id}"
        if self.event_id is not None:
            scope += f" event {self.event_id}"
        code = f" (code {self.error_code})" if self.error_code is not None else ""
        return f"{scope}: {self.endpoint}{code}: {self.message}"


#: How a skipped request is counted in its partner's grouped line.
_SKIPPED_NOUNS = {
    "auth_check": ("auth check", "auth checks"),
    "races": ("races listing page", "races listing pages"),
    "race": ("race", "races"),
    "participants": ("event listing", "event listings"),
    "removed_participants": ("event listing", "event listings"),
}


def _plural(n: int, nouns: tuple[str, str]) -> str:
    return f"{n} {nouns[0] if n == 1 else nouns[1]}"


def failure_lines(failures: list[Failure]) -> list[str]:
    """One line per failure, except skipped ones (circuit breaker): one line per partner, where
    its first skipped failure was, e.g. ``partner 120: skipped 9 requests (2 races, 7 event
    listings): RunSignUp unreachable after 3 consecutive requests without an answer``."""
    skipped: dict[int | None, list[Failure]] = {}
    for f in failures:
        if f.skipped:
            skipped.setdefault(f.timing_partner_id, []).append(f)
    lines: list[str] = []
    for f in failures:
        if not f.skipped:
            lines.append(f.line())
            continue
        group = skipped.pop(f.timing_partner_id, None)
        if group is None:
            continue  # already reported with its partner's first skipped failure
        by_noun: dict[tuple[str, str], int] = {}
        for g in group:
            nouns = _SKIPPED_NOUNS.get(g.endpoint, (g.endpoint, g.endpoint))
            by_noun[nouns] = by_noun.get(nouns, 0) + 1
        detail = ", ".join(_plural(n, nouns) for nouns, n in by_noun.items())
        reason = f.message.removeprefix("skipped: ")
        requests = _plural(len(group), ("request", "requests"))
        lines.append(f"partner {f.timing_partner_id}: skipped {requests} ({detail}): {reason}")
    return lines


class RunStats:
    """Thread-safe run totals (see :data:`COUNTERS`) and the list of :class:`Failure`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.failures: list[Failure] = []
        self.warnings: list[str] = []

    def add(self, **deltas: int) -> None:
        """Add ``deltas`` to the named counters."""
        with self._lock:
            for key, value in deltas.items():
                self.counts[key] = self.counts.get(key, 0) + value

    def fail(self, failure: Failure) -> None:
        """Record one failed partner, race or event (also logged: as a warning, or as info for
        a skipped request, whose partner got one warning when its breaker opened)."""
        with self._lock:
            self.failures.append(failure)
        log.log(logging.INFO if failure.skipped else logging.WARNING, "failed: %s", failure.line())

    def warn(self, line: str) -> None:
        """Record (and log) one operator warning that does not fail the run, e.g. a race whose
        detail still answers Permission Denied (:mod:`rsu.fetcher.denials`)."""
        with self._lock:
            self.warnings.append(line)
        log.warning("warning: %s", line)

    def snapshot(self) -> dict[str, int]:
        """A copy of the counters."""
        with self._lock:
            return dict(self.counts)


def failed_syncs(failures: list[Failure]) -> list[dict[str, Any]]:
    """Failures grouped as the original system's summary wrote them:
    ``[{"timing_partner_id": N, "errors": ["...", ...]}]``, by partner id (skipped requests
    grouped per :func:`failure_lines`); failures of no partner last, under ``None``."""
    by_partner: dict[int | None, list[Failure]] = {}
    for f in failures:
        by_partner.setdefault(f.timing_partner_id, []).append(f)
    order = sorted(by_partner, key=lambda p: (p is None, p or 0))
    return [{"timing_partner_id": p, "errors": failure_lines(by_partner[p])} for p in order]


def _make_private(fd: int) -> None:
    """Mode 0600 for the open file ``fd`` if it is a regular file: a device such as
    ``/dev/null`` given as a log or summary path is never chmod-ed (as root that would lock every
    other user out of it)."""
    if stat.S_ISREG(os.fstat(fd).st_mode):
        os.fchmod(fd, 0o600)


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    """Write ``summary`` as indented JSON to ``path``, mode 0600 (it names partners), atomically
    (:func:`rsu.journal.files.write_atomically`: a ``path`` that exists and is no regular file,
    ``/dev/null`` or a FIFO, is written into, never replaced; a symlink's target is replaced,
    not the link). A missing folder is created. Raises ``OSError`` when it cannot (a full disk,
    a read-only folder); then ``path`` is left as it was."""
    text = (json.dumps(summary, indent=2, sort_keys=False) + "\n").encode()
    path.resolve().parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, text)


def failures_json(failures: list[Failure]) -> list[dict[str, Any]]:
    """Failures as plain dicts (for the summary's ``failures`` list)."""
    return [asdict(f) for f in failures]


def output_error(what: str, path: Path, exc: OSError) -> str:
    """One line for an operator file that could not be written, e.g. ``could not write the log
    file /x/rsu.log: No space left on device (the disk is full)``."""
    why = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        why += " (the disk is full)"
    return f"could not write the {what} file {path}: {why}"


class _PrintableFormatter(logging.Formatter):
    """Log lines with control characters replaced (:func:`printable`): a server's message can
    neither forge a log line nor send escape sequences to whoever runs ``tail -f``."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = printable(record.message)  # one record, one line
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record), keep_newlines=True)  # a traceback keeps lines


class _PrivateFileHandler(logging.FileHandler):
    """Appends to a log file created with mode 0600 (it names partners). A failed write (a full
    disk) never prints a traceback nor stops the run: the first one is kept in :attr:`error`."""

    def __init__(self, path: Path) -> None:
        self.error: str | None = None
        super().__init__(path, encoding="utf-8")

    def _open(self) -> Any:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with contextlib.suppress(OSError):  # e.g. a log someone else owns: appended to as is
            _make_private(fd)  # a log an older version left readable by all becomes private
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)

    def handleError(self, record: logging.LogRecord) -> None:
        exc = sys.exc_info()[1]
        if self.error is None and isinstance(exc, OSError):
            self.error = output_error("log", Path(self.baseFilename), exc)
        elif self.error is None:
            super().handleError(record)

    def close(self) -> None:
        try:
            super().close()
        except OSError as exc:  # the last buffered lines did not fit either
            if self.error is None:
                self.error = output_error("log", Path(self.baseFilename), exc)


class LogFile:
    """What :func:`log_file` yields: ``error`` is one line when the log file could not be opened
    or written (e.g. a full disk), else ``None``; the run goes on either way."""

    def __init__(self) -> None:
        self.handler: _PrivateFileHandler | None = None
        self.open_error: str | None = None

    @property
    def error(self) -> str | None:
        return self.open_error or (self.handler.error if self.handler is not None else None)


@contextmanager
def log_file(path: Path | None) -> Iterator[LogFile]:
    """Append the fetcher's INFO log to ``path`` (created 0600) for the duration of the block
    (no-op if None). A log file that cannot be opened or written does not stop the block: the
    yielded :class:`LogFile` says why."""
    status = LogFile()
    if path is None:
        yield status
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        status.handler = _PrivateFileHandler(path)
    except OSError as exc:
        status.open_error = output_error("log", path, exc)
        yield status
        return
    handler = status.handler
    handler.setFormatter(
        _PrintableFormatter("%(asctime)s %(levelname)s %(threadName)s %(message)s")
    )
    handler.setLevel(logging.INFO)
    old_level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield status
    finally:
        log.removeHandler(handler)
        log.setLevel(old_level)
        handler.close()


class Progress(Protocol):
    """Where the walk reports progress. ``kind`` is ``"partners"``, ``"races"``, ``"events"`` or
    ``"pages"``. Implementations must be thread-safe."""

    def add_total(self, kind: str, n: int) -> None:
        """``n`` more items of ``kind`` are known to be coming."""

    def advance(self, kind: str, n: int = 1) -> None:
        """``n`` items of ``kind`` are done."""

    def note(self, text: str) -> None:
        """A line worth showing the operator (partner done, failure ...)."""


class NullProgress:
    """Reports nothing."""

    def add_total(self, kind: str, n: int) -> None:
        pass

    def advance(self, kind: str, n: int = 1) -> None:
        pass

    def note(self, text: str) -> None:
        pass


class PlainProgress:
    """Plain lines on ``stream`` (for logs and pipes): only :meth:`note` lines are printed."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()

    def add_total(self, kind: str, n: int) -> None:
        pass

    def advance(self, kind: str, n: int = 1) -> None:
        pass

    def note(self, text: str) -> None:
        with self._lock:
            print(printable(text), file=self.stream, flush=True)


class RichProgress:
    """A ``rich`` progress display with one bar per kind; use as a context manager."""

    KINDS = ("partners", "races", "events", "pages")

    def __init__(self, console: Any = None) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._progress = Progress(
            TextColumn("{task.description:>9}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=console,
            transient=False,
        )
        self._tasks = {
            k: self._progress.add_task(k, total=None if k == "pages" else 0) for k in self.KINDS
        }
        self._lock = threading.Lock()

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def add_total(self, kind: str, n: int) -> None:
        with self._lock:
            task = self._tasks[kind]
            current = self._progress.tasks[task].total or 0
            self._progress.update(task, total=current + n)

    def advance(self, kind: str, n: int = 1) -> None:
        with self._lock:
            self._progress.advance(self._tasks[kind], n)

    def note(self, text: str) -> None:
        with self._lock:
            self._progress.console.print(printable(text), highlight=False, markup=False)


@dataclass
class SummaryInputs:
    """Values of the summary that do not come from :class:`RunStats`."""

    run_id: str
    sync_time: str
    duration_seconds: float
    mode: str  # the requested mode (RunStarted.mode); the summary says what happened (run_mode)
    base_url: str
    timing_partners_synced: int
    status: str
    exit_code: int
    extra: dict[str, Any] = field(default_factory=dict)


def build_summary(inputs: SummaryInputs, stats: RunStats) -> dict[str, Any]:
    """The ``runsignup_sync_summary.json`` document: the original system's keys
    (``sync_time``, ``duration_seconds``, ``total_races``, ``total_events``,
    ``total_participants``, ``timing_partners_synced``, ``failed_syncs``) plus ``run_id``,
    request/retry/byte/body counters, ``races_not_due`` (races the cadence skipped), the
    ``warnings`` (lines that did not fail the run) and the status. ``mode`` is
    :func:`run_mode` of ``inputs.mode`` (the requested one)."""
    counts = stats.snapshot()
    return {
        "run_id": inputs.run_id,
        "sync_time": inputs.sync_time,
        "duration_seconds": round(inputs.duration_seconds, 3),
        "mode": run_mode(inputs.mode, counts),
        "base_url": inputs.base_url,
        "status": inputs.status,
        "exit_code": inputs.exit_code,
        "total_races": counts["races"],
        "total_events": counts["events"],
        "total_participants": counts["participants"],
        "total_removed_participants": counts["removed_participants"],
        "timing_partners_synced": inputs.timing_partners_synced,
        "failed_syncs": failed_syncs(stats.failures),
        "requests": counts["requests"],
        "retries": counts["retries"],
        "bytes_received": counts["bytes_received"],
        "new_bodies": counts["new_bodies"],
        "pages": counts["pages"],
        "listings": counts["listings"],
        "complete_listings": counts["complete_listings"],
        "incremental_listings": counts["incremental_listings"],
        "fetch_failed": counts["fetch_failed"],
        "races_not_due": counts["races_not_due"],
        "failures": failures_json(stats.failures),
        "warnings": list(stats.warnings),
        **inputs.extra,
    }
