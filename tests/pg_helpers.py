"""A fresh PostgreSQL database per test, on the server named by ``RSU_TEST_PG_DSN``.

``.ci/run`` always starts a private server and sets ``RSU_TEST_PG_DSN`` (see ``.ci/pg``), so in CI
these tests always run, and fail when the server is set but unreachable. Locally, without the
variable, they skip and say why.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from rsu.projector.dsn import mask_dsn

DSN_ENV = "RSU_TEST_PG_DSN"


def fresh_database() -> Iterator[str]:
    """Create an empty database, yield its ``postgresql://`` URL, drop it afterwards."""
    admin = os.environ.get(DSN_ENV)
    if not admin:
        pytest.skip(f"PostgreSQL tests need {DSN_ENV}=postgresql://... (.ci/run starts a server)")
    try:
        conn = psycopg.connect(admin, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        pytest.fail(f"{DSN_ENV} is set ({mask_dsn(admin)}) but PostgreSQL is unreachable: {exc}")
    name = f"rsu_test_{uuid.uuid4().hex[:12]}"
    conn.execute(f"CREATE DATABASE {name}".encode())
    try:
        yield urlunsplit(urlsplit(admin)._replace(path=f"/{name}"))
    finally:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)".encode())
        conn.close()


def pg_rows(dsn: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Every row of ``sql`` on ``dsn`` (JSONB comes back as Python values)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        return [tuple(r) for r in conn.execute(sql.encode() if not params else sql, params or None)]  # type: ignore[arg-type]
