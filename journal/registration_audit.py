"""The history of one registration, read from the raw responses in the journal (``rsu audit``).

It answers "the bib you gave us was wrong": every version of the registration that RunSignUp
served, oldest first, with the time RunSignUp served it, the journal seq, and what changed. The
sources are the raw ``/participants`` and ``/removed-participants`` bodies
(``shared/docs/runsignup-api.md`` §3.3, §3.4, §4) and the ``listing_completed`` events:

- a registration in a ``participants`` body is active; its fields are compared, as sent (raw
  JSON values, not normalised), with the previous version: ``user.*`` and ``user.address.*`` are
  flattened to the projection's column names (``first_name``, ``zipcode``, ...); an ``event_id``
  change is the registration moving to another event of the race;
- a registration in a ``removed_participants`` body is removed, with RunSignUp's
  ``removed_reason`` (``cleared``, ``removed``, ``transferred``, ``deferred``) and, for a transfer,
  ``new_registration_id``;
- a complete, successful participants listing of its event that does not hold an active
  registration removes it (reason ``missing_from_listing``, as the projector does);
- ``last_modified``, ``last_modified_ts`` and ``registration_date`` are shown but not diffed
  (the two listings send them in different formats).

A version served again unchanged counts as seen again (``seen``, ``last_seen_seq``), not as a
new version. Times are UTC: ``served_at`` is the response's HTTP ``Date`` header (RunSignUp's
clock) when it was recorded, else ``recorded_at`` (rsu's clock); ``served_at_source`` says which.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

from .envelope import _digits
from .events import ListingCompleted, ResponseReceived
from .store import Journal, JournalRow

#: The listings that carry registrations.
LISTINGS = ("participants", "removed_participants")
#: Fields shown with every version but never reported as a change.
NOT_DIFFED = frozenset({"last_modified", "last_modified_ts", "registration_date"})
#: Fields shown for the first version in the text view, in this order.
SUMMARY_FIELDS = (
    "event_id",
    "bib_num",
    "chip_num",
    "first_name",
    "last_name",
    "gender",
    "dob",
    "team_name",
)


@dataclass(frozen=True)
class Change:
    """One field of a registration that changed between two versions: raw JSON values as sent
    (``None`` when the field was absent or null)."""

    field: str
    old: Any
    new: Any


@dataclass
class Version:
    """One version of a registration as RunSignUp served it.

    ``seq`` is the journal event of the response (``rsu journal show SEQ --body``);
    ``served_at`` is ISO 8601 UTC; ``status`` is ``active`` or ``removed``; ``changes`` compares
    with the previous version (empty for the first); ``record`` is the flattened registration;
    ``seen``/``last_seen_seq`` count the responses that served this version unchanged;
    ``older_copy`` is true when its ``last_modified`` (epoch seconds) is earlier than the previous
    version's: a stale copy, which the projection does not let move a registration back to
    another event.
    """

    seq: int
    served_at: str
    served_at_source: str
    recorded_at: str
    endpoint: str
    event_id: int | None
    status: str
    removed_reason: str | None = None
    new_registration_id: int | None = None
    changes: list[Change] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)
    seen: int = 1
    last_seen_seq: int = 0
    older_copy: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (changes as ``{"field", "old", "new"}``)."""
        return {
            "seq": self.seq,
            "served_at": self.served_at,
            "served_at_source": self.served_at_source,
            "recorded_at": self.recorded_at,
            "endpoint": self.endpoint,
            "event_id": self.event_id,
            "status": self.status,
            "removed_reason": self.removed_reason,
            "new_registration_id": self.new_registration_id,
            "changes": [{"field": c.field, "old": c.old, "new": c.new} for c in self.changes],
            "record": self.record,
            "seen": self.seen,
            "last_seen_seq": self.last_seen_seq,
            "older_copy": self.older_copy,
        }


@dataclass
class Timeline:
    """The versions of one registration under one timing partner, oldest first.
    ``transferred_from`` lists registrations whose transfer named this one as
    ``new_registration_id``; ``seen_seqs`` are the journal seqs of the responses that served
    it."""

    timing_partner_id: int | None
    race_id: int | None
    versions: list[Version] = field(default_factory=list)
    transferred_from: list[int] = field(default_factory=list)
    seen_seqs: set[int] = field(default_factory=set, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "timing_partner_id": self.timing_partner_id,
            "race_id": self.race_id,
            "transferred_from": self.transferred_from,
            "versions": [v.to_dict() for v in self.versions],
        }


