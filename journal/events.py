"""Journal event types: the stored contract between the fetcher and the projector.

Every event is a ``msgspec.Struct`` in one tagged union (``tag_field="kind"``); the tag is the
``kind`` column of the ``journal`` table. Events are encoded with ``msgspec.json`` and stored in the
``payload`` column; they are never rewritten.

Evolution rule (see msgspec's schema-evolution guide):

* a new field is added only **with a default**, at the end of the struct, so every payload stored
  before it still decodes;
* a tag (``kind``) is **never renamed** and a field is never renamed or retyped; a changed meaning
  gets a new type plus an upcaster in :data:`UPCASTERS` that turns old payloads into the new type on
  read;
* fields are never removed (ignored fields may simply stay unused).

Secrets never enter an event: queries are stored with credential parameters removed (see
:func:`redact_query`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

#: Query parameters and headers that carry credentials; never journaled.
SECRET_PARAMS = frozenset(
    {
        "api_key",
        "api_secret",
        "rsu_api_key",
        "sp_api_key",
        "tmp_key",
        "tmp_secret",
        "access_token",
        "authorization",
        "x-rsu-api-secret",
        "rsu_api_reg",
        "x-rsu-api-reg-secret",
    }
)


def redact_query(query: Mapping[str, str]) -> dict[str, str]:
    """Return ``query`` without credential parameters (see :data:`SECRET_PARAMS`).

    The keys are kept in their original order; only the secret ones are dropped entirely, so not
    even the key's length or fingerprint reaches the journal.
    """
    return {k: v for k, v in query.items() if k.lower() not in SECRET_PARAMS}


class _Event(msgspec.Struct, tag_field="kind", frozen=True, kw_only=True, omit_defaults=False):
    """Base of all journal events. Scope columns live on the journal row, not here."""


class RunStarted(_Event, tag="run_started", frozen=True):
    """A fetch run began.

    ``mode`` is ``"full"``, ``"incremental"`` or ``"import"`` (``rsu journal import``); ``scope``
    describes what was asked for (partner ids, race ids, flags, imported files); ``tool_version``
    is the ``rsu`` version; ``base_url`` the API root used.
    """

    mode: str
    scope: dict[str, Any] = {}
    tool_version: str = ""
    base_url: str = ""


class ResponseReceived(_Event, tag="response_received", frozen=True):
    """One HTTP response, whatever its status or content; its exact body is in ``journal_blobs``.

    ``endpoint`` is a stable name (``races``, ``race``, ``participants``, ``removed_participants``,
    ``auth_check``); ``path`` the URL path; ``query`` the query without secrets; ``status`` the HTTP
    status; ``elapsed_ms`` the wall time of the request in milliseconds; ``attempt`` 1-based;
    ``body_sha256``/``body_size`` (bytes) describe the body; ``page`` is the 1-based page number or
    ``None`` when keyset paging was used (then ``cursor`` holds ``after_registration_id``);
    ``listing_id`` ties the pages of one participant listing together; ``server_date`` is the
    response's raw HTTP ``Date`` header (the server's clock), ``""`` when absent.

    ``body_scrubbed`` counts the known secret values (the partner's credential, the caller
    registration) the fetcher replaced by ``***`` in the body before storing it, because the
    server echoed them back; 0 (and in events written before the field existed) means the body
    is stored exactly as received. ``body_sha256``/``body_size`` always describe the **stored**
    body, so for a scrubbed body they are those of the scrubbed bytes.
    """

    endpoint: str
    path: str
    query: dict[str, str] = {}
    status: int = 200
    elapsed_ms: float = 0.0
    attempt: int = 1
    content_type: str = ""
    body_sha256: str = ""
    body_size: int = 0
    page: int | None = None
    cursor: int | None = None
    listing_id: str | None = None
    race_id: int | None = None
    event_id: int | None = None
    server_date: str = ""
    body_scrubbed: int = 0


class RequestFailed(_Event, tag="request_failed", frozen=True):
    """A request that produced no HTTP response (timeout, refused or dropped connection, no
    complete answer within the deadline: ``DeadlineExceeded``, ...), or whose body was refused
    unstored (``BodyTooLarge``: over the size cap).

    ``error_class`` is the exception's class name; ``message`` is scrubbed of secrets; ``attempt``
    is 1-based; ``final`` says whether the fetcher gave up after this attempt.
    """

    endpoint: str
    path: str
    query: dict[str, str] = {}
    error_class: str = ""
    message: str = ""
    attempt: int = 1
    final: bool = False
    listing_id: str | None = None
    race_id: int | None = None
    event_id: int | None = None


class ListingCompleted(_Event, tag="listing_completed", frozen=True):
    """The end of one participant or removed-participant listing of one event.

    ``complete`` is true only when every page was read successfully down to a short page, from the
    very start (no ``modified_after_timestamp``) -- the only proof that may retire registrations
    missing from it. ``mode`` is ``"full"`` or ``"incremental"``. ``ok`` is false when the listing
    stopped on an error (then ``error_code``/``error_msg``/``http_status`` say why: a RunSignUp
    code, or ``None`` -- ``0`` in events written before issue 9 -- when RunSignUp sent none).
    ``pages`` and ``rows`` count what was read; ``page_seqs`` are the
    journal seqs of the pages' ``response_received`` events; ``max_last_modified`` is the highest
    registration ``last_modified`` (epoch seconds) seen, or the previous cursor when none;
    ``modified_after`` is the cursor used (epoch seconds) or ``None`` for a complete listing.
    ``requests``/``retries`` count HTTP attempts spent on this listing. ``next_cursor`` (epoch
    seconds) is where the next incremental listing may start: every change up to it is known to
    be read. It is ``max_last_modified`` capped at the server's clock (``Date``) when the first
    page was served, because a registration edited while a long listing runs may sit on a page
    already read; ``None`` in events written before it existed (then ``max_last_modified``).

    A listing may cover several events of one race (RunSignUp's ``event_id`` takes a comma
    list): then ``event_ids`` names exactly the events it asked for and covers, and ``event_id``
    is ``None``; a listing of one event has ``event_id`` set and ``event_ids`` empty (events
    written before ``event_ids`` existed). Use :attr:`covered_events` to read either.
    """

    endpoint: str
    race_id: int
    event_id: int | None
    listing_id: str
    mode: str = "full"
    complete: bool = False
    ok: bool = True
    pages: int = 0
    rows: int = 0
    page_seqs: list[int] = []
    max_last_modified: int | None = None
    modified_after: int | None = None
    requests: int = 0
    retries: int = 0
    error_code: int | None = None
    error_msg: str | None = None
    next_cursor: int | None = None
    event_ids: list[int] = []
    #: The HTTP status of the failed request that stopped the listing (``None``: none, or no
    #: response arrived, or an event written before this field existed).
    http_status: int | None = None

    @property
    def covered_events(self) -> list[int]:
        """The event ids this listing asked for (and alone may retire registrations of)."""
        if self.event_ids:
            return list(self.event_ids)
        return [] if self.event_id is None else [self.event_id]


class FetchFailed(_Event, tag="fetch_failed", frozen=True):
    """The fetcher gave up on one request after its retries: the scope it served is not synced.

    Emitted once per abandoned request (not per attempt), after the attempts' own
    ``response_received``/``request_failed`` events. ``endpoint``/``path``/``query`` (no secrets)
    name the request; ``error_code`` is the RunSignUp code when the body was an error object
    (e.g. 6, 7, 14, 201, 301), else ``None``; ``http_status`` the last HTTP status (``None`` when no
    response arrived); ``error_msg`` a secret-free message; ``attempts`` the number of tries;
    ``last_seq`` the journal seq of the last attempt's event; ``race_id``/``event_id`` the scope;
    ``internal``: the scope's work stopped on an unexpected error in rsu itself (``attempts`` 0,
    no ``listing_completed`` follows), so the projector records it whatever the endpoint.
    """

    endpoint: str
    path: str
    query: dict[str, str] = {}
    error_code: int | None = None
    http_status: int | None = None
    error_msg: str = ""
    attempts: int = 1
    last_seq: int | None = None
    race_id: int | None = None
    event_id: int | None = None
    internal: bool = False


class RunFinished(_Event, tag="run_finished", frozen=True):
    """A fetch run ended. ``status`` is ``"ok"`` or ``"failed"``; ``counts`` are run totals
    (requests, retries, bytes_received, new_bodies, failed partners/races/events ...);
    ``failures`` lists human-readable failure lines (no secrets)."""

    status: str
    counts: dict[str, int] = {}
    failures: list[str] = []
    duration_seconds: float = 0.0


Event = RunStarted | ResponseReceived | RequestFailed | FetchFailed | ListingCompleted | RunFinished

#: Every event type by its tag.
EVENT_TYPES: dict[str, type[_Event]] = {
    t.__struct_config__.tag: t  # type: ignore[misc]
    for t in (
        RunStarted,
        ResponseReceived,
        RequestFailed,
        FetchFailed,
        ListingCompleted,
        RunFinished,
    )
}

#: kind -> function turning an old payload (a dict) into a current one. Empty today: every stored
#: payload still decodes as is. Add an entry here instead of ever rewriting a journal row.
UPCASTERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}

_encoder = msgspec.json.Encoder()
_decoder: msgspec.json.Decoder[Event] = msgspec.json.Decoder(Event)


def encode_event(event: Event) -> bytes:
    """Encode ``event`` to its stored payload (compact JSON with a ``kind`` tag)."""
    return _encoder.encode(event)


def decode_event(payload: bytes) -> Event:
    """Decode a stored payload into its event type, upcasting old shapes.

    Raises ``msgspec.ValidationError``/``msgspec.DecodeError`` for a payload that is not a valid
    event of any known kind.
    """
    if UPCASTERS:
        raw = msgspec.json.decode(payload)
        up = UPCASTERS.get(raw.get("kind", ""))
        if up is not None:
            return msgspec.convert(up(raw), Event)  # type: ignore[arg-type]
    return _decoder.decode(payload)


def event_kind(event: Event) -> str:
    """The tag of ``event`` (its ``kind`` column value)."""
    return event.__struct_config__.tag  # type: ignore[return-value]
