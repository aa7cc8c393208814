"""Helpers for tests: start a small simulator in-process and call it like a client would.

>>> with running_simulator() as sim:
...     cred = sim.world.credentials[0]
...     resp = api_get(sim, cred, "/Rest/races")

``simulator_fixture`` is a ready-made pytest fixture (``from rsu.simulator.testing import
simulator_fixture as simulator`` in a test module, or wrap ``running_simulator`` yourself).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests

from .faults import Faults
from .server import SimulatorServer
from .wire import CallerRegistrationSpec
from .world import Credential, World, WorldConfig

SMALL = WorldConfig(
    seed=7,
    partners=3,
    races_per_partner=2,
    events_per_race=(1, 2),
    registrations_per_event=(20, 60),
)
"""A small world (6 races, a few hundred registrations) that generates in well under a second."""


@contextmanager
def running_simulator(
    config: WorldConfig | None = None,
    faults: Faults | None = None,
    world: World | None = None,
) -> Iterator[SimulatorServer]:
    """Generate ``world`` (default: :data:`SMALL`) and serve it on an ephemeral loopback port."""
    world = world or World.generate(config or SMALL)
    with SimulatorServer(world, faults=faults) as sim:
        yield sim


def api_get(
    sim: Any,
    credential: Credential | None,
    path: str,
    session: requests.Session | None = None,
    timeout: float = 10.0,
    caller: CallerRegistrationSpec | None = None,
    **params: Any,
) -> requests.Response:
    """GET ``sim.base_url + path`` with ``format=json`` (unless given) and the credential's auth
    (plus the API caller registration ``caller``, when given)."""
    query: dict[str, Any] = {"format": "json"}
    query.update(params)
    headers: dict[str, str] = {}
    if credential is not None:
        query.update(credential.query_params())
        headers.update(credential.headers())
    if caller is not None:
        query.update(caller.query_params())
        headers.update(caller.headers())
    getter = session.get if session is not None else requests.get
    return getter(sim.base_url + path, params=query, headers=headers, timeout=timeout)


try:  # pragma: no cover - pytest is a test-only dependency
    import pytest
except ImportError:  # pragma: no cover
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def simulator_fixture() -> Iterator[SimulatorServer]:
        """A running simulator over a fresh :data:`SMALL` world, without faults."""
        with running_simulator() as sim:
            yield sim
