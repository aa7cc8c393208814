"""The run's request budget (fetcher/budget.py, the walk's scheduler in fetcher/walk.py): every
credential's rate is used, at most 2 requests are in flight, and one partner's slow answers do
not hold the others back. Times are simulated (an injected clock) or not looked at at all."""

from __future__ import annotations

import heapq
import itertools
import threading
from pathlib import Path

import pytest
from fetch_helpers import fast_options, journaled_ids, non_empty, seed_credentials, world_ids

from rsu.fetcher import run_fetch
from rsu.fetcher.budget import WAIT_FOR_SLOT, PartnerBudget, RequestGate
from rsu.simulator import SimulatorServer, World, WorldConfig


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def simulate(
    latency: dict[int, float], rps: float, in_flight: int, seconds: float, threads: int = 2
) -> tuple[dict[int, list[float]], int]:
    """Drive a gate with simulated time: each partner has ``threads`` threads that send again
    as soon as their previous answer is in (after ``latency[partner]`` seconds). Returns the
    start times per partner and the most slots ever held at once."""
    clock = Clock()
    gate = RequestGate(in_flight, clock=clock)
    budgets = {p: PartnerBudget(p, rps, gate) for p in latency}
    for p in latency:
        gate.set_active(p, True)
    starts: dict[int, list[float]] = {p: [] for p in latency}
    holders = [(p, p * 100 + t) for p in latency for t in range(threads)]
    waiting = list(holders)  # in order of arrival
    done: list[tuple[float, int, int]] = []  # (answer time, holder, partner)
    peak = 0
    while clock.now < seconds:
        retry_at = float("inf")
        still = []
        for p, h in waiting:
            wait = gate.try_acquire(budgets[p], clock.now, holder=h)
            if wait == 0.0:
                starts[p].append(clock.now)
                heapq.heappush(done, (clock.now + latency[p], h, p))
            else:
                still.append((p, h))
                if wait != WAIT_FOR_SLOT:
                    retry_at = min(retry_at, clock.now + wait)
        waiting = still
        peak = max(peak, sum(gate.held().values()))
        clock.now = min(retry_at, done[0][0] if done else float("inf"))
        while done and done[0][0] <= clock.now:
            _, h, p = heapq.heappop(done)
            gate.release(holder=h)
            waiting.append((p, h))
    return {p: [t for t in s if t < seconds] for p, s in starts.items()}, peak


def test_five_partners_use_their_budgets_within_two_in_flight() -> None:
    starts, peak = simulate({p: 0.05 for p in range(5)}, rps=5, in_flight=2, seconds=20)
    bound = min(5 * 5, 2 / 0.05)
    total = sum(len(s) for s in starts.values())
    assert peak == 2
    assert total / 20 >= 0.8 * bound
    for s in starts.values():  # no credential above its rate: starts 0.2 s apart at least
        assert len(s) >= 0.8 * 5 * 20
        assert all(b - a >= 0.2 - 1e-9 for a, b in itertools.pairwise(s))


def test_one_slow_partner_keeps_at_most_one_slot_while_others_have_work() -> None:
    # partner 0 answers after 30 s: the others still get through at their own rates
    latency = {0: 30.0, 1: 0.05, 2: 0.05, 3: 0.05}
    starts, peak = simulate(latency, rps=5, in_flight=2, seconds=20)
    assert peak == 2
    assert len(starts[0]) == 1  # its second thread never got the last slot
    others = sum(len(starts[p]) for p in (1, 2, 3))
    assert others / 20 >= 0.8 * min(3 * 5, 1 / 0.05)


