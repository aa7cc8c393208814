"""Typed decoding of ``/participants`` pages: the common shape straight into msgspec Structs.

RunSignUp's ``GET /Rest/race/{id}/participants`` pages (``shared/docs/runsignup-api.md`` §4) almost
always have one shape. :func:`decode_page` decodes a page of that shape into :class:`Element` /
:class:`Registration` Structs (no dicts, only the fields the projector reads) and
:func:`typed_values` turns one registration into the same data columns as
:func:`~rsu.projector.records.participant_values` (``removed=False``).

Anything else -- a field of another JSON type (``[]`` for an object, a number where RunSignUp sends
text, a boolean, a string ``last_modified``...), a missing ``registration_id``, an error object --
fails validation, and the caller projects that page with the generic path
(``msgspec.json.decode`` to dicts + :mod:`rsu.projector.records`), which handles every shape and
records errors. So this module only has to be right for the inputs it accepts, and equal to the
generic path there (``tests/test_project_typed.py`` checks this).

Absent keys come out of :func:`typed_values` as :data:`~rsu.projector.normalize.MISSING`, an
explicit ``null`` as ``None``.
"""

from __future__ import annotations

import re
import time
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, UnsetType

from . import normalize as n
from .normalize import MISSING
from .records import _Memo, question_responses

# Field types: what the typed path accepts (anything else falls back to the generic path).
#: An integer that fits a SQL ``BIGINT`` (an id >= 2**63 goes the generic way, which records it).
_Int64 = Annotated[int, msgspec.Meta(ge=n.INT64_MIN, le=n.INT64_MAX)]
_Text = str | int | UnsetType | None  # text as sent; a JSON integer becomes its decimal text
_Int = _Int64 | str | UnsetType | None  # an integer, or a digit string
_Str = str | UnsetType | None  # money, flags, dates: strings only


class Address(msgspec.Struct, gc=False):
    street: _Text = UNSET
    city: _Text = UNSET
    state: _Text = UNSET
    zipcode: _Text = UNSET
    country_code: _Text = UNSET


class User(msgspec.Struct, gc=False):
    user_id: _Int = UNSET
    first_name: _Text = UNSET
    middle_name: _Text = UNSET
    last_name: _Text = UNSET
    email: _Text = UNSET
    dob: _Str = UNSET
    gender: _Text = UNSET
    phone: _Text = UNSET
    address: Address | UnsetType | None = UNSET


class Registration(msgspec.Struct, gc=False):
    registration_id: _Int64
    event_id: _Int64 | UnsetType = UNSET
    user: User | UnsetType | None = UNSET
    bib_num: _Text = UNSET
    chip_num: _Text = UNSET
    age: _Int = UNSET
    registration_date: _Str = UNSET
    last_modified: int | UnsetType | None = UNSET
    rsu_transaction_id: _Text = UNSET
    transaction_id: _Text = UNSET
    imported: _Str = UNSET
    race_fee: _Str = UNSET
    offline_payment_amount: _Str = UNSET
    processing_fee: _Str = UNSET
    processing_fee_paid_by_user: _Str = UNSET
    processing_fee_paid_by_race: _Str = UNSET
    partner_fee: _Str = UNSET
    affiliate_profit: _Str = UNSET
    extra_fees: _Str = UNSET
    amount_paid: _Str = UNSET
    usatf_discount_amount_in_cents: _Str = UNSET
    usatf_discount_additional_field: _Text = UNSET
    team_id: _Int = UNSET
    team_name: _Text = UNSET
    team_type_id: _Int = UNSET
    team_type: _Text = UNSET
    team_bib_num: _Text = UNSET
    team_gender: _Text = UNSET
    giveaway: _Text = UNSET
    giveaway_option_id: _Int = UNSET
    #: kept as sent (decoding it here cost half the page's decoding); :func:`_question_text`
    question_responses: msgspec.Raw | UnsetType = UNSET


class ElementEvent(msgspec.Struct, gc=False):
    event_id: _Int64 | UnsetType | None = UNSET


class Element(msgspec.Struct, gc=False):
    event: ElementEvent | UnsetType | None = UNSET
    participants: list[Registration] | UnsetType | None = UNSET


_decoder = msgspec.json.Decoder(list[Element])


# -- the rows of a page as raw bytes, for the re-seen row shortcut (issue 15) ---------------------


class _HeadRegistration(msgspec.Struct, gc=False):
    registration_id: _Int64
    event_id: _Int64 | UnsetType = UNSET


