"""``rsu audit``: the history of one registration from the raw responses (thin wiring of
:func:`rsu.journal.registration_audit.audit_registration`)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from rsu.cli.common import DEFAULT_DB, DbOption, database_errors, fail, require_db
from rsu.journal import Journal
from rsu.journal.printable import printable
from rsu.journal.registration_audit import (
    SUMMARY_FIELDS,
    Timeline,
    Version,
    audit_registration,
)
from rsu.projector.reports import registration_event_changes


def _value(value: Any) -> str:
    """A raw JSON value as sent: ``1234`` and ``"1234"`` stay distinguishable; control
    characters from the network never reach the terminal."""
    return printable(json.dumps(value, ensure_ascii=False))


def _when(version: Version) -> str:
    stamp = version.served_at.replace("T", " ").removesuffix("Z")[:19]
    mark = "" if version.served_at_source == "Date header" else " (rsu clock)"
    return f"{stamp} UTC{mark}"


def _headline(version: Version) -> str:
    where = f"{version.endpoint}, event {version.event_id}"
    if version.status == "removed":
        what = f"REMOVED ({version.removed_reason})"
        if version.new_registration_id is not None:
            what += f", transferred to registration {version.new_registration_id}"
    else:
        what = "active"
    seen = (
        f"; served {version.seen} times, last in seq {version.last_seen_seq}"
        if version.seen > 1
        else ""
    )
    older = "; an older copy (earlier last_modified)" if version.older_copy else ""
    return f"seq {version.seq}  {_when(version)}  {where}: {what}{older}{seen}"


def _print_timeline(registration_id: int, timeline: Timeline) -> None:
    n = len(timeline.versions)
    typer.echo(
        f"registration {registration_id}, partner {timeline.timing_partner_id}, "
        f"race {timeline.race_id}: {n} version{'s' if n != 1 else ''}, oldest first "
        "(time RunSignUp served it, from its Date header unless marked rsu clock)"
    )
    if timeline.transferred_from:
        sources = ", ".join(str(r) for r in timeline.transferred_from)
        typer.echo(f"  transferred here from registration {sources}")
    for i, version in enumerate(timeline.versions):
        typer.echo(f"  {_headline(version)}")
        if i == 0:
            fields = " ".join(
                f"{k}={_value(version.record.get(k))}"
                for k in SUMMARY_FIELDS
                if k in version.record
            )
            typer.echo(f"      first seen: {fields}")
        for change in version.changes:
            typer.echo(f"      {change.field}: {_value(change.old)} -> {_value(change.new)}")


def audit_command(
    registration: Annotated[
        int, typer.Option("--registration", help="registration_id to trace.", show_default=False)
    ],
    db: DbOption = DEFAULT_DB,
    partner: Annotated[
        int | None, typer.Option("--partner", help="Only as served to this timing partner.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every version of one registration that RunSignUp served, from the raw responses.

    Oldest first: when RunSignUp served it (UTC), the journal seq, what changed (field, old,
    new, as sent), removals with their reason, transfers and event changes. Exit 1 when the
    journal never held the registration.
    """
    require_db(db)
    with database_errors(db), Journal.open(db, readonly=True) as journal:
        report = audit_registration(journal, registration, timing_partner_id=partner)
        moves = registration_event_changes(journal.db.conn, registration, timing_partner_id=partner)
    if as_json:
        doc = {**report.to_dict(), "projected_event_changes": moves}
        typer.echo(json.dumps(doc, indent=2))  # \\uXXXX: no raw control bytes
    else:
        for timeline in report.timelines:
            _print_timeline(registration, timeline)
        if moves:
            typer.echo("event changes in the tables (runsignup_event_changes):")
        for move in moves:
            typer.echo(
                f"  seq {move['source_seq']}  {move['changed_at']}  partner "
                f"{move['timing_partner_id']}, race {move['race_id']}: event "
                f"{move['from_event_id']} -> {move['to_event_id']}"
            )
    if not any(t.versions for t in report.timelines):
        scope = f" for partner {partner}" if partner is not None else ""
        fail(f"registration {registration} is not in the journal{scope}", 1)


def register(app: typer.Typer) -> None:
    """Add ``rsu audit`` to the root app."""
    app.command("audit")(audit_command)
