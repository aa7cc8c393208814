"""Change over time: advance the simulator clock and mutate registrations.

Every change stamps the touched row's ``last_modified`` with a time in ``(old now, new now]``
(Unix seconds), so ``last_modified`` only grows and is never later than ``World.now``.
Kinds: ``"new"``, ``"edit"`` (bib, name or team), ``"refund"`` (row moves to
``/removed-participants`` with ``removed_reason="removed"``), ``"transfer"`` (the row gets a new
registration_id, possibly in another event of the race; the old id is removed with
``removed_reason="transferred"`` and ``new_registration_id``), ``"deferral"``
(``removed_reason="deferred"``) and ``"event_change"`` (the row moves to another event of its
race keeping its registration_id, as when a runner switches from the half to the 10K; the old
event does not list it at all, not even as removed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .formats import eastern_mdy_hm
from .world import Event, World, removed_row


@dataclass(frozen=True)
class Change:
    """One change applied by :func:`advance`.

    ``event_id``/``registration_id`` name the row before the change. For transfers,
    ``new_registration_id`` is the new row's id and ``new_event_id`` its event; for event changes
    ``new_event_id`` is the event the registration moved to. ``at`` is the new ``last_modified``
    (Unix seconds, UTC).
    """

    kind: str
    race_id: int
    event_id: int
    registration_id: int
    new_registration_id: int | None = None
    new_event_id: int | None = None
    at: int = 0
    detail: str = ""


def advance(
    world: World,
    new: int = 10,
    edits: int = 5,
    refunds: int = 1,
    transfers: int = 1,
    deferrals: int = 1,
    seconds: int = 600,
    race_ids: Sequence[int] | None = None,
    event_changes: int = 0,
) -> list[Change]:
    """Advance ``world.now`` by ``seconds`` (at least 1 when any change is asked) and apply changes.

    Counts are upper bounds: edits/refunds/transfers/deferrals/event changes need an active row
    to act on (an event change also needs a race with another event).
    ``race_ids`` limits the changes to those races (default: all races). Deterministic for a
    given world seed and call sequence.
    """
    if seconds < 0 or min(new, edits, refunds, transfers, deferrals, event_changes) < 0:
        raise ValueError("advance() takes non-negative counts and seconds")
    with world.lock:
        rng = world.rng
        kinds = (
            ["new"] * new
            + ["edit"] * edits
            + ["refund"] * refunds
            + ["transfer"] * transfers
            + ["deferral"] * deferrals
            + ["event_change"] * event_changes
        )
        if kinds and seconds < 1:
            seconds = 1
        old = world.now
        world.now = old + seconds
        if not kinds:
            return []
        rng.shuffle(kinds)
        times = sorted(rng.randint(old + 1, world.now) for _ in kinds)
        wanted = set(race_ids) if race_ids is not None else None
        events = [e for e in world.events.values() if wanted is None or e.race_id in wanted]
        if not events:
            return []
        out: list[Change] = []
        for kind, when in zip(kinds, times, strict=True):
            change = _apply(world, kind, when, events)
            if change is not None:
                out.append(change)
        return out


def _pick_active(world: World, events: list[Event]) -> tuple[Event, int] | None:
    candidates = [e for e in events if e.active]
    if not candidates:
        return None
    event = world.rng.choice(candidates)
    keys = list(event.active)
    return event, keys[world.rng.randrange(len(keys))]


def _apply(world: World, kind: str, when: int, events: list[Event]) -> Change | None:
    rng = world.rng
    if kind == "new":
        event = rng.choice(events)
        race = world.races[event.race_id]
        row = world.new_registration(event, race, when)
        event.active[row["registration_id"]] = row
        event.touch(row["registration_id"])
        return Change("new", event.race_id, event.event_id, row["registration_id"], at=when)
    if kind == "event_change":
        events = [e for e in events if len(world.races[e.race_id].events) > 1]
    picked = _pick_active(world, events)
    if picked is None:
        return None
    event, reg_id = picked
    if kind == "event_change":
        race = world.races[event.race_id]
        target = rng.choice([e for e in race.events.values() if e.event_id != event.event_id])
        row = event.active.pop(reg_id)
        event.touch(reg_id)
        row["event_id"] = target.event_id
        row["last_modified"] = when
        target.active[reg_id] = row
        target.touch(reg_id)
        return Change(
            "event_change", event.race_id, event.event_id, reg_id, None, target.event_id, when
        )
    if kind == "edit":
        row = event.active[reg_id]
        what = rng.choice(("bib", "name", "team"))
        if what == "bib":
            row["bib_num"] = world.next_bib(event)
        elif what == "name":
            row["user"]["last_name"] = rng.choice(world.pools.last_names)
            row["user"]["first_name"] = rng.choice(world.pools.first_names)
        else:
            row["team_name"] = rng.choice(world.pools.team_names)
            if row["team_id"] is None:
                world._next_team_id += 1
                row["team_id"] = world._next_team_id
                row["team_type_id"], row["team_type"] = 1, "Club"
        row["last_modified"] = when
        event.touch(reg_id)
        return Change("edit", event.race_id, event.event_id, reg_id, at=when, detail=what)
    row = event.active.pop(reg_id)
    event.touch(reg_id)
    if kind == "transfer":
        race = world.races[event.race_id]
        others = [e for e in race.events.values() if e.event_id != event.event_id]
        target = rng.choice(others) if others else event
        new_id = world._alloc_registration_id()
        moved: dict[str, Any] = {**row, "registration_id": new_id, "event_id": target.event_id}
        if target is event:  # a transfer to another person in the same event
            moved = world.new_registration(event, race, when, registration_id=new_id)
            moved["bib_num"] = row["bib_num"]
        moved["registration_date"] = eastern_mdy_hm(when)
        moved["last_modified"] = when
        target.active[new_id] = moved
        target.touch(new_id)
        event.removed[reg_id] = removed_row(row, "transferred", new_id, when)
        return Change(
            "transfer", event.race_id, event.event_id, reg_id, new_id, target.event_id, when
        )
    reason = "removed" if kind == "refund" else "deferred"
    event.removed[reg_id] = removed_row(row, reason, None, when)
    return Change(kind, event.race_id, event.event_id, reg_id, at=when)