class _HeadElement(msgspec.Struct, gc=False):
    event: ElementEvent | UnsetType | None = UNSET
    participants: list[_HeadRegistration] | UnsetType | None = UNSET


class _RawElement(msgspec.Struct, gc=False):
    participants: list[msgspec.Raw] | UnsetType | None = UNSET


_head_decoder = msgspec.json.Decoder(list[_HeadElement])
_raw_decoder = msgspec.json.Decoder(list[_RawElement])

#: ``(registration_id, event_id, the registration's JSON bytes as sent)``
RawRow = tuple[int, int, bytes]


def raw_rows(raw: bytes) -> list[RawRow] | None:
    """Every registration of a ``/participants`` page of the common shape, in page order, with
    its event (its own ``event_id``, else its element's) and its exact JSON bytes; ``None``
    when the page has another shape or a registration without a readable event."""
    try:
        heads = _head_decoder.decode(raw)
        raws = _raw_decoder.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return None
    out: list[RawRow] = []
    for head, element in zip(heads, raws, strict=True):
        regs, blobs = head.participants, element.participants
        if not regs or not blobs:
            continue
        e = head.event
        el_event = e.event_id if e.__class__ is ElementEvent else None  # type: ignore[union-attr]
        for reg, blob in zip(regs, blobs, strict=True):  # type: ignore[arg-type]
            event_id = reg.event_id
            if event_id is UNSET:
                if el_event.__class__ is not int:
                    return None
                event_id = el_event
            out.append((reg.registration_id, event_id, bytes(blob)))  # type: ignore[arg-type]
    return out


def decode_page(raw: bytes) -> list[Element] | None:
    """The page as Structs, or ``None`` when it is not of the common shape (or not JSON, or
    nested too deeply to decode)."""
    try:
        return _decoder.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return None


def page_list(raw: bytes) -> list[tuple[int, Registration]] | None:
    """Every registration of a ``/participants`` page of the common shape, in page order (a
    repeated one each time), with its event (its own ``event_id``, else its element's);
    ``None`` when the page is not of that shape."""
    elements = decode_page(raw)
    if elements is None:
        return None
    out: list[tuple[int, Registration]] = []
    for element in elements:
        e = element.event
        el_event = e.event_id if e.__class__ is ElementEvent else None  # type: ignore[union-attr]
        page_regs = element.participants
        if page_regs is None or page_regs is UNSET:
            continue
        for reg in page_regs:  # type: ignore[union-attr]
            event_id = reg.event_id
            if event_id is UNSET:
                if el_event.__class__ is not int:
                    return None
                event_id = el_event
            out.append((event_id, reg))  # type: ignore[arg-type]
    return out


def page_registrations(race_id: int, raw: bytes) -> dict[tuple[int, int, int], Registration] | None:
    """The registrations of :func:`page_list` keyed by ``(race_id, event_id,
    registration_id)``, in page order (a repeated key keeps its first place and its last
    registration); ``None`` when the page is not of the common shape."""
    regs = page_list(raw)
    if regs is None:
        return None
    return {(race_id, event_id, reg.registration_id): reg for event_id, reg in regs}


class Unusual(Exception):
    """A value the typed path does not handle: project the page with the generic path."""


class _Memos:
    """Memoised converters for one meaning of an absent key (``MISSING`` or ``None``)."""

    def __init__(self, miss: Any) -> None:
        self.miss = miss
        self.text = self._memo(_text_of, limit=4096)
        self.int = self._memo(n.integer, limit=4096)
        self.flag = self._memo(n.flag)
        self.cents = self._memo(n.cents)
        self.date = self._memo(n.date)
        self.no_user = (miss,) * 13
        self.no_address = (miss,) * 5
        self.no_lm = (miss, miss)

    def _memo(self, fn: Any, limit: int = 65536) -> _Memo:
        memo = _Memo(fn, missing=self.miss, limit=limit)
        memo[UNSET] = self.miss
        return memo


#: ``M/D/YYYY HH`` (RunSignUp's ``registration_date`` up to the hour).
_MDY_H = re.compile(r"\d{1,2}/\d{1,2}/\d{4} \d{1,2}")
_WHOLE_HOUR_OFFSET = re.compile(r"[+-]\d\d:00")
_MINUTES = frozenset(f"{m:02d}" for m in range(60))
#: ``"M/D/YYYY HH"`` -> (local ISO up to the hour, ``":00"`` + its UTC offset, UTC ISO up to the
#: hour) when the whole hour has one offset of whole hours (every hour but a few in history),
#: else ``None``.
_HOURS: dict[str, tuple[str, str, str] | None] = {}
_CACHE_LIMIT = 65536
_NOT_CACHED: Any = object()