def test_a_partner_alone_may_use_every_slot() -> None:
    clock = Clock()
    gate = RequestGate(2, clock=clock)
    a, b = PartnerBudget(1, 0, gate), PartnerBudget(2, 0, gate)
    gate.set_active(1, True)
    gate.set_active(2, True)
    assert gate.try_acquire(a, 0.0, holder=10) == 0.0
    assert gate.try_acquire(a, 0.0, holder=11) == WAIT_FOR_SLOT  # partner 2 still has work
    gate.set_active(2, False)
    assert gate.try_acquire(a, 0.0, holder=11) == 0.0
    assert gate.try_acquire(b, 0.0, holder=20) == WAIT_FOR_SLOT  # both slots taken
    gate.release(holder=10)
    gate.release(holder=10)  # idempotent: a holder holds one slot at most
    assert gate.held() == {1: 1}
    assert gate.try_acquire(b, 0.0, holder=20) == 0.0


def test_rate_wait_is_the_time_to_the_next_start() -> None:
    clock = Clock()
    gate = RequestGate(2, clock=clock)
    a = PartnerBudget(1, 5, gate)
    assert gate.try_acquire(a, 10.0, holder=1) == 0.0
    gate.release(holder=1)
    assert gate.try_acquire(a, 10.05, holder=1) == pytest.approx(0.15)
    assert gate.try_acquire(a, 10.2, holder=1) == 0.0


def test_a_thread_keeps_no_slot_after_its_task() -> None:
    gate = RequestGate(1)
    a = PartnerBudget(1, 0, gate)
    a.acquire()
    gate.release()
    got = []
    t = threading.Thread(target=lambda: (a.acquire(), got.append(True), a.release()))
    t.start()
    t.join(timeout=10)
    assert got == [True]
    assert gate.held() == {}


WORLD = WorldConfig(
    seed=31,
    partners=3,
    races_per_partner=3,
    events_per_race=(1, 2),
    registrations_per_event=(5, 30),
)


def _race_requests(sim: SimulatorServer, races: set[int]) -> int:
    return sum(
        1 for r in sim.requests if r.path.startswith("/Rest/race/") and _race(r.path) in races
    )


def _race(path: str) -> int:
    return int(path.split("/")[3])


def test_a_slow_partner_does_not_hold_the_others_back(tmp_path: Path) -> None:
    """Partner A's race calls get no answer until every other partner's race calls are
    answered: with one FIFO pool both workers end up waiting on A and nothing moves."""
    world = World.generate(WORLD)
    slow, *others = sorted(world.partner_ids)
    slow_races = set(world.race_ids(slow))
    other_races = {r for p in others for r in world.race_ids(p)}
    # how many race calls the others need (same world, nothing held)
    with SimulatorServer(world) as sim:
        db = tmp_path / "reference.db"
        seed_credentials(db, world.credentials)
        assert run_fetch(db, fast_options(sim.base_url, tmp_path)).exit_code == 0
        needed = _race_requests(sim, other_races)

    db = tmp_path / "rsu.db"
    seed_credentials(db, world.credentials)
    others_done, gave_up = threading.Event(), threading.Event()
    with SimulatorServer(world) as sim:
        answer = sim.app

        def held(req):  # type: ignore[no-untyped-def]
            slow_call = req.path.startswith("/Rest/race/") and _race(req.path) in slow_races
            # the timeout is a guard only: the test then fails, it never hangs
            if slow_call and not others_done.wait(timeout=30):
                gave_up.set()
                others_done.set()
            return answer(req)

        def watch() -> None:
            while not others_done.is_set():
                if _race_requests(sim, other_races) >= needed:
                    others_done.set()
                threading.Event().wait(0.01)

        sim.app = held
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        result = run_fetch(db, fast_options(sim.base_url, tmp_path))
        order = [_race(r.path) for r in sim.requests if r.path.startswith("/Rest/race/")]
        others_done.set()
    assert not gave_up.is_set(), "the others waited for the slow partner"
    assert result.exit_code == 0, result.failures
    # every other partner's race call was answered before the slow partner's first answer
    first_slow = next(i for i, rid in enumerate(order) if rid in slow_races)
    assert sum(1 for rid in order[:first_slow] if rid in other_races) == needed
    assert non_empty(journaled_ids(db)) == non_empty(world_ids(world))
