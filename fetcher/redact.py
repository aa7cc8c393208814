"""Scrubbing secrets out of messages before they reach a log, the journal or the operator.

``requests``/``urllib3`` put the request URL, query included, into connection error messages
(``... Max retries exceeded with url: /Rest/races?api_key=...``), and ``requests`` puts a
rejected header value into ``InvalidHeader`` messages (``... header value: 'Bearer abc\\r'``), so
every exception message goes through :func:`scrub` first: it removes every query string, every
``Authorization: Bearer <token>`` / ``X-RSU-API-SECRET: <value>`` pair whatever the value, and
replaces every known secret value by ``***``: raw, stripped of surrounding whitespace,
repr-escaped (``\\r``, ``\\n``, ``\\t`` as backslash sequences) and URL-encoded.

:class:`BodyScrubber` does the same for the known secret values in a response body before it is
journaled (a server that echoes the request back would otherwise store the credential).
"""

from __future__ import annotations

import json
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


#: Secrets shorter than this are not scrubbed from bodies: a short value could occur in the
#: data by chance, and rewriting data is worse than the risk (RunSignUp keys, secrets and tokens
#: are far longer).
MIN_BODY_SECRET = 8


class BodyScrubber:
    """Replaces known secret values in a response body by ``***`` before it is journaled.

    A server that echoes the request back (a debugging proxy, a misconfigured API gateway)
    would otherwise put the credential into the journal. Each secret of at least
    :data:`MIN_BODY_SECRET` characters is looked for as sent (raw), URL-encoded (``quote``,
    ``quote_plus``), and JSON- and repr-escaped, as UTF-8 bytes."""

    def __init__(self, secrets: Iterable[str]) -> None:
        found: set[bytes] = set()
        for secret in secrets:
            if len(secret) < MIN_BODY_SECRET:
                continue
            for variant in _variants(secret) | {json.dumps(secret)[1:-1]}:
                if len(variant) >= MIN_BODY_SECRET:
                    found.add(variant.encode())
        #: Longest first, so a value is replaced whole before any part of it.
        self.variants = sorted(found, key=len, reverse=True)

    def scrub(self, body: bytes) -> tuple[bytes, int]:
        """``(body with every known secret replaced by b"***", number of replacements)``;
        ``body`` itself (not a copy) when none was found."""
        count = 0
        for variant in self.variants:
            n = body.count(variant)
            if n:
                body = body.replace(variant, b"***")
                count += n
        return body, count
