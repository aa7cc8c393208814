"""PostgreSQL target URLs: recognise them, and mask their password for anything shown.

Kept apart from :mod:`rsu.projector.pg` so that the CLI can check and show a ``--target`` without
importing psycopg.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

#: URL schemes of a PostgreSQL target.
SCHEMES = ("postgresql", "postgres")
_PASSWORD_IN_KV = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def is_pg_target(target: str) -> bool:
    """Whether ``target`` is a PostgreSQL URL (``postgresql://`` or ``postgres://``)."""
    return target.split("://", 1)[0].lower() in SCHEMES and "://" in target


def mask_dsn(dsn: str) -> str:
    """``dsn`` with its password replaced by ``***`` (URL userinfo, ``?password=`` or a
    ``password=`` keyword). Anything that cannot be parsed is shown as ``postgresql://***``."""
    if "://" not in dsn:
        return _PASSWORD_IN_KV.sub(r"\1***", dsn)
    try:
        parts = urlsplit(dsn)
        netloc = parts.netloc
        userinfo, at, hostport = netloc.rpartition("@")
        if at and ":" in userinfo:
            netloc = f"{userinfo.split(':', 1)[0]}:***@{hostport}"
        query = urlencode(
            [
                (k, "***" if k.lower() == "password" else v)
                for k, v in parse_qsl(parts.query, keep_blank_values=True)
            ],
            safe="*",
        )
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return "postgresql://***"
