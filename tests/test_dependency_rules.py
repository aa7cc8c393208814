"""The dependency rules of docs/architecture.md, checked on the imports (ast) of every module.

- ``journal`` imports none of rsu.fetcher / rsu.projector / rsu.cli / rsu.simulator;
- ``fetcher`` and ``projector`` never import each other, nor ``cli``;
- ``simulator`` imports nothing of ``rsu`` outside itself;
- ``projector`` never imports an HTTP client (requests, urllib3, http.client);
- ``export`` imports ``journal`` and ``projector`` only (never ``fetcher``, ``cli``, ``simulator``
  or an HTTP client).

Relative imports are resolved against the module's own name; the bare top-level folder names
(``import journal``) count as their ``rsu.*`` packages; ``importlib.import_module("...")`` and
``__import__("...")`` with a literal name count as imports too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("journal", "fetcher", "projector", "export", "simulator", "cli")

#: package -> forbidden module prefixes
RULES: dict[str, tuple[str, ...]] = {
    "journal": ("rsu.fetcher", "rsu.projector", "rsu.cli", "rsu.simulator"),
    "fetcher": ("rsu.projector", "rsu.cli"),
    "projector": ("rsu.fetcher", "rsu.cli", "requests", "urllib3", "http.client"),
    "export": ("rsu.fetcher", "rsu.cli", "rsu.simulator", "requests", "urllib3", "http.client"),
    "simulator": ("rsu",),
}
#: package -> prefixes allowed despite a forbidden prefix (its own modules)
ALLOWED: dict[str, tuple[str, ...]] = {"simulator": ("rsu.simulator",)}


_IMPORT_FUNCS = frozenset({"__import__", "import_module"})


def _normalise(name: str) -> str:
    """``journal.x`` (the folder name) means ``rsu.journal.x``."""
    head = name.split(".", 1)[0]
    return f"rsu.{name}" if head in PACKAGES else name


def imported_modules(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Every module name ``source`` (the text of module ``module``, e.g. ``rsu.journal.store``)
    imports, absolute, including ``pkg.name`` for each ``from pkg import name``."""
    tree = ast.parse(source)
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(_normalise(a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                if node.level - 1 >= len(parts):
                    raise ValueError(f"{module}: relative import beyond the top package")
                base = ".".join(parts[: len(parts) - (node.level - 1)])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = _normalise(node.module or "")
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names if a.name != "*")
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (
                    isinstance(node.func, ast.Name)
                    and node.func.id in {"__import__", "import_module"}
                )
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
        ):
            found.add(_normalise(node.args[0].value))
    return found


def _matches(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(package: str, module: str, imports: set[str]) -> list[str]:
    """Human-readable rule violations of ``module`` (in ``package``) importing ``imports``."""
    out = []
    for name in sorted(imports):
        if any(_matches(name, ok) for ok in ALLOWED.get(package, ())):
            continue
        for bad in RULES.get(package, ()):
            if _matches(name, bad):
                out.append(f"{module} imports {name} ({package} must not import {bad})")
    return out


def _modules() -> list[tuple[str, str, Path]]:
    mods = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT / pkg).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            mods.append((pkg, ".".join(["rsu", pkg, *parts]), path))
    return mods


def test_every_package_has_modules() -> None:
    found = {pkg for pkg, _, _ in _modules()}
    assert found == set(PACKAGES)


@pytest.mark.parametrize("pkg", PACKAGES)
def test_dependency_rules_hold(pkg: str) -> None:
    problems = []
    for p, module, path in _modules():
        if p != pkg:
            continue
        source = path.read_text(encoding="utf-8")
        imports = imported_modules(source, module, is_package=path.name == "__init__.py")
        problems += violations(pkg, module, imports)
    assert problems == []


# -- the checker itself ------------------------------------------------------------------------


def _check(pkg: str, module: str, source: str, *, is_package: bool = False) -> list[str]:
    return violations(pkg, module, imported_modules(source, module, is_package=is_package))


