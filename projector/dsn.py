"""PostgreSQL target URLs: recognise them, and mask their password for anything shown.

Kept apart from :mod:`rsu.projector.pg` so that the CLI can check and show a ``--target`` without
importing psycopg.

The URL is split the way libpq reads it, not as a generic URL: libpq takes everything before the
``@`` as the user info even when the password holds a ``#``, ``?`` or ``/`` that a URL parser
would read as a fragment, query or path (``postgresql://u:pa#ss@h/db`` is password ``pa#ss``).
"""

from __future__ import annotations

import contextlib
import re
from urllib.parse import unquote, urlsplit

#: URL schemes of a PostgreSQL target.
SCHEMES = ("postgresql", "postgres")
_PASSWORD_IN_KV = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
#: libpq's connection keywords (PostgreSQL 18, ``PQconndefaults``); libpq refuses any other key.
KEYWORDS = frozenset(
    [
        "application_name",
        "channel_binding",
        "client_encoding",
        "connect_timeout",
        "dbname",
        "fallback_application_name",
        "gssdelegation",
        "gssencmode",
        "gsslib",
        "host",
        "hostaddr",
        "keepalives",
        "keepalives_count",
        "keepalives_idle",
        "keepalives_interval",
        "krbsrvname",
        "load_balance_hosts",
        "max_protocol_version",
        "min_protocol_version",
        "oauth_client_id",
        "oauth_client_secret",
        "oauth_issuer",
        "oauth_scope",
        "options",
        "passfile",
        "password",
        "port",
        "replication",
        "require_auth",
        "requirepeer",
        "scram_client_key",
        "scram_server_key",
        "service",
        "ssl_max_protocol_version",
        "ssl_min_protocol_version",
        "sslcert",
        "sslcertmode",
        "sslcompression",
        "sslcrl",
        "sslcrldir",
        "sslkey",
        "sslkeylogfile",
        "sslmode",
        "sslnegotiation",
        "sslpassword",
        "sslrootcert",
        "sslsni",
        "target_session_attrs",
        "tcp_user_timeout",
        "user",
    ]
)
#: Keywords whose value is a secret besides ``*password``.
_SECRET_KEYS = frozenset({"oauth_client_secret", "scram_client_key", "scram_server_key"})
#: What libpq's ``conninfo_parse`` takes for white space (C ``isspace``).
_SPACE = frozenset(" \t\n\r\f\v")


class MalformedDsn(ValueError):
    """A key=value DSN that libpq cannot parse. The message names a key, never a value, nor a word
    that may be a piece of a secret (one right after a password's value: libpq splits an unquoted
    ``password=x y`` at the space and then complains about the word ``y``)."""


def is_pg_target(target: str) -> bool:
    """Whether ``target`` is a PostgreSQL URL (``postgresql://`` or ``postgres://``)."""
    return target.split("://", 1)[0].lower() in SCHEMES and "://" in target


def _split(dsn: str) -> tuple[str, str | None, str, str | None]:
    """``(scheme, userinfo or None, host part, query or None)`` of a URL DSN: the user info is
    everything up to the last ``@`` (so a password with ``#``, ``?``, ``/`` or ``@`` stays in it),
    the query everything after the first ``?`` of the host part (``#`` included)."""
    scheme, _, rest = dsn.partition("://")
    userinfo, at, hostpart = rest.rpartition("@")
    hostpart, q, query = hostpart.partition("?")
    return scheme, (userinfo if at else None), hostpart, (query if q else None)


def _is_password_key(key: str) -> bool:
    key = unquote(key).strip().lower()
    return key.endswith("password") or key in _SECRET_KEYS  # password, sslpassword, oauth, scram


def kv_pairs(dsn: str) -> list[tuple[str, str, int, int]]:
    """The ``(key, value, start, end)`` of each field of a key=value DSN (``start:end``: the
    value as written in ``dsn``, quotes included), read the way libpq's ``conninfo_parse`` reads
    them: ``key = value``, the value unquoted up to white space or in single quotes, ``\\``
    escaping the next character.

    Raises :class:`MalformedDsn` where libpq would refuse the text: a word without ``=``, an
    unclosed quote, a key libpq does not know (:data:`KEYWORDS`)."""
    pairs: list[tuple[str, str, int, int]] = []
    i, n = 0, len(dsn)

    def word(text: str) -> str:  # a word right after a secret's value may be part of the secret
        if pairs and _is_password_key(pairs[-1][0]):
            return f"the word after the value of {pairs[-1][0]}"
        return f'"{text}"' + (f" (after {pairs[-1][0]}=)" if pairs else "")

    while True:
        while i < n and dsn[i] in _SPACE:
            i += 1
        if i >= n:
            return pairs
        start = i
        while i < n and dsn[i] != "=" and dsn[i] not in _SPACE:
            i += 1
        key = dsn[start:i]
        while i < n and dsn[i] in _SPACE:
            i += 1
        if i >= n or dsn[i] != "=":
            raise MalformedDsn(f'{word(key)} has no "="')
        if key not in KEYWORDS:
            raise MalformedDsn(f"{word(key)} is no libpq connection keyword")
        i += 1
        while i < n and dsn[i] in _SPACE:
            i += 1
        vstart, value = i, []
        quoted = i < n and dsn[i] == "'"
        i += quoted
        while True:
            if i >= n:
                if quoted:
                    raise MalformedDsn(f"the quoted value of {key} has no closing quote")
                break
            char = dsn[i]
            if char == "\\":
                value.append(dsn[i + 1 : i + 2])
                i += 2
                continue
            if (quoted and char == "'") or (not quoted and char in _SPACE):
                i += quoted
                break
            value.append(char)
            i += 1
        pairs.append((key, "".join(value), vstart, i))


