"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pg_helpers import fresh_database


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    """``postgresql://`` URL of an empty database for this test (skips without a server)."""
    yield from fresh_database()
