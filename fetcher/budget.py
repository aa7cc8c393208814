"""The run's request budget: at most ``max_in_flight`` requests in flight across every partner
(RunSignUp's limit per caller), each credential at most ``max_rps`` request starts per second,
and no partner able to hold the others back.

A thread about to send asks :meth:`RequestGate.acquire` with its credential's
:class:`PartnerBudget`. It gets a slot only when (1) a slot is free, (2) its credential's rate
allows a start now, and (3) its partner holds fewer than its share of the slots: while other
partners still have work, a partner may hold at most ``max_in_flight - 1`` slots (at least 1),
so one partner whose answers are slow (or who sleeps between retries) always leaves a slot to
the others. A thread that may not go yet waits *without* a slot, so the budgets of the other
partners keep being used meanwhile (a pool whose workers sleep in one partner's limiter leaves
the others idle). :meth:`RequestGate.release` gives the slot back once the answer is read and
journaled. A slot belongs to the thread that took it (one request at a time per thread), so
releasing is idempotent, and releasing again at the end of each task frees whatever it still
holds (a task that died on an exception never keeps a slot).

The decision itself (:meth:`RequestGate.try_acquire`) takes the time as an argument, so it is
tested with an injected clock; only :meth:`RequestGate.acquire` waits in real time.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable

from .client import RateLimiter

#: ``try_acquire`` result when only a released slot can help (wait for :meth:`release`).
WAIT_FOR_SLOT = float("inf")


class PartnerBudget(RateLimiter):
    """One credential's rate budget (``max_rps`` request starts per second, evenly spaced;
    ``<= 0``: unlimited), spent through ``gate``. Drop-in for :class:`RateLimiter` in
    :class:`~rsu.fetcher.client.ApiClient`: ``acquire()`` before a request, ``release()`` once
    its answer (or error) is in."""

    def __init__(self, key: Hashable, max_rps: float, gate: RequestGate) -> None:
        super().__init__(max_rps, clock=gate.clock)
        self.key = key
        self.gate = gate
        #: Earliest start (gate clock seconds) of this credential's next request.
        self.next_start = 0.0

    def acquire(self) -> None:
        """Block until a slot is granted (see :meth:`RequestGate.acquire`)."""
        self.gate.acquire(self)

    def release(self) -> None:
        """Give the slot back."""
        self.gate.release()


class RequestGate:
    """Slots for requests in flight, shared by every partner of a run (see module docstring).

    ``clock`` returns seconds (monotonic). Thread-safe.
    """

    def __init__(self, max_in_flight: int, clock: Callable[[], float] = time.monotonic) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.max_in_flight = max_in_flight
        self.clock = clock
        self._cond = threading.Condition()
        self._held: Counter[Hashable] = Counter()
        self._active: set[Hashable] = set()
        self._holders: dict[int, Hashable] = {}

    def set_active(self, key: Hashable, active: bool) -> None:
        """Say whether partner ``key`` still has work queued or running (the walk's scheduler
        calls this); a partner alone with work may use every slot."""
        with self._cond:
            if active:
                self._active.add(key)
            else:
                self._active.discard(key)
            self._cond.notify_all()

    def share(self, key: Hashable) -> int:
        """How many slots partner ``key`` may hold now."""
        others = self._active - {key}
        return max(1, self.max_in_flight - 1) if others else self.max_in_flight

    def try_acquire(self, budget: PartnerBudget, now: float, holder: int | None = None) -> float:
        """Take a slot for ``budget`` at time ``now`` (seconds) for ``holder`` (default: the
        calling thread; one slot per holder, any slot it held is given back first) if allowed:
        returns 0.0 when taken, else how long to wait before asking again
        (:data:`WAIT_FOR_SLOT`: until a slot is released)."""
        holder = threading.get_ident() if holder is None else holder
        with self._cond:
            self._release(holder)
            if sum(self._held.values()) >= self.max_in_flight:
                return WAIT_FOR_SLOT
            if self._held[budget.key] >= self.share(budget.key):
                return WAIT_FOR_SLOT
            if budget.interval and now < budget.next_start:
                return budget.next_start - now
            self._held[budget.key] += 1
            self._holders[holder] = budget.key
            if budget.interval:
                budget.next_start = max(now, budget.next_start) + budget.interval
            return 0.0

    def acquire(self, budget: PartnerBudget) -> None:
        """Block until :meth:`try_acquire` grants ``budget`` a slot."""
        with self._cond:
            while True:
                wait = self.try_acquire(budget, self.clock())
                if wait == 0.0:
                    return
                self._cond.wait(None if wait == WAIT_FOR_SLOT else wait)

    def release(self, holder: int | None = None) -> None:
        """Give back the slot ``holder`` (default: the calling thread) holds, if any (also at
        the end of each task: a task never keeps a slot)."""
        with self._cond:
            self._release(threading.get_ident() if holder is None else holder)

    def _release(self, holder: int) -> None:
        key = self._holders.pop(holder, None)
        if key is not None:
            self._held[key] -= 1
            self._cond.notify_all()

    def held(self) -> dict[Hashable, int]:
        """Slots held now, per partner key (for tests and diagnostics)."""
        with self._cond:
            return {k: v for k, v in self._held.items() if v}
