"""Exports for timing software and the pre-race check, read from the projection and the journal.

Public API: :func:`run_export` with :class:`ExportOptions` -> :class:`ExportResult`;
:data:`PROFILES` (one per ``--format``); :func:`run_check` -> :class:`CheckReport`. It imports
``rsu.journal`` and ``rsu.projector`` (the as-of replay), never the fetcher or the CLI.
"""

from .check import CheckReport, Finding, run_check
from .profiles import PROFILES, Problem, Profile
from .run import Allow, ExportError, ExportOptions, ExportResult, run_export

__all__ = [
    "PROFILES",
    "Allow",
    "CheckReport",
    "ExportError",
    "ExportOptions",
    "ExportResult",
    "Finding",
    "Problem",
    "Profile",
    "run_check",
    "run_export",
]
