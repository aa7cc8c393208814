"""``rsu fetch`` and ``rsu sync``: thin typer wiring of :func:`rsu.fetcher.run_fetch` (and, for
sync, :func:`rsu.projector.project` after it)."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
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
    duration_option,
    err_console,
    exclusive_run,
    fail,
    fetcher_errors,
    labelled,
    number,
    require_db,
    server_text,
    target_value,
)
from rsu.cli.project_cmd import project_or_exit
from rsu.fetcher import (
    DEFAULT_BASE_URL,
    FetchOptions,
    FetchResult,
    run_fetch,
)
from rsu.fetcher.report import PlainProgress, RichProgress
from rsu.fetcher.run import CALLER_WARNING, Terminated, load_caller


def _date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a YYYY-MM-DD date", param_hint=option) from None


@dataclass(frozen=True)
class FetchRun:
    """One fetch as ``rsu fetch`` (and the first half of ``rsu sync``) runs it, built by
    :func:`fetch_run` from the command's options: the database file ``db``, the fetcher's
    :class:`~rsu.fetcher.FetchOptions`, and ``progress`` (``True``/``False`` from
    ``--progress/--no-progress``; ``None``: bars only when standard output is a terminal)."""

    db: Path
    options: FetchOptions
    progress: bool | None = None

    @property
    def show_bars(self) -> bool:
        """Whether to draw progress bars (rich) rather than plain progress lines."""
        return sys.stdout.isatty() if self.progress is None else self.progress


def fetch_run(
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
        duration_option(
            "--full-every",
            bare_unit="h",
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
            "--max-rps",
            parser=number(0.0),
            help="Requests per second per credential (0: unlimited).",
        ),
    ] = 5.0,
    connect_timeout: Annotated[
        float,
        duration_option(
            "--connect-timeout",
            minimum=0.001,
            help="How long to wait for a connection: 10s, 1m, 10 (seconds).",
        ),
    ] = 10.0,
    read_timeout: Annotated[
        float,
        duration_option(
            "--read-timeout",
            minimum=0.001,
            help="How long to wait for data: 60s, 2m, 60 (seconds).",
        ),
    ] = 60.0,
    deadline: Annotated[
        float,
        duration_option(
            "--deadline",
            minimum=0.001,
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
        duration_option(
            "--backoff",
            help="Backoff factor, doubling per retry: 0.25, 1s (a bare number means seconds).",
        ),
    ] = 0.25,
    retry_after_cap: Annotated[
        float,
        duration_option(
            "--retry-after-cap",
            help="Longest Retry-After honoured: 30s, 1m, 30 (seconds).",
        ),
    ] = 30.0,
    overlap: Annotated[
        float,
        duration_option(
            "--overlap",
            help="How much is re-read before an incremental cursor: 10s, 1m, 10 (seconds).",
        ),
    ] = 10.0,
    unreachable_after: Annotated[
        int,
        typer.Option(
            "--unreachable-after",
            min=1,
            help="The whole run stops asking after this many requests in a row got no answer.",
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
) -> FetchRun:
    """The options of ``rsu fetch`` as a :class:`FetchRun`: the one list of them, which
    ``rsu fetch`` and ``rsu sync`` both take (see :func:`_takes_options_of`).

    Durations arrive in seconds (their ``parser=`` converted them); ``--max-body-mb`` becomes
    bytes. A bad ``--cadence``, ``--start-date`` or ``--end-date`` raises ``typer.BadParameter``
    (usage error, exit 2) naming the option.
    """
    return FetchRun(
        db=db,
        options=FetchOptions(
            base_url=base_url,
            partner_ids=tuple(partner or ()),
            race_ids=tuple(race or ()),
            test=test,
            full=full,
            full_every=full_every,
            all_races=all_races,
            cadence=cadence_value(cadence),
            ignore_cadence=all_due,
            start_date=_date(start_date, "--start-date"),
            end_date=_date(end_date, "--end-date"),
            concurrency=concurrency,
            beyond_caller_limit=beyond_caller_limit,
            events_per_call=events_per_call,
            max_rps=max_rps,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            deadline=deadline,
            max_body_bytes=max_body_mb * 2**20,
            max_attempts=max_attempts,
            backoff_factor=backoff,
            retry_after_cap=retry_after_cap,
            overlap_seconds=int(overlap),
            unreachable_after=unreachable_after,
            page_size=page_size,
            log_file=log_file,
            summary_file=summary_file,
        ),
        progress=progress,
    )


def fetch(**params: Any) -> None:
    """Fetch races, events, participants and removals of your timing partners into the journal.

    Exit code 0 when all went well, 1 when any partner, race or event failed, 2 for usage
    errors (e.g. no credentials configured), 75 when another rsu run is using the database.
    """
    run = fetch_run(**params)
    require_db(run.db)
    with exclusive_run(run.db, "rsu fetch"):
        result = _fetch(run)
    raise typer.Exit(result.exit_code)


def _fetch(run: FetchRun) -> FetchResult:
    """Run one fetch and print its one-line summary, failures and warnings; exits 2 on a usage
    error, 1 on a credential or database failure, 143/130 when stopped."""
    db = run.db
    try:
        with fetcher_errors(db):
            if run.show_bars:
                with RichProgress() as bars:
                    result = run_fetch(db, run.options, bars)
            else:
                result = run_fetch(db, run.options, PlainProgress())
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


def sync(target: TargetOption = None, **params: Any) -> None:
    """Fetch, then project: the command for cron. Takes every option of `rsu fetch`.

    Exit code 0 only when everything synced: the fetch had no failure and the projection
    recorded no new error; 1 otherwise; 2 for usage errors; 75 when another rsu run is using the
    database. With --target, project into that PostgreSQL database instead of the SQLite tables.
    """
    run = fetch_run(**params)
    require_db(run.db)
    dsn = target_value(target)
    with exclusive_run(run.db, "rsu sync"):
        fetched = _fetch(run)
        projected = project_or_exit(run.db, target=dsn)
    for message in projected.messages:
        err_console.print(server_text(message), soft_wrap=True)
    typer.echo(
        f"project: {projected.events} journal events, {projected.rows_upserted} rows upserted, "
        f"{projected.new_errors} new errors (see `rsu history --status error`)"
    )
    raise typer.Exit(max(fetched.exit_code, projected.exit_code))


def _takes_options_of(command: Callable[..., None], *extra: str) -> None:
    """Give ``command`` (which takes ``**params`` and passes them to :func:`fetch_run`) the
    options of :func:`fetch_run`, then its own parameters named in ``extra``: typer reads the
    command's options from this signature, so ``rsu fetch`` and ``rsu sync`` share one list of
    options that cannot drift apart."""
    own = inspect.signature(command, eval_str=True).parameters
    shared = inspect.signature(fetch_run, eval_str=True).parameters.values()
    command.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [*shared, *(own[name] for name in extra)], return_annotation=None
    )


_takes_options_of(fetch)
_takes_options_of(sync, "target")  # `rsu sync` adds --target


def register(app: typer.Typer) -> None:
    """Add ``rsu fetch`` and ``rsu sync`` to the root app."""
    app.command("fetch")(fetch)
    app.command("sync")(sync)
