"""A generator of pages with an injected stop rule.

:func:`paginate` knows nothing of HTTP or of RunSignUp: it calls ``fetch(token)`` for the first
token, yields the :class:`~rsu.fetcher.client.Exchange`, and asks ``next_token`` for the next one
until the exchange failed, ``stop`` says the page was the last, or no next token exists. Both the
numbered paging of ``/Rest/races`` (token = page number) and the keyset paging of participant
listings (token = ``after_registration_id``) are this one loop; incremental versus full is a
query parameter of ``fetch``, not a second loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

from .client import Exchange

T = TypeVar("T")


def short_page(page_size: int) -> Callable[[Exchange], bool]:
    """Stop rule: the page held fewer than ``page_size`` rows (RunSignUp's own end test; an
    empty page is short too)."""

    def stop(exchange: Exchange) -> bool:
        return exchange.info is None or exchange.info.rows < page_size

    return stop


def keyset_next(previous: int | None, exchange: Exchange) -> int | None:
    """Next ``after_registration_id``: the page's last ``registration_id``; ``None`` (end) when
    the page had none or the cursor would not move forward (a misbehaving server)."""
    last = exchange.info.last_id if exchange.info else None
    if last is None or (previous is not None and last <= previous):
        return None
    return last


def page_number_next(previous: int, exchange: Exchange) -> int:
    """Next 1-based page number."""
    return previous + 1


def paginate(
    fetch: Callable[[T], Exchange],
    first: T,
    next_token: Callable[[T, Exchange], T | None],
    stop: Callable[[Exchange], bool],
    max_pages: int = 100_000,
) -> Iterator[tuple[T, Exchange]]:
    """Yield ``(token, exchange)`` per page until a failed exchange (yielded, then stop), a page
    for which ``stop`` is true, no next token, or ``max_pages`` pages (a guard against loops)."""
    token: T | None = first
    for _ in range(max_pages):
        if token is None:
            return
        exchange = fetch(token)
        yield token, exchange
        if not exchange.ok or stop(exchange):
            return
        token = next_token(token, exchange)
