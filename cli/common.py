"""Options and helpers shared by every ``rsu`` command (no business logic here)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from rsu.fetcher.cadence import (
    DEFAULT_CADENCE_SPEC,
    Cadence,
    CadenceError,
    parse_cadence,
    parse_duration,
)
from rsu.journal import DB_ENV

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


def duration(bare_unit: str = "s", minimum: float = 0.0) -> Callable[[str], float]:
    """A typer ``parser=`` for a duration option: ``"1h"``, ``"90m"``, ``"3600"`` (a bare number
    is in ``bare_unit``) -> seconds (float), at least ``minimum``. A bad value is a usage error
    (exit 2) naming the option and the value (see :func:`rsu.fetcher.cadence.parse_duration`)."""

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
        return seconds

    parse.__name__ = "duration"
    return parse


_UNIT_NAMES = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


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


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``message`` as one clean line on stderr and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)
