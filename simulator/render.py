"""Response shapes: the envelopes RunSignUp wraps around races, events and registrations.

- ``GET /Rest/races``: ``{"races": [{"race": {...}}, ...]}`` (no paging metadata);
- ``GET /Rest/race/{id}``: ``{"race": {..., "events": [...]}}``;
- ``GET /Rest/race/{id}/participants``: a top-level array, one element per requested event,
  ``[{"event": {"event_id": N, "participants": []}, "participants": [...]}]``;
- ``GET /Rest/race/{id}/removed-participants``:
  ``[{"event": {"event_id": N, "participants": [...]}}]``.

JSON rows are cached per registration as encoded bytes (PHP ``\\/`` escapes included), so a
2,500-row page is one ``b",".join`` away.
"""

from __future__ import annotations

from typing import Any

from .formats import encode_json
from .world import Event, Race


def race_object(
    race: Race,
    *,
    with_events: bool,
    include_questions: bool = False,
    include_waiver: bool = False,
    race_headings: bool = False,
    participant_caps: bool = False,
    race_event_days_id: int | None = None,
) -> dict[str, Any]:
    """The ``race`` object (a fresh dict) for ``/Rest/races`` items or ``/Rest/race/{id}``."""
    out = dict(race.data)
    if include_waiver:
        out["waiver"] = race.waiver
    if with_events:
        events = []
        for ev in race.events.values():
            if (
                race_event_days_id is not None
                and ev.data["race_event_days_id"] != race_event_days_id
            ):
                continue
            data = dict(ev.data)
            if participant_caps:
                data["participant_cap"] = None if ev.event_id % 3 else 2000
            events.append(data)
        out["events"] = events
    if include_questions:
        out["questions"] = [dict(q) for q in race.questions]
    if race_headings:
        out["headings"] = [dict(h) for h in race.headings]
    return out


def participant_view(
    row: dict[str, Any], include_questions: bool, supports_nb: bool
) -> dict[str, Any]:
    """One participant dict as served for the given flags (``row`` is the stored full row)."""
    if include_questions and (supports_nb or row["user"].get("gender") != "X"):
        return row
    out = dict(row)
    if not include_questions:
        out.pop("question_responses", None)
    if not supports_nb and row["user"].get("gender") == "X":
        out["user"] = {**row["user"], "gender": None}
    return out


def participant_json(
    event: Event, reg_id: int, include_questions: bool, supports_nb: bool
) -> bytes:
    """Encoded JSON bytes of one active participant row, cached until the row changes."""
    row = event.active[reg_id]
    if not supports_nb and row["user"].get("gender") == "X":
        return encode_json(participant_view(row, include_questions, supports_nb))
    key = (reg_id, include_questions)
    cached = event.row_cache.get(key)
    if cached is None:
        cached = encode_json(participant_view(row, include_questions, True))
        event.row_cache[key] = cached
    return cached


def removed_view(row: dict[str, Any], condensed: bool) -> dict[str, Any]:
    """One removed-participant row; ``condensed_format=T`` keeps only ids and the reason."""
    if not condensed:
        return row
    return {
        "registration_id": row["registration_id"],
        "removed_reason": row["removed_reason"],
        "new_registration_id": row["new_registration_id"],
    }


def participants_json(pages: list[tuple[int, list[bytes]]]) -> bytes:
    """Assemble a participants body from ``(event_id, encoded rows)`` pairs."""
    parts = [b"["]
    for n, (event_id, rows) in enumerate(pages):
        if n:
            parts.append(b",")
        parts.append(b'{"event":{"event_id":%d,"participants":[]},"participants":[' % event_id)
        parts += [b",".join(rows), b"]}"]
    parts.append(b"]")
    return b"".join(parts)


def participants_object(pages: list[tuple[int, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """The participants response as Python objects (for XML output)."""
    return [
        {"event": {"event_id": eid, "participants": []}, "participants": rows}
        for eid, rows in pages
    ]


def removed_object(pages: list[tuple[int, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """The removed-participants response: rows nested inside ``event.participants``."""
    return [{"event": {"event_id": eid, "participants": rows}} for eid, rows in pages]


def removed_json(pages: list[tuple[int, list[dict[str, Any]]]]) -> bytes:
    """Encoded removed-participants body."""
    return encode_json(removed_object(pages))