def test_imports_are_resolved() -> None:
    src = (
        "import os, requests.adapters\n"
        "from . import events\n"
        "from .store import Journal\n"
        "from ..fetcher import client\n"
        "from rsu import projector\n"
        "import journal.db\n"
        "from http import client as hc\n"
        "import importlib\n"
        "m = importlib.import_module('rsu.cli.main')\n"
        "def f():\n    from ..simulator.world import World\n"
    )
    assert imported_modules(src, "rsu.journal.store") == {
        "os",
        "requests.adapters",
        "rsu.journal",
        "rsu.journal.events",
        "rsu.journal.store",
        "rsu.journal.store.Journal",
        "rsu.fetcher",
        "rsu.fetcher.client",
        "rsu",
        "rsu.projector",
        "rsu.journal.db",
        "http",
        "http.client",
        "importlib",
        "rsu.cli.main",
        "rsu.simulator.world",
        "rsu.simulator.world.World",
    }
    assert imported_modules("from . import x", "rsu.journal", is_package=True) == {
        "rsu.journal",
        "rsu.journal.x",
    }
    with pytest.raises(ValueError, match="beyond"):
        imported_modules("from .... import x", "rsu.journal.store")


@pytest.mark.parametrize(
    ("pkg", "module", "source"),
    [
        ("journal", "rsu.journal.store", "from rsu.fetcher.client import Client"),
        ("journal", "rsu.journal.store", "from ..cli import common"),
        ("journal", "rsu.journal.store", "import simulator.world"),
        ("journal", "rsu.journal", "from ..projector import x"),
        ("fetcher", "rsu.fetcher.client", "from ..projector.schema import TABLES"),
        ("fetcher", "rsu.fetcher.client", "from rsu.cli.common import fail"),
        ("projector", "rsu.projector.apply", "from rsu import fetcher"),
        ("projector", "rsu.projector.apply", "import requests"),
        ("projector", "rsu.projector.apply", "from urllib3.util import Retry"),
        ("projector", "rsu.projector.apply", "import http.client"),
        ("projector", "rsu.projector.apply", "from http import client"),
        ("projector", "rsu.projector.apply", "def f():\n    import requests"),
        ("export", "rsu.export.run", "from rsu.fetcher import run_fetch"),
        ("export", "rsu.export.run", "from ..cli.common import fail"),
        ("simulator", "rsu.simulator.api", "from rsu.journal import Journal"),
        ("simulator", "rsu.simulator.api", "from ..journal import events"),
        ("simulator", "rsu.simulator.api", "import importlib\nimportlib.import_module('rsu.cli')"),
    ],
)
def test_checker_flags_broken_rules(pkg: str, module: str, source: str) -> None:
    # "rsu.journal" stands for journal/__init__.py (a package: relative imports start there)
    assert len(_check(pkg, module, source, is_package=module.count(".") == 1)) >= 1


@pytest.mark.parametrize(
    ("pkg", "module", "source"),
    [
        ("journal", "rsu.journal.store", "from .events import Event\nimport sqlite3"),
        ("fetcher", "rsu.fetcher.client", "import requests\nfrom rsu.journal import Journal"),
        ("projector", "rsu.projector.apply", "from ..journal import Journal\nimport http.cookies"),
        ("export", "rsu.export.run", "from rsu.journal import Journal\nfrom ..projector import x"),
        ("simulator", "rsu.simulator.api", "from . import world\nfrom .wire import x\nimport json"),
        ("cli", "rsu.cli.main", "from rsu import fetcher, projector, journal, simulator"),
    ],
)
def test_checker_accepts_allowed_imports(pkg: str, module: str, source: str) -> None:
    assert _check(pkg, module, source) == []


def test_violation_message_names_module_and_rule() -> None:
    assert _check("projector", "rsu.projector.apply", "import requests") == [
        "rsu.projector.apply imports requests (projector must not import requests)"
    ]
