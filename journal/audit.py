"""Auditing helpers behind ``rsu journal``: one-line summaries, JSON views, ``--since`` parsing and
importing raw response files saved from the API.

Everything here works on a :class:`~rsu.journal.store.Journal`; the CLI only formats and exits.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from .db import JournalError
from .envelope import runsignup_error
from .events import EVENT_TYPES, ResponseReceived, RunFinished, RunStarted
from .store import Journal, JournalRow, sha256_hex

#: Bodies up to this many bytes are peeked at for a RunSignUp error object in summaries.
PEEK_LIMIT = 64 * 1024

#: Endpoint name -> URL path template, for ``rsu journal import``.
IMPORT_PATHS: dict[str, str] = {
    "races": "/Rest/races",
    "race": "/Rest/race/{race_id}",
    "participants": "/Rest/race/{race_id}/participants",
    "removed_participants": "/Rest/race/{race_id}/removed-participants",
}
_NEEDS_RACE = frozenset({"race", "participants", "removed_participants"})
_NEEDS_EVENT = frozenset({"participants", "removed_participants"})

#: Every event kind, sorted (for validating ``--kind``).
KINDS: tuple[str, ...] = tuple(sorted(EVENT_TYPES))


def rsu_error(body: bytes) -> tuple[int | None, str] | None:
    """``(error_code, error_msg)`` when the raw ``body`` is a RunSignUp error object, else
    ``None`` (see :func:`rsu.journal.envelope.runsignup_error`); a non-JSON body is no error."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: deep nesting
        return None
    return runsignup_error(doc)


def summarize(journal: Journal, row: JournalRow) -> str:
    """A short human summary of one event, for ``rsu journal log``.

    For ``response_received``: endpoint, HTTP status, body size in bytes, page or cursor, and the
    RunSignUp error code when the (small) body is an error object.
    """
    ev = row.event
    if isinstance(ev, ResponseReceived):
        size = ev.body_size
        parts = [ev.endpoint, f"HTTP {ev.status}"]
        body: bytes | None = None
        if row.body_sha256 is not None:
            if not size or size <= PEEK_LIMIT:
                try:
                    body = journal.body(row.body_sha256)
                except KeyError:
                    parts.append("body missing")
                except JournalError:
                    parts.append("body damaged (see rsu journal verify)")
                else:
                    size = len(body)
            parts.append(f"{size} B")
        else:
            parts.append("no body")
        if ev.page is not None:
            parts.append(f"page {ev.page}")
        if ev.cursor is not None:
            parts.append(f"after {ev.cursor}")
        if body is not None and len(body) <= PEEK_LIMIT:
            err = rsu_error(body)
            if err is not None:
                code, msg = err
                parts.append(f"RSU error {code if code is not None else '?'}: {msg or ''}".strip())
        return " ".join(parts)
    fields = msgspec.structs.asdict(ev)
    keys = {
        "run_started": ("mode",),
        "request_failed": ("endpoint", "error_class", "attempt"),
        "fetch_failed": ("endpoint", "error_code", "http_status", "attempts"),
        "listing_completed": ("endpoint", "pages", "rows", "complete", "ok"),
        "run_finished": ("status",),
    }.get(row.kind, ())
    return " ".join(f"{k}={fields[k]}" for k in keys if k in fields and fields[k] is not None)


def row_dict(row: JournalRow) -> dict[str, Any]:
    """One journal row as a JSON-ready dict: the row columns plus ``event`` (the decoded payload
    with its ``kind`` tag)."""
    return {
        "seq": row.seq,
        "recorded_at": row.recorded_at,
        "kind": row.kind,
        "run_id": row.run_id,
        "timing_partner_id": row.timing_partner_id,
        "race_id": row.race_id,
        "event_id": row.event_id,
        "body_sha256": row.body_sha256,
        "prev_hash": row.prev_hash,
        "hash": row.hash,
        "event": msgspec.to_builtins(row.event),
    }


def parse_since(value: str) -> str:
    """Normalise an ISO 8601 date or datetime to the stored ``recorded_at`` format
    (``YYYY-MM-DDTHH:MM:SS.mmmZ``, UTC). A naive value is taken as UTC. Raises ``ValueError``."""
    dt = datetime.fromisoformat(value.strip())
    dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def iter_events(
    journal: Journal,
    *,
    kind: str | None = None,
    timing_partner_id: int | None = None,
    race_id: int | None = None,
    run_id: str | None = None,
    since: str | None = None,
    limit: int | None = None,
    newest_first: bool = False,
    batch_size: int = 500,
) -> Iterator[JournalRow]:
    """Yield matching events page by page (so a large journal is never loaded at once), oldest
    first unless ``newest_first``, at most ``limit`` of them. Filters as in
    :meth:`Journal.find`."""
    remaining = limit
    after, before = 0, None
    while remaining is None or remaining > 0:
        n = batch_size if remaining is None else min(batch_size, remaining)
        rows = journal.find(
            kind=kind,
            timing_partner_id=timing_partner_id,
            race_id=race_id,
            run_id=run_id,
            since=since,
            after_seq=after,
            before_seq=before,
            limit=n,
            newest_first=newest_first,
        )
        yield from rows
        if remaining is not None:
            remaining -= len(rows)
        if len(rows) < n:
            return
        if newest_first:
            before = rows[-1].seq
        else:
            after = rows[-1].seq


