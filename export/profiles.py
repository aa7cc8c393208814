"""Export profiles: one per target format, with its column names, value types, encoding and the
values the target cannot take.

A profile never changes a value silently: :meth:`Profile.problems` names every value of a row
that the target cannot take (a bib that is not a whole number for an integer bib field, a chip
that is too long, a missing gender), and the caller decides (refuse, skip the row, or blank the
value). Targets and the fields they read:

- ``csv``: every start-list column (:data:`rsu.export.selection.FIELD_NAMES`), UTF-8, header row.
- ``json``: the same columns as NDJSON (one JSON object per line, UTF-8), numbers as numbers.
- ``raceresult``: RACE RESULT participant import field names, UTF-8 CSV; ``Bib`` is an integer
  (``A12`` and ``007`` refused), ``Transponder1`` at most 40 characters, gender required;
  ``DateOfBirth`` is the only birth field (RACE RESULT takes one of DateOfBirth, Age,
  YearOfBirth, never two); ``RegNo`` carries the RunSignUp registration id, the update key.
- ``opensplittime``: OpenSplitTime entrant import columns, UTF-8 CSV; ``bib_number`` integer,
  gender ``male``/``female``/``nonbinary`` (required).
- ``webscorer``: Webscorer start-list headers, tab-separated, UTF-16 with BOM, CRLF lines;
  gender required.
- ``mylaps``: ``id`` (the registration id, stable across exports), name, bib, chip, gender,
  birthdate, UTF-8 CSV; bib integer, chip letters and digits only, at most 16 characters,
  gender required.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from operator import attrgetter
from typing import Any

from .selection import FIELD_NAMES, StartRow


@dataclass(frozen=True)
class Problem:
    """A value of one registration that a target cannot take.

    ``field`` is the :class:`~rsu.export.selection.StartRow` field (``bib_num``, ``chip_num``,
    ``gender``, ...), ``value`` the value as synced (``None`` when missing), ``reason`` a short
    sentence for the operator; ``event_id`` and ``name`` (first and last) say whose row it is.
    """

    registration_id: int
    field: str
    value: Any
    reason: str
    event_id: int = 0
    name: str = ""

    def describe(self) -> str:
        """One line for the operator: ``registration 12 (event 5, Jane Doe): <reason>``."""
        who = f"event {self.event_id}" + (f", {self.name}" if self.name else "")
        return f"registration {self.registration_id} ({who}): {self.reason}"


#: A rule: (StartRow field, check). The check returns why the target cannot take the value, or
#: ``None`` when it can.
Rule = tuple[str, Callable[[Any], str | None]]

_INTEGER_BIB = re.compile(r"[1-9][0-9]{0,8}")
_ALNUM = re.compile(r"[A-Za-z0-9]+")


def integer_bib(value: Any) -> str | None:
    """A bib for an integer bib field: 1 to 9 ASCII digits without a leading zero (``None``: no
    bib yet); returns why another bib does not fit, or ``None``."""
    if value is None or value == "":
        return None
    text = str(value)
    if _INTEGER_BIB.fullmatch(text):
        return None
    if not (text.isascii() and text.isdigit()):
        return f"bib {value!r} is not a whole number"
    if text.startswith("0"):
        return f"bib {value!r} has a leading zero, which a whole-number bib would lose"
    return f"bib {value!r} has more than 9 digits, too many for a whole-number bib"


def chip_at_most(limit: int, alnum: bool = False) -> Callable[[Any], str | None]:
    """A chip check: at most ``limit`` characters (and only letters and digits when ``alnum``)."""

    def check(value: Any) -> str | None:
        if value is None or value == "":
            return None
        if len(str(value)) > limit:
            return f"chip {value!r} is {len(str(value))} characters, at most {limit} fit"
        if alnum and not _ALNUM.fullmatch(str(value)):
            return f"chip {value!r} has characters other than letters and digits"
        return None

    return check


def gender_in(accepted: tuple[str, ...]) -> Callable[[Any], str | None]:
    """A required gender, one of ``accepted`` (RunSignUp's ``M``, ``F``, ``X``)."""

    def check(value: Any) -> str | None:
        if value is None or value == "":
            return "no gender"
        if value not in accepted:
            return f"gender {value!r} is not one of {', '.join(accepted)}"
        return None

    return check


@dataclass(frozen=True)
class Column:
    """One output column: ``header`` and ``value(row) -> value`` (``None`` is written empty)."""

    header: str
    value: Callable[[StartRow], Any]


def field(name: str) -> Callable[[StartRow], Any]:
    """A column that copies the StartRow field ``name`` unchanged."""
    return attrgetter(name)


def _int(name: str) -> Callable[[StartRow], Any]:
    def get(row: StartRow) -> Any:
        v = getattr(row, name)
        return None if v is None or v == "" else int(v)

    return get


def _full_name(row: StartRow) -> str:
    return " ".join(p for p in (row.first_name, row.last_name) if p)


_OST_GENDER = {"M": "male", "F": "female", "X": "nonbinary"}


@dataclass(frozen=True)
class Profile:
    """One export target.

    ``kind`` is ``"delimited"`` (a header row, then one row per registration, joined by
    ``delimiter``, lines ending ``newline``) or ``"ndjson"``; ``encoding`` a Python codec name and
    ``bom`` the bytes written before the text; ``rules`` the values the target cannot take.
    """

    name: str
    title: str
    columns: tuple[Column, ...]
    rules: tuple[Rule, ...] = ()
    kind: str = "delimited"
    delimiter: str = ","
    encoding: str = "utf-8"
    bom: bytes = b""
    newline: str = "\n"

    @property
    def headers(self) -> list[str]:
        """The column names, in order."""
        return [c.header for c in self.columns]

    def problems(self, row: StartRow) -> list[Problem]:
        """Every value of ``row`` this target cannot take (empty: the row exports as is)."""
        out = []
        for name, check in self.rules:
            value = getattr(row, name)
            reason = check(value)
            if reason is not None:
                out.append(
                    Problem(row.registration_id, name, value, reason, row.event_id, _full_name(row))
                )
        return out

    def values(self, row: StartRow, blank: frozenset[str] = frozenset()) -> dict[str, Any]:
        """``header -> value`` of ``row``; the StartRow fields named in ``blank`` are written
        empty (``--allow blank-value``)."""
        if blank:
            row = replace(row, **dict.fromkeys(blank))  # type: ignore[arg-type]
        return {c.header: c.value(row) for c in self.columns}


_EVERY_COLUMN = tuple(Column(n, field(n)) for n in FIELD_NAMES)

CSV = Profile("csv", "CSV", _EVERY_COLUMN)
JSON = Profile("json", "NDJSON", _EVERY_COLUMN, kind="ndjson")

RACERESULT = Profile(
    "raceresult",
    "RACE RESULT",
    (
        Column("Bib", _int("bib_num")),
        Column("Lastname", field("last_name")),
        Column("Firstname", field("first_name")),
        Column("Gender", field("gender")),
        Column("DateOfBirth", field("dob")),
        Column("Contest", field("event_name")),
        Column("Club", field("team_name")),
        Column("License", field("team_bib")),
        Column("Transponder1", field("chip_num")),
        Column("RegNo", field("registration_id")),
        Column("Street", field("street")),
        Column("ZIP", field("zipcode")),
        Column("City", field("city")),
        Column("State", field("state")),
        Column("Country", field("country_code")),
        Column("Email", field("email")),
        Column("Phone", field("phone")),
    ),
    (
        ("bib_num", integer_bib),
        ("chip_num", chip_at_most(40)),
        ("gender", gender_in(("M", "F", "X"))),
    ),
)

OPENSPLITTIME = Profile(
    "opensplittime",
    "OpenSplitTime",
    (
        Column("first_name", field("first_name")),
        Column("last_name", field("last_name")),
        Column("gender", lambda r: _OST_GENDER.get(r.gender or "")),
        Column("birthdate", field("dob")),
        Column("bib_number", _int("bib_num")),
        Column("city", field("city")),
        Column("state_code", field("state")),
        Column("country_code", field("country_code")),
        Column("email", field("email")),
        Column("phone", field("phone")),
        Column("scheduled_start_time_local", lambda r: _local_start(r.event_start)),
    ),
    (("bib_num", integer_bib), ("gender", gender_in(tuple(_OST_GENDER)))),
)

WEBSCORER = Profile(
    "webscorer",
    "Webscorer",
    (
        Column("Bib", field("bib_num")),
        Column("First name", field("first_name")),
        Column("Last name", field("last_name")),
        Column("Gender", field("gender")),
        Column("Age", field("age")),
        Column("Team name", field("team_name")),
        Column("Distance", field("event_name")),
        Column("Chip id", field("chip_num")),
        Column("Email", field("email")),
        Column("Info 1", field("registration_id")),
    ),
    (("gender", gender_in(("M", "F", "X"))),),
    delimiter="\t",
    encoding="utf-16-le",
    bom=b"\xff\xfe",
    newline="\r\n",
)

MYLAPS = Profile(
    "mylaps",
    "MYLAPS",
    (
        Column("id", field("registration_id")),
        Column("name", _full_name),
        Column("bib", _int("bib_num")),
        Column("chip", field("chip_num")),
        Column("gender", field("gender")),
        Column("birthdate", field("dob")),
    ),
    (
        ("bib_num", integer_bib),
        ("chip_num", chip_at_most(16, alnum=True)),
        ("gender", gender_in(("M", "F", "X"))),
    ),
)


def _local_start(start: str | None) -> str | None:
    """``2026-05-03T07:30:00-05:00`` -> ``2026-05-03 07:30:00`` (the race's wall clock)."""
    return None if not start else start[:19].replace("T", " ")


#: Every profile by its ``--format`` name.
PROFILES: dict[str, Profile] = {
    p.name: p for p in (CSV, JSON, RACERESULT, OPENSPLITTIME, WEBSCORER, MYLAPS)
}


def profile(name: str) -> Profile:
    """The profile called ``name``. Raises ``KeyError`` naming the known formats."""
    try:
        return PROFILES[name]
    except KeyError:
        raise KeyError(f"unknown format {name!r} (known: {', '.join(PROFILES)})") from None
