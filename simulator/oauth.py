"""OAuth2 in the simulated RunSignUp: expiring bearer tokens and the refresh-token endpoint.

Every world has a :class:`TokenIssuer` (``World.tokens``). The bearer credentials of
``World.credentials`` are its first access tokens, issued when the app starts (at ``World.now``),
each with a refresh token :meth:`TokenIssuer.refresh_token_for`. Access tokens live
``lifetime_s`` seconds of the simulated clock (``WorldConfig.token_lifetime_s``; ``None``, the
default, means they never expire). An expired token is answered as RunSignUp answers it: HTTP
200 with error 6 ``Key authentication failed``.

``POST /Rest/v2/auth/refresh-token.json`` (any case of ``rest``), form-encoded
``grant_type=refresh_token``, ``refresh_token``, ``client_id``, ``client_secret``, answers
``{access_token, token_type, expires_in, refresh_token, scope}``; errors use real HTTP statuses
and standard OAuth bodies: 400 ``invalid_grant`` (unknown or used refresh token), 400
``unsupported_grant_type``, 400 ``invalid_request``, 401 ``invalid_client``. With
``rotate_refresh_tokens`` (the default) each refresh returns a new refresh token and retires the
old one; without it the answer carries no refresh token and the old one stays valid.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import Any

#: ``expires_in`` answered when tokens never expire (RunSignUp's documented one month).
NO_EXPIRY_EXPIRES_IN = 2_592_000


@dataclass
class AccessGrant:
    """One issued access token: its partner and expiry (simulated epoch seconds; ``None`` =
    never)."""

    timing_partner_id: int
    expires_at: int | None


class TokenIssuer:
    """Issues, checks and refreshes the world's OAuth2 tokens (thread-safe, deterministic)."""

    def __init__(self, seed: int, lifetime_s: int | None = None) -> None:
        self.seed = seed
        self.lifetime_s = lifetime_s
        self.rotate_refresh_tokens = True
        self.client_id = f"rsu-sim-{seed}"
        self.client_secret = hashlib.sha256(f"{seed}:oauth-client".encode()).hexdigest()[:32]
        #: How many refreshes succeeded (for tests).
        self.refreshes = 0
        self._lock = threading.Lock()
        self._access: dict[str, AccessGrant] = {}
        self._refresh: dict[str, int] = {}
        self._issued = 0

    def refresh_token_for(self, timing_partner_id: int) -> str:
        """The first refresh token of a partner's bearer credential (deterministic)."""
        return hashlib.sha256(f"{self.seed}:{timing_partner_id}:refresh".encode()).hexdigest()[:40]

    def register(self, timing_partner_id: int, access_token: str, now: int) -> None:
        """Accept ``access_token`` for the partner from ``now`` (idempotent: a token already
        known keeps its expiry) and its first refresh token."""
        with self._lock:
            if access_token not in self._access:
                expires = None if self.lifetime_s is None else now + self.lifetime_s
                self._access[access_token] = AccessGrant(timing_partner_id, expires)
                self._refresh.setdefault(
                    self.refresh_token_for(timing_partner_id), timing_partner_id
                )

    def check(self, access_token: str, now: int) -> int | None:
        """The partner of a valid ``access_token`` at ``now``; ``None`` when unknown or
        expired (``now >= expires_at``)."""
        with self._lock:
            grant = self._access.get(access_token)
        if grant is None or (grant.expires_at is not None and now >= grant.expires_at):
            return None
        return grant.timing_partner_id

    def expires_at(self, access_token: str) -> int | None:
        """When ``access_token`` expires (``None``: never, or unknown)."""
        with self._lock:
            grant = self._access.get(access_token)
        return None if grant is None else grant.expires_at

    def refresh(self, form: dict[str, str], now: int) -> tuple[int, dict[str, Any]]:
        """Answer a refresh-token grant: ``(HTTP status, JSON body)``."""
        if form.get("grant_type") != "refresh_token":
            return 400, {"error": "unsupported_grant_type"}
        if not form.get("refresh_token") or not form.get("client_id"):
            return 400, {"error": "invalid_request", "error_description": "missing parameter"}
        if (
            form["client_id"] != self.client_id
            or form.get("client_secret", "") != self.client_secret
        ):
            return 401, {
                "error": "invalid_client",
                "error_description": "Client authentication failed",
            }
        with self._lock:
            pid = self._refresh.get(form["refresh_token"])
            if pid is None:
                return 400, {
                    "error": "invalid_grant",
                    "error_description": "The refresh token is invalid.",
                }
            self._issued += 1
            n = self._issued
            access = hashlib.sha256(f"{self.seed}:{pid}:access:{n}".encode()).hexdigest()[:32]
            expires = None if self.lifetime_s is None else now + self.lifetime_s
            self._access[access] = AccessGrant(pid, expires)
            body: dict[str, Any] = {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": self.lifetime_s or NO_EXPIRY_EXPIRES_IN,
                "scope": "rsu_api_read",
            }
            if self.rotate_refresh_tokens:
                new_refresh = hashlib.sha256(f"{self.seed}:{pid}:refresh:{n}".encode()).hexdigest()[
                    :40
                ]
                del self._refresh[form["refresh_token"]]
                self._refresh[new_refresh] = pid
                body["refresh_token"] = new_refresh
            self.refreshes += 1
        return 200, body
