"""``rsu export`` (a start list for timing software) and ``rsu check`` (the pre-race gate):
thin wiring of :mod:`rsu.export`."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from rsu.cli.common import (
    DEFAULT_DB,
    DbOption,
    err_console,
    fail,
    labelled,
    open_existing,
    server_text,
)
from rsu.export import PROFILES, Allow, ExportError, ExportOptions, run_export
from rsu.export.check import ERROR, CheckReport, run_check
from rsu.export.profiles import FORMULA
from rsu.export.selection import SelectionError
from rsu.export.writing import output_problem, write_output
from rsu.journal import JournalError
from rsu.journal.printable import json_safe

_FORMATS = ", ".join(PROFILES)

RaceOption = Annotated[int, typer.Option("--race", help="race_id to export.", show_default=False)]
PartnerOption = Annotated[
    int | None,
    typer.Option("--partner", help="timing_partner_id, when several partners sync the race."),
]


def _say(line: str) -> None:
    err_console.print(server_text(line), soft_wrap=True)


def export_command(
    race: RaceOption,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help=f"Target format: {_FORMATS}.", show_default=False)
    ],
    event: Annotated[
        list[int] | None, typer.Option("--event", help="event_id (repeatable; default: all).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Write only the changes since an earlier export: 'last' (the previous export "
            "of this race, format and events) or an export id.",
        ),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Export the race as the journal knew it at this ISO 8601 time (UTC unless "
            "it carries an offset), replayed from the journal.",
        ),
    ] = None,
    allow: Annotated[
        list[Allow] | None,
        typer.Option(
            "--allow",
            help="Rows with values the target cannot take: skip-row leaves them out, "
            "blank-value writes those values empty, quote-formula writes a spreadsheet formula "
            "(=, +, -, @ first) with a ' before it (may be given with one of the other two). "
            "Default: refuse (exit 1).",
        ),
    ] = None,
    partner: PartnerOption = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Export a race's start list for timing software (csv, json, raceresult, opensplittime,
    webscorer, mylaps) and record it in the exports table.

    Exit 1 when a row holds a value the target cannot take (each is named on stderr; nothing is
    written unless --allow says how to handle them): a bib, chip or gender the target refuses,
    a control character, or in a delimited file a text a spreadsheet would run as a formula;
    2 for a usage error (also an --output that is a directory or in a folder that does not
    exist).
    """
    if fmt not in PROFILES:
        raise typer.BadParameter(f"{fmt!r} is not one of {_FORMATS}", param_hint="--format")
    if (problem := output_problem(output)) is not None:
        fail(problem, 2)
    allowed = frozenset(allow or ())
    if {Allow.skip_row, Allow.blank_value} <= allowed:
        raise typer.BadParameter("skip-row or blank-value, not both", param_hint="--allow")
    database = open_existing(db, readonly=False)
    opts = ExportOptions(
        race_id=race,
        format=fmt,
        event_ids=tuple(event or ()),
        since=since,
        as_of=as_of,
        allow=allowed,
        timing_partner_id=partner,
        output="-" if output is None else str(output),
    )
    try:
        result = run_export(database, opts, lambda data: write_output(data, output))
    except ExportError as exc:
        fail(str(exc), 2)
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}")
    except (JournalError, sqlite3.Error) as exc:
        fail(f"database error: {exc}")
    finally:
        database.conn.close()
    target = PROFILES[fmt].title
    refused = [p for p in result.problems if p.action is None]
    for problem in result.problems if result.record else refused:
        how = f"{problem.column or problem.field} {problem.action}"
        if problem.action is None:
            how = f"{target} cannot take"
        elif problem.action == "skipped":
            how = "skipped"
        _say(f"{how}: {problem.describe()}")
    if result.record is None:
        rows = len({p.registration_id for p in refused})
        formulas = (
            " (--allow quote-formula for formulas)"
            if any(p.kind == FORMULA for p in refused)
            else ""
        )
        fail(
            f"{rows} registration(s) hold values {target} cannot take; nothing was written. "
            "Fix them in RunSignUp and sync, or pass --allow skip-row or --allow blank-value"
            f"{formulas}."
        )
    for note in result.notes:
        err_console.print(labelled("warning", "yellow", note), soft_wrap=True)
    rec = result.record
    what = "changes" if result.changes is not None else "rows"
    _say(
        f"export {rec.export_id}: {rec.row_count} {what} of race {rec.race_id} as {fmt} to "
        f"{rec.output} (journal seq {rec.journal_seq}, sha256 {rec.sha256[:12]})"
    )


def _print_check(report: CheckReport) -> None:
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    if report.findings:
        table = Table(title=Text(f"Pre-race check of race {report.race_id}"))
        for header in ("severity", "problem", "event", "registration", "bib", "name", "detail"):
            table.add_column(header, overflow="fold")
        for f in report.findings:
            table.add_row(
                Text(f.severity, style="red" if f.severity == ERROR else "yellow"),
                server_text(f.problem),
                server_text(str(f.event_id)),
                server_text(str(f.registration_id)),
                server_text(f.bib_num or ""),
                server_text(f.name),
                server_text(f.detail),
            )
        console.print(table)
    warnings = len(report.findings) - report.errors
    verdict = "ready for timing" if report.ok else "NOT ready for timing"
    against = f" for {PROFILES[report.target].title}" if report.target else ""
    console.print(
        Text(
            f"race {report.race_id}{against}: {report.registrations} registrations, "
            f"{report.errors} errors, {warnings} warnings: {verdict}",
            style="green" if report.ok else "red",
        )
    )


def check_command(
    race: RaceOption,
    target: Annotated[
        str | None,
        typer.Option(
            "--for",
            help="Also check what this target takes (bibs, chips, genders; control characters "
            f"and spreadsheet formulas in delimited files): {_FORMATS}.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    partner: PartnerOption = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Pre-race quality gate for a race: missing gender or DOB, ages that do not match the DOB,
    duplicate bibs, bibs, chips and texts the target cannot take, relay legs without a team bib,
    names with stray whitespace, registrations added since the last export.

    Exit 1 when anything blocks timing (an error finding), 0 otherwise (warnings allowed).
    """
    if target is not None and target not in PROFILES:
        raise typer.BadParameter(f"{target!r} is not one of {_FORMATS}", param_hint="--for")
    database = open_existing(db)
    try:
        report = run_check(database.conn, race, target, partner)
    except SelectionError as exc:
        fail(str(exc), 2)
    except sqlite3.Error as exc:
        fail(f"database error: {exc}")
    finally:
        database.conn.close()
    if as_json:
        # names are as synced: C1 and bidi controls as \uXXXX escapes, never raw
        typer.echo(json_safe(json.dumps(report.to_dict(), indent=2, ensure_ascii=False)))
    else:
        _print_check(report)
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``rsu export`` and ``rsu check`` to the root app."""
    app.command("export")(export_command)
    app.command("check")(check_command)
