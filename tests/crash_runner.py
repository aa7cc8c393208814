"""TEST-ONLY: run an ``rsu`` command that SIGKILLs itself at a chosen point.

Usage (from a test, never from an operator's shell)::

    python tests/crash_runner.py POINT:N rsu-args...

``POINT`` is where the process kills itself, on the ``N``-th time (1-based, counted in this
process) it gets there:

- ``append``: just before ``Journal.append`` starts its transaction (the event is not written);
- ``in-append``: inside the append transaction, after the blob insert and before the journal row
  and ``COMMIT`` (SQLite must roll the half-written transaction back on the next open);
- ``apply``: inside ``Applier.apply`` of the projector, after the batch's earlier events were
  written but before the batch (and its checkpoint) commits;
- ``term-append``, ``term-apply``: like ``append`` and ``apply``, but the process sends itself
  SIGTERM (as systemd stopping the service does) instead of SIGKILL, and carries on to handle it.

The hook exists only here: it monkeypatches the installed package in this process before running
the CLI, so nothing in ``rsu`` itself reads an environment variable or option for it, and a normal
``rsu`` command line cannot reach it. Crash tests choose their kill points instead of guessing a
time, so they pass the same way on an idle and on a saturated machine.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

POINTS = ("append", "in-append", "apply", "term-append", "term-apply")


def _kill_on_nth(n: int, sig: signal.Signals = signal.SIGKILL) -> Callable[[], None]:
    """A function that sends ``sig`` to this process the ``n``-th time it is called
    (thread-safe)."""
    lock = threading.Lock()
    calls = [0]

    def tick() -> None:
        with lock:
            calls[0] += 1
            if calls[0] == n:
                os.kill(os.getpid(), sig)

    return tick


def _wrap(owner: Any, name: str, tick: Callable[[], None]) -> None:
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        tick()
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)


def _wrap_append(tick: Callable[[], None]) -> None:
    """Tick at each ``Journal.append`` while holding the journal's (reentrant) lock, so that
    every append counted before the n-th has committed when the n-th kills the process. (A
    tick at the call's entry would race: with two fetch threads, append n-1 may still be
    compressing its body outside the lock when append n kills, leaving n-2 events.)"""
    from rsu.journal.store import Journal

    original = Journal.append

    @functools.wraps(original)
    def append(self: Journal, *args: Any, **kwargs: Any) -> int:
        with self._lock:
            tick()
            return original(self, *args, **kwargs)

    Journal.append = append  # type: ignore[method-assign]


def install(point: str, n: int) -> None:
    """Arm the kill ``point`` for its ``n``-th occurrence in this process."""
    if point not in POINTS or n < 1:
        raise SystemExit(f"crash_runner: bad kill point {point}:{n} (one of {POINTS}, N >= 1)")
    tick = _kill_on_nth(n, signal.SIGTERM if point.startswith("term-") else signal.SIGKILL)
    if point in ("append", "term-append"):
        _wrap_append(tick)
    elif point == "in-append":
        from rsu.journal import store

        _wrap(store, "chain_hash", tick)  # called inside the append transaction
    else:
        from rsu.projector.apply import Applier

        _wrap(Applier, "apply", tick)


def main(argv: list[str]) -> int:
    """``argv``: ``[POINT:N, *rsu_args]``; returns the CLI's exit code if it was not killed."""
    point, _, n = argv[0].partition(":")
    install(point, int(n))
    from rsu.cli.main import app

    try:
        app(args=argv[1:], prog_name="rsu")
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
