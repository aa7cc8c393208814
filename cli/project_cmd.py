"""``rsu project``: project the journal into the RunSignUp tables (thin wiring)."""

from __future__ import annotations

from typing import Annotated

import typer

from rsu.cli.common import DEFAULT_DB, DbOption, err_console, fail, require_db
from rsu.journal import JournalError
from rsu.projector import DEFAULT_BATCH_SIZE, project


def project_command(
    db: DbOption = DEFAULT_DB,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Replay the whole journal into new tables and swap.")
    ] = False,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Journal events per transaction.")
    ] = DEFAULT_BATCH_SIZE,
) -> None:
    """Project new journal events into runsignup_races/events/participants and sync_history."""
    require_db(db)
    try:
        result = project(db, rebuild=rebuild, batch_size=batch_size, progress=None)
    except JournalError as exc:
        fail(str(exc))
    for message in result.messages:
        err_console.print(message, markup=False, highlight=False)
    typer.echo(
        f"{'rebuilt' if result.rebuilt else 'projected'}: {result.events} journal events, "
        f"{result.rows_upserted} rows upserted, {result.new_errors} new errors, "
        f"checkpoint {result.checkpoint}"
    )
    if result.exit_code:
        raise typer.Exit(result.exit_code)


def register(app: typer.Typer) -> None:
    """Add ``rsu project`` to the root app."""
    app.command("project")(project_command)
