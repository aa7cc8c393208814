"""PostgreSQL target URLs: recognise them, and mask their password for anything shown.

Kept apart from :mod:`rsu.projector.pg` so that the CLI can check and show a ``--target`` without
importing psycopg.

The URL is split the way libpq reads it, not as a generic URL: libpq takes everything before the
``@`` as the user info even when the password holds a ``#``, ``?`` or ``/`` that a URL parser
would read as a fragment, query or path (``postgresql://u:pa#ss@h/db`` is password ``pa#ss``).
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

#: URL schemes of a PostgreSQL target.
SCHEMES = ("postgresql", "postgres")
_PASSWORD_IN_KV = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


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
    return unquote(key).strip().lower().endswith("password")  # password, sslpassword


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
    found |= {unquote(value) for value in found}
    return sorted((v for v in found if v), key=len, reverse=True)


def mask_dsn(dsn: str) -> str:
    """``dsn`` with its password replaced by ``***`` (URL userinfo, ``?password=`` or a
    ``password=`` keyword). Anything that cannot be parsed is shown as ``postgresql://***``."""
    if "://" not in dsn:
        return _PASSWORD_IN_KV.sub(r"\1***", dsn)
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
        items = []
        for item in query.split("&"):
            key, eq, _ = item.partition("=")
            items.append(f"{key}=***" if eq and _is_password_key(key) else item)
        text += "?" + "&".join(items)
    return text
