"""The checkpoint loop and the rebuild: read journal events after the checkpoint, apply, commit.

The tables live in a :class:`~rsu.projector.target.Target`: the SQLite file of the journal, or a
PostgreSQL database. Each batch's writes and its new checkpoint commit in one transaction
(``BEGIN IMMEDIATE`` on SQLite), so a
crash (even SIGKILL) leaves the tables exactly at some checkpoint and a restart resumes from there.
A rebuild projects from seq 0 into ``*_new`` tables (committed batch by batch, invisible to
readers), then in one transaction catches up, drops the live tables, renames the new ones and
recreates the indexes: a reader on another connection sees either the old or the new tables, never
empty or half-built ones.
"""

from __future__ import annotations

import gc
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils

from rsu.journal import Journal, database_error, open_db

from . import pipeline
from .apply import Applier, Counters
from .schema import NEW_SUFFIX, PROJECTION_ERRORS, PROJECTION_VERSION, STATE, SYNC_HISTORY
from .target import SqliteTarget, Target, TargetError

#: Journal events per transaction (``rsu project --batch-size``).
DEFAULT_BATCH_SIZE = 200
#: Commit early inside a batch once this many rows were written since the last commit.
ROWS_PER_COMMIT = 50_000

Progress = Callable[[str], None]


@dataclass
class ProjectResult:
    """Outcome of :func:`project`.

    ``events``: journal events projected in this run; ``rows_upserted``: race, event and
    registration rows inserted or changed; ``new_errors``: new ``projection_errors`` rows plus new
    error rows in ``sync_history``; ``checkpoint``: the last projected journal seq; ``rebuilt``:
    whether the tables were rebuilt from seq 0; ``messages``: operator notes (e.g. why a rebuild
    happened).
    """

    events: int = 0
    rows_upserted: int = 0
    new_errors: int = 0
    checkpoint: int = 0
    rebuilt: bool = False
    messages: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """``1`` when this run recorded new errors, else ``0`` (the ``rsu project`` exit code)."""
        return 1 if self.new_errors else 0


def _get_state(conn: Any, name: str, suffix: str = "") -> int | None:
    row = conn.execute(f"SELECT value FROM {STATE.name}{suffix} WHERE name = ?", (name,)).fetchone()
    return None if row is None else int(row[0])


def _set_state(conn: Any, name: str, value: int, suffix: str = "") -> None:
    conn.execute(
        f"INSERT INTO {STATE.name}{suffix} (name, value) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (name, value),
    )


def _hash_key(row_hash: str) -> int:
    """The first 60 bits of a journal row hash, as an integer ``projector_state`` value."""
    return int(row_hash[:15], 16)


def _set_checkpoint(conn: Any, seq: int, row_hash: str, suffix: str = "") -> None:
    """Store the checkpoint seq and (a prefix of) that journal row's chain hash."""
    _set_state(conn, "checkpoint", seq, suffix)
    _set_state(conn, "checkpoint_hash", _hash_key(row_hash), suffix)


def _journal_mismatch(conn: Any, journal: Journal) -> str | None:
    """Why the stored checkpoint no longer matches the journal (truncated, rewritten or
    replaced), or ``None`` when the journal still holds the checkpoint row with its hash."""
    stored = _get_state(conn, "checkpoint") or 0
    want = _get_state(conn, "checkpoint_hash")
    if stored == 0 or want is None:
        return None
    try:
        row = journal.get(stored)
    except KeyError:
        return f"the journal has no event {stored}, up to which the tables were projected"
    if _hash_key(row.hash) != want:
        return f"journal event {stored}, up to which the tables were projected, has changed"
    return None


def _run_batches(
    target: Target,
    journal: Journal,
    applier: Applier,
    batch_size: int,
    progress: Progress | None,
    *,
    in_transaction: bool = False,
) -> int:
    """Project every event after the checkpoint of ``applier``'s tables; returns the checkpoint.

    Unless ``in_transaction``, each batch (or each :data:`ROWS_PER_COMMIT` rows) commits with its
    checkpoint. The checkpoint is re-read under the write lock, so two concurrent projectors never
    apply an event twice.
    """
    conn = target.conn
    suffix = applier.suffix
    checkpoint = _get_state(conn, "checkpoint", suffix) or 0
    last = journal.last_seq()
    # The prefetch worker decodes every page ahead: worth it when every page is new work (a first
    # projection, a rebuild); after that the re-seen-page shortcuts skip most pages, which the
    # worker would decode for nothing (an ordinary day's re-listing cost 1.04x the first
    # projection's CPU with it, 0.56x without).
    catching_up = checkpoint == 0 or not applier.shortcuts
    applier.prefetch = pipeline.start(journal, checkpoint) if catching_up else None
    try:
        return _batches(
            target, journal, applier, batch_size, progress, checkpoint, last, in_transaction
        )
    finally:
        if applier.prefetch is not None:
            applier.prefetch.close()
            applier.prefetch = None


