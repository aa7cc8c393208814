"""The RunSignUp REST look-alike: routing, authentication, parameters, paging and filters.

Imitates (path prefix ``/Rest``, matched case-insensitively, optional ``.json`` suffix ignored):

- ``GET /Rest/races``: ``page`` (1-based), ``results_per_page`` (default 50, values above 1000
  are clamped to 1000), ``events=T``, ``only_partner_races=T``, ``start_date``/``end_date``
  (``YYYY-MM-DD``, on ``next_date``), ``sort`` (``name``/``date``/``end_date`` + ASC/DESC);
- ``GET /Rest/race/{race_id}``: ``include_questions``, ``include_waiver``, ``race_headings``,
  ``include_participant_caps``, ``race_event_days_id``;
- ``GET /Rest/race/{race_id}/participants``: ``event_id`` (required, one or a comma list),
  ``page``/``results_per_page`` (default 50, above 2500 is error 3), ``sort``,
  ``after_registration_id``/``before_registration_id``, ``modified_after_timestamp``
  (inclusive, Unix s), ``include_questions=T``, ``supports_nb=T``;
- ``GET /Rest/race/{race_id}/removed-participants``: the same plus ``condensed_format=T``.

Several events (``event_id=1,2,3``): one element per asked event, in the asked order, and every
row carries its own ``event_id``. RunSignUp does not document how such a listing is paged, so
:attr:`SimulatorApp.multi_event_paging` chooses: ``"per_event"`` (default) applies ``page``,
``results_per_page`` and ``after_registration_id`` to each event's element separately (each gets
up to ``results_per_page`` rows); ``"total"`` merges the rows of all asked events in the asked
sort order (ties by registration_id), filters them the same way, and returns only
``results_per_page`` rows in all, grouped back by event; an event with no row on that page is
still there, with an empty list.

Shapes and limits RunSignUp's documentation leaves open (:class:`SimulatorApp` options, also
``POST /_admin/settings``): ``participants_shape``/``removed_shape`` ``"array"`` (default, what
clients read) or ``"object"`` (the bare element ``{"event": {...}, "participants": [...]}`` /
``{"event": {"event_id": N, "participants": [...]}}`` of the official examples, for a listing of
one event); ``max_page_size`` (``0``: none) serves at most that many rows per page whatever
``results_per_page`` asks, as a server that caps pages below the documented 2,500 would.

Errors are sent as the real API sends them: HTTP 200 with ``{"error": {...}}`` (6, 7, 201, 301,
3, 1, 2, 9), except error 17 (API caller registration wrong, or missing when required: see
:class:`SimulatorApp`), which comes with HTTP 400. A credential sees only its own partner's
races plus races linked to no partner. Admin endpoints (no auth, no caller registration):
``POST /_admin/advance`` with a JSON body of :meth:`World.advance` keyword arguments returns the
changes; ``GET /_admin/state`` returns the clock and credentials; ``GET``/``POST
/_admin/settings`` reads or sets ``multi_event_paging`` and ``require_caller``.
"""

from __future__ import annotations

import bisect
import datetime as dt
import heapq
import itertools
import re
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import msgspec

from . import formats as f
from .changes import advance
from .render import (
    participant_json,
    participant_view,
    participants_json,
    participants_object,
    race_object,
    removed_json,
    removed_object,
    removed_view,
)
from .wire import JSON_TYPE, XML_TYPE, CallerRegistrationSpec, Request, Response, caller_status
from .world import Credential, Event, Race, World
from .xml import to_xml

_RACE_PATH = re.compile(
    r"^/rest/race/(\d+)(?:/(participants|removed-participants))?(?:\.json)?/?$", re.I
)
_RACES_PATH = re.compile(r"^/rest/races(?:\.json)?/?$", re.I)
_REFRESH_PATH = re.compile(r"^/rest/v2/auth/refresh-token(?:\.json)?/?$", re.I)

MULTI_EVENT_PAGING = ("per_event", "total")
LISTING_SHAPES = ("array", "object")

PARTICIPANTS_MAX_PER_PAGE = 2500
RACES_MAX_PER_PAGE = 1000
DEFAULT_PER_PAGE = 50

