"""Timing partner API credentials in the ``partner_provider_credentials`` table.

The table lives in the same SQLite file as the journal (opened with :func:`rsu.journal.open_db`,
mode 0600) and follows the original system: ``partner_provider_credential_id``,
``timing_partner_id``, ``provider_id`` (:data:`RUNSIGNUP_PROVIDER_ID` = 2 for RunSignUp),
``principal``, ``secret``, plus ``auth_kind`` and ``created_at`` (UTC ISO 8601). One RunSignUp
credential per timing partner: adding another replaces it.

Auth kinds (how :class:`Credential` goes on the wire):

* ``"api_key"``: query ``api_key=<principal>&api_secret=<secret>``;
* ``"rsu_api_key"``: query ``rsu_api_key=<principal>`` + header ``X-RSU-API-SECRET: <secret>``;
* ``"bearer"``: header ``Authorization: Bearer <secret>`` (``principal`` is ``""``).

This is the only table that may hold a secret. :class:`Credential` never shows its secret in
``repr``; :func:`fingerprint` is what operators see.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlite_utils
from sqlite_utils.migrations import Migrations

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


class CredentialError(ValueError):
    """A credential that cannot be stored (bad auth kind, empty secret ...); holds no secret."""


@dataclass(frozen=True)
class Credential:
    """One RunSignUp credential of one timing partner (see module docstring for ``auth_kind``).

    ``secret`` is excluded from ``repr`` so it cannot leak through logs or tracebacks.
    """

    timing_partner_id: int
    auth_kind: str
    principal: str
    secret: str = field(repr=False)
    credential_id: int | None = None

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


def ensure_schema(db: sqlite_utils.Database) -> None:
    """Create or migrate ``partner_provider_credentials`` in ``db`` (idempotent)."""
    migrations.apply(db)


def add_credential(
    db: sqlite_utils.Database,
    timing_partner_id: int,
    auth_kind: str,
    secret: str,
    principal: str = "",
) -> tuple[Credential, bool]:
    """Store the RunSignUp credential of ``timing_partner_id``, replacing any previous one.

    Surrounding whitespace (a pasted newline, a CRLF file) is stripped from ``secret`` and
    ``principal``. Returns ``(credential, replaced)``. Raises :class:`CredentialError` (whose
    message never holds the value) for an unknown ``auth_kind``, an empty secret, a missing
    principal for key kinds, or whitespace or a control character inside either value.
    """
    if auth_kind not in AUTH_KINDS:
        raise CredentialError(f"unknown auth kind {auth_kind!r} (one of {', '.join(AUTH_KINDS)})")
    secret = secret.strip()
    principal = principal.strip()
    if not secret:
        raise CredentialError("the secret is empty")
    check_value("secret", secret)
    check_value("key", principal)
    if auth_kind != "bearer" and not principal:
        raise CredentialError(f"{auth_kind} needs a key (principal)")
    if auth_kind == "bearer":
        principal = ""
    ensure_schema(db)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
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
            "created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (timing_partner_id, RUNSIGNUP_PROVIDER_ID, principal, secret, auth_kind, now),
        )
    cred = Credential(timing_partner_id, auth_kind, principal, secret, cur.lastrowid)
    return cred, replaced


def load_credentials(
    db: sqlite_utils.Database, partner_ids: list[int] | tuple[int, ...] | None = None
) -> list[Credential]:
    """The RunSignUp credentials (``provider_id`` 2), ordered by ``timing_partner_id``;
    only those of ``partner_ids`` when given."""
    ensure_schema(db)
    rows = db.execute(
        f"SELECT partner_provider_credential_id, timing_partner_id, auth_kind, principal, secret "
        f"FROM {TABLE} WHERE provider_id = ? ORDER BY timing_partner_id",
        (RUNSIGNUP_PROVIDER_ID,),
    ).fetchall()
    creds = [Credential(r[1], r[2], r[3], r[4], r[0]) for r in rows]
    if partner_ids:
        wanted = set(partner_ids)
        creds = [c for c in creds if c.timing_partner_id in wanted]
    return creds


def remove_credential(db: sqlite_utils.Database, timing_partner_id: int) -> int:
    """Delete the RunSignUp credential(s) of ``timing_partner_id``; return how many were removed."""
    ensure_schema(db)
    with db.conn:
        return db.execute(
            f"DELETE FROM {TABLE} WHERE timing_partner_id = ? AND provider_id = ?",
            (timing_partner_id, RUNSIGNUP_PROVIDER_ID),
        ).rowcount
