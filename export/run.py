"""``rsu export``: select the start list, check it against the target, write it, record it.

Steps: find the race's timing partner; read the start list from the live projection, or from a
replay of the journal up to ``--as-of``; check every row that will be written against the
profile (refuse, skip or blank as ``--allow`` says); encode the full list, or with ``--since``
the change report against an earlier export; hand the bytes to the caller's writer; record the
export and its rows.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple

import sqlite_utils

from rsu.journal import Journal

from . import asof, record
from .diff import Change, diff
from .profiles import (
    BLANKED,
    FORMULA,
    QUOTED,
    SKIPPED,
    VALUE,
    Problem,
    Profile,
    fix_cells,
    profile,
)
from .selection import (
    RemovedRow,
    SelectionError,
    StartRow,
    race_partner,
    removed_rows,
    start_list,
)
from .writing import encode

#: Columns of a change report (``--since``), before the profile's own columns.
CHANGE_COLUMNS = (
    "change",
    "registration_id",
    "event_id",
    "field",
    "old",
    "new",
    "reason",
    "new_registration_id",
)


class Allow(StrEnum):
    """``--allow``: what to do with a row holding a value the target cannot take.

    ``skip-row`` leaves the row out (and names it); ``blank-value`` writes the offending values
    empty (and names them); ``quote-formula`` writes a spreadsheet formula with a ``'`` before it
    (OWASP's neutralisation: spreadsheets show it as text) and names it, and may be given with
    one of the other two, which then handle the other problems. Without ``--allow`` (or for a
    problem no given choice handles) the export refuses (exit 1) and writes nothing.
    """

    skip_row = "skip-row"
    blank_value = "blank-value"
    quote_formula = "quote-formula"


def action(problem: Problem, allow: frozenset[Allow]) -> str | None:
    """What ``allow`` does with ``problem``: ``skipped``, ``written empty``, ``quoted``, or
    ``None`` (refused)."""
    if problem.kind == FORMULA and Allow.quote_formula in allow:
        return QUOTED
    if Allow.skip_row in allow:
        return SKIPPED
    if Allow.blank_value in allow:
        return BLANKED
    return None


class ExportError(Exception):
    """The export cannot start: unknown race, event, format or earlier export, bad ``--as-of``.
    The message names the value and what to do."""


@dataclass(frozen=True)
class ExportOptions:
    """What ``rsu export`` was asked for.

    ``since`` is ``"last"``, an export id (as text) or ``None``; ``as_of`` an ISO 8601 time or
    ``None``; ``output`` what to record as the destination (a path, ``-`` for stdout).
    """

    race_id: int
    format: str
    event_ids: tuple[int, ...] = ()
    since: str | None = None
    as_of: str | None = None
    allow: frozenset[Allow] = frozenset()
    timing_partner_id: int | None = None
    output: str = "-"


@dataclass
class ExportResult:
    """What an export did. ``record`` is ``None`` when nothing was written (``problems`` refused
    it). ``problems``: every value the target cannot take, each with the ``action`` ``--allow``
    took (``None``: refused); ``changes``: the change report of a ``--since`` export; ``notes``:
    operator messages."""

    record: record.ExportRecord | None
    problems: list[Problem]
    changes: list[Change] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        """Data rows written (``0`` when refused)."""
        return 0 if self.record is None else self.record.row_count

    @property
    def allowed(self) -> bool:
        """Whether there were problems and ``--allow`` handled them all (the export was written)."""
        return self.record is not None and bool(self.problems)

    @property
    def exit_code(self) -> int:
        """``1`` when problems refused the export, else ``0``."""
        return 1 if self.record is None else 0


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _checkpoint(conn: sqlite3.Connection) -> int:
    try:
        row = conn.execute("SELECT value FROM projector_state WHERE name = 'checkpoint'").fetchone()
    except sqlite3.OperationalError:
        return 0
    return 0 if row is None else int(row[0])


def _earlier(conn: sqlite3.Connection, opts: ExportOptions, partner: int) -> record.ExportRecord:
    since = opts.since or ""
    if since == "last":
        found = record.last_export(conn, partner, opts.race_id, opts.format, opts.event_ids)
        if found is None:
            raise ExportError(
                f"no earlier {opts.format} export of race {opts.race_id}"
                + (f" events {list(opts.event_ids)}" if opts.event_ids else "")
                + ": run the export once without --since"
            )
        return found
    if not (since.isascii() and since.isdigit() and len(since) <= 18):
        raise ExportError(f"--since {since!r} is neither 'last' nor an export id")
    found = record.get_export(conn, int(since))
    if found is None:
        raise ExportError(f"there is no export {since} (see the exports table)")
    if (found.timing_partner_id, found.race_id) != (partner, opts.race_id):
        raise ExportError(f"export {since} is of race {found.race_id}, not {opts.race_id}")
    return found


class _Resolved(NamedTuple):
    """A row to write: the StartRow, the fields written empty, the columns fixed
    (:func:`fix_cells`), and its cells when the check already computed them unfixed."""

    row: StartRow
    blank: frozenset[str]
    fixes: dict[str, str]
    cells: dict[str, Any] | None

    def values(self, prof: Profile) -> dict[str, Any]:
        """The row's ``header -> value`` as written."""
        if self.cells is not None and not self.blank and not self.fixes:
            return self.cells
        return prof.values(self.row, self.blank, self.fixes)


def _resolve(
    rows: list[StartRow], prof: Profile, allow: frozenset[Allow]
) -> tuple[list[_Resolved], list[Problem]]:
    """(rows to write with their fixes, every problem found with its action)."""
    out: list[_Resolved] = []
    problems: list[Problem] = []
    for row in rows:
        checked, cells = prof.checked(row)
        found = [replace(p, action=action(p, allow)) for p in checked]
        problems += found
        if any(p.action == SKIPPED for p in found):
            continue
        blank = frozenset(p.field for p in found if p.kind == VALUE and p.action == BLANKED)
        fixes = {p.column: p.action for p in found if p.kind != VALUE and p.action}
        out.append(_Resolved(row, blank, fixes, cells))
    return out, problems


def _change_lines(
    changes: list[Change], prof: Profile, rows: dict[int, _Resolved], allow: frozenset[Allow]
) -> tuple[list[str], list[dict[str, Any]], list[Problem]]:
    """Headers and rows of a change report: the change columns, then the profile's columns with
    the registration's current values (empty for a removal); and the problems of the change
    columns' own values (an old or new name the target cannot take). A registration whose
    change line is skipped (``--allow skip-row``) loses all its lines."""
    extra = [h for h in prof.headers if h not in CHANGE_COLUMNS]
    lines, problems, skipped = [], [], set()
    for c in changes:
        line: dict[str, Any] = {name: getattr(c, name) for name in CHANGE_COLUMNS}
        current = rows.get(c.registration_id)
        fixes = {}
        for header in CHANGE_COLUMNS:
            found = prof.cell_problem(header, line[header])
            if found is not None:
                name = "" if current is None else current.row.full_name
                p = Problem(
                    c.registration_id,
                    c.field or header,
                    line[header],
                    found[1],
                    c.event_id,
                    name,
                    header,
                    found[0],
                )
                p = replace(p, action=action(p, allow))
                problems.append(p)
                fixes[header] = p.action
                if p.action == SKIPPED:
                    skipped.add(c.registration_id)
        fix_cells(line, {h: a for h, a in fixes.items() if a})
        if current is not None:
            values = current.values(prof)
            line.update({h: values[h] for h in extra})
        lines.append(line)
    kept = [line for line in lines if line["registration_id"] not in skipped]
    return [*CHANGE_COLUMNS, *extra], kept, problems


@dataclass(frozen=True)
class _Source:
    """Where the start list is read: the live tables, or an as-of replay of the journal."""

    conn: sqlite3.Connection
    seq: int
    as_of: str | None
    notes: tuple[str, ...] = ()


def _source(conn: sqlite3.Connection, journal: Journal, opts: ExportOptions) -> _Source:
    if opts.as_of is None:
        seq, last = _checkpoint(conn), journal.last_seq()
        behind = (
            f"the tables reflect journal seq {seq} of {last}: run `rsu project` to export "
            "what was fetched since"
        )
        return _Source(conn, seq, None, (behind,) if last > seq else ())
    try:
        when = asof.parse_time(opts.as_of)
    except asof.AsOfError as exc:
        raise ExportError(str(exc)) from None
    seq = asof.seq_at(journal, when)
    if seq == 0:
        raise ExportError(f"the journal holds nothing recorded at or before {opts.as_of}")
    return _Source(asof.replay_until(journal, seq), seq, when.strftime("%Y-%m-%dT%H:%M:%SZ"))


def _read(
    conn: sqlite3.Connection, journal: Journal, opts: ExportOptions
) -> tuple[list[StartRow], dict[int, RemovedRow], int, _Source]:
    """(start list, removed registrations, timing partner, where they were read)."""
    src = _source(conn, journal, opts)
    try:
        partner = race_partner(src.conn, opts.race_id, opts.timing_partner_id)
        rows = start_list(src.conn, partner, opts.race_id, opts.event_ids)
        removed = removed_rows(src.conn, partner, opts.race_id)
    except SelectionError as exc:
        raise ExportError(str(exc)) from None
    finally:
        if src.conn is not conn:
            src.conn.close()
    return rows, removed, partner, src


def run_export(
    db: sqlite_utils.Database,
    opts: ExportOptions,
    write: Callable[[bytes], None],
    now: str | None = None,
) -> ExportResult:
    """Run one export on ``db`` (the rsu database: journal, projection, exports record).

    ``write`` receives the file's bytes once the export is known to be valid; the export is
    recorded only after it returns. ``now`` (ISO 8601 UTC) is the recorded time (default: the
    clock). Raises :class:`ExportError` when the export cannot start, ``OSError`` from
    ``write``, ``rsu.journal.JournalError`` / ``sqlite3.Error`` on database failures.
    """
    try:
        prof = profile(opts.format)
    except KeyError as exc:
        raise ExportError(str(exc.args[0])) from None
    conn = db.conn
    record.ensure_schema(db)
    rows, removed, partner, src = _read(conn, Journal(db), opts)
    earlier = _earlier(conn, opts, partner) if opts.since else None
    changes = None
    if earlier is not None:
        before = record.exported_rows(conn, earlier.export_id)
        # Only the rows a change report writes are checked against the target.
        touched = {c.registration_id for c in diff(before, rows, removed) if c.change != "removed"}
        checked = [r for r in rows if r.registration_id in touched]
        unchanged = [r for r in rows if r.registration_id not in touched]
        resolved, problems = _resolve(checked, prof, opts.allow)
        kept_rows = [x.row for x in resolved] + [
            r for r in unchanged if r.registration_id in before
        ]
    else:
        resolved, problems = _resolve(rows, prof, opts.allow)
        kept_rows = [x.row for x in resolved]
    if any(p.action is None for p in problems):
        return ExportResult(None, problems)
    if earlier is not None:
        kept_ids = {r.registration_id for r in kept_rows}
        changes = diff(before, [r for r in rows if r.registration_id in kept_ids], removed)
        headers, lines, more = _change_lines(
            changes, prof, {x.row.registration_id: x for x in resolved}, opts.allow
        )
        problems += more
        skipped = {p.registration_id for p in more if p.action == SKIPPED}
        kept_rows = [r for r in kept_rows if r.registration_id not in skipped]
    else:
        headers, lines = prof.headers, [x.values(prof) for x in resolved]
    if any(p.action is None for p in problems):  # a change line's own old or new value
        return ExportResult(None, problems)
    data = encode(prof, headers, lines)
    write(data)
    saved = record.save_export(
        conn,
        record.ExportRecord(
            export_id=0,
            created_utc=now or _utc_now(),
            timing_partner_id=partner,
            race_id=opts.race_id,
            event_ids=tuple(opts.event_ids),
            format=prof.name,
            since_export_id=None if earlier is None else earlier.export_id,
            as_of=src.as_of,
            journal_seq=src.seq,
            row_count=len(lines),
            sha256=hashlib.sha256(data).hexdigest(),
            output=opts.output,
        ),
        sorted(kept_rows, key=lambda r: r.registration_id),
    )
    return ExportResult(saved, problems, changes=changes, notes=list(src.notes))
