"""Pure parsing of RunSignUp's wire values into typed, normalised column values.

Every function here is pure (no I/O, no global state besides caches) and independent of the
machine's time zone: zones come from ``zoneinfo`` by name. Formats are those of
``shared/docs/runsignup-api.md`` §4:

- flags ``"T"``/``"F"`` -> ``1``/``0``;
- money ``"$55.00"`` -> integer cents ``5500``;
- ``"M/D/YYYY HH:MM"`` (race ``created``/``last_modified``, ``registration_date``, event
  ``start_time``), ``"YYYY-MM-DD HH:MM:SS"`` (removed-participant dates) -> a local ISO 8601 string
  with its UTC offset plus the same instant in UTC (``...Z``);
- ``"MM/DD/YYYY"`` and ``"YYYY-MM-DD"`` dates -> ``"YYYY-MM-DD"``;
- epoch seconds -> ISO 8601 UTC.

Invalid values raise :class:`ValueError` with a short message naming the value; so does any
integer result outside SQL's signed 64-bit ``BIGINT`` range (an id ``>= 2**63``, a float id such as
``1e300``, ``$10^20``) and any epoch outside years 1-9999: a column never receives a value the
database cannot store.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: RunSignUp's "all other dates/times" zone (races, registrations).
EASTERN_NAME = "America/New_York"
#: ``logo_url`` equal to this bare CDN prefix means "no logo" (see runsignup-api.md §4).
EMPTY_LOGO_URL = "https://d368g9lw5ileu7.cloudfront.net/"

_MONEY_RE = re.compile(r"^\s*(-?)\s*\$?\s*(-?)([0-9][0-9,]*)(?:\.([0-9]{1,2}))?\s*$")
_MDY_HM_RE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2}))?)?$")
_YMD_HMS_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?)?$")


class _Missing:
    """Sentinel type: a key that was absent from the body (leave the stored value alone)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


#: Marks a column whose key was absent from the body (as opposed to an explicit ``null``).
MISSING: Any = _Missing()


#: SQL ``BIGINT`` (SQLite ``INTEGER``, PostgreSQL ``bigint``) bounds.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
#: Epoch seconds of 0001-01-02T00:00:00Z (a day in, so any zone's local time is a valid date) and
#: of 10000-01-01T00:00:00Z (exclusive).
EPOCH_MIN = -62_135_510_400
EPOCH_MAX = 253_402_300_800


def int64(value: int, what: str = "integer") -> int:
    """``value`` itself when it fits a signed 64-bit column, else ``ValueError`` naming it
    (shortened: a 5,000-digit number is not echoed whole)."""
    if INT64_MIN <= value <= INT64_MAX:
        return value
    shown = str(value) if value.bit_length() < 200 else f"a {len(str(value))}-digit number"
    raise ValueError(f"{what} out of range: {shown}")


def flag(value: Any) -> int | None:
    """``"T"``/``"F"`` (also ``true``/``false``, ``1``/``0``, ``"Y"``/``"N"``) -> ``1``/``0``.

    ``None`` and ``""`` -> ``None``. Anything else raises ``ValueError``.
    """
    if value is None or value == "":
        return None
    if value is True or value is False:
        return int(value)
    if isinstance(value, str):
        v = value.strip().upper()
        if v in ("T", "TRUE", "Y", "YES", "1"):
            return 1
        if v in ("F", "FALSE", "N", "NO", "0"):
            return 0
    elif isinstance(value, int) and value in (0, 1):
        return value
    raise ValueError(f"not a T/F flag: {value!r}")


@lru_cache(maxsize=8192)
def _cents_from_text(value: str) -> int:
    m = _MONEY_RE.match(value)
    if not m:
        raise ValueError(f"not a money amount: {value!r}")
    sign1, sign2, whole, frac = m.groups()
    cents = int(whole.replace(",", "")) * 100 + (int((frac or "0").ljust(2, "0")))
    return int64(-cents if (sign1 or sign2) else cents, "money amount")