@dataclass
class RegistrationAudit:
    """What :func:`audit_registration` found: one :class:`Timeline` per timing partner that was
    served the registration (empty when the journal never held it)."""

    registration_id: int
    timelines: list[Timeline] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "registration_id": self.registration_id,
            "timelines": [t.to_dict() for t in self.timelines],
        }


def served_time(row: JournalRow) -> tuple[str, str]:
    """``(ISO 8601 UTC, source)`` of when RunSignUp served the response in ``row``: its HTTP
    ``Date`` header (source ``"Date header"``) when recorded and readable, else the journal's
    ``recorded_at`` (source ``"recorded_at"``)."""
    ev = row.event
    raw = ev.server_date if isinstance(ev, ResponseReceived) else ""
    if raw:
        try:
            moment = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "Date header"
    return row.recorded_at, "recorded_at"


def _mentions(registration_id: int) -> re.Pattern[bytes]:
    return re.compile(rb'"(?:new_)?registration_id"\s*:\s*"?%d"?(?![0-9])' % registration_id)


def _rows(doc: Any) -> Iterator[tuple[int | None, dict[str, Any]]]:
    """``(event_id of the element, registration dict)`` for every registration in a decoded
    participants or removed-participants body: a top-level array or a bare object, rows in
    ``participants`` or in ``event.participants``."""
    for element in doc if isinstance(doc, list) else [doc]:
        if not isinstance(element, dict):
            continue
        event = element.get("event")
        event_id = event.get("event_id") if isinstance(event, dict) else None
        inner = event.get("participants") if isinstance(event, dict) else None
        for rows in (element.get("participants"), inner):
            if isinstance(rows, list):
                for reg in rows:
                    if isinstance(reg, dict):
                        yield _as_int(event_id), reg


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _digits(value.strip()):
        return int(value.strip())
    return None