def _batches(
    target: Target,
    journal: Journal,
    applier: Applier,
    batch_size: int,
    progress: Progress | None,
    checkpoint: int,
    last: int,
    in_transaction: bool,
) -> int:
    """The loop of :func:`_run_batches`."""
    conn = target.conn
    suffix = applier.suffix
    for batch in journal.read(checkpoint, batch_size):
        if not in_transaction:
            target.begin()
        try:
            checkpoint = _get_state(conn, "checkpoint", suffix) or 0
            checkpoint_hash = ""
            rows_at_commit = applier.counters.rows_upserted
            for jrow in batch:
                if jrow.seq <= checkpoint:
                    continue
                applier.apply(jrow)
                checkpoint, checkpoint_hash = jrow.seq, jrow.hash
                if (
                    not in_transaction
                    and applier.counters.rows_upserted - rows_at_commit >= ROWS_PER_COMMIT
                ):
                    _set_checkpoint(conn, checkpoint, checkpoint_hash, suffix)
                    target.commit()
                    target.begin()
                    rows_at_commit = applier.counters.rows_upserted
            if checkpoint_hash:
                _set_checkpoint(conn, checkpoint, checkpoint_hash, suffix)
            if not in_transaction:
                target.commit()
        except BaseException:
            if not in_transaction:
                target.rollback()
            raise
        if progress is not None:
            progress(f"projected up to seq {checkpoint} of {max(last, checkpoint)}")
    return checkpoint


def _init_tables(target: Target, suffix: str) -> None:
    conn = target.conn
    target.begin()
    try:
        target.create_tables(suffix)
        if suffix == "":  # the look-up indexes come after the first projection (_project)
            target.create_indexes(lookup=False)
        if _get_state(conn, "projection_version", suffix) is None:
            _set_state(conn, "projection_version", PROJECTION_VERSION, suffix)
            _set_state(conn, "checkpoint", 0, suffix)
        target.commit()
    except BaseException:
        target.rollback()
        raise


def _create_lookup_indexes(target: Target) -> None:
    """Create the live tables' look-up indexes if missing: after the first projection, which
    projects without them (or after a run that ended before doing so); else a no-op."""
    target.begin()
    try:
        target.create_indexes()
        target.commit()
    except BaseException:
        target.rollback()
        raise


def _count_new_errors(target: Target, have_old: bool) -> int:
    """Error rows of the rebuilt tables that the live tables did not have."""
    pe, sh = PROJECTION_ERRORS.name, SYNC_HISTORY.name
    if have_old:
        row = target.probe(
            f"SELECT (SELECT COUNT(*) FROM {pe}{NEW_SUFFIX} n WHERE NOT EXISTS "
            f"(SELECT 1 FROM {pe} o WHERE o.seq = n.seq AND o.item = n.item)) + "
            f"(SELECT COUNT(*) FROM {sh}{NEW_SUFFIX} n WHERE n.status = 'error' AND "
            f"NOT EXISTS (SELECT 1 FROM {sh} o WHERE o.sync_key = n.sync_key "
            "AND o.status = 'error'))"
        )
        if row is not None:  # else the old tables have another shape: count everything
            return int(row[0])
    return int(
        target.conn.execute(
            f"SELECT (SELECT COUNT(*) FROM {pe}{NEW_SUFFIX}) + "
            f"(SELECT COUNT(*) FROM {sh}{NEW_SUFFIX} WHERE status = 'error')"
        ).fetchone()[0]
    )


def _rebuild(
    target: Target,
    journal: Journal,
    batch_size: int,
    progress: Progress | None,
    messages: list[str],
) -> tuple[Counters, int, int]:
    """Build ``*_new`` from seq 0 and swap it in; returns (counters, checkpoint, new errors).

    On SQLite the user's own views, indexes, triggers and full-text tables over the projection
    tables are kept (see :mod:`rsu.projector.user_objects`); what no longer fits is named in
    ``messages``.
    """
    target.begin()
    try:
        target.drop_tables(NEW_SUFFIX)
        target.commit()
    except BaseException:
        target.rollback()
        raise
    _init_tables(target, NEW_SUFFIX)
    applier = Applier(target.conn, journal, NEW_SUFFIX)
    _run_batches(target, journal, applier, batch_size, progress)
    with target.swap_session():
        target.begin()
        try:
            checkpoint = _run_batches(
                target, journal, applier, batch_size, None, in_transaction=True
            )
            have_old = target.tables_exist()
            new_errors = _count_new_errors(target, have_old)
            messages += target.swap_in_new()
            target.commit()
        except BaseException:
            target.rollback()
            raise
    return applier.counters, checkpoint, new_errors


