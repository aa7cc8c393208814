"""Plain request/response records passed between the HTTP server and the apps behind it."""

from __future__ import annotations

from dataclasses import dataclass, field

JSON_TYPE = "application/json; charset=utf-8"
XML_TYPE = "text/xml; charset=utf-8"
HTML_TYPE = "text/html; charset=utf-8"

SECRET_QUERY_KEYS = frozenset({"api_secret", "tmp_secret", "access_token"})
SECRET_HEADERS = frozenset({"x-rsu-api-secret", "authorization"})


@dataclass(frozen=True)
class Request:
    """One HTTP request. ``query`` keeps the last value of repeated keys; ``headers`` keys are
    lower-case; ``body`` is the raw request body (bytes)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""

    def credential_key(self) -> str | None:
        """The identifying part of the credential sent (api key, v2 key or bearer token)."""
        auth = self.headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            return "bearer:" + auth[7:].strip()
        for key in ("api_key", "rsu_api_key", "tmp_key"):
            if self.query.get(key):
                return f"{key}:{self.query[key]}"
        return None

    def wants_json(self) -> bool:
        """True when ``format=json`` was sent (RunSignUp's default format is XML)."""
        return self.query.get("format", "xml").lower() == "json"


@dataclass
class Response:
    """One HTTP response (status, raw body bytes, content type, extra headers)."""

    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the test-facing log records it.

    ``query`` has secrets (``api_secret``) replaced by ``"***"``; ``auth`` is ``"api_key"``,
    ``"rsu_api_key"``, ``"bearer"`` or ``None``; ``status`` is 0 for a dropped connection;
    ``bytes`` is the body length sent; ``fault`` names the injected fault or is ``None``;
    ``elapsed_ms`` is server-side handling time in milliseconds.
    """

    method: str
    path: str
    query: dict[str, str]
    auth: str | None
    status: int
    bytes: int
    fault: str | None
    elapsed_ms: float


def masked_query(query: dict[str, str]) -> dict[str, str]:
    """Copy of ``query`` with secret values replaced by ``"***"``."""
    return {k: ("***" if k in SECRET_QUERY_KEYS else v) for k, v in query.items()}


def auth_kind(req: Request) -> str | None:
    """Which auth mode the request used: ``api_key``, ``rsu_api_key``, ``bearer`` or None."""
    key = req.credential_key()
    return None if key is None else key.split(":", 1)[0]
