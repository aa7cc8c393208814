"""Turn one decoded RunSignUp object (race, event, registration) into a tuple of column values.

Pure functions, no database. Each returns the *data* columns of its table in
:mod:`rsu.projector.schema` order (key and provenance columns are added by ``apply``). A key absent
from the body yields :data:`~rsu.projector.normalize.MISSING` (keep the stored value); an explicit
``null`` yields ``None`` (clear it). Invalid values raise ``ValueError``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec

from . import normalize as n
from .normalize import MISSING
from .schema import EVENTS, PARTICIPANTS, RACES

_json = msgspec.json.Encoder(order="deterministic")
_json_plain = msgspec.json.Encoder()

Conv = Callable[[Any], Any]


def _apply(src: dict[str, Any], spec: tuple[tuple[str, Conv], ...], out: list[Any]) -> None:
    get = src.get
    for key, conv in spec:
        v = get(key, MISSING)
        if v is MISSING or v is None:
            out.append(v)
        else:
            out.append(conv(v))


def _pair(src: dict[str, Any], key: str, tz: str | None, out: list[Any]) -> None:
    """Append ``(local, utc)`` for a wall-clock field, or two MISSING markers."""
    v = src.get(key, MISSING)
    if v is MISSING:
        out.append(MISSING)
        out.append(MISSING)
    else:
        out.extend(n.local_and_utc(v, tz))


# -- races: GET /Rest/races (``races[].race``) and GET /Rest/race/{id} (``race``) -----------------

RACE_DATA_COLUMNS = RACES.column_names[2 : RACES.column_names.index("source_seq")]  # name ..


def race_values(race: dict[str, Any]) -> tuple[Any, ...]:
    """Data columns of ``runsignup_races`` (``name`` .. ``country_code``) for one race object.

    ``created``/``last_modified`` are Eastern wall-clock times; ``*_date`` become ``YYYY-MM-DD``.
    """
    out: list[Any] = []
    _apply(
        race,
        (
            ("name", n.text),
            ("next_date", n.date),
            ("next_end_date", n.date),
            ("last_date", n.date),
            ("last_end_date", n.date),
            ("is_draft_race", n.flag),
            ("is_private_race", n.flag),
            ("is_registration_open", n.flag),
            ("can_use_registration_api", n.flag),
            ("real_time_notifications_enabled", n.flag),
        ),
        out,
    )
    _pair(race, "created", n.EASTERN_NAME, out)
    _pair(race, "last_modified", n.EASTERN_NAME, out)
    _apply(
        race,
        (
            ("timezone", n.text),
            ("description", n.text),
            ("url", n.text),
            ("external_race_url", n.text),
            ("external_results_url", n.text),
            ("fb_page_id", n.text),
            ("fb_event_id", n.text),
        ),
        out,
    )
    logo = race.get("logo_url", MISSING)
    out.append(logo if logo is MISSING else n.logo_url(logo))
    if "address" in race:
        _apply(
            n.obj(race["address"]),
            (
                ("street", n.text),
                ("street2", n.text),
                ("city", n.text),
                ("state", n.text),
                ("zipcode", n.text),
                ("country_code", n.text),
            ),
            out,
        )
    else:
        out.extend([MISSING] * 6)
    if len(out) != len(RACE_DATA_COLUMNS):  # pragma: no cover - guards the column order
        raise RuntimeError("race_values out of step with schema")
    return tuple(out)


# -- events: ``race.events[]`` ------------------------------------------------------------------

#: ``race_event_days_id`` .. ``registration_periods``
EVENT_DATA_COLUMNS = EVENTS.column_names[3 : EVENTS.column_names.index("source_seq")]


def registration_periods(value: Any) -> str:
    """``registration_periods[]`` -> JSON text: a list of ``{registration_opens,
    registration_opens_utc, registration_closes, registration_closes_utc, race_fee,
    processing_fee}`` with Eastern wall-clock/UTC ISO times and fees in integer cents."""
    if value == {}:
        value = []
    if not isinstance(value, list):
        raise ValueError(f"registration_periods is not a list: {value!r}")
    periods = []
    for p in value:
        p = n.obj(p)
        opens, opens_utc = n.eastern(p.get("registration_opens"))
        closes, closes_utc = n.eastern(p.get("registration_closes"))
        periods.append(
            {
                "registration_opens": opens,
                "registration_opens_utc": opens_utc,
                "registration_closes": closes,
                "registration_closes_utc": closes_utc,
                "race_fee": n.cents(p.get("race_fee")),
                "processing_fee": n.cents(p.get("processing_fee")),
            }
        )
    return _json.encode(periods).decode()


def _int_list(value: Any) -> str:
    if value == {}:
        value = []
    if not isinstance(value, list):
        raise ValueError(f"not a list: {value!r}")
    return _json.encode([n.integer(v) for v in value]).decode()


def event_values(event: dict[str, Any], race_tz: str | None) -> tuple[Any, ...]:
    """Data columns of ``runsignup_events`` (``race_event_days_id`` .. ``registration_periods``).

    ``start_time``/``end_time`` are wall-clock times in the race's zone ``race_tz``;
    ``registration_opens`` is Eastern.
    """
    out: list[Any] = []
    _apply(
        event,
        (("race_event_days_id", n.integer), ("name", n.text), ("details", n.text)),
        out,
    )
    _pair(event, "start_time", race_tz, out)
    _pair(event, "end_time", race_tz, out)
    _pair(event, "registration_opens", n.EASTERN_NAME, out)
    _apply(
        event,
        (
            ("age_calc_base_date", n.date),
            ("event_type", n.text),
            ("distance", n.text),
            ("volunteer", n.flag),
            ("require_dob", n.flag),
            ("require_phone", n.flag),
            ("giveaway", n.text),
            ("participant_cap", n.integer),
            ("previous_year_event_id", n.integer),
            ("sub_event_ids", _int_list),
            ("registration_periods", registration_periods),
        ),
        out,
    )
    if len(out) != len(EVENT_DATA_COLUMNS):  # pragma: no cover
        raise RuntimeError("event_values out of step with schema")
    return tuple(out)


# -- registrations: GET /Rest/race/{id}/participants and /removed-participants -------------------

#: ``user_id`` .. ``new_registration_id``
PARTICIPANT_DATA_COLUMNS = PARTICIPANTS.column_names[
    4 : PARTICIPANTS.column_names.index("source_seq")
]
REMOVED_REASONS = frozenset({"cleared", "removed", "transferred", "deferred"})

_USER_SPEC: tuple[tuple[str, Conv], ...] = (
    ("user_id", n.integer),
    ("first_name", n.text),
    ("middle_name", n.text),
    ("last_name", n.text),
    ("email", n.text),
    ("dob", n.date),
    ("gender", n.text),
    ("phone", n.text),
)
_ADDRESS_SPEC: tuple[tuple[str, Conv], ...] = (
    ("street", n.text),
    ("city", n.text),
    ("state", n.text),
    ("zipcode", n.text),
    ("country_code", n.text),
)
_REG_SPEC_1: tuple[tuple[str, Conv], ...] = (
    ("bib_num", n.text),
    ("chip_num", n.text),
    ("age", n.integer),
)
_REG_SPEC_2: tuple[tuple[str, Conv], ...] = (
    ("rsu_transaction_id", n.text),
    ("transaction_id", n.text),
    ("imported", n.flag),
    ("race_fee", n.cents),
    ("offline_payment_amount", n.cents),
    ("processing_fee", n.cents),
    ("processing_fee_paid_by_user", n.cents),
    ("processing_fee_paid_by_race", n.cents),
    ("partner_fee", n.cents),
    ("affiliate_profit", n.cents),
    ("extra_fees", n.cents),
    ("amount_paid", n.cents),
    ("usatf_discount_amount_in_cents", n.cents),
    ("usatf_discount_additional_field", n.text),
    ("team_id", n.integer),
    ("team_name", n.text),
    ("team_type_id", n.integer),
    ("team_type", n.text),
    ("team_bib_num", n.text),
    ("team_gender", n.text),
    ("giveaway", n.text),
    ("giveaway_option_id", n.integer),
)


def question_responses(value: Any) -> str:
    """``question_responses[]`` -> JSON text, every item kept with its keys as sent (both the
    single ``response`` and the multi-select ``responses[]`` shape); ``question_id`` is text."""
    if value == {}:
        value = []
    if not isinstance(value, list):
        raise ValueError(f"question_responses is not a list: {value!r}")
    items = value  # copied on the first item that changes
    for i, q in enumerate(value):
        if q.__class__ is dict:
            qid = q.get("question_id", MISSING)
            if qid.__class__ is str or qid is MISSING:
                continue
            q = {**q, "question_id": n.text(qid)}
        else:
            q = n.obj(q)
        if items is value:
            items = list(value)
        items[i] = q
    return _json_plain.encode(items).decode()


#: Keys that identify a registration row rather than describe it.
ID_KEYS = frozenset({"registration_id", "event_id"})


def all_null(reg: dict[str, Any]) -> bool:
    """True for a registration row whose every key but its ids is ``null`` (and that has one).

    The rule (issue 9): such a row carries no data; projecting it would clear every column of the
    registration (an explicit ``null`` clears), so it is a projection error instead and the
    stored registration is left as it was. (Duplicated JSON keys: the last occurrence wins, in
    the fetcher and in the projector, as ``msgspec`` decodes them.)"""
    data = [v for k, v in reg.items() if k not in ID_KEYS]
    return bool(data) and all(v is None for v in data)


def participant_values(
    reg: dict[str, Any], *, removed: bool, removed_at_default: str | None = None
) -> tuple[Any, ...]:
    """Data columns of ``runsignup_participants`` (``user_id`` .. ``new_registration_id``).

    ``registration_date`` is Eastern (``M/D/YYYY HH:MM``, or ``YYYY-MM-DD HH:MM:SS`` in removed
    rows); ``last_modified`` is epoch seconds (removed rows: ``last_modified_ts``, else their
    Eastern string). For an active row (``removed=False``) the removal columns are ``None``, so a
    registration that reappears is active again. For a removed row ``removed_at`` is the removal
    time in UTC (``last_modified_ts``, else ``removed_at_default``) and ``removed_reason`` one of
    cleared/removed/transferred/deferred.
    """
    out: list[Any] = []
    if "user" in reg:
        user = n.obj(reg["user"])
        _apply(user, _USER_SPEC, out)
        if "address" in user:
            _apply(n.obj(user["address"]), _ADDRESS_SPEC, out)
        else:
            out.extend([MISSING] * 5)
    else:
        out.extend([MISSING] * 13)
    _apply(reg, _REG_SPEC_1, out)
    _pair(reg, "registration_date", n.EASTERN_NAME, out)
    lm: Any = reg.get("last_modified_ts", MISSING) if removed else MISSING
    if lm is MISSING:
        lm = reg.get("last_modified", MISSING)
    lm_utc: str | None = None
    if lm is MISSING:
        out.append(MISSING)
        out.append(MISSING)
    else:
        secs = n.epoch(lm)
        lm_utc = n.epoch_utc(secs)
        out.append(secs)
        out.append(lm_utc)
    _apply(reg, _REG_SPEC_2, out)
    qr = reg.get("question_responses", MISSING)
    out.append(qr if qr is MISSING or qr is None else question_responses(qr))
    if removed:
        reason = n.text(reg.get("removed_reason")) or "removed"
        if reason not in REMOVED_REASONS:
            raise ValueError(f"unknown removed_reason {reason!r}")
        out.append(lm_utc or removed_at_default)
        out.append(reason)
        out.append(n.integer(reg.get("new_registration_id")))
    else:
        out.extend((None, None, None))
    if len(out) != len(PARTICIPANT_DATA_COLUMNS):  # pragma: no cover
        raise RuntimeError("participant_values out of step with schema")
    return tuple(out)


# -- fast path for active registrations ----------------------------------------------------------


class _Memo(dict[Any, Any]):
    """``memo[value]`` -> ``fn(value)``, cached up to ``limit`` entries; ``None`` maps to ``none``
    and MISSING to ``missing``. Unhashable values raise ``TypeError`` (the caller falls back)."""

    def __init__(self, fn: Conv, none: Any = None, missing: Any = MISSING, limit: int = 65536):
        super().__init__()
        self.fn = fn
        self.limit = limit
        self[None] = none
        self[MISSING] = missing

    def __missing__(self, key: Any) -> Any:
        value = self.fn(key)
        if len(self) < self.limit:
            self[key] = value
        return value


_TEXT = _Memo(n.text, limit=4096)
_INT = _Memo(n.integer, limit=4096)
_FLAG = _Memo(n.flag)
_CENTS = _Memo(n.cents)
_DATE = _Memo(n.date)
_EASTERN = _Memo(n.eastern, none=(None, None), missing=(MISSING, MISSING))
_GMT_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class _Slow(Exception):
    """The fast path met an unusual shape; use :func:`participant_values`."""


def active_participant_values(reg: dict[str, Any], miss: Any = MISSING) -> tuple[Any, ...]:
    """:func:`participant_values` for an active (``/participants``) row, optimised.

    ``miss`` is what an absent key yields: MISSING (keep the stored value) or ``None`` for a
    registration not stored yet. Falls back to :func:`participant_values` for unusual shapes
    (``[]`` objects, unhashable values, string ``last_modified``) -- same result either way.
    """
    try:
        return _active_fast(reg, miss)
    except (_Slow, TypeError):
        values = participant_values(reg, removed=False)
        if miss is None:
            return tuple(None if v is MISSING else v for v in values)
        return values


def _active_fast(reg: dict[str, Any], miss: Any) -> tuple[Any, ...]:
    g = reg.get
    user = g("user", MISSING)
    if user.__class__ is dict:
        ug = user.get
        addr = ug("address", MISSING)
        if addr.__class__ is dict:
            ag = addr.get
            address = (
                (v if (v := ag("street", miss)).__class__ is str else _TEXT[v]),
                (v if (v := ag("city", miss)).__class__ is str else _TEXT[v]),
                (v if (v := ag("state", miss)).__class__ is str else _TEXT[v]),
                (v if (v := ag("zipcode", miss)).__class__ is str else _TEXT[v]),
                (v if (v := ag("country_code", miss)).__class__ is str else _TEXT[v]),
            )
        elif addr is MISSING or addr is None:
            address = (miss,) * 5
        else:
            raise _Slow
        user_cols = (
            _INT[ug("user_id", miss)],
            (v if (v := ug("first_name", miss)).__class__ is str else _TEXT[v]),
            (v if (v := ug("middle_name", miss)).__class__ is str else _TEXT[v]),
            (v if (v := ug("last_name", miss)).__class__ is str else _TEXT[v]),
            (v if (v := ug("email", miss)).__class__ is str else _TEXT[v]),
            _DATE[ug("dob", miss)],
            (v if (v := ug("gender", miss)).__class__ is str else _TEXT[v]),
            (v if (v := ug("phone", miss)).__class__ is str else _TEXT[v]),
            *address,
        )
    elif user is MISSING or user is None:
        user_cols = (miss,) * 13
    else:
        raise _Slow
    lm = g("last_modified", miss)
    if lm.__class__ is int and 0 <= lm < n.EPOCH_MAX:
        lm_cols: tuple[Any, ...] = (lm, time.strftime(_GMT_FORMAT, time.gmtime(lm)))
    elif lm is miss:
        lm_cols = (miss, miss)
    else:
        raise _Slow
    qr = g("question_responses", miss)
    if qr is not miss and qr is not None:
        qr = question_responses(qr)
    reg_date = _EASTERN[g("registration_date", MISSING)]
    if reg_date[0] is MISSING:
        reg_date = (miss, miss)
    return (
        *user_cols,
        (v if (v := g("bib_num", miss)).__class__ is str else _TEXT[v]),
        (v if (v := g("chip_num", miss)).__class__ is str else _TEXT[v]),
        _INT[g("age", miss)],
        *reg_date,
        *lm_cols,
        (v if (v := g("rsu_transaction_id", miss)).__class__ is str else _TEXT[v]),
        (v if (v := g("transaction_id", miss)).__class__ is str else _TEXT[v]),
        _FLAG[g("imported", miss)],
        _CENTS[g("race_fee", miss)],
        _CENTS[g("offline_payment_amount", miss)],
        _CENTS[g("processing_fee", miss)],
        _CENTS[g("processing_fee_paid_by_user", miss)],
        _CENTS[g("processing_fee_paid_by_race", miss)],
        _CENTS[g("partner_fee", miss)],
        _CENTS[g("affiliate_profit", miss)],
        _CENTS[g("extra_fees", miss)],
        _CENTS[g("amount_paid", miss)],
        _CENTS[g("usatf_discount_amount_in_cents", miss)],
        (v if (v := g("usatf_discount_additional_field", miss)).__class__ is str else _TEXT[v]),
        _INT[g("team_id", miss)],
        (v if (v := g("team_name", miss)).__class__ is str else _TEXT[v]),
        _INT[g("team_type_id", miss)],
        (v if (v := g("team_type", miss)).__class__ is str else _TEXT[v]),
        (v if (v := g("team_bib_num", miss)).__class__ is str else _TEXT[v]),
        (v if (v := g("team_gender", miss)).__class__ is str else _TEXT[v]),
        (v if (v := g("giveaway", miss)).__class__ is str else _TEXT[v]),
        _INT[g("giveaway_option_id", miss)],
        qr,
        None,
        None,
        None,
    )
