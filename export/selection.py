"""Start-list rows of one race, read from the projection tables by column name.

A start list holds the active registrations only: a registration with ``removed_at`` set (a
refund, transfer or deferral from ``/removed-participants``, or one that vanished from a complete
listing) never appears. Relay legs that share a bib are one team: every leg carries the team's
bib as ``team_bib`` (``team_bib_num`` when RunSignUp sent one, else the bib the legs share).

Tables read: ``runsignup_participants`` and ``runsignup_events`` (see
:mod:`rsu.projector.schema`), fed from ``GET /Rest/race/{race_id}/participants`` and
``GET /Rest/race/{race_id}``.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any


class SelectionError(Exception):
    """The race (or an asked event) is not in the projection, or is ambiguous; the message
    names it and what to do."""


@dataclass(frozen=True)
class StartRow:
    """One active registration of a start list.

    Texts are as RunSignUp sent them (bibs, chips and zips keep leading zeros and letters);
    ``dob`` and ``age_date`` are ``YYYY-MM-DD``; ``event_start`` is the event's local start
    ISO 8601 with offset; ``registration_date_utc`` is ISO 8601 UTC; ``age`` is whole years
    as RunSignUp computed it. ``team_bib`` is the team's bib (see the module docstring).
    """

    registration_id: int
    event_id: int
    event_name: str | None
    event_start: str | None
    age_date: str | None
    bib_num: str | None
    chip_num: str | None
    first_name: str | None
    middle_name: str | None
    last_name: str | None
    gender: str | None
    dob: str | None
    age: int | None
    team_id: int | None
    team_name: str | None
    team_type: str | None
    team_bib: str | None
    email: str | None
    phone: str | None
    street: str | None
    city: str | None
    state: str | None
    zipcode: str | None
    country_code: str | None
    registration_date_utc: str | None

    @property
    def full_name(self) -> str:
        """First and last name joined by a space (either may be missing; ``""`` for neither)."""
        return " ".join(p for p in (self.first_name, self.last_name) if p)

    @property
    def is_relay(self) -> bool:
        """Whether the registration is a leg of a relay team (RunSignUp ``team_type`` Relay)."""
        return self.team_id is not None and "relay" in (self.team_type or "").lower()


@dataclass(frozen=True)
class RemovedRow:
    """A registration of the race that RunSignUp removed: ``removed_reason`` is ``cleared``,
    ``removed``, ``transferred`` or ``deferred`` (``new_registration_id`` set for transfers);
    ``removed_at`` is ISO 8601 UTC."""

    registration_id: int
    event_id: int
    removed_reason: str | None
    new_registration_id: int | None
    removed_at: str | None


FIELD_NAMES = tuple(f.name for f in fields(StartRow))

_PARTICIPANT_COLUMNS = (
    "registration_id",
    "event_id",
    "bib_num",
    "chip_num",
    "first_name",
    "middle_name",
    "last_name",
    "gender",
    "dob",
    "age",
    "team_id",
    "team_name",
    "team_type",
    "team_bib_num",
    "email",
    "phone",
    "street",
    "city",
    "state",
    "zipcode",
    "country_code",
    "registration_date_utc",
    "source_seq",
)
#: StartRow fields taken from the participant column of the same name as they are.
_COPIED = tuple(
    n
    for n in FIELD_NAMES
    if n in _PARTICIPANT_COLUMNS and n not in ("registration_id", "event_id", "team_id")
)


def _dicts(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def race_partner(conn: sqlite3.Connection, race_id: int, timing_partner_id: int | None) -> int:
    """The timing partner whose projection holds ``race_id``.

    Raises :class:`SelectionError` when no partner has the race, or several do and
    ``timing_partner_id`` does not pick one.
    """
    try:
        found = [
            int(r[0])
            for r in conn.execute(
                "SELECT DISTINCT timing_partner_id FROM runsignup_events WHERE race_id = ? "
                "ORDER BY 1",
                (race_id,),
            )
        ]
    except sqlite3.OperationalError as exc:
        raise SelectionError(f"no projected tables ({exc}): run `rsu sync` first") from None
    if timing_partner_id is not None:
        if timing_partner_id not in found:
            raise SelectionError(f"race {race_id} is not synced for partner {timing_partner_id}")
        return timing_partner_id
    if not found:
        raise SelectionError(f"race {race_id} is not in the database: run `rsu sync` first")
    if len(found) > 1:
        raise SelectionError(
            f"race {race_id} is synced for partners {found}: pick one with --partner"
        )
    return found[0]


def race_events(conn: sqlite3.Connection, timing_partner_id: int, race_id: int) -> dict[int, dict]:
    """The race's events: ``event_id -> {name, start_time, age_date}`` (``age_date`` is the
    event's ``age_calc_base_date``, else its start date)."""
    out: dict[int, dict] = {}
    for ev in _dicts(
        conn.execute(
            "SELECT * FROM runsignup_events WHERE timing_partner_id = ? AND race_id = ? "
            "ORDER BY start_time_utc, event_id",
            (timing_partner_id, race_id),
        )
    ):
        start = ev.get("start_time")
        out[int(ev["event_id"])] = {
            "name": ev.get("name"),
            "start_time": start,
            "age_date": ev.get("age_calc_base_date") or (start[:10] if start else None),
        }
    return out