def _eastern_hour(hour: str) -> tuple[str, str, str] | None:
    if not _MDY_H.fullmatch(hour):
        return None
    first, first_utc = n.eastern(hour + ":00")
    last, last_utc = n.eastern(hour + ":59")
    if (
        first is None
        or first_utc is None
        or last is None
        or len(first) != 25  # YYYY-MM-DDTHH:MM:SS+HH:MM
        or len(first_utc) != 20  # YYYY-MM-DDTHH:MM:SSZ
        or first[19:] != last[19:]
        or not _WHOLE_HOUR_OFFSET.fullmatch(first[19:])
        or first_utc[:14] + "59:00Z" != last_utc
    ):
        return None
    return first[:14], ":00" + first[19:], first_utc[:14]


def eastern(value: Any) -> tuple[Any, Any]:
    """:func:`rsu.projector.normalize.eastern`, computed once per hour for ``M/D/YYYY HH:MM``
    (registration dates are nearly all distinct, their hours are not)."""
    if value.__class__ is str and value[-3:-2] == ":" and (minute := value[-2:]) in _MINUTES:
        hour = value[:-3]
        base = _HOURS.get(hour, _NOT_CACHED)
        if base is _NOT_CACHED:
            base = _eastern_hour(hour)
            if len(_HOURS) < _CACHE_LIMIT:
                _HOURS[hour] = base
        if base is not None:
            return base[0] + minute + base[1], base[2] + minute + ":00Z"
    return n.eastern(value)


#: Epoch hour -> ``"YYYY-MM-DDTHH:"`` (UTC); seconds within the hour -> ``"MM:SSZ"``.
_UTC_HOURS: dict[int, str] = {}
_MM_SS = [f"{s // 60:02d}:{s % 60:02d}Z" for s in range(3600)]


def epoch_utc(secs: int) -> str:
    """``time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(secs))``, one ``strftime`` per hour
    (``0 <= secs`` < year 10000)."""
    hour, rest = divmod(secs, 3600)
    prefix = _UTC_HOURS.get(hour)
    if prefix is None:
        prefix = _strftime("%Y-%m-%dT%H:", _gmtime(hour * 3600))
        if len(_UTC_HOURS) < _CACHE_LIMIT:
            _UTC_HOURS[hour] = prefix
    return prefix + _MM_SS[rest]


def _text_of(value: Any) -> Any:
    return str(value) if value.__class__ is int else n.text(value)


#: For a registration already stored (absent: keep the stored value) / not stored yet (``None``).
_STORED = _Memos(MISSING)
_NEW = _Memos(None)
#: ``last_modified`` epoch seconds handled here (years 1970-9999); others go the generic way.
_EPOCH_MAX = 253_402_300_800
_gmtime = time.gmtime
_strftime = time.strftime


_DATA_FIELDS = tuple(
    f for f in Registration.__struct_fields__ if f not in ("registration_id", "event_id")
)


def _all_null(r: Registration) -> bool:
    """Every data field sent in ``r`` is an explicit ``null`` (see :func:`records.all_null`;
    the caller checked one is)."""
    return all((v := getattr(r, f)) is None or v is UNSET or v == _RAW_NULL for f in _DATA_FIELDS)


_RAW_NULL = msgspec.Raw(b"null")
#: ``question_responses`` as sent (bytes) -> its column text; only values up to
#: :data:`_QR_KEY_MAX` bytes are kept, at most :data:`_QR_LIMIT` of them (keys of at most 4 MiB,
#: and their texts about as much; answers repeat: shirt sizes, yes/no).
_QR_TEXT: dict[bytes, str | None] = {}
_QR_KEY_MAX = 1024
_QR_LIMIT = 4096


def _question_text(raw: msgspec.Raw) -> str | None:
    """The ``question_responses`` column of a registration's raw ``question_responses`` value:
    ``None`` for ``null``, else :func:`records.question_responses` of the decoded value. Raises
    what decoding or that function raise (the caller then takes the generic path)."""
    key = bytes(raw)
    text = _QR_TEXT.get(key, _NOT_CACHED)
    if text is _NOT_CACHED:
        value = msgspec.json.decode(key)
        text = None if value is None else question_responses(value)
        if len(key) <= _QR_KEY_MAX and len(_QR_TEXT) < _QR_LIMIT:
            _QR_TEXT[key] = text
    return text  # type: ignore[no-any-return]


