"""``rsu journal``: audit the journal of raw API responses (log, show, verify, stats, import).

Thin wiring: the logic lives in :mod:`rsu.journal.audit` and :class:`rsu.journal.Journal`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated

import typer

from rsu.cli.common import (
    DEFAULT_DB,
    DbOption,
    database_errors,
    exclusive_run,
    fail,
    require_db,
)
from rsu.journal import Journal, JournalError, parse_head
from rsu.journal.audit import (
    IMPORT_PATHS,
    KINDS,
    import_files,
    import_path,
    iter_events,
    parse_since,
    row_dict,
    summarize,
)
from rsu.journal.printable import printable

app = typer.Typer(help="Audit the journal of raw API responses.", no_args_is_help=True)


@contextmanager
def _open(db: Path, *, create: bool = False) -> Iterator[Journal]:
    """Open the journal at ``db``; a missing file is a usage error (exit 2) unless ``create``.
    Without ``create`` the file is opened read-only (it may be a read-only file or folder)."""
    if not create:
        require_db(db)
    with database_errors(db), Journal.open(db, readonly=not create) as journal:
        yield journal


def _fmt(value: object) -> str:
    return "-" if value is None else str(value)


@app.command("log")
def log_cmd(
    db: DbOption = DEFAULT_DB,
    kind: Annotated[
        str | None, typer.Option(help=f"Only this event kind: {', '.join(KINDS)}.")
    ] = None,
    partner: Annotated[int | None, typer.Option(help="Only this timing_partner_id.")] = None,
    race: Annotated[int | None, typer.Option(help="Only this race_id.")] = None,
    run: Annotated[str | None, typer.Option(help="Only this run_id.")] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Only events recorded at or after this ISO 8601 time (naive = UTC)."),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many events.")] = None,
    newest_first: Annotated[
        bool, typer.Option("--newest-first", help="Newest events first (with --limit: the latest).")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="A JSON array of events (row columns + event).")
    ] = False,
) -> None:
    """One line per event: seq, recorded_at (UTC), kind, partner, race, event, summary."""
    if kind is not None and kind not in KINDS:
        raise typer.BadParameter(
            f"unknown kind {kind!r}; one of {', '.join(KINDS)}", param_hint="--kind"
        )
    since_norm = None
    if since is not None:
        try:
            since_norm = parse_since(since)
        except ValueError as exc:
            raise typer.BadParameter(
                f"not an ISO 8601 time: {since!r}", param_hint="--since"
            ) from exc
    with _open(db) as journal:
        rows = iter_events(
            journal,
            kind=kind,
            timing_partner_id=partner,
            race_id=race,
            run_id=run,
            since=since_norm,
            limit=limit,
            newest_first=newest_first,
        )
        if as_json:
            typer.echo("[", nl=False)
            for i, row in enumerate(rows):
                typer.echo(("," if i else "") + "\n" + json.dumps(row_dict(row)), nl=False)
            typer.echo("\n]")
            return
        for row in rows:
            typer.echo(
                f"{row.seq:>7}  {row.recorded_at}  {row.kind:<17}  "
                f"partner={_fmt(row.timing_partner_id)} race={_fmt(row.race_id)} "
                f"event={_fmt(row.event_id)}  {printable(summarize(journal, row))}".rstrip()
            )


@app.command("show")
def show_cmd(
    seq: Annotated[int, typer.Argument(help="The event's seq.")],
    db: DbOption = DEFAULT_DB,
    body: Annotated[
        bool, typer.Option("--body", help="Write the raw response body, byte-exact, to stdout.")
    ] = False,
) -> None:
    """Show one event as JSON with its row columns, or its raw body with --body. A body whose
    echoed secrets were scrubbed before storing gets a note on stderr."""
    with _open(db) as journal:
        try:
            row = journal.get(seq)
        except KeyError:
            fail(f"no journal event with seq {seq}")
        scrubbed = getattr(row.event, "body_scrubbed", 0)
        if scrubbed:  # on stderr: stdout stays the JSON or the body
            typer.echo(
                f"note: the server echoed {scrubbed} secret value(s) in this body; they were "
                "replaced by *** before it was stored (body_sha256 and body_size are of the "
                "stored body)",
                err=True,
            )
        if not body:
            typer.echo(json.dumps(row_dict(row), indent=2))
            return
        if row.body_sha256 is None:
            fail(f"event {seq} ({row.kind}) has no body")
        try:
            data = journal.body(row.body_sha256)
        except KeyError:
            fail(f"event {seq}: body {row.body_sha256[:12]} is missing from journal_blobs")
        except JournalError as exc:
            fail(f"event {seq}: {exc}")
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


@app.command("verify")
def verify_cmd(
    db: DbOption = DEFAULT_DB,
    expect_head: Annotated[
        str | None,
        typer.Option(
            "--expect-head",
            metavar="SEQ:HASH",
            help="A head kept outside the file (summary JSON or rsu status --json journal_head): "
            "exit 1 unless event SEQ exists with HASH (catches a deleted tail).",
        ),
    ] = None,
) -> None:
    """Recompute every blob hash and the hash chain, check seq has no gaps. Exit 1 when broken."""
    try:
        head = parse_head(expect_head) if expect_head is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--expect-head") from exc
    with _open(db) as journal:
        report = journal.verify()
        if head is not None and (problem := journal.check_head(*head)) is not None:
            report.problems.append(("head", problem))
    if report.ok:
        expected = f", head {head[0]}:{head[1]} as expected" if head is not None else ""
        typer.echo(f"OK: {report.events} events, {report.blobs} blobs, chain intact{expected}")
        return
    for where, message in report.problems:
        label = f"seq {where}" if where.isdigit() else where
        typer.echo(f"BROKEN {label}: {message}")
    fail(
        f"journal verification failed: {len(report.problems)} problem(s) "
        f"in {report.events} events, {report.blobs} blobs"
    )


def _mb(n: int) -> str:
    return f"{n:,} B ({n / 1e6:.2f} MB)"


@app.command("stats")
def stats_cmd(db: DbOption = DEFAULT_DB) -> None:
    """Events per kind; body bytes received vs unique vs stored (dedup and compression ratios)."""
    with _open(db) as journal:
        st = journal.stats()
    typer.echo(f"events: {st.events} (last seq {st.last_seq})")
    for kind, n in sorted(st.events_by_kind.items()):
        typer.echo(f"  {kind:<18} {n}")
    typer.echo(f"distinct bodies: {st.blobs}")
    typer.echo(f"body bytes received: {_mb(st.body_bytes_received)}")
    typer.echo(f"body bytes unique:   {_mb(st.body_bytes_unique)}")
    typer.echo(f"body bytes stored:   {_mb(st.body_bytes_stored)}")
    dedup = st.body_bytes_received / st.body_bytes_unique if st.body_bytes_unique else 0.0
    comp = st.body_bytes_unique / st.body_bytes_stored if st.body_bytes_stored else 0.0
    typer.echo(
        f"dedup ratio: {dedup:.2f}x  compression ratio: {comp:.2f}x  overall: {st.ratio:.2f}x"
    )


@app.command("import")
def import_cmd(
    files: Annotated[
        list[Path],
        typer.Argument(exists=True, dir_okay=False, readable=True, help="Raw JSON response files."),
    ],
    endpoint: Annotated[
        str, typer.Option(help=f"Endpoint the files came from: {', '.join(IMPORT_PATHS)}.")
    ],
    db: DbOption = DEFAULT_DB,
    race_id: Annotated[
        int | None, typer.Option(help="race_id (race, participants, removed).")
    ] = None,
    event_id: Annotated[int | None, typer.Option(help="event_id (participants, removed).")] = None,
    partner: Annotated[
        int | None,
        typer.Option(help="timing_partner_id the files were fetched for (required)."),
    ] = None,
) -> None:
    """Append raw API responses saved elsewhere as response_received events (HTTP 200). Takes
    the run lock like rsu sync: exits 75 having done nothing while another run uses the db."""
    try:
        import_path(endpoint, race_id, event_id, partner)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    try:
        tool_version = version("rsu")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        tool_version = ""
    with exclusive_run(db, "rsu journal import"), _open(db, create=True) as journal:
        try:
            result = import_files(
                journal,
                files,
                endpoint=endpoint,
                race_id=race_id,
                event_id=event_id,
                timing_partner_id=partner,
                tool_version=tool_version,
            )
        except OSError as exc:
            fail(f"cannot read {exc.filename}: {exc.strerror}; nothing imported")
    for f in result.files:
        typer.echo(f"seq {f.seq}  {f.path}  {f.size} B  sha256 {f.sha256[:12]}")
        if f.warning:
            typer.echo(f"warning: {f.path}: {f.warning}", err=True)
    typer.echo(
        f"imported {len(result.files)} file(s) as run {result.run_id} "
        f"(seq {result.started_seq}..{result.finished_seq})"
    )