def dsn_passwords(dsn: str) -> list[str]:
    """Every password written in ``dsn`` (user info, ``password=``/``sslpassword=`` query
    values, ``password=`` keywords), each as written and percent-decoded; longest first. For
    scrubbing error messages, which quote a value libpq could not parse as it was written."""
    found: set[str] = set()
    if "://" in dsn:
        _, userinfo, _, query = _split(dsn)
        if userinfo is not None and ":" in userinfo:
            found.add(userinfo.split(":", 1)[1])
        for item in (query or "").split("&"):
            key, eq, value = item.partition("=")
            if eq and _is_password_key(key):
                found.add(value)
    else:
        found |= {m.group(2).strip("'") for m in _PASSWORD_IN_KV.finditer(dsn)}
        with contextlib.suppress(MalformedDsn):
            found |= {v for k, v, _, _ in kv_pairs(dsn) if _is_password_key(k)}
    found |= {unquote(value) for value in found}
    return sorted((v for v in found if v), key=len, reverse=True)


def mask_dsn(dsn: str) -> str:
    """``dsn`` with its password replaced by ``***`` (URL userinfo, ``?password=`` or a
    ``password=`` keyword, and the other secret keys). A URL that cannot be parsed is shown as
    ``postgresql://***``, a key=value DSN that libpq cannot parse as ``<malformed key=value DSN:
    what is wrong>`` (:class:`MalformedDsn`: no value shown)."""
    if "://" not in dsn:
        try:
            pairs = kv_pairs(dsn)
        except MalformedDsn as exc:
            return f"<malformed key=value DSN: {exc}>"
        for key, _, start, end in reversed(pairs):
            if _is_password_key(key):
                dsn = f"{dsn[:start]}***{dsn[end:]}"
        return dsn
    try:
        urlsplit(dsn)
    except ValueError:
        return "postgresql://***"
    scheme, userinfo, hostpart, query = _split(dsn)
    text = f"{scheme}://"
    if userinfo is not None:
        text += f"{userinfo.split(':', 1)[0]}:***@" if ":" in userinfo else f"{userinfo}@"
    text += hostpart
    if query is not None:
        items, after_secret = [], False
        for item in query.split("&"):
            key, eq, _ = item.partition("=")
            if after_secret and not (eq and unquote(key) in KEYWORDS):
                items.append("***")  # maybe the rest of a secret holding an unencoded "&"
            elif eq and (_is_password_key(key) or unquote(key) not in KEYWORDS):
                items.append(f"{key}=***")  # an unknown key may be a misspelt "password"
                after_secret = _is_password_key(key)
            else:
                items.append(item)
                after_secret = False
        text += "?" + "&".join(items)
    return text


_BAD_ESCAPE = re.compile(r"%(?![0-9a-fA-F]{2})|%00|\s")


def dsn_problem(dsn: str) -> str | None:
    """Why libpq would refuse to parse ``dsn`` (a key=value DSN or a URL), naming a key but never
    a value nor a word that may be a piece of a secret; ``None`` when it looks well-formed.

    For showing instead of libpq's own parse error, which quotes the text it could not parse,
    secret or not (``missing "=" after "y"`` for ``password=x y``)."""
    if "://" not in dsn:
        try:
            kv_pairs(dsn)
        except MalformedDsn as exc:
            return str(exc)
        return None
    _, userinfo, hostpart, query = _split(dsn)
    if userinfo is not None and _BAD_ESCAPE.search(userinfo):
        return "the user name or password holds white space or a bad %-escape (percent-encode it)"
    if _BAD_ESCAPE.search(hostpart):
        return "the host, port or database name holds white space or a bad %-escape"
    previous = ""
    for item in (query or "").split("&") if query is not None else []:
        key, eq, value = item.partition("=")
        after_secret = _is_password_key(previous) if previous else False
        name = f"the parameter after {previous}" if after_secret else f'"{key}"'
        if not eq:
            return f'{name} has no "="'
        if unquote(key) not in KEYWORDS:
            return f"{name} is no libpq connection keyword"
        if "=" in value or _BAD_ESCAPE.search(value):
            return (
                f"the value of {key} holds '=', white space or a bad %-escape (percent-encode it)"
            )
        previous = key
    return None
