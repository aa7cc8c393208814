"""Top-level `rsu` commands from project_cmd (placeholder until implemented)."""

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
