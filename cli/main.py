"""The ``rsu`` command: thin wiring of the journal, fetcher, projector and simulator."""

from __future__ import annotations

from typing import Annotated

import typer

from rsu.cli import (
    audit_cmd,
    backup_cmd,
    credentials_cmd,
    demo_cmd,
    export_cmd,
    fetch_cmd,
    journal_cmd,
    ops_cmd,
    project_cmd,
    simulator_cmd,
)
from rsu.fetcher.run import tool_version

#: ``-h`` beside ``--help`` on every command (click passes it down to every sub-command).
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    name="rsu",
    help="Sync RunSignUp races, events and registrations of your timing partners into SQLite.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings=CONTEXT_SETTINGS,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"rsu {tool_version()}")
        raise typer.Exit(0)


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the rsu version and exit.",
        ),
    ] = False,
) -> None:
    """Sync RunSignUp races, events and registrations of your timing partners into SQLite."""


app.add_typer(journal_cmd.app, name="journal", help="Audit the journal of raw API responses.")
app.add_typer(
    credentials_cmd.app, name="credentials", help="Manage timing partner API credentials."
)
app.add_typer(simulator_cmd.app, name="simulator", help="Run the local RunSignUp API simulator.")
fetch_cmd.register(app)
project_cmd.register(app)
ops_cmd.register(app)
demo_cmd.register(app)
backup_cmd.register(app)
export_cmd.register(app)
audit_cmd.register(app)


def main() -> None:  # pragma: no cover - console entry point convenience
    app()
