"""``rsu credentials add|list|test|remove|caller``: thin typer wiring of
:mod:`rsu.fetcher.credentials`.

Secrets come from an option, an environment variable, a hidden prompt on a terminal or one line
of standard input otherwise, and are never printed: ``list`` shows sha256 fingerprints (first 8
hex digits) of the key and of the secret. They are stored in the secrets file ``<db>.secrets``
(mode 0600) beside the database, never in the database itself.

Help texts use no square brackets: rich would take ``[env RSU_API_SECRET]`` for markup and eat it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import sqlite_utils
import typer

from rsu.cli.common import (
    DEFAULT_DB,
    DbOption,
    database_errors,
    duration_option,
    err_console,
    fail,
    fetcher_errors,
    require_db,
)
from rsu.fetcher import (
    DEFAULT_BASE_URL,
    RetryPolicy,
    Timeouts,
    check_credentials,
)
from rsu.fetcher.credentials import (
    CredentialError,
    add_credential,
    fingerprint,
    list_credentials,
    load_caller_registration,
    parse_caller_token,
    remove_caller_registration,
    remove_credential,
    secrets_file_of,
    set_caller_registration,
)
from rsu.fetcher.run import CALLER_WARNING, load_caller
from rsu.journal import open_db
from rsu.journal.printable import printable

app = typer.Typer(help="Manage timing partner API credentials.", no_args_is_help=True)


@contextmanager
def _credentials_db(db: Path, credential_exit: int) -> Iterator[sqlite_utils.Database]:
    """The database ``db`` opened (created when missing) for the block and closed after it.

    A :class:`CredentialError` inside the block (a bad value, an unreadable secrets file) exits
    ``credential_exit`` with its one line; a database failure exits 1 naming the file and the
    cause (:func:`~rsu.cli.common.database_errors`); never a traceback.
    """
    try:
        with database_errors(db):
            conn = open_db(db)
            try:
                yield conn
            finally:
                conn.conn.close()
    except CredentialError as exc:
        fail(str(exc), credential_exit)


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
    refresh_token: Annotated[
        str | None,
        typer.Option(
            "--refresh-token",
            help="With --bearer-token: OAuth2 refresh token, or '-' to read it from "
            "RSU_REFRESH_TOKEN, else prompted. rsu sync then refreshes the access token.",
        ),
    ] = None,
    client_id: Annotated[
        str | None,
        typer.Option("--client-id", help="With --refresh-token: the OAuth2 client id."),
    ] = None,
    client_secret: Annotated[
        str | None,
        typer.Option(
            "--client-secret",
            help="With --refresh-token: the OAuth2 client secret, or '-' to read it from "
            "RSU_CLIENT_SECRET, else prompted.",
        ),
    ] = None,
    expires_in: Annotated[
        float | None,
        duration_option(
            "--expires-in",
            minimum=1,
            help="With --bearer-token: how long until the access token expires: 2592000 "
            "(seconds, the expires_in RunSignUp returned), 30d, 1h.",
        ),
    ] = None,
) -> None:
    """Store (or replace) the RunSignUp credential of one timing partner.

    A secret left out (or given as '-') is read from its environment variable, else prompted
    for on a terminal, else read as one line from standard input. Secrets are stored in the
    file DB.secrets (mode 0600) beside the database, never in the database.
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
    oauth_given = [refresh_token, client_id, client_secret, expires_in]
    if kind != "bearer" and any(v is not None for v in oauth_given):
        fail("--refresh-token, --client-id, --client-secret, --expires-in need --bearer-token", 2)
    if (client_id is not None or client_secret is not None) and refresh_token is None:
        fail("--client-id and --client-secret go with --refresh-token", 2)
    refresh = client = ""
    if refresh_token is not None:
        refresh = _secret(refresh_token, "RSU_REFRESH_TOKEN", "refresh token")
        if not client_id:
            fail("--refresh-token needs --client-id (the OAuth2 client that issued it)", 2)
        if client_secret is not None:
            client = _secret(client_secret, "RSU_CLIENT_SECRET", "OAuth2 client secret")
    with _credentials_db(db, credential_exit=2) as conn:
        cred, replaced = add_credential(
            conn,
            partner,
            kind,
            secret,
            principal,
            refresh_token=refresh,
            client_id=client_id or "",
            client_secret=client,
            expires_in=expires_in,
        )
    verb = "replaced" if replaced else "added"
    extra = ", refreshable" if cred.oauth is not None else ""
    typer.echo(
        f"{verb} {kind} credential for partner {partner} (secret {cred.fingerprint}{extra}); "
        f"secrets are kept in {secrets_file_of(db)}"
    )