#: The last three data columns of an active registration: ``removed_at``, ``removed_reason``,
#: ``new_registration_id``.
ACTIVE = (None, None, None)


def typed_values(
    r: Registration,
    stored: bool = True,
    head: tuple[Any, ...] = (),
    tail: tuple[Any, ...] = ACTIVE,
) -> tuple[Any, ...]:
    """The data columns of ``runsignup_participants`` for an active registration, as
    ``participant_values(..., removed=False)`` gives them; for a registration not ``stored`` yet,
    absent keys give ``None`` instead of ``MISSING``. ``head`` is put before them, and ``tail``
    instead of the last three (:data:`ACTIVE`): a whole row in one tuple. Raises
    (``ValueError``, ``TypeError``, :class:`Unusual`...) for a value the generic path would
    reject or could treat differently: the caller then uses that path."""
    if r.user is None and _all_null(r):
        raise Unusual("every field is null")  # the generic path records it (records.all_null)
    m = _STORED if stored else _NEW
    text = m.text
    integer = m.int
    user = r.user
    if user.__class__ is User:
        u: Any = user
        a = u.address
        if a.__class__ is Address:
            address: tuple[Any, ...] = (
                v if (v := a.street).__class__ is str else text[v],
                v if (v := a.city).__class__ is str else text[v],
                v if (v := a.state).__class__ is str else text[v],
                v if (v := a.zipcode).__class__ is str else text[v],
                v if (v := a.country_code).__class__ is str else text[v],
            )
        else:  # absent, or null (read as {}: every key absent)
            address = m.no_address
        user_cols: tuple[Any, ...] = (
            v if (v := u.user_id).__class__ is int else integer[v],
            v if (v := u.first_name).__class__ is str else text[v],
            v if (v := u.middle_name).__class__ is str else text[v],
            v if (v := u.last_name).__class__ is str else text[v],
            v if (v := u.email).__class__ is str else text[v],
            m.date[u.dob],
            v if (v := u.gender).__class__ is str else text[v],
            v if (v := u.phone).__class__ is str else text[v],
            *address,
        )
    else:  # absent, or null (read as {})
        user_cols = m.no_user
    lm: Any = r.last_modified
    if lm.__class__ is int:
        if not 0 <= lm < _EPOCH_MAX:
            raise Unusual(f"last_modified {lm!r}")
        lm_cols: tuple[Any, ...] = (lm, epoch_utc(lm))
    elif lm is None:
        lm_cols = (None, None)
    else:
        lm_cols = m.no_lm
    qr: Any = r.question_responses
    qr = m.miss if qr is UNSET else _question_text(qr)
    rd = r.registration_date
    if rd.__class__ is str:
        reg_date = eastern(rd)
    elif rd is None:
        reg_date = (None, None)
    else:
        reg_date = m.no_lm
    cents = m.cents
    return (
        *head,
        *user_cols,
        v if (c := (v := r.bib_num).__class__) is str else str(v) if c is int else text[v],
        v if (v := r.chip_num).__class__ is str else text[v],
        v if (v := r.age).__class__ is int else integer[v],
        *reg_date,
        *lm_cols,
        v
        if (c := (v := r.rsu_transaction_id).__class__) is str
        else str(v)
        if c is int
        else text[v],
        v if (v := r.transaction_id).__class__ is str else text[v],
        m.flag[r.imported],
        cents[r.race_fee],
        cents[r.offline_payment_amount],
        cents[r.processing_fee],
        cents[r.processing_fee_paid_by_user],
        cents[r.processing_fee_paid_by_race],
        cents[r.partner_fee],
        cents[r.affiliate_profit],
        cents[r.extra_fees],
        cents[r.amount_paid],
        cents[r.usatf_discount_amount_in_cents],
        v if (v := r.usatf_discount_additional_field).__class__ is str else text[v],
        v if (v := r.team_id).__class__ is int else integer[v],
        v if (v := r.team_name).__class__ is str else text[v],
        v if (v := r.team_type_id).__class__ is int else integer[v],
        v if (v := r.team_type).__class__ is str else text[v],
        v if (v := r.team_bib_num).__class__ is str else text[v],
        v if (v := r.team_gender).__class__ is str else text[v],
        v if (v := r.giveaway).__class__ is str else text[v],
        v if (v := r.giveaway_option_id).__class__ is int else integer[v],
        qr,
        *tail,
    )
