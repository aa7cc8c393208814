"""The last-resort boundary around one scope's work (a partner, a race, a race's listings).

The walk (:mod:`rsu.fetcher.walk`) runs each scope as a task in a worker thread. Every answer a
server can send is handled inside :class:`~rsu.fetcher.client.ApiClient` and
:func:`~rsu.fetcher.shapes.parse`; if a task raises anyway (a bug, or an input nobody foresaw),
:func:`guarded` turns the exception into a failed scope like any other, so the other scopes go
on and the run still ends with ``run_finished``:

* one ``FetchFailed`` is journaled for the scope (``attempts`` 0, ``error_msg`` ``"internal
  error: <class>: <message> (at <file>:<line>)"``, one line, secrets scrubbed, at most 300
  characters), and the scope is recorded as a :class:`~rsu.fetcher.report.Failure`;
* :class:`rsu.journal.JournalError` is re-raised: when the journal refuses a write, nothing
  more can be recorded (not even ``run_finished``), so the run stops.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from rsu.journal import FetchFailed, JournalError

from .client import RunContext
from .redact import scrub
from .report import Failure, log

T = TypeVar("T")


@dataclass(frozen=True)
class Scope:
    """What a task covers: ``level`` (``"partner"``, ``"race"`` or ``"event"``), the timing
    partner, the race (``None`` for a partner task) and the request it was about
    (``endpoint``/``path``, as in ``FetchFailed``)."""

    level: str
    timing_partner_id: int
    race_id: int | None = None
    endpoint: str = ""
    path: str = ""


def internal_error_message(exc: BaseException, secrets: Sequence[str] = ()) -> str:
    """One secret-free line naming ``exc``'s class, message and where it was raised:
    ``"internal error: OverflowError: int too big (at store.py:207)"`` (at most 300 chars)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    text = " ".join(str(exc).split())[:200]
    message = f"internal error: {type(exc).__name__}: {text}{where}"
    return scrub(message, secrets)[:300]


def guarded(
    task: Callable[[], list[T]],
    scope: Scope,
    context: RunContext,
    secrets: Sequence[str] = (),
) -> Callable[[], list[T]]:
    """``task`` wrapped so that an unexpected ``Exception`` becomes a failed ``scope`` (see the
    module docstring) and an empty list of follow-up tasks. ``secrets`` are scrubbed from the
    message. Raises :class:`rsu.journal.JournalError` (and ``BaseException``s such as
    ``KeyboardInterrupt``) unchanged."""

    def run() -> list[T]:
        try:
            return task()
        except JournalError:
            raise
        except Exception as exc:
            message = internal_error_message(exc, secrets)
            race_id = scope.race_id if 0 <= (scope.race_id or 0) < 2**63 else None
            context.journal.append(
                FetchFailed(
                    endpoint=scope.endpoint,
                    path=scope.path,
                    error_msg=message,
                    attempts=0,
                    race_id=race_id,
                    internal=True,
                ),
                run_id=context.run_id,
                timing_partner_id=scope.timing_partner_id,
                race_id=race_id,
            )
            context.stats.add(fetch_failed=1)
            context.stats.fail(
                Failure(
                    scope.level,
                    scope.timing_partner_id,
                    race_id,
                    None,
                    scope.endpoint,
                    None,
                    message,
                )
            )
            log.error("partner %s: %s", scope.timing_partner_id, message)
            return []

    return run
