"""Timing partner API credentials: who exists in the data database, secrets in the secrets file.

The data database (the SQLite file of the journal, opened with :func:`rsu.journal.open_db`) keeps
the table ``partner_provider_credentials`` of the original system: which partners exist and how
they authenticate, never a secret. Its columns: ``partner_provider_credential_id``,
``timing_partner_id``, ``provider_id`` (:data:`RUNSIGNUP_PROVIDER_ID` = 2 for RunSignUp),
``auth_kind``, ``key_fingerprint`` and ``secret_fingerprint`` (see :func:`fingerprint`),
``expires_at`` (bearer tokens: access token expiry, UTC epoch seconds, NULL = unknown),
``refreshable`` (0/1: a refresh token is stored) and ``created_at`` (UTC ISO 8601). The
original ``principal`` and ``secret`` columns stay for its layout and are always ``''``.

The secrets themselves (the api key, which is secret-ish, the api secret, the bearer token and
its refresh token and OAuth client) and the installation's caller registration live in the
secrets file ``<database file>.secrets`` beside it, mode 0600 (see
:mod:`rsu.fetcher.secret_store`). A database written by an older ``rsu`` that still holds
secrets in the table has them moved there on first use (:func:`ensure_schema`): copied to the
secrets file, blanked in the table, then ``VACUUM`` and a WAL checkpoint so the bytes are gone
from the database file, with one message saying where secrets now live.

One RunSignUp credential per timing partner: adding another replaces it. Auth kinds (how
:class:`Credential` goes on the wire):

* ``"api_key"``: query ``api_key=<principal>&api_secret=<secret>``;
* ``"rsu_api_key"``: query ``rsu_api_key=<principal>`` + header ``X-RSU-API-SECRET: <secret>``;
* ``"bearer"``: header ``Authorization: Bearer <secret>`` (``principal`` is ``""``); refreshed
  by :mod:`rsu.fetcher.oauth` when a refresh token is stored.

:class:`Credential` never shows its secrets in ``repr``; :func:`fingerprint` is what operators
see.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import sys
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils
from sqlite_utils.migrations import Migrations

from .secret_store import (
    SECRETS_SUFFIX,
    CredentialError,
    database_file,
    open_store,
    secrets_path,
    transaction,
)

__all__ = [
    "AUTH_KINDS",
    "RUNSIGNUP_PROVIDER_ID",
    "CallerRegistration",
    "Credential",
    "CredentialError",
    "CredentialInfo",
    "OAuthRefresh",
    "add_credential",
    "check_value",
    "ensure_schema",
    "fingerprint",
    "list_credentials",
    "load_caller_registration",
    "load_credentials",
    "parse_caller_token",
    "remove_caller_registration",
    "remove_credential",
    "secrets_file_of",
    "secrets_path",
    "set_caller_registration",
    "store_refreshed_token",
    "token_expiries",
    "token_expiry",
]

log = logging.getLogger("rsu.fetcher.credentials")

#: ``provider_id`` of RunSignUp in ``partner_provider_credentials``.
RUNSIGNUP_PROVIDER_ID = 2
#: The auth kinds a credential may have.
AUTH_KINDS = ("api_key", "rsu_api_key", "bearer")
TABLE = "partner_provider_credentials"

migrations = Migrations("rsu.credentials")


@migrations()
def m001_partner_provider_credentials(db: sqlite_utils.Database) -> None:
    db.execute(
        f"""
        CREATE TABLE IF NOT EXISTS {TABLE} (
            partner_provider_credential_id INTEGER PRIMARY KEY,
            timing_partner_id INTEGER NOT NULL,
            provider_id INTEGER NOT NULL,
            principal TEXT NOT NULL DEFAULT '',
            secret TEXT NOT NULL,
            auth_kind TEXT NOT NULL,
            created_at TEXT NOT NULL
        )
        """
    )
    db.execute(
        f"CREATE UNIQUE INDEX IF NOT EXISTS {TABLE}_partner "
        f"ON {TABLE}(timing_partner_id, provider_id)"
    )


@migrations()
def m002_fingerprints_and_expiry(db: sqlite_utils.Database) -> None:
    cols = {r[1] for r in db.execute(f"PRAGMA table_info({TABLE})").fetchall()}
    for name, decl in (
        ("key_fingerprint", "TEXT NOT NULL DEFAULT ''"),
        ("secret_fingerprint", "TEXT NOT NULL DEFAULT ''"),
        ("expires_at", "REAL"),
        ("refreshable", "INTEGER NOT NULL DEFAULT 0"),
    ):
        if name not in cols:
            db.execute(f"ALTER TABLE {TABLE} ADD COLUMN {name} {decl}")


@migrations(transactional=False)
def m003_secrets_out_of_the_database(db: sqlite_utils.Database) -> None:
    _move_plaintext_secrets(db)


@dataclass(frozen=True)
class OAuthRefresh:
    """What refreshes a bearer token (OAuth2 ``grant_type=refresh_token``): the refresh token and
    the OAuth client (``client_secret`` may be ``""`` for a public client). ``refresh_token`` and
    ``client_secret`` are secrets and not in ``repr``."""

    refresh_token: str = field(repr=False)
    client_id: str
    client_secret: str = field(repr=False, default="")


@dataclass(frozen=True)
class Credential:
    """One RunSignUp credential of one timing partner (see module docstring for ``auth_kind``).

    ``secret`` is excluded from ``repr`` so it cannot leak through logs or tracebacks; so is
    ``principal`` (an api key is secret-ish). Bearer tokens may carry ``expires_at`` (access
    token expiry, UTC epoch seconds; ``None`` = unknown) and ``oauth`` (how to refresh it;
    ``None`` = it cannot be refreshed).
    """

    timing_partner_id: int
    auth_kind: str
    principal: str = field(repr=False)
    secret: str = field(repr=False)
    credential_id: int | None = None
    expires_at: float | None = None
    oauth: OAuthRefresh | None = field(default=None, repr=False)

    def query_params(self) -> dict[str, str]:
        """Query parameters carrying this credential (``api_key``/``api_secret`` or
        ``rsu_api_key``); empty for bearer tokens."""
        if self.auth_kind == "api_key":
            return {"api_key": self.principal, "api_secret": self.secret}
        if self.auth_kind == "rsu_api_key":
            return {"rsu_api_key": self.principal}
        return {}

    def headers(self) -> dict[str, str]:
        """HTTP headers carrying this credential (``X-RSU-API-SECRET`` or ``Authorization``)."""
        if self.auth_kind == "rsu_api_key":
            return {"X-RSU-API-SECRET": self.secret}
        if self.auth_kind == "bearer":
            return {"Authorization": f"Bearer {self.secret}"}
        return {}

    def secret_values(self) -> list[str]:
        """Every value that must never appear outside the credentials table (for scrubbing)."""
        values = [self.secret]
        if self.auth_kind in ("api_key", "rsu_api_key") and self.principal:
            values.append(self.principal)
        if self.oauth is not None:
            values += [self.oauth.refresh_token, self.oauth.client_secret]
        return [v for v in values if v]

    @property
    def fingerprint(self) -> str:
        """First 8 hex digits of the sha256 of the secret (safe to show)."""
        return fingerprint(self.secret)


@dataclass(frozen=True)
class CallerRegistration:
    """The installation's RunSignUp API caller registration (one per timing company).

    RunSignUp rejects calls without it from 2027-01-01 (``runsignup-api.md`` section 5). It
    identifies the caller and authenticates nothing: it goes on every request beside the timing
    partner's own credential, as query ``rsu_api_reg=<reg_id>.<token>`` and header
    ``X-RSU-API-REG-SECRET: <secret>``. A wrong one fails every call with HTTP 400 and RunSignUp
    error 17. ``reg_id`` is safe to show; ``token`` and ``secret`` are secrets (not in ``repr``).
    """

    reg_id: str
    token: str = field(repr=False)
    secret: str = field(repr=False)

    def query_params(self) -> dict[str, str]:
        """``{"rsu_api_reg": "<reg_id>.<token>"}``."""
        return {"rsu_api_reg": f"{self.reg_id}.{self.token}"}

    def headers(self) -> dict[str, str]:
        """``{"X-RSU-API-REG-SECRET": secret}``."""
        return {"X-RSU-API-REG-SECRET": self.secret}

    def secret_values(self) -> list[str]:
        """Values that must never leave the secrets store (for scrubbing): the token, the whole
        ``id.token`` parameter and the secret."""
        return [v for v in (f"{self.reg_id}.{self.token}", self.token, self.secret) if v]


def fingerprint(secret: str) -> str:
    """First 8 hex digits of ``sha256(secret)``: identifies a secret without revealing it."""
    return hashlib.sha256(secret.encode()).hexdigest()[:8]


def check_value(what: str, value: str) -> None:
    """Raise :class:`CredentialError` when ``value`` holds whitespace, a control (or other
    non-printable) character or a non-ASCII one: it could not go into a header or query
    intact. The message names the position and kind of character, never the value."""
    for pos, ch in enumerate(value, 1):
        if ch.isspace() or unicodedata.category(ch).startswith("C") or not ch.isascii():
            if ch.isspace():
                kind = "whitespace"
            elif not ch.isascii():
                kind = "a non-ASCII character (HTTP headers carry ASCII only)"
            else:
                kind = "a control character"
            raise CredentialError(
                f"the {what} contains {kind} (U+{ord(ch):04X}) at character {pos} of "
                f"{len(value)}; credentials are single tokens without spaces or line breaks "
                "(was it pasted with extra text?)"
            )


def _utc_now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ensure_schema(db: sqlite_utils.Database) -> None:
    """Create or migrate ``partner_provider_credentials`` in ``db`` (idempotent), and move any
    secret still held in it to the secrets file (see the module docstring).

    Raises :class:`CredentialError` when secrets must move but the secrets file cannot be
    written (nothing is blanked then).
    """
    migrations.apply(db)
    _move_plaintext_secrets(db)


def _move_plaintext_secrets(db: sqlite_utils.Database) -> int:
    """Move secrets left in ``partner_provider_credentials`` (by an older ``rsu``, or written by
    hand) into the secrets file, blank them in the table, then ``VACUUM`` and truncate the WAL
    so no copy of their bytes stays in the database file. Returns how many rows moved (0 when
    there was nothing to do: the check is one cheap SELECT)."""
    if not db[TABLE].exists():
        return 0
    rows = db.execute(
        f"SELECT partner_provider_credential_id, timing_partner_id, provider_id, auth_kind, "
        f"principal, secret FROM {TABLE} WHERE principal != '' OR secret != ''"
    ).fetchall()
    if not rows:
        return 0
    path = secrets_path(db)
    now = _utc_now_iso()
    with open_store(path, create=True) as store:
        assert store is not None
        with transaction(store):
            for _id, pid, provider, kind, principal, secret in rows:
                store.execute(
                    "INSERT OR REPLACE INTO credential_secrets (timing_partner_id, provider_id, "
                    "auth_kind, principal, secret, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (pid, provider, kind, principal, secret, now),
                )
    db.conn.execute("PRAGMA secure_delete=ON")
    with db.conn:
        for row_id, _pid, _provider, _kind, principal, secret in rows:
            db.execute(
                f"UPDATE {TABLE} SET principal = '', secret = '', key_fingerprint = ?, "
                "secret_fingerprint = ? WHERE partner_provider_credential_id = ?",
                (fingerprint(principal) if principal else "", fingerprint(secret), row_id),
            )
    _scrub_file(db)
    message = (
        f"moved the API secrets of {len(rows)} credential(s) out of {database_file(db)} into "
        f"{path} (mode 0600): secrets now live only there"
    )
    if log.hasHandlers():
        log.warning(message)
    print(f"rsu: {message}", file=sys.stderr)
    return len(rows)


def _scrub_file(db: sqlite_utils.Database) -> None:
    """``VACUUM`` (rewrite the file without free pages) and truncate the WAL, so bytes of a
    blanked value are not left in the database file or its ``-wal``. Best effort: a busy
    database (another connection reading) is logged and left for the next checkpoint."""
    try:
        db.conn.execute("VACUUM")
        busy = db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    except sqlite3.Error as exc:
        log.warning("VACUUM after moving secrets failed (%s); run it again later", exc)
        return
    if busy and busy[0]:
        log.warning("the WAL of %s could not be truncated (a reader is busy)", database_file(db))


def add_credential(
    db: sqlite_utils.Database,
    timing_partner_id: int,
    auth_kind: str,
    secret: str,
    principal: str = "",
    *,
    refresh_token: str = "",
    client_id: str = "",
    client_secret: str = "",
    expires_in: float | None = None,
    now: float | None = None,
) -> tuple[Credential, bool]:
    """Store the RunSignUp credential of ``timing_partner_id``, replacing any previous one.

    The secrets (``secret``, ``principal`` and, for ``"bearer"``, ``refresh_token`` and
    ``client_secret``) go to the secrets file ``<db file>.secrets`` (created with mode 0600);
    the data database gets the partner, auth kind, fingerprints and expiry only.
    ``expires_in`` (bearer only) is the access token's remaining life in seconds from ``now``
    (UTC epoch seconds, default the current time); it is stored as the absolute expiry.
    A refresh token needs a ``client_id``.

    Surrounding whitespace (a pasted newline, a CRLF file) is stripped from every value.
    Returns ``(credential, replaced)``. Raises :class:`CredentialError` (whose message never
    holds a value) for an unknown ``auth_kind``, an empty secret, a missing principal for key
    kinds, OAuth fields on a key kind, or whitespace or a control character inside a value.
    """
    if auth_kind not in AUTH_KINDS:
        raise CredentialError(f"unknown auth kind {auth_kind!r} (one of {', '.join(AUTH_KINDS)})")
    secret = secret.strip()
    principal = principal.strip()
    refresh_token, client_id, client_secret = (
        v.strip() for v in (refresh_token, client_id, client_secret)
    )
    if not secret:
        raise CredentialError("the secret is empty")
    check_value("secret", secret)
    check_value("key", principal)
    check_value("refresh token", refresh_token)
    check_value("client id", client_id)
    check_value("client secret", client_secret)
    if auth_kind != "bearer" and not principal:
        raise CredentialError(f"{auth_kind} needs a key (principal)")
    if auth_kind != "bearer" and (refresh_token or client_id or client_secret or expires_in):
        raise CredentialError("a refresh token, OAuth client and expiry go with bearer tokens only")
    if refresh_token and not client_id:
        raise CredentialError("a refresh token needs the OAuth client id (--client-id)")
    if expires_in is not None and not expires_in > 0:
        raise CredentialError("expires_in must be a positive number of seconds")
    if auth_kind == "bearer":
        principal = ""
    clock = datetime.now(UTC).timestamp() if now is None else now
    expires_at = None if expires_in is None else float(clock + expires_in)
    ensure_schema(db)
    created = _utc_now_iso()
    with open_store(secrets_path(db), create=True) as store:
        assert store is not None
        with transaction(store):
            store.execute(
                "INSERT OR REPLACE INTO credential_secrets (timing_partner_id, provider_id, "
                "auth_kind, principal, secret, refresh_token, client_id, client_secret, "
                "expires_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    timing_partner_id,
                    RUNSIGNUP_PROVIDER_ID,
                    auth_kind,
                    principal,
                    secret,
                    refresh_token,
                    client_id,
                    client_secret,
                    expires_at,
                    created,
                ),
            )
    with db.conn:
        replaced = (
            db.execute(
                f"DELETE FROM {TABLE} WHERE timing_partner_id = ? AND provider_id = ?",
                (timing_partner_id, RUNSIGNUP_PROVIDER_ID),
            ).rowcount
            > 0
        )
        cur = db.execute(
            f"INSERT INTO {TABLE} (timing_partner_id, provider_id, principal, secret, auth_kind, "
            "key_fingerprint, secret_fingerprint, expires_at, refreshable, created_at) "
            "VALUES (?, ?, '', '', ?, ?, ?, ?, ?, ?)",
            (
                timing_partner_id,
                RUNSIGNUP_PROVIDER_ID,
                auth_kind,
                fingerprint(principal) if principal else "",
                fingerprint(secret),
                expires_at,
                int(bool(refresh_token)),
                created,
            ),
        )
    oauth = OAuthRefresh(refresh_token, client_id, client_secret) if refresh_token else None
    cred = Credential(
        timing_partner_id, auth_kind, principal, secret, cur.lastrowid, expires_at, oauth
    )
    return cred, replaced


def _stored_secrets(db: sqlite_utils.Database) -> dict[int, dict[str, Any]]:
    """The RunSignUp rows of the secrets file by ``timing_partner_id`` (``{}`` without a file)."""
    with open_store(secrets_path(db), create=False) as store:
        if store is None:
            return {}
        store.row_factory = sqlite3.Row
        rows = store.execute(
            "SELECT * FROM credential_secrets WHERE provider_id = ?", (RUNSIGNUP_PROVIDER_ID,)
        ).fetchall()
    return {r["timing_partner_id"]: dict(r) for r in rows}


def load_credentials(
    db: sqlite_utils.Database, partner_ids: list[int] | tuple[int, ...] | None = None
) -> list[Credential]:
    """The RunSignUp credentials (``provider_id`` 2), ordered by ``timing_partner_id``;
    only those of ``partner_ids`` when given. Partners come from the data database, their
    secrets from the secrets file.

    Raises :class:`CredentialError` naming the partners (never a value) when a partner in scope
    has no secret in the secrets file (e.g. the database was copied without its ``.secrets``
    file): add those credentials again.
    """
    ensure_schema(db)
    rows = db.execute(
        f"SELECT partner_provider_credential_id, timing_partner_id, auth_kind "
        f"FROM {TABLE} WHERE provider_id = ? ORDER BY timing_partner_id",
        (RUNSIGNUP_PROVIDER_ID,),
    ).fetchall()
    if partner_ids:
        wanted = set(partner_ids)
        rows = [r for r in rows if r[1] in wanted]
    if not rows:
        return []
    secrets = _stored_secrets(db)
    creds, missing = [], []
    for row_id, pid, kind in rows:
        s = secrets.get(pid)
        if s is None or s["auth_kind"] != kind:
            missing.append(pid)
            continue
        creds.append(_credential(row_id, s))
    if missing:
        raise CredentialError(
            f"the secrets of partner(s) {', '.join(map(str, missing))} are missing from "
            f"{secrets_path(db)}; add them again with: rsu credentials add --partner ID ..."
        )
    return creds


def _credential(row_id: int | None, s: dict[str, Any]) -> Credential:
    oauth = (
        OAuthRefresh(s["refresh_token"], s["client_id"], s["client_secret"])
        if s["refresh_token"]
        else None
    )
    return Credential(
        s["timing_partner_id"],
        s["auth_kind"],
        s["principal"],
        s["secret"],
        row_id,
        s["expires_at"],
        oauth,
    )


@dataclass(frozen=True)
class CredentialInfo:
    """What ``rsu credentials list`` shows of one credential: no secret, only fingerprints.

    ``expires_at`` is UTC epoch seconds (bearer tokens; ``None`` = unknown); ``refreshable``
    says a refresh token is stored; ``secret_stored`` is false when the secrets file lacks it.
    """

    timing_partner_id: int
    auth_kind: str
    key_fingerprint: str
    secret_fingerprint: str
    created_at: str
    expires_at: float | None
    refreshable: bool
    secret_stored: bool


def list_credentials(db: sqlite_utils.Database) -> list[CredentialInfo]:
    """Every RunSignUp credential as :class:`CredentialInfo`, ordered by partner (moves secrets
    left in the data database first, like :func:`load_credentials`)."""
    ensure_schema(db)
    rows = db.execute(
        f"SELECT timing_partner_id, auth_kind, key_fingerprint, secret_fingerprint, created_at, "
        f"expires_at, refreshable FROM {TABLE} WHERE provider_id = ? ORDER BY timing_partner_id",
        (RUNSIGNUP_PROVIDER_ID,),
    ).fetchall()
    secrets = _stored_secrets(db) if rows else {}
    return [
        CredentialInfo(
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
            bool(r[6]),
            r[0] in secrets and secrets[r[0]]["auth_kind"] == r[1],
        )
        for r in rows
    ]


def store_refreshed_token(
    store: sqlite3.Connection,
    credential: Credential,
    access_token: str,
    expires_at: float | None,
    refresh_token: str | None,
) -> Credential:
    """Write a refreshed bearer token into the secrets file through ``store`` (inside the
    caller's :func:`~rsu.fetcher.secret_store.transaction`) and return the new credential.
    ``refresh_token`` ``None`` keeps the stored one. ``expires_at``: UTC epoch seconds."""
    assert credential.oauth is not None
    oauth = replace(credential.oauth, refresh_token=refresh_token or credential.oauth.refresh_token)
    store.execute(
        "UPDATE credential_secrets SET secret = ?, refresh_token = ?, expires_at = ?, "
        "updated_at = ? WHERE timing_partner_id = ? AND provider_id = ?",
        (
            access_token,
            oauth.refresh_token,
            expires_at,
            _utc_now_iso(),
            credential.timing_partner_id,
            RUNSIGNUP_PROVIDER_ID,
        ),
    )
    return replace(credential, secret=access_token, expires_at=expires_at, oauth=oauth)


def read_stored_credential(store: sqlite3.Connection, timing_partner_id: int) -> Credential | None:
    """The credential of ``timing_partner_id`` as the secrets file holds it now (``None`` when
    absent); ``credential_id`` is ``None``."""
    store.row_factory = sqlite3.Row
    row = store.execute(
        "SELECT * FROM credential_secrets WHERE timing_partner_id = ? AND provider_id = ?",
        (timing_partner_id, RUNSIGNUP_PROVIDER_ID),
    ).fetchone()
    return None if row is None else _credential(None, dict(row))


def note_token_in_database(db: sqlite_utils.Database, credential: Credential) -> None:
    """Mirror a (refreshed) bearer token's fingerprint and expiry into the data database."""
    with db.conn:
        db.execute(
            f"UPDATE {TABLE} SET secret_fingerprint = ?, expires_at = ?, refreshable = ? "
            "WHERE timing_partner_id = ? AND provider_id = ?",
            (
                fingerprint(credential.secret),
                credential.expires_at,
                int(credential.oauth is not None),
                credential.timing_partner_id,
                RUNSIGNUP_PROVIDER_ID,
            ),
        )


def token_expiry(db: sqlite_utils.Database, timing_partner_id: int) -> float | None:
    """When the bearer token of ``timing_partner_id`` expires: UTC epoch seconds, or ``None``
    (no bearer credential, expiry unknown, or a database without credentials). Reads the data
    database only (no secret needed, nothing written)."""
    if not db[TABLE].exists():
        return None
    cols = {r[1] for r in db.execute(f"PRAGMA table_info({TABLE})").fetchall()}
    if "expires_at" not in cols:
        return None
    row = db.execute(
        f"SELECT expires_at FROM {TABLE} WHERE timing_partner_id = ? AND provider_id = ? "
        "AND auth_kind = 'bearer'",
        (timing_partner_id, RUNSIGNUP_PROVIDER_ID),
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def token_expiries(db: sqlite_utils.Database) -> list[tuple[int, float, bool]]:
    """``(timing_partner_id, expires_at, refreshable)`` of every bearer token with a known
    expiry (UTC epoch seconds), by partner; ``[]`` for a database without credentials. Reads
    the data database only."""
    if not db[TABLE].exists():
        return []
    cols = {r[1] for r in db.execute(f"PRAGMA table_info({TABLE})").fetchall()}
    if "expires_at" not in cols:
        return []
    rows = db.execute(
        f"SELECT timing_partner_id, expires_at, refreshable FROM {TABLE} WHERE provider_id = ? "
        "AND auth_kind = 'bearer' AND expires_at IS NOT NULL ORDER BY timing_partner_id",
        (RUNSIGNUP_PROVIDER_ID,),
    ).fetchall()
    return [(r[0], float(r[1]), bool(r[2])) for r in rows]


def remove_credential(db: sqlite_utils.Database, timing_partner_id: int) -> int:
    """Delete the RunSignUp credential(s) of ``timing_partner_id`` from the data database and
    its secrets from the secrets file; return how many data database rows were removed."""
    ensure_schema(db)
    with open_store(secrets_path(db), create=False) as store:
        if store is not None:
            with transaction(store):
                store.execute(
                    "DELETE FROM credential_secrets WHERE timing_partner_id = ? "
                    "AND provider_id = ?",
                    (timing_partner_id, RUNSIGNUP_PROVIDER_ID),
                )
    with db.conn:
        return db.execute(
            f"DELETE FROM {TABLE} WHERE timing_partner_id = ? AND provider_id = ?",
            (timing_partner_id, RUNSIGNUP_PROVIDER_ID),
        ).rowcount


# ---------------------------------------------------------------------- caller registration
def parse_caller_token(value: str) -> tuple[str, str]:
    """Split a caller registration ``ID.TOKEN`` into ``(reg_id, token)`` at the first dot.

    Raises :class:`CredentialError` (never quoting the value) when there is no dot, a half is
    empty, or a half holds whitespace, a control or a non-ASCII character."""
    value = value.strip()
    reg_id, dot, token = value.partition(".")
    if not dot or not reg_id or not token:
        raise CredentialError(
            "the caller registration must look like ID.TOKEN (both halves non-empty, "
            "joined by a dot)"
        )
    check_value("caller registration id", reg_id)
    check_value("caller registration token", token)
    return reg_id, token


def set_caller_registration(
    db: sqlite_utils.Database, reg_id: str, token: str, secret: str
) -> tuple[CallerRegistration, bool]:
    """Store the installation's caller registration (one per database) in the secrets file,
    replacing any previous one. Values are stripped; returns ``(registration, replaced)``.

    Raises :class:`CredentialError` (never holding a value) when a value is empty, ``reg_id``
    holds a dot, or a value holds whitespace, a control or a non-ASCII character.
    """
    reg_id, token, secret = reg_id.strip(), token.strip(), secret.strip()
    for what, value in (("id", reg_id), ("token", token), ("secret", secret)):
        if not value:
            raise CredentialError(f"the caller registration {what} is empty")
        check_value(f"caller registration {what}", value)
    if "." in reg_id:
        raise CredentialError("the caller registration id holds a dot (give it as ID.TOKEN)")
    with open_store(secrets_path(db), create=True) as store:
        assert store is not None
        with transaction(store):
            replaced = store.execute("DELETE FROM caller_registration").rowcount > 0
            store.execute(
                "INSERT INTO caller_registration (id, reg_id, token, secret, updated_at) "
                "VALUES (1, ?, ?, ?, ?)",
                (reg_id, token, secret, _utc_now_iso()),
            )
    return CallerRegistration(reg_id, token, secret), replaced


def load_caller_registration(db: sqlite_utils.Database) -> CallerRegistration | None:
    """The installation's caller registration from the secrets file; ``None`` when unset (or
    no secrets file exists). Raises :class:`CredentialError` for an in-memory database or an
    unreadable secrets file."""
    with open_store(secrets_path(db), create=False) as store:
        if store is None:
            return None
        row = store.execute("SELECT reg_id, token, secret FROM caller_registration").fetchone()
    return None if row is None else CallerRegistration(row[0], row[1], row[2])


def remove_caller_registration(db: sqlite_utils.Database) -> bool:
    """Delete the caller registration; ``True`` when there was one."""
    with open_store(secrets_path(db), create=False) as store:
        if store is None:
            return False
        with transaction(store):
            return store.execute("DELETE FROM caller_registration").rowcount > 0


def secrets_file_of(db_file: str | Path) -> Path:
    """``<db_file>.secrets``: where the secrets of the database file ``db_file`` live."""
    return Path(f"{db_file}{SECRETS_SUFFIX}")
