"""``rsu check``: the pre-race quality gate over one race's start list.

Each finding names a registration and one problem. ``error`` findings block timing (the exit code
is 1); ``warning`` findings are worth a look but do not. Problems:

=======================  ========  ==========================================================
``missing_gender``       error     no gender (gender placings break)
``missing_dob``          warning   no date of birth (error when the age is missing too)
``age_mismatch``         warning   RunSignUp's ``age`` is not the age from ``dob`` on the
                                   event's age date (``age_calc_base_date``, else its start)
``duplicate_bib``        error     the bib is on another registration of the race (any event);
                                   relay legs of one team share their bib on purpose
``team_bib_missing``     error     a relay leg whose team has no bib
``bib_target``           error     with ``--for``: a bib the target cannot take
``chip_target``          error     with ``--for``: a chip the target cannot take
``gender_target``        error     with ``--for``: a gender the target cannot take
``control_character``    error     with ``--for`` a delimited format: a control character (ESC,
                                   a line break, a bidi override...) in an exported text
``spreadsheet_formula``  error     with ``--for`` a delimited format: an exported text that a
                                   spreadsheet would run as a formula (``=cmd|...``, ``@SUM``)
``name_whitespace``      warning   a name with leading, trailing, doubled or control whitespace
``added_after_export``   error     registered (or moved into the exported events) after the
                                   race's last export (of the ``--for`` format when given)
``removed_after_export`` warning   in the last export, no longer in the start list
=======================  ========  ==========================================================
"""

from __future__ import annotations

import re
import sqlite3
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import date

from . import record
from .profiles import VALUE, profile
from .selection import StartRow, race_partner, start_list

ERROR, WARNING = "error", "warning"
_TARGET_PROBLEM = {"bib_num": "bib_target", "chip_num": "chip_target", "gender": "gender_target"}
_STRAY = re.compile(r"^\s|\s$|\s\s|[\t\r\n\v\f]")


@dataclass(frozen=True)
class Finding:
    """One problem of one registration: ``problem`` is a code from the module docstring,
    ``severity`` ``error`` or ``warning``, ``detail`` a sentence for the operator."""

    problem: str
    severity: str
    registration_id: int
    event_id: int
    bib_num: str | None
    name: str
    detail: str


@dataclass
class CheckReport:
    """The outcome of :func:`run_check` for one race: ``registrations`` checked,
    ``last_export_id`` the export compared with (``None`` when the race was never exported),
    ``findings`` ordered by severity, problem, event, bib."""

    timing_partner_id: int
    race_id: int
    target: str | None
    registrations: int
    last_export_id: int | None
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> int:
        """How many findings block timing."""
        return sum(f.severity == ERROR for f in self.findings)

    @property
    def ok(self) -> bool:
        """Whether nothing blocks timing."""
        return self.errors == 0

    def to_dict(self) -> dict:
        """A JSON-ready dict (``rsu check --json``)."""
        return {
            "timing_partner_id": self.timing_partner_id,
            "race_id": self.race_id,
            "target": self.target,
            "registrations": self.registrations,
            "last_export_id": self.last_export_id,
            "ok": self.ok,
            "errors": self.errors,
            "warnings": len(self.findings) - self.errors,
            "findings": [asdict(f) for f in self.findings],
        }


def _finding(row: StartRow, problem: str, severity: str, detail: str) -> Finding:
    return Finding(
        problem, severity, row.registration_id, row.event_id, row.bib_num, row.full_name, detail
    )


def age_on(dob: str, day: str) -> int | None:
    """Whole years from ``dob`` to ``day`` (both ``YYYY-MM-DD``); ``None`` if either is not a
    date."""
    try:
        born, then = date.fromisoformat(dob), date.fromisoformat(day[:10])
    except ValueError:
        return None
    return then.year - born.year - ((then.month, then.day) < (born.month, born.day))


