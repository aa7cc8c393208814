"""Replay mode: serve recorded request/response exchanges exactly as recorded.

Manifest format (JSON)::

    {
      "exchanges": [
        {"method": "GET", "path": "/Rest/race/85675",
         "query": {"format": "json"},            # only these keys must match (others ignored)
         "status": 200,
         "headers": {"Content-Type": "application/json; charset=utf-8"},
         "body_file": "race-detail.json"}      # relative to the manifest's folder, or absolute;
      ]                                         # or "body": "<inline text>"
    }

Matching: method (case-insensitive), path (case-insensitive, as RunSignUp's ``/Rest`` is), and
every key in the exchange's ``query`` must be present with the same value. When several
exchanges match, the one naming the most query keys wins; identical specs are served in order,
and the last one repeats. Bodies are served byte for byte. No match: HTTP 404 (text/plain).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from .faults import Faults
from .server import LoopbackServer
from .wire import JSON_TYPE, Request, Response


@dataclass
class Exchange:
    """One recorded exchange. ``body`` (bytes) wins over ``body_file`` (a path)."""

    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body_file: str | None = None
    body: bytes | None = None

    def spec(self) -> tuple[str, str, tuple[tuple[str, str], ...]]:
        """The match key: (METHOD, lower-case path, sorted query items)."""
        return (self.method.upper(), self.path.lower(), tuple(sorted(self.query.items())))

    def matches(self, req: Request) -> bool:
        """True when ``req`` matches method, path and the chosen query keys."""
        if req.method.upper() != self.method.upper() or req.path.lower() != self.path.lower():
            return False
        return all(req.query.get(k) == v for k, v in self.query.items())


def load_manifest(path: str | Path) -> list[Exchange]:
    """Read a manifest file; ``body_file`` paths are resolved against the manifest's folder."""
    path = Path(path)
    data: Any = msgspec.json.decode(path.read_bytes())
    items = data["exchanges"] if isinstance(data, dict) else data
    base = Path(data.get("base_dir", path.parent)) if isinstance(data, dict) else path.parent
    out = []
    for item in items:
        body = item.get("body")
        body_file = item.get("body_file")
        if body_file is not None and not Path(body_file).is_absolute():
            body_file = str(base / body_file)
        out.append(
            Exchange(
                method=item.get("method", "GET"),
                path=item["path"],
                query={str(k): str(v) for k, v in item.get("query", {}).items()},
                status=int(item.get("status", 200)),
                headers=dict(item.get("headers", {})),
                body_file=body_file,
                body=body.encode() if isinstance(body, str) else None,
            )
        )
    return out


class ReplayApp:
    """Answers requests from a list of :class:`Exchange` s (bodies read once, at construction)."""

    def __init__(self, exchanges: list[Exchange]) -> None:
        self.exchanges = exchanges
        self._bodies = [
            ex.body
            if ex.body is not None
            else Path(ex.body_file).read_bytes()
            if ex.body_file
            else b""
            for ex in exchanges
        ]
        self._served: dict[tuple[str, str, tuple[tuple[str, str], ...]], int] = {}
        self._lock = threading.Lock()

    def __call__(self, req: Request) -> Response:
        """Serve the best-matching exchange, or HTTP 404 when none matches."""
        matches = [i for i, ex in enumerate(self.exchanges) if ex.matches(req)]
        if not matches:
            text = f"no recorded exchange for {req.method} {req.path} {sorted(req.query)}"
            return Response(404, text.encode(), "text/plain; charset=utf-8")
        best = max(len(self.exchanges[i].query) for i in matches)
        spec = self.exchanges[
            next(i for i in matches if len(self.exchanges[i].query) == best)
        ].spec()
        same = [i for i in matches if self.exchanges[i].spec() == spec]
        with self._lock:
            n = self._served.get(spec, 0)
            self._served[spec] = n + 1
        idx = same[min(n, len(same) - 1)]
        ex = self.exchanges[idx]
        headers = {
            k: v
            for k, v in ex.headers.items()
            if k.lower() not in ("content-length", "content-type")
        }
        ctype = next((v for k, v in ex.headers.items() if k.lower() == "content-type"), JSON_TYPE)
        return Response(ex.status, self._bodies[idx], ctype, headers)


class ReplayServer(LoopbackServer):
    """Serve recorded exchanges on loopback; ``manifest`` is a manifest path or a list of
    :class:`Exchange`. Faults apply on top, as with :class:`SimulatorServer`."""

    def __init__(
        self,
        manifest: str | Path | list[Exchange],
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        exchanges = manifest if isinstance(manifest, list) else load_manifest(manifest)
        super().__init__(ReplayApp(exchanges), faults, host, port)

    def __enter__(self) -> ReplayServer:
        self.start()
        return self
