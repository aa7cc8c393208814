"""Reading just enough of a journaled response body to steer the walk.

The fetcher never normalises or stores parsed data (that is the projector's job). It parses a
body only **after** the body is journaled, with ``msgspec.json`` into small structs that name the
few fields it needs (unknown fields are skipped, which is what makes this fast):

* ``races`` / ``auth_check`` (``GET /Rest/races``): ``{"races": [{"race": {"race_id", "events"}}]}``
  -> the race ids and the event ids listed with each race, and for the cadence
  (:mod:`rsu.fetcher.cadence`) each race's ``timezone``, ``next_date``, ``last_date`` and its
  listed events' ``start_time``, as sent (:class:`RaceTimes`);
* ``race`` (``GET /Rest/race/{race_id}``): ``{"race": {"race_id", "events": [{"event_id"}]}}``
  -> the event ids;
* ``participants`` (``GET /Rest/race/{race_id}/participants``): a top-level array of
  ``{"event": {...}, "participants": [rows]}`` -> row count, last ``registration_id`` and the
  highest ``last_modified`` (epoch seconds);
* ``removed_participants`` (``GET /Rest/race/{race_id}/removed-participants``): a top-level array
  of ``{"event": {"participants": [rows]}}`` -> the same, from ``last_modified_ts``.

  Both listings are also read in the bare-object form of RunSignUp's own documentation examples
  (one element without the array: ``{"event": {"event_id": N, "participants": [...]}}``).

Any of them may instead be ``{"error": {"error_code": N, "error_msg": "..."}}`` (or
``{"error": "text"}``): that is an :class:`ApiErrorBody`. A body that does not parse or has an
unexpected shape raises :class:`ShapeError`: ``transient`` when it is not JSON at all (truncated
bodies and HTML error pages happen, and a retry usually cures them), not transient when it is
valid JSON of the wrong shape (asking again would get the same answer).

Nothing from the wire may make :func:`parse` raise anything but :class:`ShapeError`: an id must
be a whole number that fits SQLite's signed 64-bit ``INTEGER`` (0 <= id < 2**63, as a JSON
number or a string of at most 19 ASCII digits), else the body has the wrong shape; a numeric
field the walk only reads (``last_modified``, an error code) that does not fit is ignored; JSON
nested deeper than the decoder's recursion limit (about 1,000 levels) is the wrong shape too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec


class ShapeError(Exception):
    """The body is not JSON (``transient``) or not the shape the endpoint sends (not transient)."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class ApiErrorBody:
    """A RunSignUp error object (sent with HTTP 200). ``code`` is 0 when the body gave none."""

    code: int
    message: str


@dataclass(frozen=True)
class PageInfo:
    """What the walk needs from one successful page.

    ``rows``: number of rows (races or registrations) on the page; ``last_id``: the highest
    ``registration_id`` of the page (the keyset cursor; pages are sorted ASC) or ``None``;
    ``max_last_modified``: highest row ``last_modified`` (epoch seconds) or ``None``; ``races``:
    for race listings, ``race_id`` -> event ids listed with it; ``event_ids``: for a race
    detail, its events. ``per_event``: for participant listings, ``event_id`` ->
    ``(rows, highest registration_id or None)`` of that event's element(s) on the page (a
    listing of several events has one element per event; elements without an ``event_id`` are
    counted in ``rows`` only).
    """

    rows: int = 0
    last_id: int | None = None
    max_last_modified: int | None = None
    races: dict[int, list[int]] = field(default_factory=dict)
    event_ids: list[int] = field(default_factory=list)
    per_event: dict[int, tuple[int, int | None]] = field(default_factory=dict)
    #: For race listings: ``race_id`` -> its time fields as sent (see :class:`RaceTimes`); not
    #: compared (it only tunes which races are walked, see :mod:`rsu.fetcher.cadence`).
    race_times: dict[int, RaceTimes] = field(default_factory=dict, compare=False)
    #: For participant listings: the page's ``registration_id`` values, so that a listing counts
    #: a registration that a continuation served again once (the summary's counts).
    registration_ids: frozenset[int] = field(default_factory=frozenset, compare=False)


@dataclass(frozen=True)
class RaceTimes:
    """One listed race's time fields exactly as sent (only strings kept): ``timezone`` (IANA
    name or ``None``), ``event_starts`` (each listed event's ``start_time``, ``"M/D/YYYY HH:MM"``
    in the race's zone) and ``race_dates`` (``next_date``, ``last_date``: ``"MM/DD/YYYY"``).
    Read into UTC by :func:`rsu.fetcher.cadence.race_starts`."""

    timezone: str | None = None
    event_starts: tuple[str, ...] = ()
    race_dates: tuple[str, ...] = ()


class _Err(msgspec.Struct):
    error_code: int | str | None = None
    error_msg: str | None = None


class _Event(msgspec.Struct):
    event_id: int | str
    # Any: a time field of an unexpected type is ignored by the cadence, never a shape error
    start_time: Any = None


class _Race(msgspec.Struct):
    race_id: int | str
    events: list[_Event] | None = None
    timezone: Any = None
    next_date: Any = None
    last_date: Any = None


class _RaceItem(msgspec.Struct):
    race: _Race


class _RacesBody(msgspec.Struct):
    races: list[_RaceItem] | None = None
    error: _Err | str | None = None


class _RaceBody(msgspec.Struct):
    race: _Race | None = None
    error: _Err | str | None = None


class _Row(msgspec.Struct):
    registration_id: int | str
    last_modified: int | str | None = None
    last_modified_ts: int | str | None = None


class _ListingEvent(msgspec.Struct):
    event_id: int | str | None = None
    participants: list[_Row] | None = None


