"""Options and helpers shared by every ``rsu`` command (no business logic here)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from rsu.fetcher.cadence import DEFAULT_CADENCE_SPEC, Cadence, CadenceError, parse_cadence
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
