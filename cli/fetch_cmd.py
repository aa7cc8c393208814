"""``rsu fetch`` and ``rsu sync``: thin typer wiring of :func:`rsu.fetcher.run_fetch` (and, for
sync, :func:`rsu.projector.project` after it)."""

from __future__ import annotations

import inspect
import sqlite3
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from rsu.cli.common import (
    DEFAULT_CADENCE,
    DEFAULT_DB,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    CadenceOption,
    DbOption,
    TargetOption,
    cadence_value,
    duration,
    err_console,
    exclusive_run,
    fail,
    fail_database,
    labelled,
    require_db,
    server_text,
    target_value,
)
from rsu.cli.project_cmd import project_or_exit
from rsu.fetcher import (
    DEFAULT_BASE_URL,
    CredentialError,
    FetchOptions,
    FetchResult,
    FetchUsageError,
    run_fetch,
)
from rsu.fetcher.report import PlainProgress, RichProgress
from rsu.fetcher.run import CALLER_WARNING, Terminated, load_caller
from rsu.journal import JournalError


def _date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a YYYY-MM-DD date", param_hint=option) from None


def fetch(
    db: DbOption = DEFAULT_DB,
    base_url: Annotated[
        str,
        typer.Option(
            "--base-url",
            envvar="RSU_BASE_URL",
            help="API root: https://runsignup.com, https://test.runsignup.com or a simulator.",
        ),
    ] = DEFAULT_BASE_URL,
    partner: Annotated[
        list[int] | None,
        typer.Option("--partner", help="Only this timing partner id (repeatable)."),
    ] = None,
    race: Annotated[
        list[int] | None,
        typer.Option("--race", help="Only this race id (repeatable; ignores the date window)."),
    ] = None,
    test: Annotated[
        bool, typer.Option("--test", help="First partner only (as in the original system).")
    ] = False,
    full: Annotated[
        bool, typer.Option("--full", help="Complete participant listings, no incremental cursor.")
    ] = False,
    full_every: Annotated[
        float,
        typer.Option(
            "--full-every",
            parser=duration("h"),
            metavar="DURATION",
            show_default="24h",
            help="After how long an event's listing is read completely again: 24h, 90m, 2d "
            "(a bare number means hours).",
        ),
    ] = 24 * 3600.0,
    all_races: Annotated[
        bool, typer.Option("--all-races", help="Every partner race, whatever its date.")
    ] = False,
    all_due: Annotated[
        bool,
        typer.Option("--all", help="Sync every race in scope now, due or not (ignore --cadence)."),
    ] = False,
    cadence: CadenceOption = DEFAULT_CADENCE,
    start_date: Annotated[
        str | None,
        typer.Option(
            "--start-date", help="Races on or after YYYY-MM-DD (default: today - 30 days)."
        ),
    ] = None,
    end_date: Annotated[
        str | None,
        typer.Option(
            "--end-date", help="Races on or before YYYY-MM-DD (default: today + 365 days)."
        ),
    ] = None,
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency",
            min=1,
            max=64,
            help="Requests in flight at most, across all partners (RunSignUp allows 2 per caller).",
        ),
    ] = 2,
    events_per_call: Annotated[
        int,
        typer.Option(
            "--events-per-call",
            min=1,
            max=500,
            help="Events of a race asked for in one participants call (1: one call per event).",
        ),
    ] = 100,
    beyond_caller_limit: Annotated[
        bool,
        typer.Option(
            "--beyond-caller-limit",
            help="Allow --concurrency above 2. RunSignUp limits each API caller to 2 calls in "
            "flight and throttles or refuses the rest: only for a local simulator or a server "
            "that allows more.",
        ),
    ] = False,
    max_rps: Annotated[
        float,
        typer.Option(
            "--max-rps", min=0.0, help="Requests per second per credential (0: unlimited)."
        ),
    ] = 5.0,
    connect_timeout: Annotated[
        float,
        typer.Option(
            "--connect-timeout",
            parser=duration("s", minimum=0.001),
            metavar="DURATION",
            help="How long to wait for a connection: 10s, 1m, 10 (seconds).",
        ),
    ] = 10.0,
    read_timeout: Annotated[
        float,
        typer.Option(
            "--read-timeout",
            parser=duration("s", minimum=0.001),
            metavar="DURATION",
            help="How long to wait for data: 60s, 2m, 60 (seconds).",
        ),
    ] = 60.0,
    deadline: Annotated[
        float,
        typer.Option(
            "--deadline",
            parser=duration("s", minimum=0.001),
            metavar="DURATION",
            help="How long one request attempt may take in all: 2m, 120 (seconds); a server "
            "trickling its answer is cut off and the attempt is retried like a timeout.",
        ),
    ] = 120.0,
    max_body_mb: Annotated[
        int,
        typer.Option(
            "--max-body-mb",
            min=1,
            help="Largest response body accepted, in MiB after decompression (a larger one "
            "fails its request, unstored and not retried).",
        ),
    ] = 64,
    max_attempts: Annotated[
        int, typer.Option("--max-attempts", min=1, help="Tries per request, the first included.")
    ] = 6,
    backoff: Annotated[
        float,
        typer.Option(
            "--backoff",
            parser=duration("s"),
            metavar="DURATION",
            help="Backoff factor, doubling per retry: 0.25, 1s (a bare number means seconds).",
        ),
    ] = 0.25,
    retry_after_cap: Annotated[
        float,
        typer.Option(
            "--retry-after-cap",
            parser=duration("s"),
            metavar="DURATION",
            help="Longest Retry-After honoured: 30s, 1m, 30 (seconds).",
        ),
    ] = 30.0,
    overlap: Annotated[
        float,
        typer.Option(
            "--overlap",
            parser=duration("s"),
            metavar="DURATION",
            help="How much is re-read before an incremental cursor: 10s, 1m, 10 (seconds).",
        ),
    ] = 10.0,
    unreachable_after: Annotated[
        int,
        typer.Option(
            "--unreachable-after",
            min=1,
            help="Stop asking for a partner after this many requests in a row got no answer.",
        ),
    ] = 3,
    page_size: Annotated[
        int, typer.Option("--page-size", min=1, max=2500, help="Registrations per page.")
    ] = 2500,
    log_file: Annotated[Path, typer.Option("--log-file", help="Operator log (appended).")] = Path(
        "runsignup_sync.log"
    ),
    summary_file: Annotated[
        Path, typer.Option("--summary-file", help="JSON summary of the run.")
    ] = Path("runsignup_sync_summary.json"),
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress", help="Progress bars (default: only on a terminal)."
        ),
    ] = None,
) -> None:
    """Fetch races, events, participants and removals of your timing partners into the journal.

    Exit code 0 when all went well, 1 when any partner, race or event failed, 2 for usage
    errors (e.g. no credentials configured), 75 when another rsu run is using the database.
    """
    values = locals()
    require_db(db)
    with exclusive_run(db, "rsu fetch"):
        result = _fetch(values)
    raise typer.Exit(result.exit_code)


