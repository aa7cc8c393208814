"""``rsu backup``: a consistent copy of the database (thin wiring of
:func:`rsu.journal.backup.backup_file`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rsu.cli.common import DEFAULT_DB, DbOption, fail, require_db
from rsu.fetcher.secret_store import SECRETS_SUFFIX
from rsu.journal.backup import BackupError, backup_file, check_target


def backup_command(
    output: Annotated[
        Path,
        typer.Option("-o", "--output", help="The copy to write (mode 0600).", show_default=False),
    ],
    db: DbOption = DEFAULT_DB,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing copy.")] = False,
    with_secrets: Annotated[
        bool,
        typer.Option(
            "--with-secrets",
            help="Also copy DB.secrets (the API secrets) to OUTPUT.secrets; keep it private.",
        ),
    ] = False,
) -> None:
    """Copy the database consistently while syncs may run (SQLite's online backup API).

    A plain `cp` of a database in WAL mode can miss the latest sync. The data database holds no
    secrets; --with-secrets also copies the secrets file beside it. Exit 2 when OUTPUT exists
    (without --force) or its folder does not.
    """
    require_db(db)
    pairs = [(db, output)]
    if with_secrets:
        secrets = Path(f"{db}{SECRETS_SUFFIX}")
        if not secrets.is_file():
            fail(f"--with-secrets: there is no secrets file {secrets}", 2)
        pairs.append((secrets, Path(f"{output}{SECRETS_SUFFIX}")))
    try:
        for source, target in pairs:
            check_target(source, target, force=force)
        for source, target in pairs:
            done = backup_file(source, target, force=force)
            typer.echo(f"{done.source} -> {done.target} ({done.size} bytes, mode 0600)")
    except BackupError as exc:
        fail(str(exc), 2 if exc.usage else 1)


def register(app: typer.Typer) -> None:
    """Add ``rsu backup`` to the root app."""
    app.command("backup")(backup_command)
