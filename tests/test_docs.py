"""Every `rsu` command has help text and is named in README.md's table of commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.main import get_command

from rsu.cli.main import app

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _commands() -> list[tuple[str, str | None]]:
    root = get_command(app)
    out = []
    for name, cmd in root.commands.items():  # type: ignore[attr-defined]
        subs = getattr(cmd, "commands", None)
        if subs:
            out += [(f"{name} {sub}", c.help) for sub, c in subs.items()]
        else:
            out.append((name, cmd.help))
    return sorted(out)


COMMANDS = _commands()


def test_the_command_list_is_what_we_think() -> None:
    names = {n for n, _ in COMMANDS}
    assert {"sync", "fetch", "project", "status", "history", "demo"} <= names
    assert {"journal verify", "credentials add", "simulator serve"} <= names


@pytest.mark.parametrize(("name", "help_text"), COMMANDS)
def test_command_has_help_and_is_documented(name: str, help_text: str | None) -> None:
    assert help_text and help_text.strip(), f"rsu {name} has no help text"
    top, _, sub = name.partition(" ")
    row = next((line for line in README.splitlines() if line.startswith(f"| `rsu {top}")), None)
    assert row is not None, f"rsu {top} is missing from README's command table"
    if sub:
        assert re.search(rf"\b{re.escape(sub)}\b", row), f"rsu {name} is not in its README row"
