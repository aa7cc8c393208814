"""Fault injection (each kind, per-credential throttling, runtime switching, determinism),
concurrency, the request log and clean shutdown."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from rsu.simulator import Faults, SimulatorServer, World
from rsu.simulator.testing import (
    SMALL,
    api_get,
    simulator_fixture,  # noqa: F401 - a pytest fixture
)


@pytest.fixture(scope="module")
def world() -> World:
    return World.generate(SMALL)


@pytest.fixture
def sim(world: World) -> Iterator[SimulatorServer]:
    with SimulatorServer(world) as server:
        yield server


def _races(sim: SimulatorServer, n: int = 0) -> requests.Response:
    return api_get(sim, sim.world.credentials[n], "/Rest/races", session=requests.Session())


def test_no_faults_by_default(sim: SimulatorServer) -> None:
    resp = _races(sim)
    assert resp.status_code == 200 and "races" in resp.json()
    (entry,) = sim.requests
    assert (entry.method, entry.path, entry.status, entry.fault) == (
        "GET",
        "/Rest/races",
        200,
        None,
    )
    assert entry.bytes == len(resp.content)
    assert entry.query["api_secret"] == "***" and entry.auth == "api_key"


def test_drop_connection(sim: SimulatorServer) -> None:
    sim.faults = Faults(drop_connection=1.0)
    with pytest.raises(requests.ConnectionError):
        _races(sim)
    assert [(r.status, r.fault) for r in sim.requests] == [(0, "drop_connection")]


def test_http_5xx_is_an_html_page(sim: SimulatorServer) -> None:
    sim.faults = Faults(http_5xx=1.0)
    resp = _races(sim)
    assert resp.status_code in (500, 502, 503, 504)
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    assert b"<center>nginx</center>" in resp.content
    assert sim.requests[-1].fault == "http_5xx"


def test_html_error_under_http_200(sim: SimulatorServer) -> None:
    sim.faults = Faults(html_error=1.0)
    resp = _races(sim)
    assert resp.status_code == 200
    assert resp.text.startswith("<!DOCTYPE html>")
    with pytest.raises(ValueError):
        resp.json()


def test_throttle_error_14_under_http_200(sim: SimulatorServer) -> None:
    sim.faults = Faults(throttle=1.0)
    resp = _races(sim)
    assert resp.status_code == 200
    assert resp.content == b'{"error":{"error_code":14,"error_msg":"Request throttled."}}'
    assert "Retry-After" not in resp.headers


def test_throttle_as_http_429_with_retry_after(sim: SimulatorServer) -> None:
    sim.faults = Faults(throttle=1.0, throttle_http_429=True, retry_after_s=3)
    resp = _races(sim)
    assert resp.status_code == 429
    assert resp.headers["Retry-After"] == "3"
    assert resp.json() == {"error": {"error_code": 14, "error_msg": "Request throttled."}}


def test_throttling_is_per_credential(sim: SimulatorServer) -> None:
    sim.faults = Faults(throttle_every=2)
    codes = []
    for n in (0, 0, 1, 0, 1, 1):
        body = _races(sim, n).json()
        codes.append((n, body.get("error", {}).get("error_code")))
    assert codes == [(0, None), (0, 14), (1, None), (0, None), (1, 14), (1, None)]


def test_truncated_body(sim: SimulatorServer) -> None:
    whole = _races(sim).content
    sim.faults = Faults(truncated=1.0, seed=4)
    cut = _races(sim).content
    assert 0 < len(cut) < len(whole) and whole.startswith(cut)
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut)
    assert sim.requests[-1].fault == "truncated" and sim.requests[-1].bytes == len(cut)


def test_latency(sim: SimulatorServer) -> None:
    sim.faults = Faults(latency_ms=200)
    _races(sim)
    # the handler's own measure of its time (it slept 0.2 s before answering): never shorter
    assert sim.requests[-1].elapsed_ms >= 200


def test_faults_switch_at_runtime(sim: SimulatorServer) -> None:
    sim.faults = Faults(http_5xx=1.0)
    assert _races(sim).status_code >= 500
    sim.set_faults(http_5xx=0.0)
    assert _races(sim).status_code == 200
    resp = requests.post(
        sim.base_url + "/_admin/faults", data=json.dumps({"html_error": 1.0}), timeout=10
    )
    assert resp.json()["html_error"] == 1.0 and sim.faults == Faults(html_error=1.0)
    assert _races(sim).text.startswith("<!DOCTYPE html>")
    requests.post(sim.base_url + "/_admin/faults", data="{}", timeout=10)
    assert _races(sim).status_code == 200
    assert (
        requests.post(sim.base_url + "/_admin/faults", data='{"nope": 1}', timeout=10).status_code
        == 400
    )


def _fault_sequence(world: World, seed: int) -> list[str | None]:
    faults = Faults(seed=seed, http_5xx=0.2, throttle=0.2, truncated=0.2, html_error=0.1)
    with SimulatorServer(world, faults=faults) as server:
        session = requests.Session()
        for _ in range(40):
            api_get(server, world.credentials[0], "/Rest/races", session=session)
        return [r.fault for r in server.requests]


def test_faults_are_deterministic_from_the_seed(world: World) -> None:
    a, b, c = _fault_sequence(world, 1), _fault_sequence(world, 1), _fault_sequence(world, 2)
    assert a == b
    assert a != c
    assert {"http_5xx", "throttle", "truncated", None} <= set(a)


def test_serves_concurrently(sim: SimulatorServer) -> None:
    cred = sim.world.credentials[0]
    # every handler waits until 8 are in at once: a server answering one request after another
    # would break the barrier (its timeout only ends a broken test) and answer 500
    sim.gate = threading.Barrier(8, timeout=60).wait

    def call(_: int) -> int:
        return api_get(sim, cred, "/Rest/races").status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(call, range(16)))
    assert statuses == [200] * 16
    assert len(sim.requests) == 16
    assert sim.peak_in_flight == 8


def test_limits_requests_in_flight(sim: SimulatorServer) -> None:
    cred = sim.world.credentials[0]
    sim.max_in_flight = 2
    inside = threading.Semaphore(0)
    release = threading.Event()

    def hold() -> None:
        inside.release()
        release.wait(60)

    sim.gate = hold
    with ThreadPoolExecutor(max_workers=2) as pool:
        held = [pool.submit(call_races, sim, cred) for _ in range(2)]
        for _ in range(2):
            assert inside.acquire(timeout=60)
        sim.gate = None
        third = api_get(sim, cred, "/Rest/races")  # a third call while two are held
        release.set()
        assert [f.result().status_code for f in held] == [200, 200]
    assert third.status_code == 200
    assert third.json() == {"error": {"error_code": 14, "error_msg": "Request throttled."}}
    assert [r.fault for r in sim.requests].count("over_concurrency") == 1
    assert api_get(sim, cred, "/Rest/races").json().get("races") is not None  # free again


def call_races(sim: SimulatorServer, cred: Any) -> requests.Response:
    return api_get(sim, cred, "/Rest/races")


def _hold_in_flight(sim: SimulatorServer, n: int) -> tuple[Any, threading.Event]:
    """Start ``n`` calls that stay in flight (inside the ``gate``) until the event is set."""
    inside = threading.Semaphore(0)
    release = threading.Event()

    def hold() -> None:
        inside.release()
        release.wait(60)

    sim.gate = hold
    pool = ThreadPoolExecutor(max_workers=n)
    held = [pool.submit(call_races, sim, sim.world.credentials[0]) for _ in range(n)]
    for _ in range(n):
        assert inside.acquire(timeout=60)
    sim.gate = None
    pool.shutdown(wait=False)
    return held, release


@pytest.mark.parametrize(
    ("http_429", "status", "retry_after"), [(False, 200, None), (True, 429, "7")]
)
def test_max_in_flight_constructor_option_error_14_or_http_429(
    world: World, http_429: bool, status: int, retry_after: str | None
) -> None:
    with SimulatorServer(
        world, faults=Faults(retry_after_s=7), max_in_flight=2, in_flight_http_429=http_429
    ) as sim:
        assert (sim.max_in_flight, sim.in_flight_http_429) == (2, http_429)
        held, release = _hold_in_flight(sim, 2)
        third = api_get(sim, world.credentials[1], "/Rest/races")  # two are still held
        release.set()
        assert [f.result(timeout=60).status_code for f in held] == [200, 200]
        assert third.status_code == status
        assert third.headers.get("Retry-After") == retry_after
        assert third.json() == {"error": {"error_code": 14, "error_msg": "Request throttled."}}
        refused = [r for r in sim.requests if r.fault == "over_concurrency"]
        assert [(r.status, r.path) for r in refused] == [(status, "/Rest/races")]
        assert sim.peak_in_flight == 3
        assert api_get(sim, world.credentials[1], "/Rest/races").status_code == 200  # free again


def test_max_in_flight_defaults_to_no_limit_and_rejects_negative(world: World) -> None:
    with pytest.raises(ValueError):
        SimulatorServer(world, max_in_flight=-1)
    with SimulatorServer(world) as sim:
        assert (sim.max_in_flight, sim.in_flight_http_429) == (0, False)
        held, release = _hold_in_flight(sim, 3)
        fourth = api_get(sim, world.credentials[0], "/Rest/races")
        release.set()
        assert fourth.status_code == 200 and "races" in fourth.json()
        assert [f.result(timeout=60).status_code for f in held] == [200] * 3
        assert sim.peak_in_flight == 4
        assert all(r.fault is None for r in sim.requests)


def test_binds_loopback_only_and_shuts_down_cleanly(world: World) -> None:
    with pytest.raises(ValueError):
        SimulatorServer(world, host="0.0.0.0")
    server = SimulatorServer(world).start()
    port = server.port
    session = requests.Session()  # keeps an idle keep-alive connection open
    assert api_get(server, world.credentials[0], "/Rest/races", session=session).status_code == 200
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    stopper.join(timeout=60)  # a stop that waits for the idle keep-alive client never ends
    assert not stopper.is_alive()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_request_log_over_http(sim: SimulatorServer) -> None:
    _races(sim)
    log = requests.get(sim.base_url + "/_admin/requests", timeout=10).json()
    assert [(e["path"], e["status"]) for e in log] == [("/Rest/races", 200)]
    sim.clear_requests()
    assert sim.requests == []


def test_ready_made_fixture(simulator_fixture: SimulatorServer) -> None:  # noqa: F811
    assert simulator_fixture.base_url.startswith("http://127.0.0.1:")
    assert _races(simulator_fixture).status_code == 200
