"""Read models over the projected tables for operators: sync status per partner and race, recent
``sync_history`` rows, and table totals.

Everything here only reads ``runsignup_*`` and ``sync_history`` (as written by
:mod:`rsu.projector.apply`). Times are ISO 8601 UTC strings (``...Z``); ages are seconds.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any


def utc_iso(moment: datetime) -> str:
    """``moment`` as ISO 8601 UTC with milliseconds and ``Z`` (the journal's ``recorded_at``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_utc(value: str) -> datetime:
    """Parse an ISO 8601 UTC string written by the journal or the projector."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None


def _has_column(conn: sqlite3.Connection, table: str, column: str) -> bool:
    """Whether ``table`` has ``column`` (tables of an older projection version may not)."""
    return any(r[1] == column for r in conn.execute(f"PRAGMA table_info({table})"))


def _what_changed(conn: sqlite3.Connection, rs: RaceStatus) -> None:
    """Fill ``events_removed``, ``event_changes`` and ``last_event_change`` of ``rs``."""
    key = (rs.timing_partner_id, rs.race_id)
    rs.events_removed = [
        r[0]
        for r in conn.execute(
            "SELECT event_id FROM runsignup_events WHERE timing_partner_id = ? AND race_id = ? "
            "AND removed_at IS NOT NULL ORDER BY event_id",
            key,
        )
    ]
    rs.event_changes, rs.last_event_change = conn.execute(
        "SELECT COUNT(*), MAX(changed_at) FROM runsignup_event_changes "
        "WHERE timing_partner_id = ? AND race_id = ?",
        key,
    ).fetchone()


@dataclass
class RaceStatus:
    """Sync state of one race of one timing partner.

    ``last_success`` is the newest ``sync_time`` of a run in which every listing of this race
    succeeded (``None`` when never); ``last_attempt``/``last_attempt_ok`` describe the newest run
    that touched the race; ``counts`` sum that successful run's rows (synced, new, changed,
    removed); ``next_event_utc`` is the next event start (UTC) at or after ``now``, if any;
    ``age_seconds`` is ``now - last_success``; ``stale`` is true when the race has an upcoming
    event and no success within ``max_age``. ``last_event_utc`` is the newest event start (UTC)
    before ``now``, if any (with ``next_event_utc``, what ``rsu status`` computes the next due
    sync from). ``next_event_local`` is that next start as the race's wall-clock time, ISO 8601
    with its UTC offset (``runsignup_events.start_time``), and ``timezone`` the race's IANA zone
    name as RunSignUp sent it (``None`` when it sent none).
    Issue 13: ``access_lost_at`` (UTC) and ``access_lost_reason``
    (``missing_from_race_listing`` or ``permission_denied``) when the partner can no longer read
    the race (such a race is never stale: it is not synced any more); ``events_removed`` the
    events the race detail no longer lists; ``event_changes`` how many times a registration of
    the race moved to another event, the latest at ``last_event_change``.
    """

    timing_partner_id: int
    race_id: int
    name: str | None
    next_event_utc: str | None
    active: int
    removed: int
    last_success: str | None = None
    last_attempt: str | None = None
    last_attempt_ok: bool | None = None
    last_error: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    age_seconds: float | None = None
    stale: bool = False
    last_event_utc: str | None = None
    next_event_local: str | None = None
    timezone: str | None = None
    #: The ``warning`` of the newest run that touched the race (e.g. its detail lists no
    #: events), or ``None``: shown by ``rsu status``, it does not make the report fail.
    warning: str | None = None
    access_lost_at: str | None = None
    access_lost_reason: str | None = None
    events_removed: list[int] = field(default_factory=list)
    event_changes: int = 0
    last_event_change: str | None = None

    def what_happened(self) -> list[str]:
        """Short operator notes: access lost, events removed, event changes (may be empty)."""
        out = []
        if self.access_lost_at is not None:
            why = (
                "RunSignUp answers Permission Denied"
                if self.access_lost_reason == "permission_denied"
                else "no longer in the partner's race list"
            )
            out.append(f"access lost since {self.access_lost_at[:16].replace('T', ' ')} ({why})")
        if self.events_removed:
            ids = ", ".join(map(str, self.events_removed))
            out.append(f"event{'s' if len(self.events_removed) > 1 else ''} {ids} removed")
        if self.event_changes:
            out.append(f"{self.event_changes} event change{'s' if self.event_changes > 1 else ''}")
        return out


@dataclass
class PartnerStatus:
    """Sync state of one timing partner: partner-level failures (auth, races list) of its newest
    run, its newest success, and whether it is ``failing`` (newest run had a partner-level error,
    or no success within ``max_age``; see :attr:`stale`)."""

    timing_partner_id: int
    last_success: str | None = None
    last_attempt: str | None = None
    last_error: str | None = None
    age_seconds: float | None = None
    failing: bool = False
    races: list[RaceStatus] = field(default_factory=list)

    @property
    def stale(self) -> bool:
        """``failing`` only because the newest success is older than ``max_age``: the newest run
        had no partner-level error (``rsu status`` says ``STALE``, not ``FAILING``)."""
        return self.failing and self.last_error is None and self.last_success is not None


@dataclass
class ProjectionErrors:
    """``projection_errors`` rows recorded for one partner's newest run (``timing_partner_id``
    ``None``: events of no partner, in the newest run of all): their ``count``, and the first one's
    journal ``first_seq`` and ``first_reason``."""

    timing_partner_id: int | None
    run_id: str | None
    count: int
    first_seq: int
    first_reason: str


@dataclass
class StatusReport:
    """Result of :func:`sync_status`; ``ok`` is false when any partner fails or any race with an
    upcoming event is stale (``rsu status`` then exits 1)."""

    now: str
    max_age_seconds: float
    partners: list[PartnerStatus]
    #: Journal events not yet projected, and when the oldest of them was recorded (UTC).
    unprojected_events: int = 0
    unprojected_since: str | None = None
    #: True when any journal event is not projected yet (``rsu project`` did not run, or stopped).
    projection_stale: bool = False
    #: Also count a race whose newest sync failed, however recent its last success.
    strict: bool = False
    #: ``projection_errors`` rows of each partner's newest run (see :class:`ProjectionErrors`).
    projection_errors: list[ProjectionErrors] = field(default_factory=list)
    #: The holder (``"PID: COMMAND"``) of the database's run lock when an rsu run was writing
    #: as the report was made: its journal events are not projected yet by design, so
    #: ``projection_stale`` does not make the report fail (an ``rsu sync`` projects them when it
    #: ends).
    run_in_progress: str | None = None

    @property
    def ok(self) -> bool:
        if self.projection_errors or (self.projection_stale and self.run_in_progress is None):
            return False
        return not any(
            p.failing
            or any(
                r.stale or (self.strict and r.last_attempt_ok is False and r.access_lost_at is None)
                for r in p.races
            )
            for p in self.partners
        )

    def problems(self) -> list[str]:
        """One line per reason why :attr:`ok` is false."""
        out = []
        if self.projection_stale and self.run_in_progress is None:
            out.append(
                f"{self.unprojected_events} journal events recorded since "
                f"{self.unprojected_since} are not projected: run `rsu project` and check its "
                "errors"
            )
        for e in self.projection_errors:
            who = "no partner" if e.timing_partner_id is None else f"partner {e.timing_partner_id}"
            out.append(
                f"{who}: {e.count} projection errors in its newest run {e.run_id} (first: seq "
                f"{e.first_seq}: {e.first_reason}); see the projection_errors table"
            )
        for p in self.partners:
            if p.stale:
                out.append(
                    f"partner {p.timing_partner_id} is stale: its last successful sync, "
                    f"{p.last_success}, is older than --max-age ({self.max_age_seconds:g} s)"
                )
            elif p.failing:
                why = p.last_error or "no successful sync yet"
                out.append(f"partner {p.timing_partner_id} is failing: {why}")
            for r in p.races:
                if (
                    self.strict
                    and not r.stale
                    and r.last_attempt_ok is False
                    and r.access_lost_at is None
                ):
                    out.append(
                        f"race {r.race_id} (partner {r.timing_partner_id}): newest sync failed "
                        f"({r.last_error or 'see rsu history --status error'})"
                    )
                if r.stale:
                    why = f"last error: {r.last_error}" if r.last_error else "no recent success"
                    out.append(
                        f"race {r.race_id} (partner {r.timing_partner_id}) has an upcoming event "
                        f"and no successful sync since {r.last_success or 'ever'} ({why})"
                    )
        return out

    def warnings(self) -> list[str]:
        """One line per race whose newest sync left a ``warning`` (not a failure)."""
        return [
            f"race {r.race_id} (partner {r.timing_partner_id}): {r.warning}"
            for p in self.partners
            for r in p.races
            if r.warning
        ]

    def notes(self) -> list[str]:
        """One line per race with something to tell that is not a failure (issue 13: access
        lost, events removed, registrations that changed event) and a run in progress."""
        running = (
            [
                f"an rsu run is in progress ({self.run_in_progress}): its "
                f"{self.unprojected_events} journal events recorded since "
                f"{self.unprojected_since} are not projected yet"
            ]
            if self.projection_stale and self.run_in_progress is not None
            else []
        )
        return running + [
            f"race {r.race_id} (partner {r.timing_partner_id}): {'; '.join(r.what_happened())}"
            for p in self.partners
            for r in p.races
            if r.what_happened()
        ]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the whole report."""
        return {
            **asdict(self),
            "ok": self.ok,
            "problems": self.problems(),
            "warnings": self.warnings(),
            "notes": self.notes(),
        }


