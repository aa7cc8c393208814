"""Options and helpers shared by every ``rsu`` command (no business logic here)."""

from __future__ import annotations

import math
import signal
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import sqlite_utils
import typer
from rich.console import Console
from rich.text import Text

from rsu.fetcher.cadence import (
    DEFAULT_CADENCE_SPEC,
    MAX_CADENCE_SECONDS,
    Cadence,
    CadenceError,
    parse_cadence,
    parse_duration,
)
from rsu.fetcher.run import FetchUsageError, Terminated
from rsu.fetcher.secret_store import CredentialError
from rsu.journal import DB_ENV, JournalError, database_error, open_db
from rsu.journal.printable import printable
from rsu.journal.runlock import RunLock, RunLocked
from rsu.projector.dsn import is_pg_target, mask_dsn

DbOption = Annotated[
    Path,
    typer.Option(
        "--db",
        envvar=DB_ENV,
        help="SQLite database file (journal, credentials and tables).",
        show_default=True,
    ),
]
DEFAULT_DB = Path("rsu.db")

CadenceOption = Annotated[
    str,
    typer.Option(
        "--cadence",
        envvar="RSU_CADENCE",
        help="How often a race syncs, by the time until its event starts: comma-separated "
        "BOUND=INTERVAL rules, e.g. 7d=6h (7 days or more ahead: every 6 h); * is any other "
        "time; 0 = every run. See README.",
        show_default=True,
    ),
]
DEFAULT_CADENCE = DEFAULT_CADENCE_SPEC


def cadence_value(spec: str) -> Cadence:
    """Parse a ``--cadence`` value; a bad one is a usage error (exit 2) naming the rule."""
    try:
        return parse_cadence(spec)
    except CadenceError as exc:
        raise typer.BadParameter(str(exc), param_hint="--cadence") from None


#: The longest value of any duration option (seconds): 100 years, as for a ``--cadence`` rule.
#: Longer ones overflow later (a socket timeout past ``time_t``, a date past year 9999).
MAX_DURATION_SECONDS = MAX_CADENCE_SECONDS


def duration(
    bare_unit: str = "s", minimum: float = 0.0, maximum: float = MAX_DURATION_SECONDS
) -> Callable[[str], float]:
    """A typer ``parser=`` for a duration option: ``"1h"``, ``"90m"``, ``"3600"`` (a bare number
    is in ``bare_unit``) -> seconds (float), from ``minimum`` to ``maximum``. A bad value is a
    usage error (exit 2) naming the option and the value (see
    :func:`rsu.fetcher.cadence.parse_duration`)."""

    def parse(value: str | float) -> float:
        if isinstance(value, int | float):  # a default given as a number
            return float(value)
        try:
            seconds = parse_duration(value, bare_unit=bare_unit)
        except CadenceError as exc:
            raise typer.BadParameter(
                f"{exc}; a bare number means {_UNIT_NAMES[bare_unit]}"
            ) from None
        if seconds < minimum:
            raise typer.BadParameter(f"{value!r} is shorter than the minimum, {minimum:g} s")
        if seconds > maximum:
            raise typer.BadParameter(
                f"{value!r} is longer than the maximum, {maximum / 86400:g} days"
            )
        return seconds

    parse.__name__ = "duration"
    return parse


def finite(number: float, text: str) -> float:
    """``number`` (parsed from the option value ``text``) when it is finite; ``nan``, ``inf``
    and an overflowing ``1e400`` are a usage error (exit 2) naming the value: an infinite rate
    or timeout would silently mean "unlimited"."""
    if not math.isfinite(number):
        raise typer.BadParameter(f"{text!r} is not a finite number")
    return number


def number(minimum: float | None = None, maximum: float | None = None) -> Callable[[str], float]:
    """A typer ``parser=`` for a plain float option: a finite number (see :func:`finite`) within
    ``[minimum, maximum]`` (either bound ``None``: open). A bad value is a usage error (exit 2)
    naming the option and the value."""

    def parse(value: str | float) -> float:
        if isinstance(value, int | float):  # a default given as a number
            return float(value)
        try:
            parsed = float(value)
        except ValueError:
            raise typer.BadParameter(f"{value!r} is not a number") from None
        finite(parsed, value)
        if minimum is not None and parsed < minimum:
            raise typer.BadParameter(f"{value!r} is below the minimum, {minimum:g}")
        if maximum is not None and parsed > maximum:
            raise typer.BadParameter(f"{value!r} is above the maximum, {maximum:g}")
        return parsed

    parse.__name__ = "float"
    return parse


_UNIT_NAMES = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def duration_option(
    flag: str, *, help: str, bare_unit: str = "s", minimum: float = 0.0, **kwargs: Any
) -> Any:
    """A ``typer.Option`` named ``flag`` for a duration, for use in ``Annotated[float, ...]``:
    parsed by :func:`duration` (``bare_unit``, ``minimum``) into seconds (float) and shown as
    ``DURATION`` in the help; ``kwargs`` go on to ``typer.Option`` (e.g. ``show_default``)."""
    return typer.Option(
        flag, parser=duration(bare_unit, minimum), metavar="DURATION", help=help, **kwargs
    )


TargetOption = Annotated[
    str | None,
    typer.Option(
        "--target",
        envvar="RSU_TARGET",
        help="Project into this PostgreSQL database (postgresql://USER@HOST:PORT/DB; the password "
        "is best kept in ~/.pgpass or PGPASSWORD) instead of the tables in --db. The journal stays "
        "in --db; each target keeps its own checkpoint.",
        show_default=False,
    ),
]


