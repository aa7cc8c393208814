"""Race-aware cadence: how often each race is synced, so that a ``rsu sync`` run from cron every
5 minutes only spends requests on races that are due.

**The table.** The interval between two syncs of a race depends on the offset ``start - now``
(seconds; negative once the start has passed) of its event starts. A cadence is a list of
``BOUND=INTERVAL`` rules; the rule with the largest ``BOUND <= offset`` applies (``*`` is a bound
below every other one; an offset below every bound takes the lowest rule). With several events,
the shortest interval of them wins (a two-day race is on race day from the first start to a day
after the last). The default, :data:`DEFAULT_CADENCE_SPEC`:

=====================================  =====================  ==========
event start                            rule                   interval
=====================================  =====================  ==========
60 days or more ahead                  ``60d=24h``            24 h
7 to 60 days ahead                     ``7d=6h``              6 h
1 to 7 days ahead (race week)          ``1d=1h``              1 h
within 24 h before or after the start  ``-1d=5m``             5 min
1 to 7 days after the start            ``-7d=6h``             6 h
more than 7 days after the start       ``*=24h``              24 h
=====================================  =====================  ==========

Durations are a number with a unit ``s``, ``m``, ``h``, ``d`` or ``w`` (``0`` needs none); an
interval of ``0`` means every run. A race is due :data:`GRACE_SECONDS` (at most a fifth of its
interval) early, so that a cron run starting a few seconds ahead of the previous one's start does
not skip a beat.

**Times.** Event ``start_time`` values are sent as ``"M/D/YYYY HH:MM"`` in the race's own time zone
(``race.timezone``, an IANA name; Eastern when missing or unknown), read here with
:mod:`zoneinfo`, so daylight-saving changes are exact. A race listed without any parseable event
start falls back to its ``next_date``/``last_date`` (``MM/DD/YYYY``, at local midnight); a race
with no date at all is due on every run.

**Last sync.** What the journal proves: for each event listed with the race, the newest
``listing_completed`` of both listings (removed participants and participants). The race's last
sync is the start (``run_started``) of the oldest of those runs; it has none (and is due at once)
when an event was never listed, or when the newest listing of an event failed. So an interrupted
run, a failed listing or a new event makes the race due on the next run.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rsu.journal import Journal, ListingCompleted

#: The default cadence (see the module docstring for the table).
DEFAULT_CADENCE_SPEC = "60d=24h,7d=6h,1d=1h,-1d=5m,-7d=6h,*=24h"

#: How much earlier than its interval a race counts as due (seconds; at most interval / 5).
GRACE_SECONDS = 60.0

#: The time zone used when a race names none or an unknown one (RunSignUp's other times).
FALLBACK_TIMEZONE = "America/New_York"

#: The two listings every event gets in a run.
LISTING_ENDPOINTS = ("removed_participants", "participants")

#: The longest bound or interval of a cadence rule (seconds, 100 years of 365 days).
MAX_CADENCE_SECONDS = 36500 * 86400

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"([+-]?)(\d+(?:\.\d+)?)([smhdw]?)")


class CadenceError(ValueError):
    """A cadence specification that cannot be read; the message says which rule and why."""


@dataclass(frozen=True)
class Cadence:
    """A parsed cadence: ``rules`` are ``(bound, interval)`` pairs in seconds, bounds strictly
    descending (``-math.inf`` for ``*``). Build one with :func:`parse_cadence`."""

    rules: tuple[tuple[float, float], ...]

    def interval_at(self, offset: float) -> float:
        """The interval (seconds) for one event start ``offset`` seconds ahead (negative: past)."""
        for bound, interval in self.rules:
            if offset >= bound:
                return interval
        return self.rules[-1][1]

    def __str__(self) -> str:
        return ",".join(
            f"{'*' if b == -math.inf else _format_duration(b)}={_format_duration(i)}"
            for b, i in self.rules
        )


def _format_duration(seconds: float) -> str:
    if seconds == 0:
        return "0"
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    for unit in ("w", "d", "h", "m"):
        size = _UNITS[unit]
        if seconds % size == 0:
            return f"{sign}{int(seconds // size)}{unit}"
    return f"{sign}{seconds:g}s"


def parse_duration(text: str, *, signed: bool = False, bare_unit: str | None = None) -> float:
    """Seconds in ``text``: a number and a unit ``s``, ``m``, ``h``, ``d`` or ``w`` (``"90m"``,
    ``"1.5h"``); a bare number is in ``bare_unit`` (one of those units) when given, else only
    ``"0"`` may go without a unit; a leading ``-`` only when ``signed``. The one duration parser
    of ``rsu``: cadence rules and every duration option (``--max-age``, ``--full-every``, ...).
    Raises :class:`CadenceError` (a ``ValueError``) naming the text for anything else, and for a
    number so long that its seconds overflow to infinity (400 digits)."""
    text = text.strip()
    m = _DURATION.fullmatch(text)
    if m is None:
        raise CadenceError(f"{text!r} is not a duration such as 90m, 6h or 7d")
    sign, number, unit = m.groups()
    if sign == "-" and not signed:
        raise CadenceError(f"{text!r}: a duration cannot be negative")
    value = float(number)
    if not unit:
        if bare_unit is not None:
            unit = bare_unit
        elif value != 0:
            raise CadenceError(f"{text!r} needs a unit (s, m, h, d or w), e.g. {number}m")
        else:
            return 0.0
    seconds = (-value if sign == "-" else value) * _UNITS[unit]
    if not math.isfinite(seconds):
        raise CadenceError(f"{text!r} is not a finite number")
    return seconds


def parse_cadence(spec: str) -> Cadence:
    """Parse a cadence such as ``"60d=24h,7d=6h,1d=1h,-1d=5m,-7d=6h,*=24h"``: comma-separated
    ``BOUND=INTERVAL`` rules in any order, ``BOUND`` a signed duration (time until an event
    start) or ``*``, ``INTERVAL`` a duration >= 0 (see the module docstring).

    Raises :class:`CadenceError` for an empty spec, a rule without ``=``, a bad duration, a
    bound or interval longer than :data:`MAX_CADENCE_SECONDS` (100 years: no date that far
    ahead can be shown) or a bound given twice.
    """
    rules: dict[float, float] = {}
    items = [item.strip() for item in spec.split(",")]
    if not any(items):
        raise CadenceError("the cadence is empty; give rules such as 7d=6h,1d=1h,*=24h")
    for item in items:
        if not item:
            raise CadenceError(f"empty rule in cadence {spec!r} (two commas in a row?)")
        bound_text, eq, interval_text = item.partition("=")
        if not eq:
            raise CadenceError(f"rule {item!r} is not BOUND=INTERVAL, e.g. 7d=6h")
        bound_text = bound_text.strip()
        try:
            bound = -math.inf if bound_text == "*" else parse_duration(bound_text, signed=True)
            interval = parse_duration(interval_text)
        except CadenceError as exc:
            raise CadenceError(f"rule {item!r}: {exc}") from None
        if max(interval, 0.0 if bound == -math.inf else abs(bound)) > MAX_CADENCE_SECONDS:
            raise CadenceError(
                f"rule {item!r}: longer than 36500d (100 years), the most a cadence rule takes"
            )
        if bound in rules:
            raise CadenceError(f"rule {item!r}: bound {bound_text} is given twice")
        rules[bound] = interval
    return Cadence(tuple(sorted(rules.items(), reverse=True)))


#: The parsed :data:`DEFAULT_CADENCE_SPEC`.
DEFAULT_CADENCE = parse_cadence(DEFAULT_CADENCE_SPEC)


# -- race start times ------------------------------------------------------------------------

_LOCAL_FORMATS = (
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y",
)


def race_zone(name: object) -> ZoneInfo:
    """The :class:`~zoneinfo.ZoneInfo` of a race's ``timezone`` value; US Eastern
    (:data:`FALLBACK_TIMEZONE`) when it is missing, not a string or not a known IANA name."""
    if isinstance(name, str) and name.strip():
        try:
            return ZoneInfo(name.strip())
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return ZoneInfo(FALLBACK_TIMEZONE)


def local_epoch(text: object, zone: ZoneInfo) -> float | None:
    """Epoch seconds (UTC) of a RunSignUp local date-time in ``zone``: ``"11/18/2017 09:00"``
    (month and day padded or not), with seconds, with AM/PM, a bare ``MM/DD/YYYY`` (midnight)
    or ISO 8601 (an explicit offset wins over ``zone``). ``None`` when ``text`` is not a string
    in one of those formats. A wall time that a DST change skips or repeats is read with the
    offset before the change (``fold=0``)."""
    if not isinstance(text, str) or not text.strip():
        return None
    text = text.strip()
    moment: datetime | None = None
    for fmt in _LOCAL_FORMATS:
        try:
            moment = datetime.strptime(text, fmt)
            break
        except ValueError:
            continue
    if moment is None:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.timestamp()


def race_starts(
    timezone: object,
    event_starts: Iterable[object],
    race_dates: Iterable[object] = (),
) -> list[float]:
    """Epoch seconds (UTC) of a race's event starts, read in the race's ``timezone`` (see
    :func:`race_zone` and :func:`local_epoch`; unparseable values are skipped). When no event
    start parses, the race dates (``next_date``, ``last_date``) at local midnight stand in; an
    empty list means nothing was parseable."""
    zone = race_zone(timezone)
    starts = [t for t in (local_epoch(s, zone) for s in event_starts) if t is not None]
    if not starts:
        starts = [t for t in (local_epoch(d, zone) for d in race_dates) if t is not None]
    return sorted(set(starts))


# -- the decision ----------------------------------------------------------------------------


def _interval(starts: Sequence[float], now: float, cadence: Cadence) -> float:
    return min(cadence.interval_at(s - now) for s in starts)


def grace(interval: float) -> float:
    """How many seconds before ``interval`` has passed a race already counts as due."""
    return min(GRACE_SECONDS, interval / 5)


def next_due(
    starts: Sequence[float],
    last_sync: float | None,
    now: float,
    cadence: Cadence,
) -> float:
    """When a race is next due (epoch seconds, UTC; ``now`` or earlier means due now).

    ``starts`` are its event starts and ``last_sync`` its last successful sync (epoch seconds,
    UTC; ``None``: never, or its last attempt failed). A race without starts or without a last
    sync is due now. Otherwise it is due at the first moment ``t >= now`` with
    ``t - last_sync >= interval(t) - grace``, the interval shrinking as a start comes closer.
    """
    if last_sync is None or not starts:
        return now
    bounds = [b for b, _ in cadence.rules if b != -math.inf]
    breaks = sorted({s - b for s in starts for b in bounds if s - b > now})
    t = now
    interval = _interval(starts, now, cadence)
    for k in range(len(breaks) + 1):
        due = max(t, last_sync + interval - grace(interval))
        end = breaks[k] if k < len(breaks) else math.inf
        if due <= end:
            return due
        # the next segment (end, breaks[k + 1]]: its interval, read at a point inside it
        after = breaks[k + 1] if k + 1 < len(breaks) else end + 1.0
        interval = _interval(starts, (end + after) / 2, cadence)
        t = end
    return t  # pragma: no cover - the last segment is unbounded


def is_due(starts: Sequence[float], last_sync: float | None, now: float, cadence: Cadence) -> bool:
    """Whether a race is due at ``now`` (see :func:`next_due`; all times epoch seconds, UTC)."""
    return next_due(starts, last_sync, now, cadence) <= now


# -- the journal's side ----------------------------------------------------------------------


def _epoch(recorded_at: str) -> float:
    return datetime.fromisoformat(recorded_at.replace("Z", "+00:00")).timestamp()


#: Journal rows read per query while looking back, and at most in all for one race (a race
#: whose events are not all found within that many listings counts as never synced).
_PAGE = 64
_MAX_ROWS = 4096


class SyncClock:
    """Reads from the journal when races were last synced (see :meth:`last_synced`); caches
    each run's start. Thread-safe."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._run_starts: dict[str, float] = {}
        self._lock = threading.Lock()

    def run_start(self, run_id: str | None, fallback: str) -> float:
        """Epoch seconds (UTC) at which run ``run_id`` was journaled to start (its first event),
        or ``fallback`` (a ``recorded_at``) when the run is unknown."""
        if run_id is None:
            return _epoch(fallback)
        with self._lock:
            cached = self._run_starts.get(run_id)
        if cached is not None:
            return cached
        rows = self.journal.find(run_id=run_id, limit=1)
        start = _epoch(rows[0].recorded_at if rows else fallback)
        with self._lock:
            self._run_starts[run_id] = start
        return start

    def last_synced(
        self, timing_partner_id: int, race_id: int, event_ids: Sequence[int]
    ) -> float | None:
        """Epoch seconds (UTC): the start of the oldest run among the newest listings (both
        endpoints) of each of ``event_ids``; ``None`` (due now) when one of them was never
        listed or its newest listing failed. Without ``event_ids``: the start of the run of the
        race's newest ok listing, or ``None``.

        Reads the race's ``listing_completed`` events newest first (listings of one event and
        of several alike) and stops as soon as every event and endpoint is found, so the cost
        follows the race's last run, not the age of the journal. Raises
        :class:`rsu.journal.JournalError` if the journal cannot be read.
        """
        wanted = {(e, ep) for e in event_ids for ep in LISTING_ENDPOINTS}
        seen: dict[tuple[int, str], float] = {}
        before: int | None = None
        read = 0
        while read < _MAX_ROWS:
            rows = self.journal.find(
                kind="listing_completed",
                timing_partner_id=timing_partner_id,
                race_id=race_id,
                before_seq=before,
                newest_first=True,
                limit=_PAGE,
            )
            read += len(rows)
            for row in rows:
                ev = row.event
                if not isinstance(ev, ListingCompleted):
                    continue
                if not wanted:
                    if ev.ok:
                        return self.run_start(row.run_id, row.recorded_at)
                    continue
                for eid in ev.covered_events:
                    key = (eid, ev.endpoint)
                    if key not in wanted or key in seen:
                        continue
                    if not ev.ok:
                        return None  # the newest listing of this event failed: retry now
                    seen[key] = self.run_start(row.run_id, row.recorded_at)
                if wanted and len(seen) == len(wanted):
                    return min(seen.values())
            if len(rows) < _PAGE:
                break
            before = rows[-1].seq
        return None
