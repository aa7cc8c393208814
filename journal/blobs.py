"""Choosing how a new body is stored in ``journal_blobs``, and reading any stored body back.

A ``response_received`` body (HTTP 200) belongs to a *listing page*: same timing partner,
endpoint, race, events asked for, page size, full or incremental, and page (the page number, or
for keyset paging the page's ordinal within its listing). :func:`listing_key` names it. A new
body of a page that was stored before is stored as a ``zstd-delta`` against the newest blob of
that page stored whole, or against the newest level-1 delta of that whole blob (see
:mod:`rsu.journal.codecs` for the rule and the chain bound); any other body is stored whole.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from dataclasses import dataclass

from . import codecs
from .codecs import Encoded
from .db import JournalError
from .events import Event, ResponseReceived

#: Listings whose keyset page ordinals are remembered (the oldest are forgotten first).
_ORDINAL_LISTINGS = 4096


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """One ``journal_blobs`` row: ``size`` is the raw body's length in bytes."""

    sha256: str
    size: int
    codec: str
    data: bytes
    base_sha256: str | None


class PageOrdinals:
    """The 1-based ordinal of each keyset page within its listing, in the order first seen
    (a retried page keeps its ordinal). Thread-safe; remembers the last few thousand listings."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: OrderedDict[tuple[str, str], dict[int | None, int]] = OrderedDict()

    def ordinal(self, listing_id: str, events: str, cursor: int | None) -> int:
        """The ordinal of the page starting after ``cursor`` in listing ``listing_id``."""
        with self._lock:
            pages = self._seen.setdefault((listing_id, events), {})
            self._seen.move_to_end((listing_id, events))
            while len(self._seen) > _ORDINAL_LISTINGS:
                self._seen.popitem(last=False)
            return pages.setdefault(cursor, len(pages) + 1)


def listing_key(
    event: Event,
    timing_partner_id: int | None,
    race_id: int | None,
    event_id: int | None,
    ordinals: PageOrdinals,
) -> str | None:
    """The listing page a body belongs to, as text, or ``None`` for a body that is not a
    successful ``response_received`` (those are always stored whole)."""
    if not isinstance(event, ResponseReceived) or event.status != 200:
        return None
    query = event.query
    events = query.get("event_id") or ("" if event_id is None else str(event_id))
    if event.page is not None:
        page = f"p{event.page}"
    elif event.listing_id is not None:
        page = f"k{ordinals.ordinal(event.listing_id, events, event.cursor)}"
    else:
        page = "c" if event.cursor is None else f"c{event.cursor}"
    parts = [
        "" if timing_partner_id is None else str(timing_partner_id),
        event.endpoint,
        "" if race_id is None else str(race_id),
        events,
        query.get("results_per_page", ""),
        "inc" if "modified_after_timestamp" in query else "all",
        page,
    ]
    return "|".join(parts)


@dataclass(frozen=True, slots=True)
class Bases:
    """What a new body of one listing page may be a delta against: the newest blob stored
    whole (``whole``) and the newest level-1 delta of it (``level1``), each possibly ``None``."""

    whole: StoredBlob | None = None
    level1: StoredBlob | None = None


def newest_bases(conn: sqlite3.Connection, key: str) -> Bases:
    """The :class:`Bases` of listing page ``key``."""
    row = conn.execute(
        "SELECT sha256, size, codec, data, base_sha256 FROM journal_blobs "
        "WHERE listing_key = ? AND base_sha256 IS NULL ORDER BY rowid DESC LIMIT 1",
        (key,),
    ).fetchone()
    if row is None:
        return Bases()
    whole = StoredBlob(*row)
    row = conn.execute(
        "SELECT sha256, size, codec, data, base_sha256 FROM journal_blobs "
        "WHERE base_sha256 = ? AND listing_key = ? ORDER BY rowid DESC LIMIT 1",
        (whole.sha256, key),
    ).fetchone()
    return Bases(whole, StoredBlob(*row) if row is not None else None)


def load(conn: sqlite3.Connection, sha256: str) -> StoredBlob | None:
    """The stored row of blob ``sha256``, or ``None``."""
    row = conn.execute(
        "SELECT sha256, size, codec, data, base_sha256 FROM journal_blobs WHERE sha256 = ?",
        (sha256,),
    ).fetchone()
    return StoredBlob(*row) if row is not None else None


def encode(body: bytes, whole_codec: str, bases: Bases) -> Encoded:
    """How to store ``body`` (see :mod:`rsu.journal.codecs`): with ``whole_codec`` zstd, a
    level-2 delta against ``bases.level1`` when it is at most half the level-1 delta against
    ``bases.whole``, else that level-1 delta while it is small; otherwise ``body`` whole with
    ``whole_codec``. A base that does not decode is passed over (verify reports it)."""
    whole = bases.whole
    if (
        whole_codec != codecs.ZSTD
        or whole is None
        or whole.codec not in codecs.WHOLE_CODECS
        or len(body) < codecs.DELTA_MIN_BODY
    ):
        return codecs.encode_whole(body, whole_codec)
    try:
        whole_body = codecs.decode(whole.codec, whole.data, whole.sha256, size=whole.size)
    except JournalError:
        return codecs.encode_whole(body, whole_codec)
    level1 = codecs.encode_delta(body, whole_body, whole.sha256)
    if level1 is None or not codecs.delta_is_small(level1, len(body), whole.size, len(whole.data)):
        return codecs.encode_whole(body, whole_codec)
    base = bases.level1
    if base is not None and base.codec == codecs.ZSTD_DELTA and base.base_sha256 == whole.sha256:
        try:
            base_body = codecs.decode(base.codec, base.data, base.sha256, whole_body, base.size)
        except JournalError:
            return level1
        level2 = codecs.encode_delta(body, base_body, base.sha256)
        if level2 is not None and 2 * len(level2.data) <= len(level1.data):
            return level2
    return level1


def decode(conn: sqlite3.Connection, blob: StoredBlob, links: int = 0) -> bytes:
    """The raw body of ``blob`` (its bases first, for a delta; ``links`` is how many base links
    were followed to reach it). Raises :class:`JournalError` when it or a base does not decode,
    a base is missing, or reaching a whole blob takes more than
    :data:`~rsu.journal.codecs.MAX_CHAIN` links. The result is not hash-checked."""
    if blob.codec != codecs.ZSTD_DELTA:
        return codecs.decode(blob.codec, blob.data, blob.sha256, size=blob.size)
    if blob.base_sha256 is None:
        raise JournalError(f"blob {blob.sha256[:12]} is a delta without a base")
    if links >= codecs.MAX_CHAIN:
        raise JournalError(
            f"blob {blob.sha256[:12]}: its base {blob.base_sha256[:12]} is one delta too many "
            f"(chain longer than {codecs.MAX_CHAIN})"
        )
    base = load(conn, blob.base_sha256)
    if base is None:
        raise JournalError(f"blob {blob.sha256[:12]}: its base {blob.base_sha256[:12]} is missing")
    base_body = decode(conn, base, links + 1)
    return codecs.decode(blob.codec, blob.data, blob.sha256, base_body, blob.size)
