"""Scrubbing secrets out of messages before they reach a log, the journal or the operator.

``requests``/``urllib3`` put the request URL, query included, into connection error messages
(``... Max retries exceeded with url: /Rest/races?api_key=...``), and ``requests`` puts a
rejected header value into ``InvalidHeader`` messages (``... header value: 'Bearer abc\\r'``), so
every exception message goes through :func:`scrub` first: it removes every query string, every
``Authorization: Bearer <token>`` / ``X-RSU-API-SECRET: <value>`` pair whatever the value, and
replaces every known secret value by ``***``: raw, stripped of surrounding whitespace,
repr-escaped (``\\r``, ``\\n``, ``\\t`` as backslash sequences) and URL-encoded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

#: A ``?`` and the query that follows it, up to whitespace, a quote or a closing bracket.
_QUERY = re.compile(r"\?[^\s'\"()<>]*")
#: ``Bearer <token>``: the token up to whitespace, a quote or a bracket (a repr-escaped ``\r``
#: is part of the token).
_BEARER = re.compile(r"(?i)\b(bearer)\s+[^\s'\"()<>,;}\]]+")
#: ``X-RSU-API-SECRET: <value>``, ``'X-RSU-API-SECRET': '<value>'`` (a dict repr) and the like.
_SECRET_HEADER = re.compile(
    r"(?i)\b(x-rsu-api(?:-reg)?-secret)(['\"]?\s*[:=]\s*['\"]?)[^\s'\"()<>,;}\]]+"
)


def _escaped(value: str) -> str:
    """``value`` as ``repr`` shows it inside its quotes (``\\r`` -> ``\\\\r`` ...)."""
    return repr(value)[1:-1]


def _variants(value: str) -> set[str]:
    bases = {value, value.strip(), _escaped(value), _escaped(value.strip())}
    out: set[str] = set()
    for base in bases:
        if base:
            out |= {base, quote(base, safe=""), quote_plus(base, safe=""), quote(base)}
    return out


def scrub(message: str, secrets: Iterable[str] = ()) -> str:
    """``message`` with every query string replaced by ``?<query>``, every bearer token and
    ``X-RSU-API-SECRET`` header value by ``***``, and every secret in ``secrets`` (also stripped,
    repr-escaped and URL-encoded) by ``***``."""
    text = _QUERY.sub("?<query>", message)
    text = _BEARER.sub(r"\1 ***", text)
    text = _SECRET_HEADER.sub(r"\1\2***", text)
    for secret in secrets:
        if not secret:
            continue
        for variant in sorted(_variants(secret), key=len, reverse=True):
            text = text.replace(variant, "***")
    return text