_PART_SORTS = {
    "registration_id",
    "registration_date",
    "last_modified",
    "age",
    "name",
    "first_name",
    "last_name",
    "bib_num",
    "chip_num",
    "gender",
}
_REMOVED_SORTS = {"registration_id", "registration_date", "last_modified"}


class ApiError(Exception):
    """A RunSignUp error: ``code`` and ``message`` go into the HTTP-200 error envelope."""

    def __init__(self, err: tuple[int, str]) -> None:
        super().__init__(err[1])
        self.code, self.message = err


def render(req: Request, obj: Any, status: int = 200) -> Response:
    """Encode ``obj`` as JSON (``format=json``) or XML (the default), as RunSignUp does."""
    if req.wants_json():
        return Response(status, f.encode_json(obj), JSON_TYPE)
    return Response(status, to_xml(obj), XML_TYPE)


def error_response(req: Request, err: tuple[int, str], status: int = 200) -> Response:
    """The error envelope for ``err`` (code, message), HTTP 200 unless told otherwise."""
    return render(req, f.error_body(*err), status)


class SimulatorApp:
    """Answers :class:`Request` s from a :class:`World`. Stateless apart from the world and the
    options below, which may be changed at any time (also over ``POST /_admin/settings``).

    ``caller`` is the API caller registration accepted (default: ``world.caller``). A call that
    carries a wrong or partial one (``rsu_api_reg`` query, ``X-RSU-API-REG-SECRET`` header)
    always gets HTTP 400 error 17, as RunSignUp answers today; with ``require_caller`` (its
    2027-01-01 rule) a call carrying none gets the same. That last answer is our reading: the
    announcement says unregistered callers are rejected, not how. ``multi_event_paging`` is
    ``"per_event"`` or ``"total"`` (see :meth:`participants`).
    """

    def __init__(
        self,
        world: World,
        *,
        caller: CallerRegistrationSpec | None = None,
        require_caller: bool = False,
        multi_event_paging: str = "per_event",
        participants_shape: str = "array",
        removed_shape: str = "array",
        max_page_size: int = 0,
    ) -> None:
        self.world = world
        self.caller: CallerRegistrationSpec = caller if caller is not None else world.caller
        self.require_caller = require_caller
        self.multi_event_paging = multi_event_paging
        for shape in (participants_shape, removed_shape):
            if shape not in LISTING_SHAPES:
                raise ValueError(f"listing shape must be one of {LISTING_SHAPES}, not {shape!r}")
        #: ``"array"`` or ``"object"`` (see the module docstring).
        self.participants_shape = participants_shape
        self.removed_shape = removed_shape
        #: Rows (and races) served per page at most (``0``: as asked, up to 2,500 / 1,000).
        self.max_page_size = max_page_size
        self._by_key: dict[tuple[str, str], Credential] = {}
        for c in world.credentials:
            self._by_key[(c.auth, c.principal if c.auth != "bearer" else c.secret)] = c

    def __call__(self, req: Request) -> Response:
        """Handle one request and return the response (never raises for bad input)."""
        if req.path.startswith("/_admin/"):
            return self.admin(req)
        fmt = req.query.get("format", "xml").lower()
        if fmt not in ("json", "xml"):
            return Response(200, f.encode_json(f.error_body(*f.ERR_FORMAT)), JSON_TYPE)
        caller = caller_status(req, self.caller)
        if caller == "invalid" or (caller is None and self.require_caller):
            return error_response(req, f.ERR_CALLER, 400)
        if _REFRESH_PATH.match(req.path):
            return self.oauth_refresh(req)
        try:
            return self._route(req)
        except ApiError as exc:
            return error_response(req, (exc.code, exc.message))

    @property
    def multi_event_paging(self) -> str:
        """How ``results_per_page``/``page``/``after_registration_id`` apply when ``event_id``
        lists several events: ``"per_event"`` (each event element is paged on its own) or
        ``"total"`` (one merged page over all asked events). Setting another value raises
        ``ValueError``."""
        return self._multi_event_paging

    @multi_event_paging.setter
    def multi_event_paging(self, value: str) -> None:
        if value not in MULTI_EVENT_PAGING:
            raise ValueError(f"multi_event_paging must be one of {MULTI_EVENT_PAGING}: {value!r}")
        self._multi_event_paging = value

    # ------------------------------------------------------------------ auth
    def authenticate(self, req: Request) -> Credential | None:
        """The credential the request carries; ``None`` if none; raises error 6 if it is bad."""
        auth = req.headers.get("authorization", "")
        q = req.query
        if auth[:7].lower() == "bearer ":
            return self._bearer(auth[7:].strip())
        if "api_key" in q or "api_secret" in q:
            cred = self._by_key.get(("api_key", q.get("api_key", "")))
            if cred is None or cred.secret != q.get("api_secret"):
                raise ApiError(f.ERR_KEY_AUTH)
            return cred
        if "rsu_api_key" in q:
            cred = self._by_key.get(("rsu_api_key", q["rsu_api_key"]))
            if cred is None or cred.secret != req.headers.get("x-rsu-api-secret"):
                raise ApiError(f.ERR_KEY_AUTH)
            return cred
        if "tmp_key" in q or "sp_api_key" in q:
            raise ApiError(f.ERR_KEY_AUTH)
        return None

    def _register_tokens(self) -> None:
        for c in self.world.credentials:
            if c.auth == "bearer":
                self.world.tokens.register(c.timing_partner_id, c.secret, self.world.now)

    def _bearer(self, token: str) -> Credential:
        """The partner credential of a valid, unexpired access token (the world's own or one
        issued by a refresh); error 6 (HTTP 200) for an unknown or expired one."""
        self._register_tokens()
        pid = self.world.tokens.check(token, self.world.now)
        for c in self.world.credentials:
            if c.auth == "bearer" and pid is not None and c.timing_partner_id == pid:
                return c
        raise ApiError(f.ERR_KEY_AUTH)

    def oauth_refresh(self, req: Request) -> Response:
        """``POST /Rest/v2/auth/refresh-token.json`` (see :mod:`rsu.simulator.oauth`)."""
        if req.method != "POST":
            return error_response(req, f.ERR_HTTP_METHOD)
        try:
            form = dict(parse_qsl(req.body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            form = {}
        with self.world.lock:
            self._register_tokens()
            status, body = self.world.tokens.refresh(form, self.world.now)
        return Response(status, f.encode_json(body, php_escapes=False), JSON_TYPE)

    def _visible(self, race: Race, cred: Credential | None) -> bool:
        if race.timing_partner_id is None:
            return race.data["is_private_race"] == "F" or cred is not None
        return cred is not None and cred.timing_partner_id == race.timing_partner_id

    # ------------------------------------------------------------------ routing
    def _route(self, req: Request) -> Response:
        m_races = _RACES_PATH.match(req.path)
        m_race = _RACE_PATH.match(req.path)
        if not (m_races or m_race):
            raise ApiError(f.ERR_UNKNOWN_METHOD)
        if req.method not in ("GET", "HEAD"):
            raise ApiError(f.ERR_HTTP_METHOD)
        cred = self.authenticate(req)
        with self.world.lock:
            if m_races:
                return self.races(req, cred)
            assert m_race is not None
            race = self.world.races.get(int(m_race.group(1)))
            if race is None:
                raise ApiError(f.ERR_RACE_NOT_FOUND)
            sub = (m_race.group(2) or "").lower()
            if not sub:
                if not self._visible(race, cred):
                    raise ApiError(f.ERR_PERMISSION)
                return self.race(req, race)
            if cred is None or race.timing_partner_id != cred.timing_partner_id:
                raise ApiError(f.ERR_PERMISSION)
            return self.participants(req, race, removed=(sub == "removed-participants"))

    # ------------------------------------------------------------------ endpoints
    def races(self, req: Request, cred: Credential | None) -> Response:
        """``GET /Rest/races``: ``{"races": [{"race": {...}}]}``, no paging metadata."""
        q = req.query
        page = _int(q, "page", 1, minimum=1)
        per_page = min(_int(q, "results_per_page", DEFAULT_PER_PAGE, minimum=1), RACES_MAX_PER_PAGE)
        if self.max_page_size > 0:
            per_page = min(per_page, self.max_page_size)
        start, end = _date(q, "start_date"), _date(q, "end_date")
        only_partner = q.get("only_partner_races", "F").upper() == "T"
        races = [r for r in self.world.races.values() if self._visible(r, cred)]
        if only_partner:
            races = [
                r
                for r in races
                if cred is not None and r.timing_partner_id == cred.timing_partner_id
            ]
        if start is not None:
            races = [r for r in races if r.next_date >= start]
        if end is not None:
            races = [r for r in races if r.next_date <= end]
        sort = q.get("sort")
        if sort:
            field, desc = _sort_spec(sort, {"name", "date", "end_date"})
            races.sort(
                key=(lambda r: r.data["name"].strip().lower())
                if field == "name"
                else (lambda r: r.next_date),
                reverse=desc,
            )
        chunk = races[(page - 1) * per_page : page * per_page]
        with_events = q.get("events", "F").upper() == "T"
        body = {"races": [{"race": race_object(r, with_events=with_events)} for r in chunk]}
        return render(req, body)

    def race(self, req: Request, race: Race) -> Response:
        """``GET /Rest/race/{race_id}``: ``{"race": {..., "events": [...]}}``."""
        q = req.query

        def t(name: str) -> bool:
            return q.get(name, "F").upper() == "T"

        days = _int(q, "race_event_days_id", 0) or None
        obj = race_object(
            race,
            with_events=True,
            include_questions=t("include_questions"),
            include_waiver=t("include_waiver"),
            race_headings=t("race_headings"),
            participant_caps=t("include_participant_caps"),
            race_event_days_id=days,
        )
        return render(req, {"race": obj})

    def participants(self, req: Request, race: Race, removed: bool) -> Response:
        """``/participants`` (array of event elements) or ``/removed-participants``; with
        several events, paged as :attr:`multi_event_paging` says."""
        q = req.query
        raw = q.get("event_id", "").strip()
        if not raw:
            raise ApiError(f.ERR_INVALID_PARAMS)
        try:
            event_ids = [int(x) for x in raw.split(",") if x.strip()]
        except ValueError:
            raise ApiError(f.ERR_INVALID_PARAMS) from None
        events = []
        for eid in event_ids:
            event = race.events.get(eid)
            if event is None:
                raise ApiError(f.ERR_EVENT_NOT_FOUND)
            events.append(event)
        page = _int(q, "page", 1, minimum=1)
        per_page = _int(q, "results_per_page", DEFAULT_PER_PAGE, minimum=1)
        if per_page > PARTICIPANTS_MAX_PER_PAGE:
            raise ApiError(f.ERR_INVALID_PARAMS)
        if self.max_page_size > 0:
            per_page = min(per_page, self.max_page_size)
        response = self._listing(req, race, removed, events, page, per_page)
        shape = self.removed_shape if removed else self.participants_shape
        if shape == "object" and len(events) == 1 and response.content_type == JSON_TYPE:
            response = Response(response.status, _bare(response.body), JSON_TYPE)
        return response

    def _listing(
        self,
        req: Request,
        race: Race,
        removed: bool,
        events: list[Event],
        page: int,
        per_page: int,
    ) -> Response:
        """One listing page as an array of event elements (see :meth:`participants`)."""
        q = req.query
        field, desc = _sort_spec(
            q.get("sort", "registration_id ASC"), _REMOVED_SORTS if removed else _PART_SORTS
        )
        after = _int(q, "after_registration_id", -1)
        before = _int(q, "before_registration_id", -1)
        since = _int(q, "modified_after_timestamp", -1)
        include_q = q.get("include_questions", "F").upper() == "T"
        supports_nb = q.get("supports_nb", "F").upper() == "T"
        condensed = q.get("condensed_format", "F").upper() == "T"
        fast_path = req.wants_json() and not removed and since < 0
        fast_path = fast_path and field in ("registration_id", "registration_date")
        total = self.multi_event_paging == "total" and len(events) > 1
        if fast_path and total:  # one page merged over the events' id-ordered encoded rows
            merged = _encoded_merged(events, include_q, supports_nb, after, before, desc)
            return Response(200, participants_json(_page_groups(merged, events, page, per_page)))
        if fast_path:  # registration_id order: slice the per-event encoded rows directly
            encoded_pages = [
                (
                    ev.event_id,
                    _encoded_slice(ev, include_q, supports_nb, after, before, desc, page, per_page),
                )
                for ev in events
            ]
            return Response(200, participants_json(encoded_pages), JSON_TYPE)
        pages: list[tuple[int, list[int]]] = []
        if total:
            selected = [_select(ev, removed, field, desc, after, before, since) for ev in events]
            merged_ids = _merged_ids(events, selected, removed, field, desc)
            pages = _page_groups(merged_ids, events, page, per_page)
        else:
            for event in events:
                ids = _select(event, removed, field, desc, after, before, since)
                pages.append((event.event_id, ids[(page - 1) * per_page : page * per_page]))
        if removed:
            objs = [
                (eid, [removed_view(ev.removed[i], condensed) for i in ids])
                for (eid, ids), ev in zip(pages, events, strict=True)
            ]
            if req.wants_json():
                return Response(200, removed_json(objs), JSON_TYPE)
            return render(req, removed_object(objs))
        if req.wants_json():
            encoded = [
                (eid, [participant_json(ev, i, include_q, supports_nb) for i in ids])
                for (eid, ids), ev in zip(pages, events, strict=True)
            ]
            return Response(200, participants_json(encoded), JSON_TYPE)
        rows = [
            (eid, [participant_view(ev.active[i], include_q, supports_nb) for i in ids])
            for (eid, ids), ev in zip(pages, events, strict=True)
        ]
        return render(req, participants_object(rows))

    # ------------------------------------------------------------------ admin
    def admin(self, req: Request) -> Response:
        """``POST /_admin/advance`` (JSON kwargs -> changes) and ``GET /_admin/state``."""
        path = req.path.rstrip("/")
        if path == "/_admin/advance" and req.method == "POST":
            try:
                kwargs = msgspec.json.decode(req.body) if req.body.strip() else {}
                allowed = {
                    "new",
                    "edits",
                    "refunds",
                    "transfers",
                    "deferrals",
                    "seconds",
                    "race_ids",
                }
                if not isinstance(kwargs, dict) or set(kwargs) - allowed:
                    raise ValueError(f"allowed keys: {sorted(allowed)}")
                changes = advance(self.world, **kwargs)
            except (ValueError, TypeError, msgspec.DecodeError) as exc:
                return Response(400, f.encode_json({"error": str(exc)}, php_escapes=False))
            body = {"now": self.world.now, "changes": [asdict(c) for c in changes]}
            return Response(200, f.encode_json(body, php_escapes=False))
        if path == "/_admin/settings":
            return self._admin_settings(req)
        if path == "/_admin/state" and req.method == "GET":
            w = self.world
            body = {
                "now": w.now,
                "partner_ids": w.partner_ids,
                "credentials": [asdict(c) for c in w.credentials],
                "races": {str(p): w.race_ids(p) for p in w.partner_ids},
            }
            return Response(200, f.encode_json(body, php_escapes=False))
        return Response(404, f.encode_json({"error": "unknown admin endpoint"}, php_escapes=False))

    def _admin_settings(self, req: Request) -> Response:
        """``GET``/``POST /_admin/settings``: read or change ``multi_event_paging`` and
        ``require_caller`` (a JSON object with any of them); answers the settings now in force."""
        if req.method == "POST":
            try:
                data = msgspec.json.decode(req.body) if req.body.strip() else {}
                known = {
                    "multi_event_paging",
                    "require_caller",
                    "participants_shape",
                    "removed_shape",
                    "max_page_size",
                }
                if not isinstance(data, dict) or set(data) - known:
                    raise ValueError(f"known settings: {sorted(known)}")
                if "require_caller" in data and not isinstance(data["require_caller"], bool):
                    raise ValueError("require_caller must be true or false")
                if "multi_event_paging" in data:
                    self.multi_event_paging = data["multi_event_paging"]
                if "require_caller" in data:
                    self.require_caller = data["require_caller"]
                for key in ("participants_shape", "removed_shape"):
                    if key in data and data[key] not in LISTING_SHAPES:
                        raise ValueError(f"{key} must be one of {list(LISTING_SHAPES)}")
                    setattr(self, key, data.get(key, getattr(self, key)))
                if "max_page_size" in data:
                    cap = data["max_page_size"]
                    if not isinstance(cap, int) or isinstance(cap, bool) or cap < 0:
                        raise ValueError("max_page_size must be an integer >= 0")
                    self.max_page_size = cap
            except (ValueError, TypeError, msgspec.DecodeError) as exc:
                return Response(400, f.encode_json({"error": str(exc)}, php_escapes=False))
        body = {
            "multi_event_paging": self.multi_event_paging,
            "require_caller": self.require_caller,
            "participants_shape": self.participants_shape,
            "removed_shape": self.removed_shape,
            "max_page_size": self.max_page_size,
        }
        return Response(200, f.encode_json(body, php_escapes=False))


# ---------------------------------------------------------------------- helpers
def _bare(body: bytes) -> bytes:
    """A JSON array of one element -> that element (RunSignUp's documented bare-object form)."""
    if body[:1] == b"[" and body[-1:] == b"]":
        return body[1:-1]
    return body


def _int(q: dict[str, str], key: str, default: int, minimum: int | None = None) -> int:
    raw = q.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(f.ERR_INVALID_PARAMS) from None
    if minimum is not None and value < minimum:
        raise ApiError(f.ERR_INVALID_PARAMS)
    return value


def _date(q: dict[str, str], key: str) -> dt.date | None:
    raw = q.get(key)
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise ApiError((9, "Invalid date")) from None


def _sort_spec(raw: str, allowed: set[str]) -> tuple[str, bool]:
    parts = raw.replace("+", " ").split()
    if not parts or len(parts) > 2 or parts[0].lower() not in allowed:
        raise ApiError(f.ERR_INVALID_PARAMS)
    direction = parts[1].upper() if len(parts) == 2 else "ASC"
    if direction not in ("ASC", "DESC"):
        raise ApiError(f.ERR_INVALID_PARAMS)
    return parts[0].lower(), direction == "DESC"


def _sort_key(field: str, removed: bool) -> Any:
    if field in ("registration_id", "registration_date"):
        return None  # ids grow with registration time
    if field == "last_modified":
        return (lambda r: r["last_modified_ts"]) if removed else (lambda r: r["last_modified"])
    if field in ("first_name", "last_name"):
        return lambda r: (r["user"][field] or "").strip().lower()
    if field == "name":
        return lambda r: (
            (r["user"]["last_name"] or "").strip().lower(),
            (r["user"]["first_name"] or "").strip().lower(),
        )
    if field == "gender":
        return lambda r: r["user"].get("gender") or ""
    if field == "age":
        return lambda r: r["age"] if r["age"] is not None else -1
    return lambda r: "" if r[field] is None else f"{r[field]!s:>12}"


def _ordered(event: Event, removed: bool, field: str) -> list[int]:
    """Registration ids in ascending ``field`` order (ties by id), cached per event version."""
    cache_key = (("R:" if removed else "A:") + field, event.version)
    cached = event.order_cache.get(cache_key)
    if cached is not None:
        return cached
    rows = event.removed if removed else event.active
    ids = sorted(rows)
    key = _sort_key(field, removed)
    if key is not None:
        ids.sort(key=lambda i: key(rows[i]))
    event.order_cache[cache_key] = ids
    return ids


def _encoded_slice(
    event: Event,
    include_q: bool,
    supports_nb: bool,
    after: int,
    before: int,
    desc: bool,
    page: int,
    per_page: int,
) -> list[bytes]:
    """One page of encoded rows in registration_id order, sliced from a per-event list of row
    JSON kept in id order (rebuilt lazily after a change), so a page costs one slice."""
    ids, rows = _encoded_rows(event, include_q, supports_nb)
    lo, hi = _id_bounds(ids, after, before)
    start, stop = (page - 1) * per_page, page * per_page
    if desc:
        return rows[lo:hi][::-1][start:stop]
    return rows[lo + start : min(hi, lo + stop)]


def _encoded_rows(
    event: Event, include_q: bool, supports_nb: bool
) -> tuple[list[int], list[bytes]]:
    """The event's active ids in ascending order and their encoded rows (same positions)."""
    ids = _ordered(event, False, "registration_id")
    key = (f"E:{int(include_q)}{int(supports_nb)}", event.version)
    rows = event.encoded_cache.get(key)
    if rows is None:
        event.encoded_cache.clear()
        rows = [participant_json(event, i, include_q, supports_nb) for i in ids]
        event.encoded_cache[key] = rows
    return ids, rows


def _id_bounds(ids: list[int], after: int, before: int) -> tuple[int, int]:
    """Positions ``lo:hi`` of the ids strictly between ``after`` and ``before`` (-1: no bound)."""
    lo = bisect.bisect_right(ids, after) if after >= 0 else 0
    hi = bisect.bisect_left(ids, before) if before >= 0 else len(ids)
    return lo, hi


_T = TypeVar("_T")

#: One row of a merged multi-event listing: (sort key, index of its event in the request, item).
_Merged = tuple[tuple[Any, ...], int, _T]


def _encoded_merged(
    events: list[Event], include_q: bool, supports_nb: bool, after: int, before: int, desc: bool
) -> Iterator[_Merged[bytes]]:
    """The fast path of ``multi_event_paging="total"``: the asked events' encoded rows merged
    lazily in registration_id order (descending with ``desc``), so a page costs about
    ``page * per_page`` steps, not a pass over every row."""

    def stream(n: int, ids: list[int], rows: list[bytes], positions: range) -> Iterator[Any]:
        for k in positions:
            yield (ids[k],), n, rows[k]

    streams = []
    for n, event in enumerate(events):
        ids, rows = _encoded_rows(event, include_q, supports_nb)
        lo, hi = _id_bounds(ids, after, before)
        positions = range(hi - 1, lo - 1, -1) if desc else range(lo, hi)
        streams.append(stream(n, ids, rows, positions))
    return heapq.merge(*streams, reverse=desc)


def _merged_ids(
    events: list[Event], selected: list[list[int]], removed: bool, field: str, desc: bool
) -> Iterator[_Merged[int]]:
    """``multi_event_paging="total"``: the events' selected ids (each list already in ``field``
    order, ties by id, reversed with ``desc``, as :func:`_select` returns them) merged into one
    sequence in the same order."""
    key = _sort_key(field, removed)

    def stream(n: int, event: Event, ids: list[int]) -> Iterator[Any]:
        rows = event.removed if removed else event.active
        for i in ids:
            yield ((i,) if key is None else (key(rows[i]), i)), n, i

    streams = [stream(n, ev, ids) for n, (ev, ids) in enumerate(zip(events, selected, strict=True))]
    return heapq.merge(*streams, reverse=desc)


def _page_groups(
    merged: Iterator[_Merged[_T]], events: list[Event], page: int, per_page: int
) -> list[tuple[int, list[_T]]]:
    """Page ``page`` of a merged listing (``per_page`` rows in all), grouped back into one
    ``(event_id, items)`` element per asked event, in the asked order; an event with no row on
    this page keeps its element, with an empty list."""
    groups: list[list[_T]] = [[] for _ in events]
    for _key, n, item in itertools.islice(merged, (page - 1) * per_page, page * per_page):
        groups[n].append(item)
    return [(ev.event_id, items) for ev, items in zip(events, groups, strict=True)]


def _select(
    event: Event, removed: bool, field: str, desc: bool, after: int, before: int, since: int
) -> list[int]:
    ids = _ordered(event, removed, field)
    if field in ("registration_id", "registration_date"):
        lo = bisect.bisect_right(ids, after) if after >= 0 else 0
        hi = bisect.bisect_left(ids, before) if before >= 0 else len(ids)
        ids = ids[lo:hi]
    else:
        if after >= 0:
            ids = [i for i in ids if i > after]
        if before >= 0:
            ids = [i for i in ids if i < before]
    if since >= 0:
        rows = event.removed if removed else event.active
        ts = "last_modified_ts" if removed else "last_modified"
        ids = [i for i in ids if rows[i][ts] >= since]
    return ids[::-1] if desc else ids