def _run_rows(conn: sqlite3.Connection) -> dict[tuple[int, int | None], list[dict[str, Any]]]:
    """Per (partner, race or None): one dict per run, newest first, with status and sums."""
    out: dict[tuple[int, int | None], list[dict[str, Any]]] = {}
    for row in conn.execute(
        "SELECT timing_partner_id, race_id, run_id, MAX(sync_time), "
        "SUM(status = 'error'), SUM(num_of_synced_records), SUM(num_new), SUM(num_changed), "
        "SUM(num_removed), "
        "(SELECT COALESCE(reason, '') FROM sync_history s2 WHERE s2.run_id = s.run_id "
        " AND s2.timing_partner_id = s.timing_partner_id AND s2.race_id IS s.race_id "
        " AND s2.status = 'error' ORDER BY s2.sync_time DESC LIMIT 1), "
        "(SELECT reason FROM sync_history s3 WHERE s3.run_id = s.run_id "
        " AND s3.timing_partner_id = s.timing_partner_id AND s3.race_id IS s.race_id "
        " AND s3.status = 'warning' ORDER BY s3.sync_time DESC LIMIT 1) "
        "FROM sync_history s WHERE timing_partner_id IS NOT NULL "
        "GROUP BY timing_partner_id, race_id, run_id ORDER BY MAX(sync_time) DESC"
    ):
        tp, race, run, t, errors, synced, new, changed, removed, reason, warning = row
        out.setdefault((tp, race), []).append(
            {
                "run_id": run,
                "time": t,
                "ok": not errors,
                "error": reason,
                "warning": warning,
                "counts": {
                    "synced": synced or 0,
                    "new": new or 0,
                    "changed": changed or 0,
                    "removed": removed or 0,
                },
            }
        )
    return out


