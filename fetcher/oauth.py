"""OAuth2 bearer tokens: refresh ahead of expiry, and expiry warnings for ``rsu status``.

A bearer credential stored with a refresh token and OAuth client (``rsu credentials add
--bearer-token - --refresh-token - --client-id ID ...``) is refreshed when its access token
expires within ``margin_s`` seconds (default :data:`DEFAULT_MARGIN_S`) or its expiry is unknown:

``POST <refresh URL>``, form-encoded ``grant_type=refresh_token``, ``refresh_token``,
``client_id``, ``client_secret`` (left out when none is stored). The answer
``{access_token, token_type, expires_in, refresh_token, scope}`` replaces the access token,
its expiry (``now + expires_in``, UTC epoch seconds) and, when one comes back, the refresh token
(the old one is kept otherwise), in the secrets file; the data database gets the new
fingerprint and expiry.

The refresh URL follows the configured API base URL (:func:`refresh_url`): RunSignUp's
production hosts (``runsignup.com``, ``www.runsignup.com``, ``api.runsignup.com``) use the
documented ``https://api.runsignup.com/rest/v2/auth/refresh-token.json``; any other base URL
(``https://test.runsignup.com``, the simulator) uses ``<base_url>/rest/v2/auth/refresh-token.json``.
Refresh tokens go over https only, or plain http to a loopback host (the simulator).

Answers are untrusted: bounded in time (:data:`TIMEOUTS`) and size (:data:`MAX_BODY_BYTES`),
no redirects followed. Error messages are one line, name the partner, and never hold a token.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import requests
import sqlite_utils

from .bounded import ACCEPT_ENCODING, BodyTooLarge, BoundedAdapter, bounded_request
from .credentials import (
    CallerRegistration,
    Credential,
    check_value,
    load_caller_registration,
    note_token_in_database,
    read_stored_credential,
    store_refreshed_token,
    token_expiries,
    token_expiry,
)
from .secret_store import CredentialError, open_store, secrets_path, transaction
from .shapes import as_int

__all__ = [
    "DEFAULT_MARGIN_S",
    "MAX_BODY_BYTES",
    "OAuthError",
    "ReauthoriseError",
    "expiry_warnings",
    "is_due",
    "refresh_due_tokens",
    "refresh_if_due",
    "refresh_url",
    "token_expiry",
]

#: Refresh when the access token expires within this many seconds (one long run's worth).
DEFAULT_MARGIN_S = 900.0
#: ``rsu status`` warns about a token that cannot be refreshed this many seconds ahead (7 days).
DEFAULT_WARN_S = 7 * 86400.0
#: (connect, read) timeouts of the refresh call, seconds.
TIMEOUTS = (10.0, 30.0)
#: Seconds the whole refresh call may take (a server trickling its answer is cut off; the
#: connection is cut when the session mounts :class:`~rsu.fetcher.bounded.BoundedAdapter`).
DEADLINE = 60.0
#: The largest refresh answer read (64 KiB); a longer one is an error.
MAX_BODY_BYTES = 64 * 1024
#: The longest ``expires_in`` believed (seconds, 10 years); a longer, infinite or NaN one is
#: taken as unknown (a timestamp that far out cannot even be shown as a date).
MAX_EXPIRES_IN = 10 * 365 * 86400
#: RunSignUp's documented refresh endpoint (API doc section 5).
PRODUCTION_REFRESH_URL = "https://api.runsignup.com/rest/v2/auth/refresh-token.json"
PRODUCTION_HOSTS = frozenset({"runsignup.com", "www.runsignup.com", "api.runsignup.com"})
REFRESH_PATH = "/rest/v2/auth/refresh-token.json"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_ERROR_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")


class OAuthError(Exception):
    """A token refresh that failed; the one-line message names the partner and the cause (HTTP
    status, OAuth error code, exception class), never a token or secret."""

    def __init__(self, timing_partner_id: int, message: str) -> None:
        super().__init__(f"partner {timing_partner_id}: {message}")
        self.timing_partner_id = timing_partner_id


class ReauthoriseError(OAuthError):
    """The refresh token was refused (``invalid_grant``): only a new authorisation helps."""

    def __init__(self, timing_partner_id: int) -> None:
        pid = timing_partner_id
        super().__init__(
            pid,
            f"RunSignUp refused the refresh token (invalid_grant); re-authorise partner {pid} "
            f"and store the new tokens with: rsu credentials add --partner {pid} "
            "--bearer-token - --refresh-token - --client-id ID",
        )


def refresh_url(base_url: str) -> str:
    """The refresh endpoint for the API base URL ``base_url`` (rule in the module docstring).

    ``https://runsignup.com`` -> ``https://api.runsignup.com/rest/v2/auth/refresh-token.json``;
    ``http://127.0.0.1:8080`` -> ``http://127.0.0.1:8080/rest/v2/auth/refresh-token.json``.
    """
    host = (urlsplit(base_url).hostname or "").lower()
    if host in PRODUCTION_HOSTS:
        return PRODUCTION_REFRESH_URL
    return base_url.rstrip("/") + REFRESH_PATH


def _check_transport(timing_partner_id: int, url: str) -> None:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme == "https" or (parts.scheme == "http" and host in _LOOPBACK):
        return
    raise OAuthError(
        timing_partner_id,
        f"refusing to send a refresh token to {parts.scheme}://{host} (https only, "
        "or http to a loopback host)",
    )


def is_due(credential: Credential, now: float, margin_s: float = DEFAULT_MARGIN_S) -> bool:
    """True when ``credential`` is a refreshable bearer token whose expiry (UTC epoch seconds)
    is unknown or within ``margin_s`` seconds of ``now`` (UTC epoch seconds)."""
    if credential.auth_kind != "bearer" or credential.oauth is None:
        return False
    return credential.expires_at is None or credential.expires_at - now <= margin_s


def _post_refresh(
    credential: Credential,
    url: str,
    session: requests.Session,
    caller: CallerRegistration | None,
) -> tuple[int, dict[str, Any]]:
    """POST the refresh grant (with the caller registration when one is given);
    ``(HTTP status, JSON object or {})``."""
    pid = credential.timing_partner_id
    assert credential.oauth is not None
    form = {
        "grant_type": "refresh_token",
        "refresh_token": credential.oauth.refresh_token,
        "client_id": credential.oauth.client_id,
    }
    if credential.oauth.client_secret:
        form["client_secret"] = credential.oauth.client_secret
    headers = {"Accept": "application/json", "Accept-Encoding": ACCEPT_ENCODING}
    send = partial(
        session.post,
        url,
        params=caller.query_params() if caller is not None else None,
        data=form,
        headers={**headers, **(caller.headers() if caller else {})},
        timeout=TIMEOUTS,
        allow_redirects=False,
        stream=True,
    )
    try:
        resp, body = bounded_request(send, DEADLINE, MAX_BODY_BYTES)
    except BodyTooLarge:
        raise OAuthError(pid, "token refresh answer larger than 64 KiB") from None
    except requests.RequestException as exc:  # its message may quote the request: not shown
        raise OAuthError(pid, f"token refresh failed ({type(exc).__name__})") from None
    try:
        data = json.loads(body.decode("utf-8")) if body.strip() else {}
    except (UnicodeDecodeError, ValueError):
        data = None
    if not isinstance(data, dict):
        raise OAuthError(
            pid, f"token refresh answered HTTP {resp.status_code} without a JSON object"
        )
    return resp.status_code, data


def _refresh(
    credential: Credential,
    url: str,
    session: requests.Session,
    now: float,
    caller: CallerRegistration | None,
) -> tuple[str, float | None, str | None]:
    """Exchange the refresh token: ``(access_token, expires_at, new refresh token or None)``."""
    pid = credential.timing_partner_id
    status, data = _post_refresh(credential, url, session, caller)
    error = data.get("error")
    if isinstance(error, str):
        if status in (400, 401) and error == "invalid_grant":
            raise ReauthoriseError(pid)
        code = error if _ERROR_CODE.match(error) else "unrecognised error"
        raise OAuthError(pid, f"token refresh failed: HTTP {status}, {code}")
    if isinstance(error, dict):  # RunSignUp's own envelope, HTTP 200
        number = error.get("error_code")
        shown = number if isinstance(number, int) else "?"
        raise OAuthError(pid, f"token refresh failed: HTTP {status}, RunSignUp error {shown}")
    if status != 200:
        raise OAuthError(pid, f"token refresh failed: HTTP {status}")
    access = data.get("access_token")
    if not isinstance(access, str) or not access.strip():
        raise OAuthError(pid, "token refresh answer carries no access_token")
    access = access.strip()
    new_refresh = data.get("refresh_token")
    if not isinstance(new_refresh, str) or not new_refresh.strip():
        new_refresh = None
    try:
        check_value("access token", access)
        if new_refresh is not None:
            new_refresh = new_refresh.strip()
            check_value("refresh token", new_refresh)
    except CredentialError as exc:
        raise OAuthError(pid, f"token refresh answer unusable: {exc}") from None
    expires_in = data.get("expires_in")
    if isinstance(expires_in, str):  # ASCII digits only: int() refuses "²" and 4,301 digits
        expires_in = as_int(expires_in)
    expires_at = (
        float(now + expires_in)
        if isinstance(expires_in, int | float)
        and not isinstance(expires_in, bool)
        and 0 < expires_in <= MAX_EXPIRES_IN  # also refuses NaN, Infinity and 10**400
        else None
    )
    return access, expires_at, new_refresh


def refresh_if_due(
    db: sqlite_utils.Database,
    credential: Credential,
    *,
    base_url: str,
    session: requests.Session,
    now: float,
    margin_s: float = DEFAULT_MARGIN_S,
    caller: CallerRegistration | None = None,
) -> Credential:
    """Refresh ``credential`` when :func:`is_due` (``now``: UTC epoch seconds); return the
    credential to use (``credential`` itself when nothing was due). ``caller``, the
    installation's caller registration, goes on the refresh call like on every other.

    The refresh runs under the secrets file's write lock, re-reading the stored token first: a
    token another process has just refreshed is used as it is, not refreshed twice. The new
    access token, expiry and refresh token are stored before this returns. Raises
    :class:`ReauthoriseError` on ``invalid_grant`` (HTTP 400/401), :class:`OAuthError` for any
    other failure (network, HTTP status, oversized or malformed answer, a non-https URL);
    nothing is stored then.
    """
    if not is_due(credential, now, margin_s):
        return credential
    pid = credential.timing_partner_id
    url = refresh_url(base_url)
    _check_transport(pid, url)
    with open_store(secrets_path(db), create=False) as store:
        if store is None:
            raise OAuthError(pid, f"no secrets file {secrets_path(db)}")
        with transaction(store):
            current = read_stored_credential(store, pid)
            if current is None or current.auth_kind != "bearer" or current.oauth is None:
                raise OAuthError(pid, "the stored credential is no longer a refreshable token")
            current = Credential(
                pid,
                "bearer",
                "",
                current.secret,
                credential.credential_id,
                current.expires_at,
                current.oauth,
            )
            if current.secret != credential.secret and not is_due(current, now, margin_s):
                return current  # refreshed meanwhile by another process
            access, expires_at, new_refresh = _refresh(current, url, session, now, caller)
            fresh = store_refreshed_token(store, current, access, expires_at, new_refresh)
    note_token_in_database(db, fresh)
    return fresh


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def refresh_due_tokens(
    db: sqlite_utils.Database,
    credentials: list[Credential],
    base_url: str,
    now: float | None = None,
    *,
    session: requests.Session | None = None,
    margin_s: float = DEFAULT_MARGIN_S,
) -> tuple[list[Credential], list[str]]:
    """Refresh every due bearer token of ``credentials`` before a run against ``base_url``.

    ``now``: UTC epoch seconds (default the current time). Returns ``(credentials, messages)``:
    the credentials to use, in the same order (refreshed where due; a failed refresh keeps the
    old credential, which may still work until it expires), and one line per operator message
    (a refresh done, a refresh failed, a token expiring that cannot be refreshed). Messages
    never hold a secret. Never raises for a failed refresh.
    """
    clock = time.time() if now is None else now
    try:
        caller = load_caller_registration(db)
    except CredentialError:
        caller = None
    own = session is None
    http = session
    if http is None:
        http = requests.Session()
        http.mount("https://", BoundedAdapter())
        http.mount("http://", BoundedAdapter())
    out: list[Credential] = []
    messages: list[str] = []
    try:
        for cred in credentials:
            pid = cred.timing_partner_id
            expires_at = cred.expires_at
            if (
                cred.auth_kind == "bearer"
                and cred.oauth is None
                and expires_at is not None
                and expires_at - clock <= margin_s
            ):
                when = "expired" if expires_at <= clock else "expires"
                messages.append(
                    f"partner {pid}: bearer token {when} at {_utc(expires_at)} and cannot be "
                    f"refreshed (no refresh token stored); re-authorise partner {pid}"
                )
            if not is_due(cred, clock, margin_s):
                out.append(cred)
                continue
            try:
                fresh = refresh_if_due(
                    db,
                    cred,
                    base_url=base_url,
                    session=http,
                    now=clock,
                    margin_s=margin_s,
                    caller=caller,
                )
            except OAuthError as exc:
                messages.append(str(exc))
                out.append(cred)
                continue
            until = "unknown" if fresh.expires_at is None else _utc(fresh.expires_at)
            messages.append(f"partner {pid}: bearer token refreshed, valid until {until}")
            out.append(fresh)
    finally:
        if own:
            http.close()
    return out, messages


def expiry_warnings(
    db: sqlite_utils.Database, now: float, warn_within_s: float = DEFAULT_WARN_S
) -> list[str]:
    """Warnings for ``rsu status``, one line per bearer token (``now``: UTC epoch seconds):

    * a token that cannot be refreshed and expires within ``warn_within_s`` seconds (or has
      expired): re-authorise the partner;
    * a refreshable token that has already expired: the refresh is not happening.

    Reads the data database only (expiries are mirrored there); never a secret.
    """
    out = []
    for pid, expires_at, refreshable in token_expiries(db):
        left = expires_at - now
        if refreshable:
            if left <= 0:
                out.append(
                    f"partner {pid}: bearer token expired at {_utc(expires_at)} and was not "
                    "refreshed: run rsu sync (it refreshes due tokens) and check its messages"
                )
        elif left <= 0:
            out.append(
                f"partner {pid}: bearer token expired at {_utc(expires_at)}; "
                f"re-authorise partner {pid}"
            )
        elif left <= warn_within_s:
            out.append(
                f"partner {pid}: bearer token expires in {left / 86400:.1f} days "
                f"({_utc(expires_at)}) and cannot be refreshed (no refresh token stored); "
                f"re-authorise partner {pid} before then"
            )
    return out
