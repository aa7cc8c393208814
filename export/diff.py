"""What changed between an earlier export and the start list now (``rsu export --since``).

The earlier side is what that export wrote (``export_rows``, see :mod:`rsu.export.record`), never
a re-derivation of the past; the current side is the start list plus the race's removed
registrations (``removed_reason`` from ``GET /Rest/race/{race_id}/removed-participants``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .record import TRACKED, tracked_values
from .selection import RemovedRow, StartRow

#: RunSignUp ``removed_reason`` -> the reason a change report gives.
REASONS = {
    "removed": "refund",
    "transferred": "transfer",
    "deferred": "deferral",
    "cleared": "cleared",
}
#: Reason of a registration that is still active but no longer in the selection (moved to an
#: event that this export does not cover, or skipped by ``--allow skip-row``).
NOT_SELECTED = "not selected"


@dataclass(frozen=True)
class Change:
    """One line of a change report.

    ``change`` is ``added``, ``removed`` or ``changed``. For ``changed``, ``field`` is the
    StartRow field (one of :data:`rsu.export.record.TRACKED`) with its ``old`` and ``new``
    value. For ``removed``, ``reason`` is ``refund``, ``transfer`` (with
    ``new_registration_id``), ``deferral``, ``cleared`` or :data:`NOT_SELECTED`. An ``added``
    registration that a transfer created has ``reason`` ``transfer`` and the old registration id
    in ``old``.
    """

    change: str
    registration_id: int
    event_id: int
    field: str | None = None
    old: Any = None
    new: Any = None
    reason: str | None = None
    new_registration_id: int | None = None


def diff(
    before: Mapping[int, Mapping[str, Any]],
    now: Sequence[StartRow],
    removed: Mapping[int, RemovedRow],
) -> list[Change]:
    """The changes from ``before`` (``registration_id -> tracked values``) to ``now``, ordered by
    registration id; a changed registration gives one line per changed field, in
    :data:`~rsu.export.record.TRACKED` order."""
    current = {r.registration_id: r for r in now}
    transferred_from = {
        r.new_registration_id: r.registration_id
        for r in removed.values()
        if r.new_registration_id is not None
    }
    out: list[Change] = []
    for reg in sorted(set(before) | set(current)):
        old, row = before.get(reg), current.get(reg)
        if old is None and row is not None:
            source = transferred_from.get(reg)
            out.append(
                Change(
                    "added",
                    reg,
                    row.event_id,
                    reason=None if source is None else "transfer",
                    old=source,
                )
            )
        elif row is None and old is not None:
            gone = removed.get(reg)
            out.append(
                Change(
                    "removed",
                    reg,
                    int(old["event_id"]),
                    reason=NOT_SELECTED
                    if gone is None
                    else REASONS.get(gone.removed_reason or "", gone.removed_reason),
                    new_registration_id=None if gone is None else gone.new_registration_id,
                )
            )
        elif row is not None and old is not None:
            new_values = tracked_values(row)
            out += [
                Change("changed", reg, row.event_id, name, old.get(name), new_values[name])
                for name in TRACKED
                if old.get(name) != new_values[name]
            ]
    return out