def sync_status(
    conn: sqlite3.Connection,
    *,
    max_age_seconds: float,
    now: datetime | None = None,
    strict: bool = False,
    due_since: Callable[[RaceStatus], float | None] | None = None,
    run_in_progress: str | None = None,
) -> StatusReport:
    """Per partner and race: last successful sync, its counts and age (see :class:`RaceStatus`).

    Partners come from ``sync_history`` and ``runsignup_races``; a database never projected gives
    an empty report. ``now`` defaults to the current UTC time. With ``strict`` a race whose newest
    sync failed makes the report not ok even within ``max_age_seconds``.

    ``due_since(race)``: when the race became due for its next sync by the fetcher's cadence
    (epoch seconds, UTC), or ``None`` when that is not known (never synced, newest sync failed).
    With it, a race is stale only once it has been due for longer than ``max_age_seconds`` (a
    race synced once a day is not stale an hour after its sync); without it, or when it gives
    ``None``, once its last success is older than ``max_age_seconds``.

    ``run_in_progress``: the run lock's holder (see :func:`rsu.journal.runlock.run_in_progress`)
    when an rsu run is writing: journal events not projected yet are then a note, not a failure.
    """
    now = now or datetime.now(UTC)
    now_iso = utc_iso(now)
    report = StatusReport(
        now=now_iso,
        max_age_seconds=max_age_seconds,
        partners=[],
        strict=strict,
        run_in_progress=run_in_progress,
    )
    if not _has_table(conn, "sync_history"):
        return report
    runs = _run_rows(conn)

    def age(t: str | None) -> float | None:
        return None if t is None else (now - parse_utc(t)).total_seconds()

    def fresh(t: str | None) -> bool:
        a = age(t)
        return a is not None and a <= max_age_seconds

    partners: dict[int, PartnerStatus] = {}
    for tp in sorted({tp for tp, _ in runs}):
        p = PartnerStatus(timing_partner_id=tp)
        all_runs = sorted(
            (r for (t, _), rs in runs.items() if t == tp for r in rs),
            key=lambda r: r["time"],
            reverse=True,
        )
        p.last_attempt = all_runs[0]["time"] if all_runs else None
        p.last_success = next((r["time"] for r in all_runs if r["ok"]), None)
        partner_level = runs.get((tp, None), [])
        newest_run = all_runs[0]["run_id"] if all_runs else None
        bad = [r for r in partner_level if not r["ok"] and r["run_id"] == newest_run]
        p.last_error = bad[0]["error"] if bad else None
        p.age_seconds = age(p.last_success)
        p.failing = bool(bad) or not fresh(p.last_success)
        partners[tp] = p

    issue13 = _has_column(conn, "runsignup_races", "access_lost_at")
    live_event = " AND e.removed_at IS NULL" if issue13 else ""
    for (
        tp,
        race_id,
        name,
        next_start,
        active,
        removed,
        last_start,
        next_local,
        tz,
        lost_at,
        lost_why,
    ) in conn.execute(
        "SELECT r.timing_partner_id, r.race_id, r.name, "
        " (SELECT MIN(e.start_time_utc) FROM runsignup_events e "
        "  WHERE e.timing_partner_id = r.timing_partner_id AND e.race_id = r.race_id "
        f"  AND e.start_time_utc >= ?{live_event}), "
        " (SELECT COUNT(*) FROM runsignup_participants x WHERE x.timing_partner_id = "
        "  r.timing_partner_id AND x.race_id = r.race_id AND x.removed_at IS NULL), "
        " (SELECT COUNT(*) FROM runsignup_participants x WHERE x.timing_partner_id = "
        "  r.timing_partner_id AND x.race_id = r.race_id AND x.removed_at IS NOT NULL), "
        " (SELECT MAX(e.start_time_utc) FROM runsignup_events e "
        "  WHERE e.timing_partner_id = r.timing_partner_id AND e.race_id = r.race_id "
        f"  AND e.start_time_utc < ?{live_event}), "
        " (SELECT e.start_time FROM runsignup_events e "
        "  WHERE e.timing_partner_id = r.timing_partner_id AND e.race_id = r.race_id "
        f"  AND e.start_time_utc >= ?{live_event} ORDER BY e.start_time_utc LIMIT 1), "
        " r.timezone, "
        + ("r.access_lost_at, r.access_lost_reason " if issue13 else "NULL, NULL ")
        + "FROM runsignup_races r ORDER BY r.timing_partner_id, r.race_id",
        (now_iso, now_iso, now_iso),
    ).fetchall():
        rs = RaceStatus(tp, race_id, name, next_start, active, removed)
        rs.last_event_utc = last_start
        rs.next_event_local, rs.timezone = next_local, tz
        rs.access_lost_at, rs.access_lost_reason = lost_at, lost_why
        if issue13:
            _what_changed(conn, rs)
        race_runs = runs.get((tp, race_id), [])
        if race_runs:
            rs.last_attempt = race_runs[0]["time"]
            rs.last_attempt_ok = race_runs[0]["ok"]
            rs.last_error = None if race_runs[0]["ok"] else race_runs[0]["error"]
            rs.warning = race_runs[0]["warning"]
        good = next((r for r in race_runs if r["ok"]), None)
        if good:
            rs.last_success, rs.counts = good["time"], good["counts"]
        rs.age_seconds = age(rs.last_success)
        became_due = due_since(rs) if due_since is not None else None
        if became_due is None:
            overdue = not fresh(rs.last_success)
        else:
            overdue = now.timestamp() - became_due > max_age_seconds
        rs.stale = next_start is not None and overdue and lost_at is None
        partners.setdefault(tp, PartnerStatus(timing_partner_id=tp)).races.append(rs)
    report.partners = [partners[k] for k in sorted(partners)]
    if _has_table(conn, "journal") and _has_table(conn, "projector_state"):
        row = conn.execute("SELECT value FROM projector_state WHERE name = 'checkpoint'").fetchone()
        checkpoint = int(row[0]) if row else 0
        count, oldest = conn.execute(
            "SELECT COUNT(*), MIN(recorded_at) FROM journal WHERE seq > ?", (checkpoint,)
        ).fetchone()
        report.unprojected_events, report.unprojected_since = int(count), oldest
        report.projection_stale = int(count) > 0
        newest = {tp: _newest_run(runs, tp) for tp in partners}
        report.projection_errors = _newest_run_errors(conn, newest)
    return report


