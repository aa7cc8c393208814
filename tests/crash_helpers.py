"""Shared helper for the crash tests: the command line of ``tests/crash_runner.py``."""

from __future__ import annotations

import sys
from pathlib import Path

CRASH_RUNNER = str(Path(__file__).with_name("crash_runner.py"))


def killed_at(point: str, n: int, *args: str) -> list[str]:
    """The command line of ``rsu args`` run as a subprocess that kills itself at the ``n``-th
    (1-based) ``point`` (SIGKILL; SIGTERM for the ``term-*`` points), see
    :mod:`crash_runner` (tests only)."""
    return [sys.executable, CRASH_RUNNER, f"{point}:{n}", *args]
