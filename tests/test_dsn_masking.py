"""A PostgreSQL password never shows in a masked target nor in a connection error, whatever
characters it holds (review findings)."""

from __future__ import annotations

import pytest

from rsu.projector import TargetError
from rsu.projector.dsn import mask_dsn
from rsu.projector.pg import PgTarget


@pytest.mark.parametrize(
    ("dsn", "masked"),
    [
        # libpq reads everything before the "@" as user info: "#", "?" and "/" included.
        ("postgresql://u:pa#ssword@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:pa?ssword@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:pa/ssword@h/db", "postgresql://u:***@h/db"),
        ("postgresql://h/db?password=se#cret", "postgresql://h/db?password=***"),
        ("postgresql://h/db?sslpassword=keypass", "postgresql://h/db?sslpassword=***"),
    ],
)
def test_mask_dsn_hides_a_password_with_url_delimiters(dsn, masked):
    assert mask_dsn(dsn) == masked


@pytest.mark.parametrize(
    ("dsn", "secret"),
    [
        ("postgresql://u:s%zzecretpw@127.0.0.1:1/db", "ecretpw"),  # bad percent-encoding
        ("postgresql://u:secretpw@127.0.0.1:1/db?password=abc%zzsecret", "zzsecret"),
        ("postgresql://u:sec retpw@127.0.0.1:1/db", "retpw"),  # a space libpq refuses
        ("postgresql://u:pa#secretpw@127.0.0.1:1/db", "secretpw"),  # refused port: the label
    ],
)
def test_a_connection_error_never_quotes_the_password(dsn, secret):
    with pytest.raises(TargetError) as err:
        PgTarget(dsn)
    assert secret not in str(err.value)
    assert str(err.value).startswith("cannot connect to postgresql://u:***@127.0.0.1:1/db")
