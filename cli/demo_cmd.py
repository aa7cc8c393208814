"""``rsu demo``: the whole sync against a simulated RunSignUp on loopback, in one command.

The first run generates a world (a few timing partners, a dozen races, about 20,000
registrations) whose dates start today, registers its credentials in the demo database and runs
a full sync with some faults switched on. Every later run replays the same world, advances it
once more (new registrations, edits, refunds, transfers, deferrals) and runs an incremental sync,
showing what changed. The world's seed, start and number of advances live in the table
``demo_state`` of the demo database, so the world is re-created exactly.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import sqlite_utils
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rsu.cli.common import fail, labelled
from rsu.fetcher import FetchOptions, FetchResult, FetchUsageError, run_fetch
from rsu.fetcher.credentials import add_credential, load_credentials, secrets_file_of
from rsu.fetcher.report import PlainProgress, RichProgress
from rsu.journal import JournalError, open_db
from rsu.projector import project
from rsu.projector.reports import run_changes, totals
from rsu.simulator import Faults, SimulatorServer, World, WorldConfig

#: Wide when piped so that the suggested commands are not wrapped mid-command.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
DEMO_DB = Path("rsu-demo.db")
DEMO_SEED = 2026


@dataclass
class DemoState:
    """What re-creates the demo world: its seed, start (epoch seconds, UTC midnight of the first
    run's day) and how many times it was advanced before this run."""

    seed: int
    start_epoch: int
    advances: int


def load_state(db: sqlite_utils.Database) -> DemoState:
    """Read (creating on the first run) the ``demo_state`` row of the demo database."""
    table = db["demo_state"]
    if table.exists():
        row = next(iter(table.rows), None)  # type: ignore[union-attr]
        if row is not None:
            return DemoState(row["seed"], row["start_epoch"], row["advances"])
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    state = DemoState(DEMO_SEED, int(today.timestamp()), 0)
    db["demo_state"].insert(  # type: ignore[union-attr]
        {"id": 1, "seed": state.seed, "start_epoch": state.start_epoch, "advances": 0}, pk="id"
    )
    return state


def demo_world(state: DemoState) -> World:
    """The demo world as it stood after ``state.advances`` advances."""
    world = World.generate(
        WorldConfig(
            seed=state.seed,
            partners=3,
            races_per_partner=4,
            events_per_race=(1, 3),
            registrations_per_event=(400, 1200),
            start_epoch=state.start_epoch,
        )
    )
    for _ in range(state.advances):
        advance_once(world)
    return world


def advance_once(world: World) -> list[object]:
    """One step of the demo world: an hour of registrations, edits, refunds, transfers and
    deferrals (deterministic for the world's seed)."""
    return list(world.advance(new=60, edits=25, refunds=4, transfers=3, deferrals=3, seconds=3600))


DEMO_FAULTS = Faults(seed=DEMO_SEED, http_5xx=0.03, throttle=0.03, truncated=0.02, latency_ms=5)


def _summary_table(db: sqlite_utils.Database, fetch: FetchResult, seconds: float) -> Table:
    t = totals(db.conn)
    changes = run_changes(db.conn, fetch.run_id)
    table = Table(
        title=f"rsu demo: run {fetch.run_id} ({'ok' if fetch.exit_code == 0 else 'FAILED'})"
    )
    table.add_column("what")
    table.add_column("value", justify="right")
    rows = [
        ("timing partners", t.partners),
        ("races", t.races),
        ("events", t.events),
        ("registrations active", t.active),
        ("registrations removed", t.removed),
        ("new in this run", changes.get("new", 0)),
        ("changed in this run", changes.get("changed", 0)),
        ("removed in this run", changes.get("removed", 0)),
        ("requests", fetch.counts.get("requests", 0)),
        ("retries (faults survived)", fetch.counts.get("retries", 0)),
        ("new bodies stored", fetch.counts.get("new_bodies", 0)),
        ("duration", f"{seconds:.1f} s"),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    return table


def _rsu_command() -> str:
    """How to call ``rsu`` in the hints: ``rsu`` when it is on PATH, else its full path
    (e.g. ``.venv/bin/rsu`` when the virtual environment is not activated)."""
    on_path = shutil.which("rsu")
    mine = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
    if on_path and mine and Path(on_path).resolve() == mine:
        return "rsu"
    if mine and mine.name == "rsu":
        try:
            return str(mine.relative_to(Path.cwd().resolve()))
        except ValueError:
            return str(mine)
    return "rsu"


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the root app."""

    @app.command()
    def demo(
        db: Annotated[
            Path, typer.Option("--db", help="Demo database (kept apart from your real rsu.db).")
        ] = DEMO_DB,
        faults: Annotated[
            bool, typer.Option("--faults/--no-faults", help="Inject RunSignUp-like faults.")
        ] = True,
        concurrency: Annotated[
            int,
            typer.Option("--concurrency", min=1, max=2, help="Requests in flight (RunSignUp: 2)."),
        ] = 2,
    ) -> None:
        """Run a full sync against a local RunSignUp simulator; run again for an incremental one."""
        t0 = time.monotonic()
        try:
            database = open_db(db)
        except JournalError as exc:
            fail(str(exc))
        if not database["demo_state"].exists() and (
            database["journal"].exists() or load_credentials(database)
        ):
            database.conn.close()
            fail(
                f"{db} holds real credentials or a journal and is not a demo database; the demo "
                "would add simulated partners and registrations to it. Use another --db "
                f"(default {DEMO_DB}).",
                2,
            )
        state = load_state(database)
        console.print(f"Building the simulated RunSignUp world (seed {state.seed})...")
        world = demo_world(state)
        changes: list[object] = []
        if state.advances or load_credentials(database):
            changes = advance_once(world)
            state.advances += 1
        known = {c.timing_partner_id for c in load_credentials(database)}
        for cred in world.credentials:
            if cred.timing_partner_id not in known:
                add_credential(
                    database, cred.timing_partner_id, cred.auth, cred.secret, cred.principal
                )
        console.print(
            f"The (simulated) API secrets live in {escape(str(secrets_file_of(db)))} (mode 0600), "
            f"never in {escape(str(db))}, which you may open in Datasette or share."
        )
        if changes:
            kinds = Counter(getattr(c, "kind", "?") for c in changes)
            console.print(
                "The world moved on since the last demo: "
                + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
            )
        with SimulatorServer(world, faults=DEMO_FAULTS if faults else Faults()) as sim:
            console.print(f"Simulator on {sim.base_url}; syncing {len(world.partner_ids)} partners")
            options = FetchOptions(
                base_url=sim.base_url,
                concurrency=concurrency,
                max_rps=0,
                backoff_factor=0.05,
                backoff_max=1.0,
                retry_after_cap=2.0,
                read_timeout=20.0,
                ignore_cadence=True,  # the demo world moves on between runs: sync every race
                log_file=db.with_name("runsignup_sync.log"),
                summary_file=db.with_name("runsignup_sync_summary.json"),
            )
            progress = RichProgress(console) if sys.stdout.isatty() else PlainProgress()
            try:
                if isinstance(progress, RichProgress):
                    with progress:
                        fetch = run_fetch(db, options, progress)
                else:
                    fetch = run_fetch(db, options, progress)
            except FetchUsageError as exc:
                fail(str(exc), 2)
        projected = project(database)
        database["demo_state"].update(1, {"advances": state.advances})  # type: ignore[union-attr]
        console.print(_summary_table(database, fetch, time.monotonic() - t0))
        database.conn.close()
        for line in fetch.failures[:10]:
            console.print(labelled("failure", "red", line))
        rsu = _rsu_command()
        console.print(
            "\nNext, try:\n"
            f"  {rsu} status --db {db} --max-age 86400   # freshness per partner and race\n"
            f"  {rsu} history --db {db} --limit 20      # what each sync did\n"
            f"  {rsu} journal log --db {db} --limit 20  # the raw audit trail\n"
            f"  {rsu} journal verify --db {db}          # hash chain and bodies intact?\n"
            f"  sqlite3 {db} 'SELECT bib_num, first_name, last_name FROM runsignup_participants "
            "LIMIT 10'\n"
            f"  {rsu} demo --db {db}                    # again: the world changes, incremental"
        )
        code = max(fetch.exit_code, projected.exit_code)
        if code:
            raise typer.Exit(code)
