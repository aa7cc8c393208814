"""The projector: turns the journal's raw RunSignUp responses into typed, normalised tables.

Public API: :func:`project` -> :class:`ProjectResult`; :data:`PROJECTION_VERSION`. It never does
HTTP and never imports the fetcher, the CLI or the simulator.
"""

from .runner import DEFAULT_BATCH_SIZE, ProjectResult, project
from .schema import PROJECTION_VERSION
from .target import TargetError

__all__ = ["DEFAULT_BATCH_SIZE", "PROJECTION_VERSION", "ProjectResult", "TargetError", "project"]
