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

Text no target can take (:meth:`Profile.cell_problem`, checked on every exported cell):

- control characters: every C0 control (TAB, LF and CR included), DEL, the C1 controls, the
  Unicode line and paragraph separators, every bidi control (U+061C, U+200E, U+200F,
  U+202A-U+202E, U+2066-U+2069) and the invisible format characters
  (:data:`rsu.journal.printable.CONTROLS`: zero width space, soft hyphen, BOM, tags, ...), in a
  delimited file; they end rows early, drive a terminal (``ESC [2J``), reorder what staff read
  or hide text in a name. NDJSON takes them: the export writes each one as a
  ``\\uXXXX`` escape (:func:`rsu.journal.printable.json_safe`), the exact value and nothing a
  terminal acts on.
- spreadsheet formulas, in a delimited file: a text that starts with ``=``, ``+``, ``-``, ``@``,
  TAB or CR, which Excel and LibreOffice run as a formula when the file is opened (``=cmd|' /C
  calc'!A0``, ``@SUM(A1)``); also after leading spaces or tabs (``  =1+1``) and in the
  fullwidth forms ``＝ ＋ － ＠`` (U+FF1D, U+FF0B, U+FF0D, U+FF20), which East Asian spreadsheet
  setups read as their ASCII twins. Harmless and passed: a text of ``+`` or ``-`` followed only
  by digits, spaces and ``. , ( ) -`` (a number ``-5``, ``+1.5``, a phone number ``+1 (555)
  010-1234``, a lone ``-``): with those characters no function, cell, file or program can be
  named. Numbers (``int``) are never formulas.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from operator import attrgetter
from typing import Any

from rsu.journal.printable import CONTROLS

from .selection import FIELD_NAMES, StartRow

#: :attr:`Problem.kind` of a value a field rule refuses (a bib, chip or gender).
VALUE = "value"
#: :attr:`Problem.kind` of a text holding control characters.
CONTROL = "control_character"
#: :attr:`Problem.kind` of a text a spreadsheet would run as a formula.
FORMULA = "spreadsheet_formula"

#: What ``--allow`` did with a problem (:attr:`Problem.action`).
SKIPPED, BLANKED, QUOTED = "skipped", "written empty", "quoted"


@dataclass(frozen=True)
class Problem:
    """A value of one registration that a target cannot take.

    ``field`` is the :class:`~rsu.export.selection.StartRow` field (``bib_num``, ``chip_num``,
    ``gender``, ...), ``value`` the value as synced (``None`` when missing), ``reason`` a short
    sentence for the operator; ``event_id`` and ``name`` (first and last) say whose row it is.
    ``column`` is the output column of a text problem (empty for a field rule), ``kind`` one of
    :data:`VALUE`, :data:`CONTROL`, :data:`FORMULA`; ``action`` what ``--allow`` did with it
    (:data:`SKIPPED`, :data:`BLANKED`, :data:`QUOTED`; ``None``: refused).
    """

    registration_id: int
    field: str
    value: Any
    reason: str
    event_id: int = 0
    name: str = ""
    column: str = ""
    kind: str = VALUE
    action: str | None = None

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


#: The characters no delimited target takes: printable's controls plus TAB, LF and CR.
CONTROL_CHARACTERS = re.compile(f"{CONTROLS.pattern}|[\t\n\r]")
#: What a formula may start with: a cell starting with none of these is never one (the row's
#: quick check; :func:`formula_start` decides).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", " ", "\uff1d", "\uff0b", "\uff0d", "\uff20")
#: The fullwidth formula characters, as the ASCII ones a spreadsheet reads them as.
_FULLWIDTH = str.maketrans("\uff1d\uff0b\uff0d\uff20", "=+-@")
_HARMLESS = re.compile(r"[+-][0-9 .,()-]*")
_SHOWN = 60


def shown(text: str) -> str:
    """A safe rendering of ``text`` for the operator: quoted, every control character escaped
    (``'\\x1b[2J'``), cut at 60 characters (``...`` after the quote)."""
    return repr(text) if len(text) <= _SHOWN else repr(text[:_SHOWN]) + "..."


def control_characters(text: str) -> list[str]:
    """The control characters in ``text`` (no target takes them), as ``U+001B``, each once."""
    return [f"U+{ord(c):04X}" for c in sorted(set(CONTROL_CHARACTERS.findall(text)))]


def formula_start(text: str) -> str:
    """The start of ``text`` by which a spreadsheet would run it as a formula (``""``: none):
    TAB or CR (``"\\t"``), or ``=``, ``+``, ``-``, ``@`` or their fullwidth forms after any
    leading spaces and tabs (``"  ＝"``), unless the text is then ``+``/``-`` followed only by
    digits, spaces and ``. , ( ) -`` (a number or phone number, harmless)."""
    if not text.startswith(_FORMULA_START):
        return ""
    if text.startswith(("\t", "\r")):
        return text[0]
    body = text.lstrip(" \t")
    ascii_body = body[:1].translate(_FULLWIDTH) + body[1:]
    if not ascii_body.startswith(("=", "+", "-", "@")) or _HARMLESS.fullmatch(ascii_body):
        return ""
    return text[: len(text) - len(body) + 1]


def is_formula(text: str) -> bool:
    """Whether a spreadsheet would run ``text`` as a formula (:func:`formula_start`)."""
    return formula_start(text) != ""


@dataclass(frozen=True)
class Column:
    """One output column: ``header``, ``value(row) -> value`` (``None`` is written empty) and
    ``reads``, the StartRow fields the value is made of."""

    header: str
    value: Callable[[StartRow], Any]
    reads: tuple[str, ...] = ()


def field(name: str) -> Callable[[StartRow], Any]:
    """A column that copies the StartRow field ``name`` unchanged."""
    return attrgetter(name)


def copied(header: str, name: str) -> Column:
    """The column ``header`` holding the StartRow field ``name`` unchanged."""
    return Column(header, field(name), (name,))


def _int(name: str) -> Callable[[StartRow], Any]:
    def get(row: StartRow) -> Any:
        v = getattr(row, name)
        return None if v is None or v == "" else int(v)

    return get


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

    def cell_problem(self, header: str, value: Any) -> tuple[str, str] | None:
        """Why this target cannot take ``value`` in column ``header``, as ``(kind, reason)``
        (:data:`CONTROL` or :data:`FORMULA`), or ``None``: only text is checked, control
        characters and formulas in delimited files (see the module docstring)."""
        if not isinstance(value, str) or self.kind != "delimited":
            return None
        if CONTROL_CHARACTERS.search(value):  # the common clean cell costs one search
            codes = control_characters(value)
            return CONTROL, f"{header} {shown(value)} holds control characters ({', '.join(codes)})"
        start = formula_start(value)
        if start:
            return (
                FORMULA,
                f"{header} {shown(value)} starts with {start!r}: a spreadsheet would run it "
                "as a formula",
            )
        return None

    def problems(self, row: StartRow) -> list[Problem]:
        """Every value of ``row`` this target cannot take (empty: the row exports as is): the
        field rules, then :meth:`cell_problem` on each column's value."""
        return self.checked(row)[0]

    def checked(self, row: StartRow) -> tuple[list[Problem], dict[str, Any] | None]:
        """(:meth:`problems` of ``row``, its ``header -> value`` as :meth:`values` gives them
        unfixed, or ``None`` when a field rule kept a column from being computed)."""
        out = []
        name = row.full_name
        for field_name, check in self.rules:
            value = getattr(row, field_name)
            reason = check(value)
            if reason is not None:
                out.append(
                    Problem(row.registration_id, field_name, value, reason, row.event_id, name)
                )
        ruled = {p.field for p in out}  # those values never reach the file as they are
        cells = [
            (c, c.value(row)) for c in self.columns if not (ruled and ruled.intersection(c.reads))
        ]
        whole = None if ruled else {c.header: v for c, v in cells}
        texts = [v for _, v in cells if isinstance(v, str)]
        if self.kind != "delimited" or not (
            CONTROL_CHARACTERS.search("".join(texts))
            or any(t.startswith(_FORMULA_START) for t in texts)
        ):
            return out, whole  # the common clean row: one search, no cell looked at twice
        for column, value in cells:
            found = self.cell_problem(column.header, value)
            if found is not None:
                kind, reason = found
                source = _source(column, row, kind)
                out.append(
                    Problem(
                        row.registration_id,
                        source,
                        value,
                        reason,
                        row.event_id,
                        name,
                        column.header,
                        kind,
                    )
                )
        return out, whole

    def values(
        self,
        row: StartRow,
        blank: frozenset[str] = frozenset(),
        fixes: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """``header -> value`` of ``row``; the StartRow fields named in ``blank`` are written
        empty (``--allow blank-value``), and each column in ``fixes`` is written empty
        (:data:`BLANKED`) or with a ``'`` before it (:data:`QUOTED`, ``--allow quote-formula``)."""
        if blank:
            row = replace(row, **dict.fromkeys(blank))  # type: ignore[arg-type]
        return fix_cells({c.header: c.value(row) for c in self.columns}, fixes or {})


def fix_cells(cells: dict[str, Any], fixes: Mapping[str, str]) -> dict[str, Any]:
    """``cells`` with each header in ``fixes`` written empty (:data:`BLANKED`) or prefixed with
    a single quote (:data:`QUOTED`: OWASP's neutralised formula, shown as text by spreadsheets)."""
    for header, how in fixes.items():
        if how == BLANKED:
            cells[header] = None
        elif how == QUOTED and isinstance(cells.get(header), str):
            cells[header] = "'" + cells[header]
    return cells


def _source(column: Column, row: StartRow, kind: str) -> str:
    """The StartRow field a text problem of ``column`` comes from: the first field it reads
    that has the problem on its own (the header when the column reads none)."""
    for name in column.reads:
        value = getattr(row, name)
        if isinstance(value, str) and (
            control_characters(value) if kind == CONTROL else is_formula(value)
        ):
            return name
    return column.reads[0] if column.reads else column.header


_EVERY_COLUMN = tuple(copied(n, n) for n in FIELD_NAMES)

CSV = Profile("csv", "CSV", _EVERY_COLUMN)
JSON = Profile("json", "NDJSON", _EVERY_COLUMN, kind="ndjson")

RACERESULT = Profile(
    "raceresult",
    "RACE RESULT",
    (
        Column("Bib", _int("bib_num"), ("bib_num",)),
        copied("Lastname", "last_name"),
        copied("Firstname", "first_name"),
        copied("Gender", "gender"),
        copied("DateOfBirth", "dob"),
        copied("Contest", "event_name"),
        copied("Club", "team_name"),
        copied("License", "team_bib"),
        copied("Transponder1", "chip_num"),
        copied("RegNo", "registration_id"),
        copied("Street", "street"),
        copied("ZIP", "zipcode"),
        copied("City", "city"),
        copied("State", "state"),
        copied("Country", "country_code"),
        copied("Email", "email"),
        copied("Phone", "phone"),
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
        copied("first_name", "first_name"),
        copied("last_name", "last_name"),
        Column("gender", lambda r: _OST_GENDER.get(r.gender or ""), ("gender",)),
        copied("birthdate", "dob"),
        Column("bib_number", _int("bib_num"), ("bib_num",)),
        copied("city", "city"),
        copied("state_code", "state"),
        copied("country_code", "country_code"),
        copied("email", "email"),
        copied("phone", "phone"),
        Column(
            "scheduled_start_time_local", lambda r: _local_start(r.event_start), ("event_start",)
        ),
    ),
    (("bib_num", integer_bib), ("gender", gender_in(tuple(_OST_GENDER)))),
)

WEBSCORER = Profile(
    "webscorer",
    "Webscorer",
    (
        copied("Bib", "bib_num"),
        copied("First name", "first_name"),
        copied("Last name", "last_name"),
        copied("Gender", "gender"),
        copied("Age", "age"),
        copied("Team name", "team_name"),
        copied("Distance", "event_name"),
        copied("Chip id", "chip_num"),
        copied("Email", "email"),
        copied("Info 1", "registration_id"),
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
        copied("id", "registration_id"),
        Column("name", attrgetter("full_name"), ("first_name", "last_name")),
        Column("bib", _int("bib_num"), ("bib_num",)),
        copied("chip", "chip_num"),
        copied("gender", "gender"),
        copied("birthdate", "dob"),
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
