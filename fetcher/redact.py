"""Scrubbing secrets out of messages before they reach a log, the journal or the operator.

``requests``/``urllib3`` put the request URL, query included, into connection error messages
(``... Max retries exceeded with url: /Rest/races?api_key=...``), so every exception message goes
through :func:`scrub` first: it removes every query string and replaces every known secret value
(raw and URL-encoded) by ``***``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

#: A ``?`` and the query that follows it, up to whitespace, a quote or a closing bracket.
_QUERY = re.compile(r"\?[^\s'\"()<>]*")


def _variants(value: str) -> set[str]:
    return {value, quote(value, safe=""), quote_plus(value, safe=""), quote(value)}


def scrub(message: str, secrets: Iterable[str] = ()) -> str:
    """``message`` with every query string replaced by ``?<query>`` and every secret in
    ``secrets`` (also URL-encoded) replaced by ``***``."""
    text = _QUERY.sub("?<query>", message)
    for secret in secrets:
        if not secret:
            continue
        for variant in sorted(_variants(secret), key=len, reverse=True):
            text = text.replace(variant, "***")
    return text
