"""`rsu simulator` commands (placeholder until implemented)."""

import typer

app = typer.Typer(help="simulator commands", no_args_is_help=True)
