"""`rsu journal` commands (placeholder until implemented)."""

import typer

app = typer.Typer(help="journal commands", no_args_is_help=True)
