"""Plain request/response records passed between the HTTP server and the apps behind it."""

from __future__ import annotations

from dataclasses import dataclass, field

JSON_TYPE = "application/json; charset=utf-8"
XML_TYPE = "text/xml; charset=utf-8"
HTML_TYPE = "text/html; charset=utf-8"

SECRET_QUERY_KEYS = frozenset({"api_secret", "tmp_secret", "access_token", "rsu_api_reg"})

CALLER_QUERY_KEY = "rsu_api_reg"
CALLER_HEADER = "x-rsu-api-reg-secret"


@dataclass(frozen=True)
class CallerRegistrationSpec:
    """An API caller registration the simulator accepts (RunSignUp's 2027 rule, API doc section
    5): query ``rsu_api_reg=<reg_id>.<token>`` plus header ``X-RSU-API-REG-SECRET: <secret>`` on
    every call. It identifies the installation and authenticates nothing. ``token`` and
    ``secret`` are kept out of ``repr``."""

    reg_id: str
    token: str = field(repr=False)
    secret: str = field(repr=False)

    @property
    def param(self) -> str:
        """The ``rsu_api_reg`` query value: ``"<reg_id>.<token>"``."""
        return f"{self.reg_id}.{self.token}"

    def query_params(self) -> dict[str, str]:
        """``{"rsu_api_reg": "<reg_id>.<token>"}``."""
        return {CALLER_QUERY_KEY: self.param}

    def headers(self) -> dict[str, str]:
        """``{"X-RSU-API-REG-SECRET": secret}``."""
        return {"X-RSU-API-REG-SECRET": self.secret}


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

    ``query`` has secrets (``api_secret``, ``rsu_api_reg``) replaced by ``"***"``; ``auth`` is
    ``"api_key"``, ``"rsu_api_key"``, ``"bearer"`` or ``None``; ``status`` is 0 for a dropped
    connection; ``bytes`` is the body length sent; ``fault`` names the injected fault or is
    ``None``; ``elapsed_ms`` is server-side handling time in milliseconds. ``caller`` says
    whether the call carried an API caller registration, never its values (see
    :func:`caller_status`): ``"valid"``, ``"invalid"``, ``"present"`` (a server that knows no
    registration, e.g. replay) or ``None`` (neither part sent).
    """

    method: str
    path: str
    query: dict[str, str]
    auth: str | None
    status: int
    bytes: int
    fault: str | None
    elapsed_ms: float
    caller: str | None = None


def masked_query(query: dict[str, str]) -> dict[str, str]:
    """Copy of ``query`` with secret values replaced by ``"***"``."""
    return {k: ("***" if k in SECRET_QUERY_KEYS else v) for k, v in query.items()}


def auth_kind(req: Request) -> str | None:
    """Which auth mode the request used: ``api_key``, ``rsu_api_key``, ``bearer`` or None."""
    key = req.credential_key()
    return None if key is None else key.split(":", 1)[0]


def caller_status(req: Request, expected: CallerRegistrationSpec | None) -> str | None:
    """Whether ``req`` carries the caller registration ``expected``.

    ``None``: neither the ``rsu_api_reg`` query key nor the ``X-RSU-API-REG-SECRET`` header was
    sent; ``"valid"``: both were sent and both match ``expected``; ``"invalid"``: anything else
    (one part missing or a value wrong); ``"present"``: something was sent and ``expected`` is
    ``None`` (nothing to compare against).
    """
    param = req.query.get(CALLER_QUERY_KEY)
    secret = req.headers.get(CALLER_HEADER)
    if param is None and secret is None:
        return None
    if expected is None:
        return "present"
    if param == expected.param and secret == expected.secret:
        return "valid"
    return "invalid"
