"""Value formats RunSignUp uses on the wire, and JSON encoding with PHP quirks.

RunSignUp mixes several date formats in one response (see ``shared/docs/runsignup-api.md`` §4):

- race dates (``next_date``, ``last_date``, ...): ``"MM/DD/YYYY"``, zero-padded;
- ``created`` / ``last_modified`` on races, ``registration_date`` on registrations:
  ``"M/D/YYYY HH:MM"`` (month and day not padded, 24 h), US Eastern time;
- event ``start_time`` / ``end_time``: ``"M/D/YYYY HH:MM"`` in the race's own time zone;
- removed-participant ``registration_date`` / ``last_modified``: ``"YYYY-MM-DD HH:MM:SS"``
  (Eastern);
- registration ``last_modified``: Unix seconds (int, UTC epoch).

Money is a dollar string such as ``"$55.00"``; flags are ``"T"``/``"F"``.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

EASTERN = ZoneInfo("America/New_York")

_encoder = msgspec.json.Encoder()


def flag(value: bool) -> str:
    """Return RunSignUp's boolean flag: ``"T"`` or ``"F"``."""
    return "T" if value else "F"


@lru_cache(maxsize=4096)
def money(cents: int) -> str:
    """Format integer cents as RunSignUp's dollar string, e.g. ``5500 -> "$55.00"``."""
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}${cents // 100}.{cents % 100:02d}"


@lru_cache(maxsize=65536)
def _eastern_minute(epoch_minute: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch_minute * 60, EASTERN)


def mdy_hm(local: dt.datetime) -> str:
    """Format a (naive or aware) local datetime as ``"M/D/YYYY HH:MM"`` (no zero padding on M/D)."""
    return f"{local.month}/{local.day}/{local.year} {local.hour:02d}:{local.minute:02d}"


def eastern_mdy_hm(epoch: int) -> str:
    """Format Unix seconds (UTC) as ``"M/D/YYYY HH:MM"`` in US Eastern time."""
    return mdy_hm(_eastern_minute(epoch // 60))


def eastern_iso(epoch: int) -> str:
    """Format Unix seconds (UTC) as ``"YYYY-MM-DD HH:MM:SS"`` in US Eastern time."""
    d = dt.datetime.fromtimestamp(epoch, EASTERN)
    return d.strftime("%Y-%m-%d %H:%M:%S")


def race_date(day: dt.date | None) -> str | None:
    """Format a race date as zero-padded ``"MM/DD/YYYY"`` (``None`` stays ``None``)."""
    return None if day is None else f"{day.month:02d}/{day.day:02d}/{day.year}"


def encode_json(obj: Any, php_escapes: bool = True) -> bytes:
    """Encode ``obj`` as compact JSON bytes.

    With ``php_escapes`` every ``/`` is written as ``\\/`` like PHP's ``json_encode``. A slash
    can only occur inside JSON strings, so a byte replace is exact.
    """
    raw = _encoder.encode(obj)
    return raw.replace(b"/", b"\\/") if php_escapes else raw


def error_body(code: int, message: str) -> dict[str, Any]:
    """The RunSignUp error envelope: ``{"error": {"error_code": int, "error_msg": str}}``."""
    return {"error": {"error_code": code, "error_msg": message}}


# Error codes and messages exactly as the real API sends them (fixtures + DOC-ERR).
ERR_UNKNOWN_METHOD = (1, "Unknown method")
ERR_HTTP_METHOD = (2, "HTTP method not supported")
ERR_INVALID_PARAMS = (3, "Invalid parameters")
ERR_FORMAT = (10, "Response format not supported")
ERR_KEY_AUTH = (6, "Key authentication failed")
ERR_PERMISSION = (7, "Permission Denied")
ERR_THROTTLED = (14, "Request throttled.")
ERR_CALLER = (17, "Invalid API caller credentials.")  # sent with HTTP 400, unlike the others
ERR_RACE_NOT_FOUND = (201, "Race not found.")
ERR_EVENT_NOT_FOUND = (301, "Event not found.")
