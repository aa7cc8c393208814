"""The journal store: append events (with raw bodies), read them back in order, verify, count.

One :class:`Journal` wraps one SQLite connection. Appends are serialised by a lock, so several
fetcher threads may share one ``Journal``; each append is one ``BEGIN IMMEDIATE`` transaction that
writes the body blob (when new) and the event row together, so a crash leaves either both or
neither. Several processes may append too: the chain head is read inside the write transaction.

Hash chain: ``hash = sha256(prev_hash | seq | recorded_at | kind | run_id | timing_partner_id |
race_id | event_id | sha256(payload) | body_sha256)`` (``|`` is the unit separator ``\\x1f``,
``None`` is the empty string); the first row's ``prev_hash`` is :data:`GENESIS`.
"""

from __future__ import annotations

import hashlib
import operator
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import sqlite_utils

from . import blobs, codecs
from .db import JournalError, database_error, file_of, open_db
from .events import Event, decode_event, encode_event, event_kind, redact_query
from .schema import ensure_schema

#: Triggers that make ``journal`` and ``journal_blobs`` append-only (see schema.py).
APPEND_ONLY_TRIGGERS = tuple(
    f"{table}_no_{op}" for table in ("journal", "journal_blobs") for op in ("update", "delete")
)
#: ``prev_hash`` of the first journal row.
GENESIS = "0" * 64
#: What is wrong with a blob whose content does not hash to its key.
BLOB_MISMATCH = "content does not match sha256"
#: Codec of new whole blobs by default (see :mod:`rsu.journal.codecs`).
DEFAULT_BLOB_CODEC = codecs.ZSTD


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def utc_now_iso() -> str:
    """Now in UTC, ISO 8601 with milliseconds and a ``Z`` suffix."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def chain_hash(
    prev_hash: str,
    seq: int,
    recorded_at: str,
    kind: str,
    run_id: str | None,
    timing_partner_id: int | None,
    race_id: int | None,
    event_id: int | None,
    payload: bytes,
    body_sha256: str | None,
) -> str:
    """The hash of one journal row given its predecessor's hash (see module docstring)."""
    parts = [
        prev_hash,
        str(seq),
        recorded_at,
        kind,
        run_id or "",
        "" if timing_partner_id is None else str(timing_partner_id),
        "" if race_id is None else str(race_id),
        "" if event_id is None else str(event_id),
        sha256_hex(payload),
        body_sha256 or "",
    ]
    return sha256_hex("\x1f".join(parts).encode())


@dataclass(frozen=True, slots=True)
class JournalRow:
    """One stored event with its row columns. ``event`` is decoded (and upcast); ``prev_hash`` and
    ``hash`` are the row's 64-hex-digit chain links (see the module docstring)."""

    seq: int
    recorded_at: str
    kind: str
    run_id: str | None
    timing_partner_id: int | None
    race_id: int | None
    event_id: int | None
    event: Event
    body_sha256: str | None
    prev_hash: str = ""
    hash: str = ""


@dataclass
class VerifyReport:
    """Result of :meth:`Journal.verify`. ``problems`` is a list of ``(seq or blob sha, message)``;
    ``ok`` is true when it is empty."""

    events: int = 0
    blobs: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class JournalStats:
    """Counts from :meth:`Journal.stats`. Byte counts are bytes: ``body_bytes_received`` sums the
    body of every event (repeats included), ``body_bytes_unique`` each distinct body once,
    ``body_bytes_stored`` the compressed blobs as stored."""

    events: int
    events_by_kind: dict[str, int]
    blobs: int
    body_bytes_received: int
    body_bytes_unique: int
    body_bytes_stored: int
    last_seq: int

    @property
    def ratio(self) -> float:
        """Received bytes per stored byte (dedup and compression together)."""
        return self.body_bytes_received / self.body_bytes_stored if self.body_bytes_stored else 0.0


