"""``rsu credentials add|list|test|remove``: thin typer wiring of :mod:`rsu.fetcher.credentials`.

Secrets come from an option, an environment variable, a hidden prompt on a terminal or one line
of standard input otherwise, and are never printed: ``list`` shows sha256 fingerprints (first 8
hex digits) of the key and of the secret.

Help texts use no square brackets: rich would take ``[env RSU_API_SECRET]`` for markup and eat it.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from rsu.cli.common import DEFAULT_DB, DbOption, fail, require_db
from rsu.fetcher import (
    DEFAULT_BASE_URL,
    FetchUsageError,
    RetryPolicy,
    Timeouts,
    check_credentials,
)
from rsu.fetcher.credentials import (
    CredentialError,
    add_credential,
    fingerprint,
    load_credentials,
    remove_credential,
)
from rsu.journal import JournalError, open_db

app = typer.Typer(help="Manage timing partner API credentials.", no_args_is_help=True)

PartnerOption = Annotated[int, typer.Option("--partner", min=1, help="Timing partner id.")]


def _secret(value: str | None, env: str, prompt: str) -> str:
    """``value`` unless absent or ``-``; else ``$env``; else a hidden prompt on a terminal, or
    the one non-empty line of standard input when it is not a terminal (a pipe, a file).
    Stripped; exits 2 when empty or when standard input holds several lines."""
    if value and value != "-":
        secret = value
    elif os.environ.get(env):
        secret = os.environ[env]
    elif sys.stdin is not None and not sys.stdin.isatty():
        lines = [line for line in sys.stdin.read().splitlines() if line.strip()]
        if len(lines) > 1:
            fail(
                f"standard input holds {len(lines)} non-empty lines; give exactly one line: "
                f"the {prompt}",
                2,
            )
        secret = lines[0] if lines else ""
    else:
        secret = str(typer.prompt(prompt, hide_input=True, default="", show_default=False))
    secret = secret.strip()
    if not secret:
        fail(f"the {prompt} is empty (give it with the option, {env}, or on standard input)", 2)
    return secret


@app.command("add")
def add(
    partner: PartnerOption,
    db: DbOption = DEFAULT_DB,
    api_key: Annotated[
        str | None, typer.Option("--api-key", help="Partner/timer API key (api_key).")
    ] = None,
    api_secret: Annotated[
        str | None,
        typer.Option(
            "--api-secret",
            help="API secret (better left out: then read from RSU_API_SECRET, else prompted).",
        ),
    ] = None,
    rsu_api_key: Annotated[
        str | None, typer.Option("--rsu-api-key", help="API v2 key (rsu_api_key).")
    ] = None,
    rsu_api_secret: Annotated[
        str | None,
        typer.Option(
            "--rsu-api-secret",
            help="API v2 secret (better left out: then read from RSU_RSU_API_SECRET, "
            "else prompted).",
        ),
    ] = None,
    bearer_token: Annotated[
        str | None,
        typer.Option(
            "--bearer-token",
            help="OAuth2 access token, or '-' to read it from RSU_BEARER_TOKEN, else prompted.",
        ),
    ] = None,
) -> None:
    """Store (or replace) the RunSignUp credential of one timing partner.

    A secret left out (or given as '-') is read from its environment variable, else prompted
    for on a terminal, else read as one line from standard input.
    """
    kinds = [
        k
        for k, v in (("api_key", api_key), ("rsu_api_key", rsu_api_key), ("bearer", bearer_token))
        if v is not None
    ]
    if len(kinds) != 1:
        fail("give exactly one of --api-key, --rsu-api-key or --bearer-token", 2)
    kind = kinds[0]
    if kind == "api_key":
        principal = api_key or ""
        secret = _secret(api_secret, "RSU_API_SECRET", "API secret")
    elif kind == "rsu_api_key":
        principal = rsu_api_key or ""
        secret = _secret(rsu_api_secret, "RSU_RSU_API_SECRET", "API v2 secret")
    else:
        principal = ""
        secret = _secret(bearer_token, "RSU_BEARER_TOKEN", "Bearer token")
    try:
        conn = open_db(db)
        try:
            cred, replaced = add_credential(conn, partner, kind, secret, principal)
        finally:
            conn.conn.close()
    except CredentialError as exc:
        fail(str(exc), 2)
    except JournalError as exc:
        fail(str(exc), 1)
    verb = "replaced" if replaced else "added"
    typer.echo(f"{verb} {kind} credential for partner {partner} (secret {cred.fingerprint})")


@app.command("list")
def list_(db: DbOption = DEFAULT_DB) -> None:
    """List credentials: partner, kind, key and secret fingerprints (never the secrets)."""
    require_db(db)
    try:
        conn = open_db(db)
        try:
            creds = load_credentials(conn)
        finally:
            conn.conn.close()
    except JournalError as exc:
        fail(str(exc), 1)
    if not creds:
        typer.echo("no credentials; add one with: rsu credentials add --partner ID --api-key KEY")
        return
    typer.echo(f"{'partner':>8}  {'kind':<12} {'key':<9} {'secret':<9}")
    for c in creds:
        key_fp = fingerprint(c.principal) if c.principal else "-"
        typer.echo(f"{c.timing_partner_id:>8}  {c.auth_kind:<12} {key_fp:<9} {c.fingerprint:<9}")


@app.command("test")
def test(
    db: DbOption = DEFAULT_DB,
    partner: Annotated[
        list[int] | None, typer.Option("--partner", help="Only this partner (repeatable).")
    ] = None,
    base_url: Annotated[
        str, typer.Option("--base-url", envvar="RSU_BASE_URL", help="API root.")
    ] = DEFAULT_BASE_URL,
    timeout: Annotated[float, typer.Option("--timeout", min=0.001, help="Seconds.")] = 15.0,
    max_attempts: Annotated[
        int, typer.Option("--max-attempts", min=1, help="Tries per partner, the first included.")
    ] = 3,
) -> None:
    """Check each partner's access (GET /Rest/races?results_per_page=1). Exit 1 if any fails."""
    require_db(db)
    try:
        results = check_credentials(
            db,
            base_url,
            tuple(partner or ()),
            timeouts=Timeouts(timeout, timeout),
            policy=RetryPolicy(max_attempts=max_attempts, backoff_factor=0.1, jitter=0.1),
        )
    except FetchUsageError as exc:
        fail(str(exc), 2)
    except JournalError as exc:
        fail(str(exc), 1)
    for r in results:
        if r.ok:
            typer.echo(f"partner {r.timing_partner_id} ({r.auth_kind}): ok")
        else:
            code = f" code {r.error_code}" if r.error_code is not None else ""
            typer.echo(f"partner {r.timing_partner_id} ({r.auth_kind}): FAILED{code}: {r.message}")
    raise typer.Exit(0 if all(r.ok for r in results) else 1)


@app.command("remove")
def remove(partner: PartnerOption, db: DbOption = DEFAULT_DB) -> None:
    """Delete the RunSignUp credential of one timing partner."""
    require_db(db)
    try:
        conn = open_db(db)
        try:
            removed = remove_credential(conn, partner)
        finally:
            conn.conn.close()
    except JournalError as exc:
        fail(str(exc), 1)
    if not removed:
        fail(f"no credentials for partner {partner}", 1)
    typer.echo(f"removed the credential of partner {partner}")