class _ListingElement(msgspec.Struct):
    event: _ListingEvent | None = None
    participants: list[_Row] | None = None


class _ListingObject(msgspec.Struct):
    """A listing body that is an object: RunSignUp's documented bare element (``{"event": ...,
    "participants": [...]}``) or an error object."""

    event: _ListingEvent | None = None
    participants: list[_Row] | None = None
    error: _Err | str | None = None


_races_decoder = msgspec.json.Decoder(_RacesBody)
_race_decoder = msgspec.json.Decoder(_RaceBody)
_listing_decoder = msgspec.json.Decoder(list[_ListingElement] | _ListingObject)


#: Ids and timestamps must fit SQLite's signed 64-bit INTEGER (the journal's scope columns).
INT64_MAX = 2**63 - 1
#: Digits of :data:`INT64_MAX`: a longer digit string never fits (and ``int()`` of a string of
#: more than 4,300 digits raises ``ValueError``).
_MAX_DIGITS = len(str(INT64_MAX))


def as_int(value: int | str | None) -> int | None:
    """``value`` (a JSON number or a string of ASCII digits) as an int in ``0..2**63-1``;
    ``None`` when absent or when it is anything else (negative, too large, not digits)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        if not (value.isascii() and value.isdigit() and len(value) <= _MAX_DIGITS):
            return None
        value = int(value)
    return value if 0 <= value <= INT64_MAX else None


def _error(err: _Err | str) -> ApiErrorBody:
    if isinstance(err, str):
        return ApiErrorBody(0, err)
    return ApiErrorBody(as_int(err.error_code) or 0, err.error_msg or "")


def _required_int(value: int | str) -> int:
    out = as_int(value)
    if out is None:
        raise ShapeError(f"not an integer id below 2**63: {str(value)[:40]!r}")
    return out


def _race_times(race: _Race) -> RaceTimes:
    def strings(values: list[Any]) -> tuple[str, ...]:
        return tuple(v for v in values if isinstance(v, str))

    return RaceTimes(
        timezone=race.timezone if isinstance(race.timezone, str) else None,
        event_starts=strings([e.start_time for e in race.events or []]),
        race_dates=strings([race.next_date, race.last_date]),
    )


def parse(endpoint: str, body: bytes) -> PageInfo | ApiErrorBody:
    """Parse ``body`` of ``endpoint`` (see module docstring) into a :class:`PageInfo` or an
    :class:`ApiErrorBody`. Raises :class:`ShapeError` for anything else."""
    try:
        if endpoint in ("races", "auth_check"):
            races = _races_decoder.decode(body)
            if races.error is not None:
                return _error(races.error)
            if races.races is None:
                raise ShapeError("no 'races' key")
            listed = {
                _required_int(item.race.race_id): [
                    _required_int(e.event_id) for e in item.race.events or []
                ]
                for item in races.races
            }
            times = {
                _required_int(item.race.race_id): _race_times(item.race) for item in races.races
            }
            return PageInfo(rows=len(races.races), races=listed, race_times=times)
        if endpoint == "race":
            race = _race_decoder.decode(body)
            if race.error is not None:
                return _error(race.error)
            if race.race is None:
                raise ShapeError("no 'race' key")
            ids = [_required_int(e.event_id) for e in race.race.events or []]
            return PageInfo(rows=1, event_ids=ids)
        if endpoint in ("participants", "removed_participants"):
            return _listing(endpoint, _listing_decoder.decode(body))
    except msgspec.ValidationError as exc:
        raise ShapeError(f"{endpoint} body has an unexpected shape: {str(exc)[:200]}") from exc
    except msgspec.DecodeError as exc:
        raise ShapeError(f"{endpoint} body is not JSON: {str(exc)[:200]}", transient=True) from exc
    except RecursionError as exc:
        raise ShapeError(f"{endpoint} body is nested too deeply to read") from exc
    raise ValueError(f"unknown endpoint {endpoint!r}")


def _listing(endpoint: str, doc: list[_ListingElement] | _ListingObject) -> PageInfo | ApiErrorBody:
    if isinstance(doc, _ListingObject):
        if doc.error is not None:
            return _error(doc.error)
        if doc.event is None:
            raise ShapeError(f"{endpoint} body is an object without 'event'")
        doc = [_ListingElement(event=doc.event, participants=doc.participants)]
    removed = endpoint == "removed_participants"
    rows = 0
    last_id: int | None = None
    max_lm: int | None = None
    per_event: dict[int, tuple[int, int | None]] = {}
    ids: set[int] = set()
    for element in doc:
        event_id = as_int(element.event.event_id) if element.event else None
        ev_rows, ev_last = per_event.get(event_id, (0, None)) if event_id is not None else (0, None)
        # participants rows sit at the element's top level; removed rows inside "event"
        # (the other list is always empty); read both to be tolerant.
        for group in (element.participants, element.event.participants if element.event else None):
            for row in group or ():
                rows += 1
                ev_rows += 1
                rid = _required_int(row.registration_id)
                ids.add(rid)
                if last_id is None or rid > last_id:
                    last_id = rid
                if ev_last is None or rid > ev_last:
                    ev_last = rid
                lm = as_int(row.last_modified_ts if removed else row.last_modified)
                if lm is None:
                    lm = as_int(row.last_modified)
                if lm is not None and (max_lm is None or lm > max_lm):
                    max_lm = lm
        if event_id is not None:
            per_event[event_id] = (ev_rows, ev_last)
    return PageInfo(
        rows=rows,
        last_id=last_id,
        max_last_modified=max_lm,
        per_event=per_event,
        registration_ids=frozenset(ids),
    )