def _fetch(values: dict[str, Any]) -> FetchResult:
    """Run one fetch from the parsed options of :func:`fetch` and print its one-line summary."""
    db: Path = values["db"]
    options = FetchOptions(
        base_url=values["base_url"],
        partner_ids=tuple(values["partner"] or ()),
        race_ids=tuple(values["race"] or ()),
        test=values["test"],
        full=values["full"],
        full_every=values["full_every"],
        all_races=values["all_races"],
        cadence=cadence_value(values["cadence"]),
        ignore_cadence=values["all_due"],
        start_date=_date(values["start_date"], "--start-date"),
        end_date=_date(values["end_date"], "--end-date"),
        concurrency=values["concurrency"],
        beyond_caller_limit=values["beyond_caller_limit"],
        events_per_call=values["events_per_call"],
        max_rps=values["max_rps"],
        connect_timeout=values["connect_timeout"],
        read_timeout=values["read_timeout"],
        deadline=values["deadline"],
        max_body_bytes=values["max_body_mb"] * 2**20,
        max_attempts=values["max_attempts"],
        backoff_factor=values["backoff"],
        retry_after_cap=values["retry_after_cap"],
        overlap_seconds=int(values["overlap"]),
        unreachable_after=values["unreachable_after"],
        page_size=values["page_size"],
        log_file=values["log_file"],
        summary_file=values["summary_file"],
    )
    progress = values["progress"]
    show_bars = sys.stdout.isatty() if progress is None else progress
    try:
        if show_bars:
            with RichProgress() as bars:
                result = run_fetch(db, options, bars)
        else:
            result = run_fetch(db, options, PlainProgress())
    except FetchUsageError as exc:
        fail(str(exc), 2)
    except CredentialError as exc:  # e.g. an unreadable secrets file
        fail(str(exc), 1)
    except (JournalError, sqlite3.Error) as exc:
        fail_database(db, exc)
    except Terminated as exc:
        fail(f"stopped by {exc}; the journal holds everything fetched so far", EXIT_TERMINATED)
    except KeyboardInterrupt:
        fail("interrupted; the journal holds everything fetched so far", EXIT_INTERRUPTED)
    c = result.counts
    typer.echo(
        f"fetch {result.status}: {c['races']} races ({c['races_not_due']} not due), "
        f"{c['events']} events, "
        f"{c['participants']} participants, {c['removed_participants']} removed, "
        f"{c['requests']} requests ({c['retries']} retries), {c['bytes_received']} bytes, "
        f"{c['new_bodies']} new bodies in {result.duration_seconds:.1f} s; run {result.run_id}"
    )
    for line in result.failures:
        err_console.print(labelled("failed", "red", line), soft_wrap=True)
    for line in result.warnings:
        err_console.print(labelled("warning", "yellow", line), soft_wrap=True)
    if load_caller(db) is None:
        err_console.print(labelled("warning", "yellow", CALLER_WARNING), soft_wrap=True)
    return result