def _person(row: StartRow) -> list[Finding]:
    out = []
    if not row.gender:
        out.append(_finding(row, "missing_gender", ERROR, "no gender"))
    if not row.dob:
        severity = ERROR if row.age is None else WARNING
        out.append(
            _finding(
                row,
                "missing_dob",
                severity,
                "no date of birth" + ("" if row.age is None else f" (age {row.age} given)"),
            )
        )
    elif row.age is not None and row.age_date:
        want = age_on(row.dob, row.age_date)
        if want is not None and want != row.age:
            out.append(
                _finding(
                    row,
                    "age_mismatch",
                    WARNING,
                    f"age {row.age}, but born {row.dob} is {want} on {row.age_date[:10]}",
                )
            )
    for label, value in (
        ("first", row.first_name),
        ("middle", row.middle_name),
        ("last", row.last_name),
    ):
        if value and _STRAY.search(value):
            out.append(
                _finding(
                    row, "name_whitespace", WARNING, f"{label} name {value!r} has stray whitespace"
                )
            )
    if row.is_relay and not row.team_bib:
        out.append(
            _finding(
                row, "team_bib_missing", ERROR, f"relay team {row.team_name!r} has no team bib"
            )
        )
    return out


def _duplicates(rows: list[StartRow]) -> list[Finding]:
    """Bibs held by several registrations; ``" 12 "`` and ``"12"`` are one bib (timing software
    trims what it imports)."""
    by_bib: dict[str, list[StartRow]] = defaultdict(list)
    for r in rows:
        bib = "" if r.bib_num is None else str(r.bib_num).strip()
        if bib:
            by_bib[bib].append(r)
    out = []
    for bib, holders in by_bib.items():
        teams = {h.team_id for h in holders}
        if len(holders) < 2 or (len(teams) == 1 and None not in teams and holders[0].is_relay):
            continue
        for h in holders:
            others = ", ".join(str(o.registration_id) for o in holders if o is not h)
            out.append(
                _finding(
                    h, "duplicate_bib", ERROR, f"bib {bib} is also on registration(s) {others}"
                )
            )
    return out


def _since_export(
    conn: sqlite3.Connection,
    partner: int,
    race_id: int,
    target: str | None,
    rows: list[StartRow],
) -> tuple[int | None, list[Finding]]:
    last = record.last_export(conn, partner, race_id, target) if record.exists(conn) else None
    if last is None:
        return None, []
    before = record.exported_rows(conn, last.export_id)
    scope = set(last.event_ids)
    current = [r for r in rows if not scope or r.event_id in scope]
    out = [
        _finding(
            r,
            "added_after_export",
            ERROR,
            f"not in export {last.export_id} ({last.format}, {last.created_utc})",
        )
        for r in current
        if r.registration_id not in before
    ]
    now = {r.registration_id for r in current}
    for reg, values in sorted(before.items()):
        if reg not in now:
            out.append(
                Finding(
                    "removed_after_export",
                    WARNING,
                    reg,
                    int(values["event_id"]),
                    values.get("bib_num"),
                    " ".join(p for p in (values.get("first_name"), values.get("last_name")) if p),
                    f"in export {last.export_id}, no longer in the start list",
                )
            )
    return last.export_id, out


_ORDER = {ERROR: 0, WARNING: 1}


def run_check(
    conn: sqlite3.Connection,
    race_id: int,
    target: str | None = None,
    timing_partner_id: int | None = None,
) -> CheckReport:
    """Check the start list of ``race_id`` (every event) on the projection in ``conn``; with
    ``target`` (a format name) also against what that target can take.

    Raises :class:`~rsu.export.selection.SelectionError` for a race that is not synced (or is
    ambiguous), ``KeyError`` for an unknown ``target``.
    """
    prof = profile(target) if target is not None else None
    partner = race_partner(conn, race_id, timing_partner_id)
    rows = start_list(conn, partner, race_id)
    findings: list[Finding] = []
    for row in rows:
        findings += _person(row)
        if prof is not None:
            for p in prof.problems(row):
                if p.kind == VALUE and p.field == "gender" and not p.value:
                    continue  # already missing_gender
                code = _TARGET_PROBLEM.get(p.field, p.field) if p.kind == VALUE else p.kind
                findings.append(_finding(row, code, ERROR, f"{prof.title}: {p.reason}"))
    findings += _duplicates(rows)
    last_id, since = _since_export(conn, partner, race_id, target, rows)
    findings += since
    order = {r.registration_id: i for i, r in enumerate(rows)}
    findings.sort(
        key=lambda f: (
            _ORDER[f.severity],
            f.problem,
            order.get(f.registration_id, len(order)),
            f.registration_id,
        )
    )
    return CheckReport(partner, race_id, target, len(rows), last_id, findings)
