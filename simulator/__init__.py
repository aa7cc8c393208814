"""A RunSignUp REST API look-alike on loopback, for tests, benchmarks and ``rsu demo``.

Public API::

    from rsu.simulator import World, WorldConfig, Faults, SimulatorServer, ReplayServer, Credential

Imports nothing from the rest of ``rsu`` (it is the other side of the wire).
"""

from .changes import Change
from .faults import Faults
from .replay import Exchange, ReplayServer, load_manifest
from .server import LoopbackServer, SimulatorServer
from .wire import CallerRegistrationSpec, LoggedRequest
from .world import Credential, World, WorldConfig

__all__ = [
    "CallerRegistrationSpec",
    "Change",
    "Credential",
    "Exchange",
    "Faults",
    "LoggedRequest",
    "LoopbackServer",
    "ReplayServer",
    "SimulatorServer",
    "World",
    "WorldConfig",
    "load_manifest",
]