def sync(**values: Any) -> None:
    """Fetch, then project: the command for cron. Takes every option of `rsu fetch`.

    Exit code 0 only when everything synced: the fetch had no failure and the projection
    recorded no new error; 1 otherwise; 2 for usage errors; 75 when another rsu run is using the
    database. With --target, project into that PostgreSQL database instead of the SQLite tables.
    """
    db: Path = values["db"]
    require_db(db)
    dsn = target_value(values["target"])
    with exclusive_run(db, "rsu sync"):
        fetched = _fetch(values)
        projected = project_or_exit(db, target=dsn)
    for message in projected.messages:
        err_console.print(server_text(message), soft_wrap=True)
    typer.echo(
        f"project: {projected.events} journal events, {projected.rows_upserted} rows upserted, "
        f"{projected.new_errors} new errors (see `rsu history --status error`)"
    )
    raise typer.Exit(max(fetched.exit_code, projected.exit_code))


def _sync_target(target: TargetOption = None) -> None:
    """Holds the ``--target`` option that ``rsu sync`` adds to those of ``rsu fetch``."""


# `rsu sync` takes exactly the options of `rsu fetch` (one list, no copy to drift apart), plus
# `--target`.
_fetch_signature = inspect.signature(fetch, eval_str=True)
sync.__signature__ = _fetch_signature.replace(  # type: ignore[attr-defined]
    parameters=[
        *_fetch_signature.parameters.values(),
        *inspect.signature(_sync_target, eval_str=True).parameters.values(),
    ]
)


def register(app: typer.Typer) -> None:
    """Add ``rsu fetch`` to the root app."""
    app.command("fetch")(fetch)
    app.command("sync")(sync)
