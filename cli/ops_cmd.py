"""Operator commands: ``rsu status`` (is every partner and race fresh?) and ``rsu history``."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from rsu.cli.common import (
    DEFAULT_CADENCE,
    DEFAULT_DB,
    CadenceOption,
    DbOption,
    cadence_value,
    database_errors,
    duration_option,
    open_existing,
    server_text,
)
from rsu.fetcher.cadence import Cadence, next_due
from rsu.fetcher.credentials import load_caller_registration
from rsu.fetcher.oauth import DEFAULT_WARN_S, expiry_warnings
from rsu.fetcher.run import CALLER_WARNING
from rsu.fetcher.secret_store import CredentialError
from rsu.journal import head_json, journal_head
from rsu.journal.printable import json_safe
from rsu.journal.runlock import run_in_progress
from rsu.projector.reports import (
    RaceStatus,
    StatusReport,
    history,
    parse_utc,
    sync_status,
    utc_iso,
)


class SyncStatus(StrEnum):
    """Values of ``sync_history.status``."""

    success = "success"
    warning = "warning"
    error = "error"


#: Wide when piped (cron mail, logs), the terminal's width otherwise.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    seconds = max(seconds, 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _due_text(due: str, now: str) -> str:
    return "next run" if due <= now else _short_time(due)


def _short_time(iso: str | None) -> str:
    """``2026-11-30T05:01:02.123Z`` -> ``11-30 05:01`` (UTC); empty for ``None``."""
    return "" if not iso else f"{iso[5:10]} {iso[11:16]}"


def event_start_text(race: RaceStatus) -> str:
    """The next event start of ``race`` as the race's wall-clock time labelled with its zone:
    ``2027-03-14 07:00 America/Chicago`` (the UTC offset, ``UTC-05:00``, when the race names no
    zone); empty when no event is ahead."""
    if not race.next_event_local:
        return ""
    try:
        moment = datetime.fromisoformat(race.next_event_local)
    except ValueError:
        return race.next_event_local
    offset = moment.strftime("%z")
    zone = (race.timezone or "").strip() or (f"UTC{offset[:3]}:{offset[3:]}" if offset else "")
    return f"{moment:%Y-%m-%d %H:%M} {zone}".strip()


def _cadence_inputs(race: RaceStatus) -> tuple[list[float], float | None]:
    """What :func:`rsu.fetcher.cadence.next_due` reads of ``race``: its last and next event
    start, and its last success (``None`` when there is none or its newest sync failed), in epoch
    seconds (UTC)."""
    starts = [parse_utc(t).timestamp() for t in (race.last_event_utc, race.next_event_utc) if t]
    if not race.last_success or race.last_attempt_ok is False:
        return starts, None
    return starts, parse_utc(race.last_success).timestamp()


def race_next_due(race: RaceStatus, cadence: Cadence, now: str) -> str:
    """When ``rsu sync`` next syncs ``race`` by ``cadence`` (ISO 8601 UTC; ``now`` or earlier:
    at the next run), from its last and next event start and its last success (none when its
    newest sync failed), as :func:`rsu.fetcher.cadence.next_due` decides it."""
    starts, last = _cadence_inputs(race)
    due = next_due(starts, last, parse_utc(now).timestamp(), cadence)
    return utc_iso(datetime.fromtimestamp(due, UTC))


def race_due_since(race: RaceStatus, cadence: Cadence) -> float | None:
    """When ``race`` became due for its next sync by ``cadence`` (epoch seconds, UTC): the first
    moment after its last success at which :func:`rsu.fetcher.cadence.next_due` calls it due;
    ``None`` when it has no successful newest sync (staleness then counts from the last success)."""
    starts, last = _cadence_inputs(race)
    return None if last is None else next_due(starts, last, last, cadence)


def _print_status(report: StatusReport, due: dict[tuple[int, int], str]) -> None:
    title = f"Sync status at {report.now[:16]} UTC, max age {_age(report.max_age_seconds)}"
    table = Table(title=title)
    table.add_column("partner", justify="right")
    table.add_column("race", justify="right")
    table.add_column("name", no_wrap=True, max_width=24, overflow="ellipsis")
    table.add_column("next event (race time)", no_wrap=True)
    table.add_column("active", justify="right")
    table.add_column("removed", justify="right")
    table.add_column("last ok (UTC)", no_wrap=True)
    table.add_column("age", justify="right")
    table.add_column("next due (UTC)", no_wrap=True)
    table.add_column("state", no_wrap=True)
    for p in report.partners:
        if p.failing or not p.races:
            state = "[red]STALE[/]" if p.stale else "[red]FAILING[/]" if p.failing else "ok"
            name = f"partner: {p.last_error}" if p.last_error else "partner"
            table.add_row(
                str(p.timing_partner_id),
                "-",
                server_text(name),
                "",
                "",
                "",
                _short_time(p.last_success) or "never",
                _age(p.age_seconds),
                "",
                state,
            )
        for r in p.races:
            if r.access_lost_at is not None:
                state = "[yellow]access lost[/]"
            elif r.stale:
                state = "[red]STALE[/]"
            elif r.last_attempt_ok is False:
                state = "[yellow]last run failed[/]"
            elif r.warning:
                state = "[yellow]warning[/]"
            else:
                state = "ok"
            table.add_row(
                str(r.timing_partner_id),
                str(r.race_id),
                server_text((r.name or "").strip()),
                event_start_text(r),
                str(r.active),
                str(r.removed),
                _short_time(r.last_success) or "never",
                _age(r.age_seconds),
                _due_text(due[(r.timing_partner_id, r.race_id)], report.now),
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
            duration_option(
                "--max-age",
                show_default="1h",
                help="How recently a race with an upcoming event must have synced: 1h, 90m, "
                "3600 (seconds).",
            ),
        ] = 3600.0,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
        strict: Annotated[
            bool,
            typer.Option(
                "--strict", help="Also exit 1 when a race's newest sync failed, however recent."
            ),
        ] = False,
        cadence: CadenceOption = DEFAULT_CADENCE,
    ) -> None:
        """Per partner and race: last successful sync, counts and age.

        Exits 1 when a partner's newest sync failed, or a race with an upcoming event has been
        due by --cadence for longer than --max-age without a successful sync (for monitoring: a
        sync that silently stopped), or when journal events are not projected and no rsu run is
        in progress.
        Warns (without changing the exit code) about a bearer token that expires within 7 days
        and cannot be refreshed, or that expired without being refreshed, and when no caller
        registration is set (RunSignUp requires one from 2027-01-01).
        """
        table = cadence_value(cadence)
        database = open_existing(db)
        try:
            with database_errors(db):
                report = sync_status(
                    database.conn,
                    max_age_seconds=max_age,
                    strict=strict,
                    due_since=lambda race: race_due_since(race, table),
                    run_in_progress=run_in_progress(db),
                )
                token_warnings = expiry_warnings(
                    database, datetime.now(UTC).timestamp(), warn_within_s=DEFAULT_WARN_S
                )
                head = journal_head(database.conn)
            try:
                caller_set = load_caller_registration(database) is not None
            except CredentialError as exc:
                caller_set = True  # unknown: say why instead of claiming it is unset
                token_warnings.append(str(exc))
        finally:
            database.conn.close()
        due = {
            (r.timing_partner_id, r.race_id): race_next_due(r, table, report.now)
            for p in report.partners
            for r in p.races
        }
        if as_json:
            doc = report.to_dict()
            doc["token_warnings"] = token_warnings
            doc["caller_registration"] = "set" if caller_set else "unset"
            doc["journal_head"] = head_json(head)  # keep it elsewhere: journal verify --expect-head
            for p_doc in doc["partners"]:
                for r_doc in p_doc["races"]:
                    r_doc["next_due"] = due[(r_doc["timing_partner_id"], r_doc["race_id"])]
            typer.echo(json.dumps(doc, indent=2))
        else:
            if not report.partners:
                console.print("No sync recorded yet: run `rsu sync`.")
            else:
                _print_status(report, due)
                for line in report.notes():
                    console.print(server_text(line))
            warnings = [*report.warnings(), *token_warnings]
            for line in [*warnings, *([] if caller_set else [CALLER_WARNING])]:
                console.print(server_text(f"warning: {line}", "yellow"))
        if not report.partners or not report.ok:
            if not as_json:
                for line in report.problems():
                    console.print(server_text(line, "red"))
            raise typer.Exit(1)

    @app.command("history")
    def history_cmd(
        db: DbOption = DEFAULT_DB,
        partner: Annotated[int | None, typer.Option("--partner", help="timing_partner_id")] = None,
        race: Annotated[int | None, typer.Option("--race", help="race_id")] = None,
        event: Annotated[int | None, typer.Option("--event", help="event_id")] = None,
        status: Annotated[
            SyncStatus | None, typer.Option("--status", help="Only success, warning or error rows.")
        ] = None,
        run: Annotated[str | None, typer.Option("--run", help="run_id")] = None,
        limit: Annotated[int, typer.Option("--limit", min=1)] = 50,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
    ) -> None:
        """Recent sync_history rows, newest first."""
        database = open_existing(db)
        try:
            with database_errors(db):
                rows = history(
                    database.conn,
                    timing_partner_id=partner,
                    race_id=race,
                    event_id=event,
                    status=status.value if status is not None else None,
                    run_id=run,
                    limit=limit,
                )
        finally:
            database.conn.close()
        if as_json:
            for row in rows:
                typer.echo(json_safe(json.dumps(row, ensure_ascii=False)))
            return
        table = Table()
        columns = (
            ("time (UTC)", "sync_time"),
            ("partner", "timing_partner_id"),
            ("race", "race_id"),
            ("event", "event_id"),
            ("listing", "endpoint"),
            ("mode", "mode"),
            ("status", "status"),
            ("rows", "num_of_synced_records"),
            ("new", "num_new"),
            ("chg", "num_changed"),
            ("rem", "num_removed"),
            ("reason", "reason"),
        )
        for header, _ in columns:
            wrap = header == "reason"
            table.add_column(header, no_wrap=not wrap, overflow="fold" if wrap else "ellipsis")
        short = {"participants": "participants", "removed_participants": "removed"}
        for row in rows:
            cells = []
            for _, key in columns:
                value = row[key]
                if key == "sync_time":
                    value = _short_time(value)
                elif key == "endpoint":
                    value = short.get(value, value)
                elif key == "mode" and value:
                    value = value[:4]
                cells.append(server_text(value))
            style = {"error": "red", "warning": "yellow"}.get(row["status"])
            table.add_row(*cells, style=style)
        console.print(table)
