"""The append-only journal: every raw RunSignUp response, as received, in a hash chain.

Public API: :class:`Journal`, :func:`open_db`, the event types in :mod:`rsu.journal.events`.
"""

from .db import BUSY_TIMEOUT_ENV, DB_ENV, JournalError, database_error, default_db_path, open_db
from .events import (
    Event,
    FetchFailed,
    ListingCompleted,
    RequestFailed,
    ResponseReceived,
    RunFinished,
    RunStarted,
    decode_event,
    encode_event,
    event_kind,
    redact_query,
)
from .store import (
    Journal,
    JournalRow,
    JournalStats,
    VerifyReport,
    head_json,
    journal_head,
    parse_head,
    sha256_hex,
)

__all__ = [
    "BUSY_TIMEOUT_ENV",
    "DB_ENV",
    "Event",
    "FetchFailed",
    "Journal",
    "JournalError",
    "JournalRow",
    "JournalStats",
    "ListingCompleted",
    "RequestFailed",
    "ResponseReceived",
    "RunFinished",
    "RunStarted",
    "VerifyReport",
    "database_error",
    "decode_event",
    "default_db_path",
    "encode_event",
    "event_kind",
    "head_json",
    "journal_head",
    "open_db",
    "parse_head",
    "redact_query",
    "sha256_hex",
]
