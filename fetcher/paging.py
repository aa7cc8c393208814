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


#: Rows a page RunSignUp is taken to serve whatever it caps: its own documented default
#: ``results_per_page`` (50). A page with fewer rows (and fewer than asked) ends a listing at once,
#: so the usual short incremental page costs no extra request; a longer short page needs proof.
SERVED_AT_LEAST = 50


class PageProof:
    """What proves that a page is the last of one listing (one instance per listing).

    RunSignUp documents ``results_per_page`` up to 2,500 but may serve fewer rows per page than
    asked. A page shorter than the size *asked* then proves nothing, and ending a complete listing
    there would retire everyone on the later pages. A page ends a listing only when it is empty or
    holds fewer rows than a page the server is known to serve (``served``: the server's cap is one
    number, so any page it served is a lower bound of it): an earlier page of this listing, or
    ``floor``, a size the server is taken to serve in any case (:data:`SERVED_AT_LEAST`, RunSignUp's
    own default page size, or the size asked if smaller).
    Until then a listing goes on to the next page, which costs one request that usually comes
    back empty. Only the listing's own pages count: pages of other listings of the run would
    make the requests a run sends depend on the order its worker threads happen to run in, and
    pages of earlier runs prove nothing once RunSignUp lowers its cap.
    """

    def __init__(self, floor: int = 0) -> None:
        #: The largest page of this listing so far (rows), or ``floor``: a page size the server
        #: serves.
        self.served = floor
        self._decided: dict[int | None, bool] = {}

    def observe(self, rows: int) -> None:
        """Record that the server served a page of ``rows`` rows in this listing."""
        self.served = max(self.served, rows)

    def ends(self, rows: int) -> bool:
        """Whether a page of ``rows`` rows proves the end (empty, or shorter than a page known
        to be served before it); then records the page."""
        end = rows == 0 or rows < self.served
        self.observe(rows)
        return end

    def stop(self, exchange: Exchange) -> bool:
        """The :func:`paginate` stop rule: decides each page once (asking again about the same
        page gives the same answer)."""
        if exchange.info is None:
            return True
        if exchange.seq not in self._decided:
            self._decided[exchange.seq] = self.ends(exchange.info.rows)
        return self._decided[exchange.seq]


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
