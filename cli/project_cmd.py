"""``rsu project``: project the journal into the RunSignUp tables (thin wiring)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rsu.cli.common import (
    DEFAULT_DB,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    DbOption,
    TargetOption,
    err_console,
    exclusive_run,
    fail,
    require_db,
    server_text,
    target_value,
)
from rsu.fetcher.run import Terminated
from rsu.journal import JournalError
from rsu.projector import DEFAULT_BATCH_SIZE, ProjectResult, TargetError, project


def project_command(
    db: DbOption = DEFAULT_DB,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Replay the whole journal into new tables and swap.")
    ] = False,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Journal events per transaction.")
    ] = DEFAULT_BATCH_SIZE,
    target: TargetOption = None,
) -> None:
    """Project new journal events into runsignup_races/events/participants and sync_history.

    Exit code 0 when no new error was recorded, 1 otherwise, 75 when another rsu run is using
    the database.
    """
    require_db(db)
    dsn = target_value(target)
    with exclusive_run(db, "rsu project --rebuild" if rebuild else "rsu project"):
        result = project_or_exit(db, rebuild=rebuild, batch_size=batch_size, target=dsn)
    for message in result.messages:
        err_console.print(server_text(message), soft_wrap=True)
    typer.echo(
        f"{'rebuilt' if result.rebuilt else 'projected'}: {result.events} journal events, "
        f"{result.rows_upserted} rows upserted, {result.new_errors} new errors, "
        f"checkpoint {result.checkpoint}"
    )
    if result.exit_code:
        raise typer.Exit(result.exit_code)


def project_or_exit(
    db: Path,
    *,
    rebuild: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    target: str | None = None,
) -> ProjectResult:
    """:func:`rsu.projector.project` (into the PostgreSQL ``target`` when given), or one line on
    stderr and exit: 1 for a database failure (locked, disk full, read-only, PostgreSQL
    unreachable ...), 130/143 when interrupted (the tables stay at the last committed
    checkpoint)."""
    try:
        return project(db, rebuild=rebuild, batch_size=batch_size, progress=None, target=target)
    except (JournalError, TargetError) as exc:
        fail(str(exc))
    except Terminated as exc:
        fail(
            f"projection stopped by {exc}; the tables stay at the last checkpoint", EXIT_TERMINATED
        )
    except KeyboardInterrupt:
        fail("projection interrupted; the tables stay at the last checkpoint", EXIT_INTERRUPTED)


def register(app: typer.Typer) -> None:
    """Add ``rsu project`` to the root app."""
    app.command("project")(project_command)