def flatten(reg: dict[str, Any]) -> dict[str, Any]:
    """A registration as one flat dict of raw values: top-level fields, ``user.*`` and
    ``user.address.*`` under their own names (``user.user_id`` stays ``user_id``); nested lists
    and objects (``question_responses``) as compact JSON text."""
    out: dict[str, Any] = {}
    for key, value in reg.items():
        if key == "user" and isinstance(value, dict):
            for ukey, uvalue in value.items():
                if ukey == "address" and isinstance(uvalue, dict):
                    out.update({akey: _scalar(a) for akey, a in uvalue.items()})
                else:
                    out[ukey] = _scalar(uvalue)
        else:
            out[key] = _scalar(value)
    return out


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _scalar(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return value


def _shape(version: Version) -> str:
    return "removed" if version.endpoint == "removed_participants" else "active"


def _changes(old: Version, new: Version) -> list[Change]:
    """What changed from ``old`` to ``new``: status, removal reason and transfer target first,
    then the registration's fields. A removed-participants row carries fewer fields than a
    participants row, so between the two only the fields both have are compared."""
    out = [
        Change(name, getattr(old, name), getattr(new, name))
        for name in ("status", "removed_reason", "new_registration_id")
        if getattr(old, name) != getattr(new, name)
    ]
    skip = NOT_DIFFED | {"removed_reason", "new_registration_id"}
    keys = list(dict.fromkeys([*old.record, *new.record]))
    if _shape(old) != _shape(new):
        keys = [k for k in keys if k in old.record and k in new.record]
    out += [
        Change(k, old.record.get(k), new.record.get(k))
        for k in keys
        if k not in skip and old.record.get(k) != new.record.get(k)
    ]
    return out


def audit_registration(
    journal: Journal, registration_id: int, *, timing_partner_id: int | None = None
) -> RegistrationAudit:
    """Every version of registration ``registration_id`` the journal holds, oldest first (see
    the module docstring), optionally only as served to ``timing_partner_id``.

    Reads every successful ``participants``/``removed_participants`` response (bodies are only
    decoded when their raw bytes mention the id; each distinct body once) and the
    ``listing_completed`` events. Never raises for a bad body (it is skipped); raises
    :class:`~rsu.journal.JournalError` for database failures.
    """
    result = RegistrationAudit(registration_id)
    timelines: dict[int | None, Timeline] = {}
    mentions = _mentions(registration_id)
    parsed: dict[str, list[tuple[int | None, dict[str, Any]]]] = {}
    after = 0
    while True:
        batch = journal.find(timing_partner_id=timing_partner_id, after_seq=after, limit=500)
        for row in batch:
            ev = row.event
            if isinstance(ev, ResponseReceived):
                if ev.endpoint in LISTINGS and 200 <= ev.status < 300 and row.body_sha256:
                    hits = parsed.get(row.body_sha256)
                    if hits is None:
                        hits = parsed[row.body_sha256] = _find(
                            journal, row, registration_id, mentions
                        )
                    for element_event, reg in hits:
                        _apply(result, timelines, row, ev, element_event, reg)
            elif isinstance(ev, ListingCompleted):
                timeline = timelines.get(row.timing_partner_id)
                if timeline is not None:
                    _listing_completed(timeline, row, ev)
        if len(batch) < 500:
            break
        after = batch[-1].seq
    result.timelines = list(timelines.values())
    return result


def _find(
    journal: Journal, row: JournalRow, registration_id: int, mentions: re.Pattern[bytes]
) -> list[tuple[int | None, dict[str, Any]]]:
    """The rows of ``row``'s body that are the registration or a transfer to it."""
    try:
        body = journal.body(row.body_sha256 or "")
    except KeyError:
        return []
    if not mentions.search(body):
        return []
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: deep nesting
        return []
    return [
        (event_id, reg)
        for event_id, reg in _rows(doc)
        if registration_id
        in (_as_int(reg.get("registration_id")), _as_int(reg.get("new_registration_id")))
    ]


def _older(new: Version, old: Version) -> bool:
    """Whether ``new`` is a participants copy with an earlier ``last_modified`` than ``old``."""
    new_lm, old_lm = new.record.get("last_modified"), old.record.get("last_modified")
    return (
        _shape(new) == _shape(old) == "active"
        and isinstance(new_lm, int)
        and isinstance(old_lm, int)
        and new_lm < old_lm
    )


def _version(
    row: JournalRow, endpoint: str, event_id: int | None, status: str, **fields: Any
) -> Version:
    """A :class:`Version` first seen in journal event ``row``."""
    served, source = served_time(row)
    return Version(
        seq=row.seq,
        served_at=served,
        served_at_source=source,
        recorded_at=row.recorded_at,
        endpoint=endpoint,
        event_id=event_id,
        status=status,
        last_seen_seq=row.seq,
        **fields,
    )


def _apply(
    result: RegistrationAudit,
    timelines: dict[int | None, Timeline],
    row: JournalRow,
    ev: ResponseReceived,
    element_event: int | None,
    reg: dict[str, Any],
) -> None:
    tp = row.timing_partner_id
    race_id = ev.race_id if ev.race_id is not None else row.race_id
    if _as_int(reg.get("registration_id")) != result.registration_id:
        # A transfer that names this registration as the new one.
        old_id = _as_int(reg.get("registration_id"))
        timeline = timelines.setdefault(tp, Timeline(tp, race_id))
        if old_id is not None and old_id not in timeline.transferred_from:
            timeline.transferred_from.append(old_id)
        return
    timeline = timelines.setdefault(tp, Timeline(tp, race_id))
    timeline.seen_seqs.add(row.seq)
    record = flatten(reg)
    event_id = _as_int(record.get("event_id"))
    if event_id is None:
        event_id = element_event if element_event is not None else ev.event_id
        record["event_id"] = event_id
    removed = ev.endpoint == "removed_participants"
    status = "removed" if removed else "active"
    version = _version(
        row,
        ev.endpoint,
        event_id,
        status,
        removed_reason=_text(record.get("removed_reason")) if removed else None,
        new_registration_id=_as_int(record.get("new_registration_id")) if removed else None,
        record=record,
    )
    if timeline.versions:
        last = timeline.versions[-1]
        version.changes = _changes(last, version)
        version.older_copy = _older(version, last)
        if not version.changes:
            last.seen += 1
            last.last_seen_seq = row.seq
            return
    timeline.versions.append(version)


def _listing_completed(timeline: Timeline, row: JournalRow, ev: ListingCompleted) -> None:
    """A complete, successful participants listing of the registration's event that did not
    serve it removes an active registration (reason ``missing_from_listing``)."""
    if not timeline.versions or ev.endpoint != "participants" or not (ev.complete and ev.ok):
        return
    last = timeline.versions[-1]
    covered: list[int | None] = [*ev.event_ids] or [
        ev.event_id if ev.event_id is not None else row.event_id
    ]
    if last.status != "active" or last.event_id not in covered or not ev.page_seqs:
        return
    if timeline.seen_seqs.intersection(ev.page_seqs):
        return
    version = _version(
        row,
        "listing_completed",
        last.event_id,
        "removed",
        removed_reason="missing_from_listing",
        record=dict(last.record),
    )
    version.changes = _changes(last, version)
    timeline.versions.append(version)