def _check_events(events: dict[int, dict], race_id: int, event_ids: Sequence[int]) -> None:
    missing = sorted(set(event_ids) - set(events))
    if missing:
        raise SelectionError(
            f"event(s) {', '.join(map(str, missing))} are not in race {race_id} "
            f"(its events: {', '.join(map(str, events)) or 'none'})"
        )


def _team_bibs(rows: list[dict[str, Any]]) -> dict[int, str]:
    """team_id -> the team's bib: ``team_bib_num`` if any leg has it, else the one bib that every
    leg of the team shares."""
    by_team: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["team_id"] is not None:
            by_team[int(r["team_id"])].append(r)
    out: dict[int, str] = {}
    for team_id, legs in by_team.items():
        sent = {r["team_bib_num"] for r in legs if r["team_bib_num"] not in (None, "")}
        bibs = {r["bib_num"] for r in legs}
        if len(sent) == 1:
            out[team_id] = str(sent.pop())
        elif len(legs) > 1 and len(bibs) == 1 and None not in bibs:
            out[team_id] = str(bibs.pop())
    return out


def start_list(
    conn: sqlite3.Connection,
    timing_partner_id: int,
    race_id: int,
    event_ids: Sequence[int] = (),
) -> list[StartRow]:
    """The active registrations of ``race_id`` (only ``event_ids`` when given), ordered by event
    start, then bib (numerically where numeric), then registration id.

    One row per registration: should the projection hold several active rows of one
    registration id (e.g. during a transfer between events), the newest (``source_seq``) wins.
    Raises :class:`SelectionError` for an event that is not in the race.
    """
    events = race_events(conn, timing_partner_id, race_id)
    _check_events(events, race_id, event_ids)
    cols = ", ".join(_PARTICIPANT_COLUMNS)
    raw = _dicts(
        conn.execute(
            f"SELECT {cols} FROM runsignup_participants WHERE timing_partner_id = ? "
            "AND race_id = ? AND removed_at IS NULL ORDER BY source_seq",
            (timing_partner_id, race_id),
        )
    )
    latest = {int(r["registration_id"]): r for r in raw}
    rows = list(latest.values())
    team_bibs = _team_bibs(rows)
    wanted = set(event_ids) or set(events)
    order = {eid: i for i, eid in enumerate(events)}
    out = []
    for r in rows:
        eid = int(r["event_id"])
        if eid not in wanted:
            continue
        ev = events.get(eid, {})
        team_id = None if r["team_id"] is None else int(r["team_id"])
        out.append(
            StartRow(
                registration_id=int(r["registration_id"]),
                event_id=eid,
                event_name=ev.get("name"),
                event_start=ev.get("start_time"),
                age_date=ev.get("age_date"),
                team_id=team_id,
                team_bib=None if team_id is None else team_bibs.get(team_id),
                **{name: r[name] for name in _COPIED},
            )
        )
    out.sort(
        key=lambda s: (order.get(s.event_id, len(order)), _bib_key(s.bib_num), s.registration_id)
    )
    return out


def _bib_key(bib: str | None) -> tuple[int, int, str]:
    if bib is None:
        return (2, 0, "")
    if bib.isascii() and bib.isdigit():  # "²" is a digit to isdigit, not to int()
        return (0, int(bib[:4000]), bib)
    return (1, 0, bib)


def removed_rows(
    conn: sqlite3.Connection, timing_partner_id: int, race_id: int
) -> dict[int, RemovedRow]:
    """``registration_id -> RemovedRow`` for every removed registration of the race that has no
    active row (a registration transferred back stays active)."""
    out: dict[int, RemovedRow] = {}
    for r in _dicts(
        conn.execute(
            "SELECT registration_id, event_id, removed_reason, new_registration_id, removed_at "
            "FROM runsignup_participants WHERE timing_partner_id = ? AND race_id = ? "
            "AND removed_at IS NOT NULL AND registration_id NOT IN (SELECT registration_id "
            "FROM runsignup_participants WHERE timing_partner_id = ? AND race_id = ? "
            "AND removed_at IS NULL) ORDER BY source_seq",
            (timing_partner_id, race_id, timing_partner_id, race_id),
        )
    ):
        reg = int(r["registration_id"])
        out[reg] = RemovedRow(
            reg,
            int(r["event_id"]),
            r["removed_reason"],
            None if r["new_registration_id"] is None else int(r["new_registration_id"]),
            r["removed_at"],
        )
    return out