def cents(value: Any) -> int | None:
    """A RunSignUp money value (``"$55.00"``, ``"$1,234.5"``, ``"-$3.00"``, or a JSON number of
    dollars) -> integer cents (``5500``). ``None``/``""`` -> ``None``."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return _cents_from_text(value)
    if isinstance(value, bool):
        raise ValueError(f"not a money amount: {value!r}")
    if isinstance(value, int | float):
        try:
            return int64(int((Decimal(str(value)) * 100).to_integral_value()), "money amount")
        except (InvalidOperation, OverflowError) as exc:  # pragma: no cover - nan/inf
            raise ValueError(f"not a money amount: {value!r}") from exc
    raise ValueError(f"not a money amount: {value!r}")


def text(value: Any) -> str | None:
    """An identifier kept as text exactly as sent (bib, chip, zip, phone, transaction id).

    Strings are returned unchanged (leading zeros, letters, spaces kept); a JSON number becomes its
    decimal text (``3 -> "3"``); ``None`` stays ``None``. Objects/lists raise ``ValueError``.
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise ValueError(f"not a text value: {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    raise ValueError(f"not a text value: {value!r}")


def integer(value: Any) -> int | None:
    """An integer id or count; accepts ints and digit strings (``"1"`` -> ``1``); ``None``/``""``
    -> ``None``."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"not an integer: {value!r}")
    if isinstance(value, int):
        return int64(value)
    if isinstance(value, str):
        try:
            return int64(int(value.strip()))
        except ValueError as exc:
            if "out of range" in str(exc):
                raise
            raise ValueError(f"not an integer: {value[:40]!r}") from None
    if isinstance(value, float) and value.is_integer():
        return int64(int(value))
    raise ValueError(f"not an integer: {value!r}")


def obj(value: Any) -> dict[str, Any]:
    """A nested object; ``[]`` (PHP's empty array) and ``None`` read as ``{}`` (all keys absent)."""
    if isinstance(value, dict):
        return value
    if value is None or value == [] or value is MISSING:
        return {}
    raise ValueError(f"not an object: {value!r}")


@lru_cache(maxsize=64)
def zone(name: str | None) -> ZoneInfo | None:
    """The ``ZoneInfo`` for an IANA name, or ``None`` when the name is empty or unknown."""
    if not name or not isinstance(name, str):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _parse_naive(value: str) -> datetime:
    """``"M/D/YYYY HH:MM"``, ``"MM/DD/YYYY"``, ``"YYYY-MM-DD HH:MM:SS"`` -> naive datetime."""
    s = value.strip()
    m = _MDY_HM_RE.match(s)
    if m:
        mo, d, y, hh, mm, ss = m.groups()
        return datetime(int(y), int(mo), int(d), int(hh or 0), int(mm or 0), int(ss or 0))
    m = _YMD_HMS_RE.match(s)
    if m:
        y, mo, d, hh, mm, ss = m.groups()
        return datetime(int(y), int(mo), int(d), int(hh or 0), int(mm or 0), int(ss or 0))
    raise ValueError(f"not a date/time: {value!r}")


def _utc_iso(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@lru_cache(maxsize=65536)
def _local_utc(value: str, tz_name: str | None) -> tuple[str, str | None]:
    try:
        naive = _parse_naive(value)
    except ValueError:
        raise ValueError(f"not a date/time: {value!r}") from None
    tz = zone(tz_name)
    if tz is None:
        return naive.isoformat(), None
    local = naive.replace(tzinfo=tz)
    return local.isoformat(), _utc_iso(local)


def local_and_utc(value: Any, tz_name: str | None) -> tuple[str | None, str | None]:
    """A wall-clock date/time in zone ``tz_name`` -> ``(local ISO 8601 with offset, UTC ISO 8601)``.

    ``"11/18/2017 09:00"`` in ``America/Denver`` -> ``("2017-11-18T09:00:00-07:00",
    "2017-11-18T16:00:00Z")``. Accepted: ``M/D/YYYY HH:MM``, ``MM/DD/YYYY``, ``YYYY-MM-DD
    HH:MM:SS``; an int is taken as epoch seconds. With an unknown zone the local value has no
    offset and UTC is ``None``. ``None``/``""`` -> ``(None, None)``.
    """
    if value is None or value == "":
        return None, None
    if isinstance(value, int) and not isinstance(value, bool):
        tz = zone(tz_name)
        instant = datetime.fromtimestamp(_epoch_range(value), UTC)
        try:
            local = instant.astimezone(tz).isoformat() if tz else None
        except OverflowError:  # the last hours of 9999 in a zone east of UTC
            raise ValueError(f"timestamp out of range: {value}") from None
        return local, _utc_iso(instant)
    if not isinstance(value, str):
        raise ValueError(f"not a date/time: {value!r}")
    return _local_utc(value, tz_name)


def eastern(value: Any) -> tuple[str | None, str | None]:
    """:func:`local_and_utc` in US Eastern (RunSignUp's zone for race and registration times)."""
    return local_and_utc(value, EASTERN_NAME)


@lru_cache(maxsize=8192)
def _date_text(value: str) -> str:
    return _parse_naive(value).date().isoformat()


def date(value: Any) -> str | None:
    """A calendar date (``"04/06/2019"``, ``"1960-01-01"``) -> ``"YYYY-MM-DD"``; ``None`` stays."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"not a date: {value!r}")
    return _date_text(value)


def _epoch_range(secs: int) -> int:
    """``secs`` when it is an instant of years 1-9999, else ``ValueError``."""
    if EPOCH_MIN <= secs < EPOCH_MAX:
        return secs
    int64(secs, "timestamp")
    raise ValueError(f"timestamp out of range: {secs}")


def epoch_utc(value: Any) -> str | None:
    """Epoch seconds (int, or digit string) -> ISO 8601 UTC ``"2018-11-04T13:10:24Z"``."""
    if value is None or value == "":
        return None
    secs = integer(value)
    if secs is None:  # pragma: no cover - excluded above
        return None
    return datetime.fromtimestamp(_epoch_range(secs), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch(value: Any, tz_name: str | None = EASTERN_NAME) -> int | None:
    """Epoch seconds from an int or a wall-clock string in ``tz_name`` (default Eastern)."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return _epoch_range(value)
    if isinstance(value, str) and value.strip().isdigit():
        return _epoch_range(int(value.strip()))
    if isinstance(value, str):
        tz = zone(tz_name)
        naive = _parse_naive(value)
        return int(naive.replace(tzinfo=tz or UTC).timestamp())
    raise ValueError(f"not a timestamp: {value!r}")


def logo_url(value: Any) -> str | None:
    """``logo_url``: the bare CDN prefix means "no logo" and becomes ``None``."""
    if value is None or value == EMPTY_LOGO_URL:
        return None
    return text(value)
