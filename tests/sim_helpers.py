"""Shared helpers for the simulator tests: fixture paths and a JSON type-schema comparison."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

REAL = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "runsignup" / "real"


def real_fixtures() -> list[Path]:
    """The recorded real responses, or a pytest skip when ../shared is absent."""
    if not REAL.is_dir():
        pytest.skip(f"recorded RunSignUp fixtures not found at {REAL} (../shared is absent)")
    return sorted(REAL.glob("*.json"))


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _tname(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "bool", int: "int", float: "float"}[
        type(value)
    ]


class Schema:
    """Types and keys seen at one JSON position, merged over many values (list items merge)."""

    def __init__(self) -> None:
        self.types: set[str] = set()
        self.keys: dict[str, Schema] = {}
        self.items: Schema | None = None

    def add(self, value: Any) -> Schema:
        self.types.add(_tname(value))
        if isinstance(value, dict):
            for k, v in value.items():
                self.keys.setdefault(k, Schema()).add(v)
        elif isinstance(value, list):
            if self.items is None:
                self.items = Schema()
            for v in value:
                self.items.add(v)
        return self


def mismatches(fixture: Any, ours: Schema, path: str = "$") -> list[str]:
    """Where ``fixture`` has a key or JSON type ``ours`` never produced (null matches all)."""
    if fixture is None:
        return []
    t = _tname(fixture)
    if t not in ours.types:
        return [f"{path}: fixture has {t}, simulator sent {sorted(ours.types)}"]
    out: list[str] = []
    if isinstance(fixture, dict):
        for k, v in fixture.items():
            if k not in ours.keys:
                out.append(f"{path}.{k}: key missing in simulator output")
            else:
                out += mismatches(v, ours.keys[k], f"{path}.{k}")
    elif isinstance(fixture, list) and fixture:
        if ours.items is None or not ours.items.types:
            return [f"{path}[]: simulator list was always empty"]
        for i, v in enumerate(fixture):
            out += mismatches(v, ours.items, f"{path}[{i}]")
    return out
