"""Operator commands: ``rsu status`` (is every partner and race fresh?) and ``rsu history``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rsu.cli.common import DEFAULT_DB, DbOption, fail
from rsu.journal import open_db
from rsu.projector.reports import StatusReport, history, sync_status

console = Console(highlight=False)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    seconds = max(seconds, 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _open_existing(db: Path):  # type: ignore[no-untyped-def]
    if not db.exists():
        fail(f"database {db} does not exist; run `rsu sync --db {db}` first (or pass --db)")
    return open_db(db)


def _print_status(report: StatusReport) -> None:
    table = Table(title=f"Sync status at {report.now} (max age {_age(report.max_age_seconds)})")
    for col in ("partner", "race", "name", "next event (UTC)", "active", "removed"):
        table.add_column(col)
    for col in ("last success", "age", "state"):
        table.add_column(col)
    for p in report.partners:
        if p.failing or not p.races:
            state = "[red]FAILING[/]" if p.failing else "ok"
            detail = f" ({p.last_error})" if p.last_error else ""
            table.add_row(
                str(p.timing_partner_id),
                "-",
                f"partner{detail}",
                "",
                "",
                "",
                p.last_success or "never",
                _age(p.age_seconds),
                state,
            )
        for r in p.races:
            if r.stale:
                state = "[red]STALE[/]"
            elif r.last_attempt_ok is False:
                state = "[yellow]last run failed[/]"
            else:
                state = "ok"
            table.add_row(
                str(r.timing_partner_id),
                str(r.race_id),
                r.name or "",
                r.next_event_utc or "",
                str(r.active),
                str(r.removed),
                r.last_success or "never",
                _age(r.age_seconds),
                state,
            )
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``status`` and ``history`` to the root app."""

    @app.command()
    def status(
        db: DbOption = DEFAULT_DB,
        max_age: Annotated[
            float,
            typer.Option(
                "--max-age",
                help="Seconds within which a race with an upcoming event must have synced.",
            ),
        ] = 3600.0,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Per partner and race: last successful sync, counts and age.

        Exits 1 when a partner's newest sync failed, or a race with an upcoming event has no
        successful sync within --max-age (for monitoring: a sync that silently stopped).
        """
        database = _open_existing(db)
        try:
            report = sync_status(database.conn, max_age_seconds=max_age)
        finally:
            database.conn.close()
        if as_json:
            typer.echo(json.dumps(report.to_dict(), indent=2))
        else:
            if not report.partners:
                console.print("No sync recorded yet: run `rsu sync`.")
            else:
                _print_status(report)
        if not report.partners or not report.ok:
            if not as_json:
                console.print("[red]Some partners or races are not synced within --max-age.[/]")
            raise typer.Exit(1)

    @app.command("history")
    def history_cmd(
        db: DbOption = DEFAULT_DB,
        partner: Annotated[int | None, typer.Option("--partner", help="timing_partner_id")] = None,
        race: Annotated[int | None, typer.Option("--race", help="race_id")] = None,
        event: Annotated[int | None, typer.Option("--event", help="event_id")] = None,
        status: Annotated[str | None, typer.Option("--status", help="success or error")] = None,
        run: Annotated[str | None, typer.Option("--run", help="run_id")] = None,
        limit: Annotated[int, typer.Option("--limit", min=1)] = 50,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
    ) -> None:
        """Recent sync_history rows, newest first."""
        database = _open_existing(db)
        try:
            rows = history(
                database.conn,
                timing_partner_id=partner,
                race_id=race,
                event_id=event,
                status=status,
                run_id=run,
                limit=limit,
            )
        finally:
            database.conn.close()
        if as_json:
            for row in rows:
                typer.echo(json.dumps(row, ensure_ascii=False))
            return
        table = Table()
        shown = (
            "sync_time",
            "timing_partner_id",
            "race_id",
            "event_id",
            "endpoint",
            "mode",
            "status",
            "num_of_synced_records",
            "num_new",
            "num_changed",
            "num_removed",
            "reason",
        )
        for col in shown:
            table.add_column(col.replace("timing_partner_id", "partner").replace("num_", ""))
        for row in rows:
            style = "red" if row["status"] == "error" else None
            table.add_row(*("" if row[c] is None else str(row[c]) for c in shown), style=style)
        console.print(table)