def project(
    db: str | Path | sqlite_utils.Database,
    *,
    rebuild: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
    shortcuts: bool = True,
    target: str | None = None,
) -> ProjectResult:
    """Project the journal in ``db`` (a file path or an open database) into the tables.

    ``shortcuts=False`` projects every page row by row (see ``Applier.shortcuts``; the tables
    are the same either way, tests and benchmarks compare them).

    Reads journal events after the stored checkpoint in batches of ``batch_size`` events; with
    ``rebuild`` (or when the stored projection version differs from
    :data:`~rsu.projector.schema.PROJECTION_VERSION`) replays from seq 0 into new tables and swaps
    them in. ``progress`` receives short human-readable lines. Never does HTTP.

    ``target``: ``None`` for the tables in ``db`` itself, or a ``postgresql://`` DSN; the journal
    always stays in ``db``, and each target keeps its own checkpoint in its own database.

    Raises ``rsu.journal.JournalError`` (wrapping any ``sqlite3.Error``: locked, disk full,
    read-only) for SQLite failures,
    :class:`~rsu.projector.target.TargetError` (DSN masked) when a PostgreSQL target fails, and
    ``ValueError`` for a ``target`` that is no PostgreSQL URL; bad bodies are recorded in
    ``projection_errors`` and skipped.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    pg: Target | None = None
    if target is not None:
        from .dsn import is_pg_target, mask_dsn
        from .pg import PgTarget

        if not is_pg_target(target):
            raise ValueError(f"target {mask_dsn(target)} is not a postgresql:// URL")
        pg = PgTarget(target)
    try:
        database = db if isinstance(db, sqlite_utils.Database) else open_db(db)
    except BaseException:
        if pg is not None:
            pg.close()
        raise
    # Decoded pages are large trees of acyclic dicts: the cyclic GC only slows decoding down.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        journal = Journal(database)
        tgt = pg if pg is not None else SqliteTarget(database.conn)
        try:
            return _project(tgt, journal, rebuild, batch_size, progress, shortcuts)
        except TargetError:
            raise
        except sqlite3.Error as exc:
            raise database_error(exc, "project the journal", database.conn) from exc
        except Exception as exc:
            wrapped = tgt.wrap_error(exc)
            if wrapped is None:
                raise
            raise wrapped from None
    finally:
        if gc_was_enabled:
            gc.enable()
        if pg is not None:
            pg.close()
        if not isinstance(db, sqlite_utils.Database):
            database.conn.close()


def _project(
    target: Target,
    journal: Journal,
    rebuild: bool,
    batch_size: int,
    progress: Progress | None,
    shortcuts: bool,
) -> ProjectResult:
    """:func:`project` on an open ``target``."""
    conn = target.conn
    result = ProjectResult()

    def note(message: str) -> None:
        result.messages.append(message)
        if progress is not None:
            progress(message)

    if target.tables_exist():
        version = _get_state(conn, "projection_version")
        if version != PROJECTION_VERSION and not rebuild:
            rebuild = True
            note(
                f"projection version changed ({version} -> {PROJECTION_VERSION}): "
                "rebuilding the tables from the journal"
            )
    elif not rebuild:
        _init_tables(target, "")
    mismatch = None if rebuild else _journal_mismatch(conn, journal)
    if mismatch is not None:
        # The tables were built from a journal that no longer exists as it was: projecting on
        # from the checkpoint would skip events and leave source_seq pointing at other
        # events. The journal is the truth, so rebuild from it, and fail this run loudly.
        rebuild = True
        note(
            f"{mismatch}: the journal was truncated, rewritten or replaced. The tables are "
            "rebuilt from the journal as it is now; check it with `rsu journal verify`."
        )
    if rebuild:
        counters, checkpoint, new_errors = _rebuild(
            target, journal, batch_size, progress, result.messages
        )
        result.rebuilt = True
        result.new_errors = new_errors + (mismatch is not None)
    else:
        applier = Applier(conn, journal, shortcuts=shortcuts)
        checkpoint = _run_batches(target, journal, applier, batch_size, progress)
        _create_lookup_indexes(target)
        counters = applier.counters
        result.new_errors += counters.new_errors
    result.events = counters.events
    result.rows_upserted = counters.rows_upserted
    result.checkpoint = checkpoint
    return result