@dataclass
class ImportedFile:
    """One file appended by :func:`import_files`: its ``seq``, size in bytes, sha256, and a
    ``warning`` (not valid JSON, or a RunSignUp error body) or ``None``."""

    path: Path
    seq: int
    size: int
    sha256: str
    warning: str | None = None


@dataclass
class ImportResult:
    """What :func:`import_files` appended: the run id, the ``run_started``/``run_finished`` seqs
    and one :class:`ImportedFile` per file, in order."""

    run_id: str
    started_seq: int
    finished_seq: int
    files: list[ImportedFile] = field(default_factory=list)


def import_path(
    endpoint: str,
    race_id: int | None,
    event_id: int | None,
    timing_partner_id: int | None = None,
) -> str:
    """Check the options of an import and return the URL path of ``endpoint``.

    Raises ``ValueError`` (a usage error) for an unknown endpoint, a missing ``timing_partner_id``
    (every endpoint: the projector files each row under its timing partner), ``race_id`` (race,
    participants, removed_participants) or ``event_id`` (participants, removed_participants), or
    an id given to an endpoint that does not take it.
    """
    if endpoint not in IMPORT_PATHS:
        raise ValueError(f"unknown endpoint {endpoint!r}; choose one of {', '.join(IMPORT_PATHS)}")
    if endpoint in _NEEDS_RACE and race_id is None:
        raise ValueError(f"endpoint {endpoint} needs --race-id")
    if endpoint in _NEEDS_EVENT and event_id is None:
        raise ValueError(f"endpoint {endpoint} needs --event-id")
    if endpoint not in _NEEDS_RACE and race_id is not None:
        raise ValueError(f"endpoint {endpoint} takes no --race-id")
    if endpoint not in _NEEDS_EVENT and event_id is not None:
        raise ValueError(f"endpoint {endpoint} takes no --event-id")
    if timing_partner_id is None:
        raise ValueError(
            f"endpoint {endpoint} needs --partner (the timing_partner_id the files were "
            "fetched for; rsu project files every row under its timing partner)"
        )
    return IMPORT_PATHS[endpoint].format(race_id=race_id)


def import_files(
    journal: Journal,
    files: Sequence[Path],
    *,
    endpoint: str,
    race_id: int | None = None,
    event_id: int | None = None,
    timing_partner_id: int | None = None,
    tool_version: str = "",
) -> ImportResult:
    """Append raw API response files as ``response_received`` events (HTTP 200), byte-exact.

    The files are framed by a ``run_started`` (mode ``"import"``) and a ``run_finished`` event under
    a fresh run id ``import-<uuid4 hex>``. Every file is read before anything is appended, so an
    unreadable file appends nothing (``OSError``). A file that is not valid JSON, or is a RunSignUp
    error object, is still imported and carries a ``warning``. Raises ``ValueError`` for bad
    options (see :func:`import_path`).
    """
    path = import_path(endpoint, race_id, event_id, timing_partner_id)
    if not files:
        raise ValueError("no files to import")
    bodies = [(Path(f), Path(f).read_bytes()) for f in files]
    query = {"event_id": str(event_id)} if event_id is not None else {}
    run_id = f"import-{uuid.uuid4().hex}"
    scope = dict(timing_partner_id=timing_partner_id, race_id=race_id, event_id=event_id)
    started = journal.append(
        RunStarted(
            mode="import",
            scope={"endpoint": endpoint, "files": [str(p) for p, _ in bodies], **scope},
            tool_version=tool_version,
        ),
        run_id=run_id,
        timing_partner_id=timing_partner_id,
        race_id=race_id,
    )
    result = ImportResult(run_id=run_id, started_seq=started, finished_seq=0)
    warnings = 0
    for p, body in bodies:
        sha = sha256_hex(body)
        warning = None
        try:
            json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            warning = f"not valid JSON ({exc}); imported byte-exact"
        else:
            err = rsu_error(body)
            if err is not None:
                warning = f"body is a RunSignUp error (code {err[0]}: {err[1]})"
        warnings += warning is not None
        seq = journal.append(
            ResponseReceived(
                endpoint=endpoint,
                path=path,
                query=query,
                status=200,
                content_type="application/json",
                body_sha256=sha,
                body_size=len(body),
                race_id=race_id,
                event_id=event_id,
            ),
            body,
            run_id=run_id,
            timing_partner_id=timing_partner_id,
            race_id=race_id,
            event_id=event_id,
        )
        result.files.append(ImportedFile(p, seq, len(body), sha, warning))
    result.finished_seq = journal.append(
        RunFinished(
            status="ok",
            counts={
                "files": len(bodies),
                "warnings": warnings,
                "bytes_received": sum(len(b) for _, b in bodies),
            },
        ),
        run_id=run_id,
        timing_partner_id=timing_partner_id,
        race_id=race_id,
    )
    return result