class Journal:
    """Append-only event store on a SQLite database (see module docstring).

    Use :meth:`open` for a file path, or pass an open ``sqlite_utils.Database``.
    ``blob_codec`` is how new bodies are stored: ``"zstd"`` (zstd, and deltas against an earlier
    body of the same listing page) or ``"zlib"`` (zlib level 1 whole, as before zstd; kept for
    comparison). Every codec is read whatever this is. All methods raise :class:`JournalError` on
    database failures.
    """

    def __init__(
        self,
        db: sqlite_utils.Database,
        *,
        blob_codec: str = DEFAULT_BLOB_CODEC,
        migrate: bool = True,
    ) -> None:
        if blob_codec not in codecs.WRITE_CODECS:
            raise ValueError(f"blob_codec must be one of {sorted(codecs.WRITE_CODECS)}")
        self.db = db
        self.blob_codec = blob_codec
        self._ordinals = blobs.PageOrdinals()
        self._lock = threading.RLock()
        if not migrate:  # read-only: never create the tables, say there are none
            if not db["journal"].exists():
                raise JournalError(
                    f"database {file_of(db.conn)} holds no journal yet (nothing was fetched "
                    "into it; `rsu sync` starts one)"
                )
            return
        try:
            with self._lock:
                ensure_schema(db)
        except sqlite3.Error as exc:
            raise database_error(exc, "prepare the journal schema", db.conn) from exc

    @classmethod
    def open(
        cls, path: str | Path, *, blob_codec: str = DEFAULT_BLOB_CODEC, readonly: bool = False
    ) -> Journal:
        """Open (creating if needed) the journal in the database file ``path``. With
        ``readonly`` the file must exist and is neither created, migrated nor written (see
        :func:`rsu.journal.open_db`); appends then raise :class:`JournalError`."""
        return cls(open_db(path, readonly=readonly), blob_codec=blob_codec, migrate=not readonly)

    def close(self) -> None:
        """Close the underlying connection."""
        with self._lock:
            self.db.conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------

    def append(
        self,
        event: Event,
        body: bytes | None = None,
        *,
        run_id: str | None = None,
        timing_partner_id: int | None = None,
        race_id: int | None = None,
        event_id: int | None = None,
    ) -> int:
        """Append ``event`` (and its raw response ``body``, stored once per distinct content).

        ``body`` is the exact bytes received (any size; stored compressed, possibly as a delta
        against an earlier body of the same listing page, see :mod:`rsu.journal.blobs`); the
        scope ids must be integers (``None`` = not set).
        A ``query`` carrying credential parameters is redacted before it is stored. Returns the new
        row's ``seq``. Atomic: the blob and the row commit together; safe to call from several
        threads. Raises ``ValueError`` when a ``response_received`` event names a body sha256 other
        than the body's, and :class:`JournalError` when the database refuses the write.
        """
        scope = [
            None if v is None else operator.index(v) for v in (timing_partner_id, race_id, event_id)
        ]
        timing_partner_id, race_id, event_id = scope
        query = getattr(event, "query", None)
        if query:
            clean = redact_query(query)
            if clean != query:
                event = msgspec.structs.replace(event, query=clean)
        body_sha = sha256_hex(body) if body is not None else None
        declared = getattr(event, "body_sha256", "")
        if declared and body_sha is not None and declared != body_sha:
            raise ValueError(f"event declares body sha256 {declared[:12]}, body is {body_sha[:12]}")
        payload = encode_event(event)
        kind = event_kind(event)
        # Compress outside the lock (zstd and zlib release the GIL), and only bodies not yet
        # stored (blobs are never deleted: a trigger rejects it); a concurrent append of the same
        # new body is harmless (INSERT OR IGNORE below).
        encoded: codecs.Encoded | None = None
        key = blobs.listing_key(event, timing_partner_id, race_id, event_id, self._ordinals)
        if body is not None and body_sha is not None and not self.has_body(body_sha):
            encoded = blobs.encode(body, self.blob_codec, self._newest_bases(key))
        conn = self.db.conn
        with self._lock:
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    if encoded is not None and body is not None:
                        conn.execute(
                            "INSERT OR IGNORE INTO journal_blobs "
                            "(sha256, size, codec, data, base_sha256, listing_key) "
                            "VALUES (?, ?, ?, ?, ?, ?)",
                            (
                                body_sha,
                                len(body),
                                encoded.codec,
                                encoded.data,
                                encoded.base_sha256,
                                key,
                            ),
                        )
                    head = conn.execute(
                        "SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1"
                    ).fetchone()
                    seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
                    recorded_at = utc_now_iso()
                    h = chain_hash(
                        prev,
                        seq,
                        recorded_at,
                        kind,
                        run_id,
                        timing_partner_id,
                        race_id,
                        event_id,
                        payload,
                        body_sha,
                    )
                    conn.execute(
                        "INSERT INTO journal (seq, recorded_at, kind, run_id, timing_partner_id, "
                        "race_id, event_id, payload, body_sha256, prev_hash, hash) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            seq,
                            recorded_at,
                            kind,
                            run_id,
                            timing_partner_id,
                            race_id,
                            event_id,
                            payload,
                            body_sha,
                            prev,
                            h,
                        ),
                    )
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise database_error(exc, f"append {kind} to the journal", conn) from exc
        return seq

    def _newest_bases(self, key: str | None) -> blobs.Bases:
        if key is None or self.blob_codec != codecs.ZSTD:
            return blobs.Bases()
        try:
            with self._lock:
                return blobs.newest_bases(self.db.conn, key)
        except sqlite3.Error as exc:
            raise database_error(exc, "look up a journal blob", self.db.conn) from exc

    def _blob_exists(self, sha256: str | None) -> bool:
        return (
            self.db.conn.execute(
                "SELECT 1 FROM journal_blobs WHERE sha256 = ?", (sha256,)
            ).fetchone()
            is not None
        )

    def has_body(self, sha256: str) -> bool:
        """Whether a body with this sha256 (64 hex digits) is already stored."""
        try:
            with self._lock:
                return self._blob_exists(sha256)
        except sqlite3.Error as exc:
            raise database_error(exc, "look up a journal blob", self.db.conn) from exc

    # -- reading ---------------------------------------------------------------------------

    def last_seq(self) -> int:
        """The highest seq, 0 for an empty journal."""
        try:
            with self._lock:
                row = self.db.conn.execute("SELECT MAX(seq) FROM journal").fetchone()
        except sqlite3.Error as exc:
            raise database_error(exc, "read the journal", self.db.conn) from exc
        return int(row[0] or 0)

    def read(self, after_seq: int = 0, batch_size: int = 500) -> Iterator[list[JournalRow]]:
        """Yield the events with ``seq > after_seq`` in seq order, as lists of at most
        ``batch_size`` (>= 1) rows. Rows appended while iterating are included."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        cursor = after_seq
        while True:
            rows = self._select("WHERE seq > ? ORDER BY seq LIMIT ?", (cursor, batch_size))
            if not rows:
                return
            yield rows
            cursor = rows[-1].seq

    def get(self, seq: int) -> JournalRow:
        """The event with this ``seq``. Raises ``KeyError`` when there is none."""
        rows = self._select("WHERE seq = ?", (seq,))
        if not rows:
            raise KeyError(f"no journal event with seq {seq}")
        return rows[0]

    def find(
        self,
        *,
        kind: str | None = None,
        timing_partner_id: int | None = None,
        race_id: int | None = None,
        event_id: int | None = None,
        run_id: str | None = None,
        since: str | None = None,
        after_seq: int = 0,
        limit: int | None = None,
        newest_first: bool = False,
        before_seq: int | None = None,
    ) -> list[JournalRow]:
        """Events matching every given filter, oldest first unless ``newest_first``.

        ``since`` is a lower bound on ``recorded_at`` in the stored format
        (``YYYY-MM-DDTHH:MM:SS.mmmZ``, UTC; compared as text, so a prefix such as ``2025-01-31``
        works); ``after_seq``/``before_seq`` bound ``seq`` exclusively; ``limit`` caps the count.
        """
        clauses: list[str] = ["seq > ?"]
        params: list[Any] = [after_seq]
        if before_seq is not None:
            clauses.append("seq < ?")
            params.append(before_seq)
        for col, val in (
            ("kind", kind),
            ("timing_partner_id", timing_partner_id),
            ("race_id", race_id),
            ("event_id", event_id),
            ("run_id", run_id),
        ):
            if val is not None:
                clauses.append(f"{col} = ?")
                params.append(val)
        if since is not None:
            clauses.append("recorded_at >= ?")
            params.append(since)
        sql = "WHERE " + " AND ".join(clauses) + f" ORDER BY seq {'DESC' if newest_first else ''}"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return self._select(sql, tuple(params))

    def body(self, sha256: str) -> bytes:
        """The exact raw body stored under ``sha256`` (decoded whatever its codec; a delta reads
        its base blob too), checked against ``sha256``. Raises ``KeyError`` when absent and
        :class:`JournalError` when the stored blob is unreadable or its content does not hash to
        ``sha256`` (a forged or damaged blob)."""
        try:
            with self._lock:
                blob = blobs.load(self.db.conn, sha256)
                if blob is None:
                    raise KeyError(f"no body with sha256 {sha256}")
                body = blobs.decode(self.db.conn, blob)
        except sqlite3.Error as exc:
            raise database_error(exc, "read a journal blob", self.db.conn) from exc
        if sha256_hex(body) != sha256:
            raise JournalError(f"blob {sha256[:12]}: {BLOB_MISMATCH} (forged or damaged)")
        return body

    def head(self) -> tuple[int, str] | None:
        """``(seq, hash)`` of the newest event, ``None`` for an empty journal."""
        with self._lock:
            return journal_head(self.db.conn)

    def check_head(self, seq: int, hash_: str) -> str | None:
        """Compare the journal with a head ``(seq, hash)`` kept outside the file (see
        :func:`parse_head`): ``None`` when the event ``seq`` exists with that hash (the chain
        then vouches for every event before it), else a message naming both heads."""
        with self._lock:
            row = self.db.conn.execute("SELECT hash FROM journal WHERE seq = ?", (seq,)).fetchone()
            now = journal_head(self.db.conn)
        ours = "empty" if now is None else f"{now[0]}:{now[1]}"
        if row is None:
            return (
                f"expected head {seq}:{hash_} is not in the journal, whose head is {ours}: "
                "events were deleted from its tail (or this is another journal)"
            )
        if row[0] != hash_:
            return (
                f"expected head {seq}:{hash_}, but seq {seq} has hash {row[0]} (journal head "
                f"{ours}): the journal was rewritten (or this is another journal)"
            )
        return None

    def _select(self, where: str, params: tuple[Any, ...]) -> list[JournalRow]:
        sql = (
            "SELECT seq, recorded_at, kind, run_id, timing_partner_id, race_id, event_id, "
            f"payload, body_sha256, prev_hash, hash FROM journal {where}"
        )
        try:
            with self._lock:
                raw = self.db.conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise database_error(exc, "read the journal", self.db.conn) from exc
        rows = []
        for r in raw:
            try:
                event = decode_event(r[7])
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                raise JournalError(f"journal event {r[0]} does not decode: {exc}") from exc
            rows.append(
                JournalRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], event, r[8], r[9], r[10])
            )
        return rows

    # -- integrity and stats ------------------------------------------------------------------

    def verify(self) -> VerifyReport:
        """Recompute every blob's sha256 and size, the hash chain and seq continuity.

        Problems are reported, never raised: a gap in seq, a row whose ``prev_hash`` or ``hash``
        does not match, a payload that no longer decodes, a body reference with no blob, a blob
        whose content does not match its key.
        """
        report = VerifyReport()
        conn = self.db.conn
        with self._lock:
            prev, expected_seq = GENESIS, 1
            for r in conn.execute(
                "SELECT seq, recorded_at, kind, run_id, timing_partner_id, race_id, event_id, "
                "payload, body_sha256, prev_hash, hash FROM journal ORDER BY seq"
            ):
                seq = r[0]
                report.events += 1
                if seq != expected_seq:
                    report.problems.append(
                        (str(seq), f"seq gap: expected {expected_seq}, found {seq}")
                    )
                if r[9] != prev:
                    report.problems.append((str(seq), "prev_hash does not match previous row"))
                h = chain_hash(r[9], seq, r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8])
                if h != r[10]:
                    report.problems.append((str(seq), "hash mismatch: row was altered"))
                try:
                    decoded = decode_event(r[7])
                    if event_kind(decoded) != r[2]:
                        report.problems.append((str(seq), "kind column differs from payload"))
                except Exception as exc:
                    report.problems.append((str(seq), f"payload does not decode: {exc}"))
                prev, expected_seq = r[10], seq + 1
            triggers = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            }
            for name in APPEND_ONLY_TRIGGERS:
                if name not in triggers:
                    report.problems.append(
                        ("schema", f"trigger {name} is missing: the journal is not append-only")
                    )
            bad = self._verify_blobs(report)
            for seq, sha in conn.execute(
                "SELECT seq, body_sha256 FROM journal WHERE body_sha256 IS NOT NULL ORDER BY seq"
            ):
                if sha in bad:
                    report.problems.append((str(seq), f"body blob {sha[:12]} is bad: {bad[sha]}"))
            missing = conn.execute(
                "SELECT j.seq FROM journal j LEFT JOIN journal_blobs b ON b.sha256 = j.body_sha256 "
                "WHERE j.body_sha256 IS NOT NULL AND b.sha256 IS NULL ORDER BY j.seq"
            ).fetchall()
            for (seq,) in missing:
                report.problems.append((str(seq), "body blob missing"))
        report.problems.sort(key=lambda p: (not p[0].isdigit(), int(p[0]) if p[0].isdigit() else 0))
        return report

    def _verify_blobs(self, report: VerifyReport) -> dict[str, str]:
        """Decode every blob and check its size and sha256; problems go to ``report``. Returns
        ``{sha256: what is wrong}`` of the bad blobs."""
        bad: dict[str, str] = {}
        conn = self.db.conn
        for row in conn.execute(
            "SELECT sha256, size, codec, data, base_sha256 FROM journal_blobs ORDER BY sha256"
        ):
            blob = blobs.StoredBlob(*row)
            report.blobs += 1
            try:
                body = blobs.decode(conn, blob)
            except JournalError as exc:
                bad[blob.sha256] = str(exc)
            else:
                if len(body) != blob.size or sha256_hex(body) != blob.sha256:
                    bad[blob.sha256] = BLOB_MISMATCH
            if blob.sha256 in bad:
                report.problems.append((f"blob {blob.sha256[:12]}", bad[blob.sha256]))
        return bad

    def stats(self) -> JournalStats:
        """Events per kind and body bytes received vs unique vs stored."""
        conn = self.db.conn
        with self._lock:
            by_kind = dict(
                conn.execute("SELECT kind, COUNT(*) FROM journal GROUP BY kind ORDER BY kind")
            )
            received = conn.execute(
                "SELECT COALESCE(SUM(b.size), 0) FROM journal j "
                "JOIN journal_blobs b ON b.sha256 = j.body_sha256"
            ).fetchone()[0]
            blobs, unique, stored = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0), COALESCE(SUM(LENGTH(data)), 0) "
                "FROM journal_blobs"
            ).fetchone()
        return JournalStats(
            events=sum(by_kind.values()),
            events_by_kind=by_kind,
            blobs=blobs,
            body_bytes_received=received,
            body_bytes_unique=unique,
            body_bytes_stored=stored,
            last_seq=self.last_seq(),
        )


def journal_head(conn: sqlite3.Connection) -> tuple[int, str] | None:
    """``(seq, hash)`` of the newest event in the database behind ``conn`` (read-only: no schema
    is created), ``None`` when the journal is empty or absent."""
    try:
        row = conn.execute("SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1").fetchone()
    except sqlite3.OperationalError:  # no journal table (yet)
        return None
    return (int(row[0]), str(row[1])) if row else None


def parse_head(text: str) -> tuple[int, str]:
    """``"SEQ:HASH"`` (a seq >= 1 and 64 hex digits, as printed by ``rsu status --json`` and the
    fetch summary's ``journal_head``) as ``(seq, hash)``. Raises ``ValueError`` naming what is
    wrong."""
    seq_text, sep, hash_ = text.strip().partition(":")
    if not sep or not seq_text.isdigit() or int(seq_text) < 1:
        raise ValueError(f"head must be SEQ:HASH with SEQ >= 1, got {text.strip()[:80]!r}")
    hash_ = hash_.lower()
    if len(hash_) != 64 or any(c not in "0123456789abcdef" for c in hash_):
        raise ValueError(f"the HASH of SEQ:HASH must be 64 hex digits, got {hash_[:80]!r}")
    return int(seq_text), hash_


def head_json(head: tuple[int, str] | None) -> dict[str, Any] | None:
    """A head as ``{"seq": int, "hash": str, "text": "SEQ:HASH"}`` for JSON output (``None``
    stays ``None``)."""
    if head is None:
        return None
    return {"seq": head[0], "hash": head[1], "text": f"{head[0]}:{head[1]}"}
