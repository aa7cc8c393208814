"""The fetcher: turns the RunSignUp API into journal events, and nothing else.

Entry points: :func:`run_fetch` (one fetch run, returns a :class:`FetchResult`) and
:func:`check_credentials`; credentials live in :mod:`rsu.fetcher.credentials`. The fetcher writes
nothing but journal events (and the operator's log and summary files), and interprets a response
only after it is journaled.
"""

from .client import ApiClient, Exchange, RateLimiter, RetryPolicy, Timeouts, backoff_seconds
from .credentials import Credential, CredentialError, fingerprint
from .run import (
    DEFAULT_BASE_URL,
    CheckResult,
    FetchOptions,
    FetchResult,
    FetchUsageError,
    check_credentials,
    run_fetch,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "ApiClient",
    "CheckResult",
    "Credential",
    "CredentialError",
    "Exchange",
    "FetchOptions",
    "FetchResult",
    "FetchUsageError",
    "RateLimiter",
    "RetryPolicy",
    "Timeouts",
    "backoff_seconds",
    "check_credentials",
    "fingerprint",
    "run_fetch",
]