def target_value(target: str | None) -> str | None:
    """A ``--target`` value: ``None`` (the SQLite tables) or a ``postgresql://`` URL; anything
    else is a usage error (exit 2) that shows the value with its password masked."""
    if target is None or target == "":
        return None
    if not is_pg_target(target):
        fail(
            f"--target {mask_dsn(target)} is not a PostgreSQL URL "
            "(postgresql://USER:PASSWORD@HOST:PORT/DBNAME)",
            2,
        )
    return target


#: Console for operator messages; errors go to stderr.
err_console = Console(stderr=True, highlight=False)


def require_db(db: Path) -> None:
    """Exit 2 with a clear message when the database file ``db`` does not exist.

    Only ``rsu credentials add`` and ``rsu demo`` create a database; every other command on a
    mistyped path must say so instead of creating an empty file and reporting nothing to do.
    """
    if not db.exists():
        fail(
            f"database {db} does not exist (pass --db or set RSU_DB; "
            "`rsu credentials add --db FILE ...` creates one)",
            2,
        )
    if not db.is_file():
        fail(f"database {db} is not a file", 2)
    if db.stat().st_size == 0:
        fail(f"database {db} is an empty file, not an rsu database (pass --db or set RSU_DB)", 2)


def open_existing(db: Path, *, readonly: bool = True) -> sqlite_utils.Database:
    """The existing database ``db`` (a missing one exits 2, see :func:`require_db`), opened
    read-only unless ``readonly`` is false (read-only: it may be a read-only file or folder;
    nothing is created or written); a failure to open exits 1 as in :func:`database_errors`."""
    require_db(db)
    with database_errors(db):
        return open_db(db, readonly=readonly)


@contextmanager
def database_errors(db: Path) -> Iterator[None]:
    """Turn a database failure inside the block into one clean line on stderr and exit 1: a
    :class:`~rsu.journal.JournalError` as it is, an ``sqlite3`` error not yet wrapped (e.g. from
    the credentials tables) through :func:`~rsu.journal.database_error`, so the line names the
    file and the cause (locked, disk full, read-only ...), never a traceback."""
    try:
        yield
    except (JournalError, sqlite3.Error) as exc:
        fail_database(db, exc)


@contextmanager
def fetcher_errors(db: Path) -> Iterator[None]:
    """Turn a failure of the fetcher inside the block into one clean line on stderr: a
    :class:`~rsu.fetcher.FetchUsageError` (e.g. no credentials configured) exits 2, a
    :class:`~rsu.fetcher.CredentialError` (e.g. an unreadable secrets file) exits 1, and a
    database failure exits 1 as in :func:`database_errors`."""
    try:
        with database_errors(db):
            yield
    except FetchUsageError as exc:
        fail(str(exc), 2)
    except CredentialError as exc:
        fail(str(exc), 1)


def fail_database(db: Path, exc: JournalError | sqlite3.Error) -> NoReturn:
    """Exit 1 with the one line of a database failure (see :func:`database_errors`)."""
    if isinstance(exc, sqlite3.Error):
        exc = database_error(exc, "use it", db)
    fail(str(exc), 1)


def server_text(value: object, style: str = "") -> Text:
    """``value`` (any string that may come from the API: a race name, an error message, a line
    quoting one) as a rich ``Text``: shown as is, no ``[markup]`` interpreted, control characters
    and escape sequences replaced (:func:`rsu.journal.printable.printable`)."""
    return Text(printable(value), style=style)


def labelled(label: str, style: str, message: object) -> Text:
    """``label: message`` with the label in ``style`` and ``message`` as :func:`server_text`."""
    return Text.assemble((f"{label}:", style), " ", server_text(message))


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``message`` as one clean line on stderr and exit with ``code``."""
    err_console.print(labelled("error", "bold red", message), soft_wrap=True)
    raise typer.Exit(code)


#: Exit code when another rsu run holds the database (EX_TEMPFAIL from sysexits.h: try again
#: later). Overlapping cron runs are normal; this must not look like a failure of the data.
EXIT_BUSY = 75
#: Exit code after Ctrl-C (128 + SIGINT), and after SIGTERM (128 + SIGTERM), as the shell has it.
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signal.Signals(signum).name)


@contextmanager
def exclusive_run(db: Path, command: str) -> Iterator[None]:
    """Run the block as the only writing run of database ``db``, with SIGTERM turned into
    :class:`~rsu.fetcher.run.Terminated` (a ``KeyboardInterrupt``: journaled and summarised as
    interrupted, like Ctrl-C; systemd stops a service with SIGTERM).

    When another process holds the run lock (:mod:`rsu.journal.runlock`), prints one line and
    exits :data:`EXIT_BUSY` at once, having done nothing. A lock file that cannot be created
    exits 1 naming the cause.
    """
    with database_errors(db):
        try:
            lock = RunLock.acquire(db, command)
        except RunLocked as exc:
            err_console.print(labelled("busy", "yellow", exc), soft_wrap=True)
            raise typer.Exit(EXIT_BUSY) from None
    main = threading.current_thread() is threading.main_thread()  # only it may set handlers
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if main else None
    try:
        yield
    finally:
        if main:  # None: the handler was not set from Python
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
        lock.release()
