"""Options and helpers shared by every ``rsu`` command (no business logic here)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from rsu.journal import DB_ENV

DbOption = Annotated[
    Path,
    typer.Option(
        "--db",
        envvar=DB_ENV,
        help="SQLite database file (journal, credentials and tables). Env: RSU_DB.",
        show_default=True,
    ),
]
DEFAULT_DB = Path("rsu.db")

#: Console for operator messages; errors go to stderr.
err_console = Console(stderr=True, highlight=False)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``message`` as one clean line on stderr and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)