def _newest_run(runs: dict[tuple[int, int | None], list[dict[str, Any]]], tp: int) -> str | None:
    rs = [r for (t, _), rows in runs.items() if t == tp for r in rows]
    return max(rs, key=lambda r: r["time"])["run_id"] if rs else None


def _newest_run_errors(
    conn: sqlite3.Connection, newest: dict[int, str | None]
) -> list[ProjectionErrors]:
    """Projection errors of each partner's newest run (by ``sync_history``), and of events of no
    partner in the newest journal run."""
    if not _has_table(conn, "projection_errors"):
        return []
    last_run = conn.execute(
        "SELECT run_id FROM journal WHERE run_id IS NOT NULL ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    out = []
    for tp, run_id, count, first_seq in conn.execute(
        "SELECT e.timing_partner_id, j.run_id, COUNT(*), MIN(e.seq) FROM projection_errors e "
        "LEFT JOIN journal j ON j.seq = e.seq GROUP BY e.timing_partner_id, j.run_id "
        "ORDER BY e.timing_partner_id, MIN(e.seq)"
    ):
        wanted = newest.get(tp) if tp is not None else (last_run[0] if last_run else None)
        if wanted is not None and run_id != wanted:  # None: no run known, every error counts
            continue
        reason = conn.execute(
            "SELECT reason FROM projection_errors WHERE seq = ? ORDER BY item LIMIT 1",
            (first_seq,),
        ).fetchone()[0]
        out.append(ProjectionErrors(tp, run_id, int(count), int(first_seq), reason))
    return out


#: Columns of ``sync_history`` that :func:`history` returns, in order.
HISTORY_COLUMNS = (
    "sync_time",
    "run_id",
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
    "pages",
    "requests",
    "retries",
    "error_code",
    "reason",
    "event_ids",
)


def history(
    conn: sqlite3.Connection,
    *,
    timing_partner_id: int | None = None,
    race_id: int | None = None,
    event_id: int | None = None,
    status: str | None = None,
    run_id: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Newest ``sync_history`` rows first (at most ``limit``), filtered by any given value.

    Each row is a dict with the keys of :data:`HISTORY_COLUMNS`. Empty when never projected.
    """
    if not _has_table(conn, "sync_history"):
        return []
    clauses, params = [], []
    for col, val in (
        ("timing_partner_id", timing_partner_id),
        ("race_id", race_id),
        ("status", status),
        ("run_id", run_id),
    ):
        if val is not None:
            clauses.append(f"{col} = ?")
            params.append(val)
    if event_id is not None:  # the event's own listings and listings of several events with it
        clauses.append("(event_id = ? OR ',' || event_ids || ',' LIKE ?)")
        params += [event_id, f"%,{event_id},%"]
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    cur = conn.execute(
        f"SELECT {', '.join(HISTORY_COLUMNS)} FROM sync_history {where} "
        "ORDER BY sync_time DESC, source_seq DESC LIMIT ?",
        (*params, limit),
    )
    return [dict(zip(HISTORY_COLUMNS, r, strict=True)) for r in cur]


@dataclass
class Totals:
    """Row counts of the projected tables (optionally for one ``run_id``'s changes)."""

    partners: int
    races: int
    events: int
    active: int
    removed: int


def totals(conn: sqlite3.Connection) -> Totals:
    """Counts of partners, races, events, active and removed registrations in the tables."""
    if not _has_table(conn, "runsignup_participants"):
        return Totals(0, 0, 0, 0, 0)
    partners = conn.execute(
        "SELECT COUNT(DISTINCT timing_partner_id) FROM runsignup_races"
    ).fetchone()[0]
    races = conn.execute("SELECT COUNT(*) FROM runsignup_races").fetchone()[0]
    events = conn.execute("SELECT COUNT(*) FROM runsignup_events").fetchone()[0]
    active, removed = conn.execute(
        "SELECT COALESCE(SUM(removed_at IS NULL), 0), COALESCE(SUM(removed_at IS NOT NULL), 0) "
        "FROM runsignup_participants"
    ).fetchone()
    return Totals(partners, races, events, active, removed)


def run_changes(conn: sqlite3.Connection, run_id: str) -> dict[str, int]:
    """Sums of one run's ``sync_history`` rows: listings, errors, new, changed, unchanged and
    removed registrations."""
    if not _has_table(conn, "sync_history"):
        return {}
    row = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(status = 'error'), 0), COALESCE(SUM(num_new), 0), "
        "COALESCE(SUM(num_changed), 0), COALESCE(SUM(num_unchanged), 0), "
        "COALESCE(SUM(num_removed), 0) FROM sync_history WHERE run_id = ?",
        (run_id,),
    ).fetchone()
    keys = ("listings", "errors", "new", "changed", "unchanged", "removed")
    return dict(zip(keys, (int(v) for v in row), strict=True))


def registration_event_changes(
    conn: sqlite3.Connection, registration_id: int, *, timing_partner_id: int | None = None
) -> list[dict[str, Any]]:
    """Every event change of one registration the projection recorded
    (``runsignup_event_changes``), oldest first: dicts with ``timing_partner_id``, ``race_id``,
    ``from_event_id``, ``to_event_id``, ``changed_at`` (UTC, when the projector saw the move) and
    ``source_seq`` (the journal response that moved it). Empty when the tables predate them."""
    if not _has_table(conn, "runsignup_event_changes"):
        return []
    sql = (
        "SELECT timing_partner_id, race_id, from_event_id, to_event_id, changed_at, source_seq "
        "FROM runsignup_event_changes WHERE registration_id = ?"
    )
    params: list[Any] = [registration_id]
    if timing_partner_id is not None:
        sql += " AND timing_partner_id = ?"
        params.append(timing_partner_id)
    cur = conn.execute(sql + " ORDER BY source_seq", params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur]