@app.command("list")
def list_(db: DbOption = DEFAULT_DB) -> None:
    """List credentials: partner, kind, key and secret fingerprints (never the secrets), token
    expiry, and whether the API caller registration is set (its id only)."""
    require_db(db)
    with _credentials_db(db, credential_exit=1) as conn:
        creds = list_credentials(conn)
        caller = load_caller_registration(conn)
    if not creds:
        typer.echo("no credentials; add one with: rsu credentials add --partner ID --api-key KEY")
    else:
        typer.echo(f"{'partner':>8}  {'kind':<12} {'key':<9} {'secret':<9} expires")
        for c in creds:
            key_fp = c.key_fingerprint or "-"
            secret_fp = c.secret_fingerprint if c.secret_stored else "MISSING"
            expires = "-"
            if c.expires_at is not None:
                stamp = datetime.fromtimestamp(c.expires_at, UTC).strftime("%Y-%m-%d %H:%M")
                expires = f"{stamp} UTC" + (" (refreshable)" if c.refreshable else "")
            typer.echo(
                f"{c.timing_partner_id:>8}  {c.auth_kind:<12} {key_fp:<9} {secret_fp:<9} {expires}"
            )
    if caller is not None:
        typer.echo(f"caller registration: set (id {caller.reg_id})")
    else:
        typer.echo("caller registration: not set")
        err_console.print(
            "[yellow]warning:[/] no API caller registration: RunSignUp requires one on every "
            "call from 2027-01-01; set it with: rsu credentials caller --token ID.TOKEN",
            soft_wrap=True,
        )
    typer.echo(f"secrets are kept in {secrets_file_of(db)} (mode 0600), not in {db}")


@app.command("test")
def test(
    db: DbOption = DEFAULT_DB,
    partner: Annotated[
        list[int] | None, typer.Option("--partner", help="Only this partner (repeatable).")
    ] = None,
    base_url: Annotated[
        str, typer.Option("--base-url", envvar="RSU_BASE_URL", help="API root.")
    ] = DEFAULT_BASE_URL,
    timeout: Annotated[
        float,
        duration_option(
            "--timeout",
            minimum=0.001,
            help="How long to wait for each answer: 15s, 1m, 15 (seconds).",
        ),
    ] = 15.0,
    max_attempts: Annotated[
        int, typer.Option("--max-attempts", min=1, help="Tries per partner, the first included.")
    ] = 3,
) -> None:
    """Check each partner's access (GET /Rest/races?results_per_page=1). Exit 1 if any fails."""
    require_db(db)
    with fetcher_errors(db):
        results = check_credentials(
            db,
            base_url,
            tuple(partner or ()),
            timeouts=Timeouts(timeout, timeout),
            policy=RetryPolicy(max_attempts=max_attempts, backoff_factor=0.1, jitter=0.1),
        )
    if load_caller(db) is None:
        typer.echo(f"warning: {CALLER_WARNING}", err=True)
    for r in results:
        if r.ok:
            typer.echo(f"partner {r.timing_partner_id} ({r.auth_kind}): ok")
        else:
            code = f" code {r.error_code}" if r.error_code is not None else ""
            which = f" {r.credential} refused:" if r.credential else ""
            typer.echo(
                f"partner {r.timing_partner_id} ({r.auth_kind}): FAILED{code}:{which} "
                f"{printable(r.message)}"
            )
    raise typer.Exit(0 if all(r.ok for r in results) else 1)


@app.command("remove")
def remove(partner: PartnerOption, db: DbOption = DEFAULT_DB) -> None:
    """Delete the RunSignUp credential of one timing partner."""
    require_db(db)
    with _credentials_db(db, credential_exit=1) as conn:
        removed = remove_credential(conn, partner)
    if not removed:
        fail(f"no credentials for partner {partner}", 1)
    typer.echo(f"removed the credential of partner {partner}")


@app.command("caller")
def caller(
    db: DbOption = DEFAULT_DB,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            help="The caller registration as ID.TOKEN, or '-' to read it from RSU_API_REG, "
            "else prompted. Its secret is read from RSU_API_REG_SECRET, else prompted.",
        ),
    ] = None,
    remove: Annotated[
        bool, typer.Option("--remove", help="Delete the stored caller registration.")
    ] = False,
) -> None:
    """Store (or replace, or --remove) the installation's RunSignUp API caller registration.

    RunSignUp requires it on every call from 2027-01-01 (rsu_api_reg=ID.TOKEN plus the header
    X-RSU-API-REG-SECRET). One per database, kept in the file DB.secrets (mode 0600).
    """
    require_db(db)
    if remove == (token is not None):
        fail("give either --token ID.TOKEN or --remove", 2)
    with _credentials_db(db, credential_exit=2) as conn:
        if remove:
            removed = remove_caller_registration(conn)
        else:
            assert token is not None
            value = _secret(token, "RSU_API_REG", "caller registration ID.TOKEN")
            reg_id, reg_token = parse_caller_token(value)
            secret = _secret(None, "RSU_API_REG_SECRET", "caller registration secret")
            reg, replaced = set_caller_registration(conn, reg_id, reg_token, secret)
    if remove:
        if not removed:
            fail("no caller registration is stored", 1)
        typer.echo("removed the caller registration")
        return
    verb = "replaced" if replaced else "stored"
    typer.echo(
        f"{verb} the caller registration (id {reg.reg_id}, secret {fingerprint(reg.secret)}) "
        f"in {secrets_file_of(db)}"
    )
