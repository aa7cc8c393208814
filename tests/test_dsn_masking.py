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


@pytest.mark.parametrize(
    ("message", "dsn", "scrubbed"),
    [
        # a 1-character password: masked where it stands as one, every other "a" kept
        (
            'connection to server at "127.0.0.1", port 1 failed: Connection refused',
            "postgresql://u:a@127.0.0.1:1/db",
            'connection to server at "127.0.0.1", port 1 failed: Connection refused',
        ),
        (
            'bad value in "postgresql://u:a@h/db" near u:a@h, password=a, password = \'a\', "a"',
            "postgresql://u:a@h/db",
            'bad value in "postgresql://u:***@h/db" near u:***@h, password=***, '
            "password = '***', \"***\"",
        ),
        (
            'invalid percent-encoded token: "%zz" at a%zz',
            "postgresql://u:o@h/db?sslpassword=%zz",
            'invalid percent-encoded token: "***" at a%zz',
        ),
        (
            "FATAL: password authentication failed for user a; sslpassword=a&x",
            "host=h user=a password=a",
            "FATAL: password authentication failed for user a; sslpassword=***&x",
        ),
        # 4 characters or more: masked wherever it appears, as before
        (
            "role pass failed at passpass",
            "postgresql://u:pass@h/db",
            "role *** failed at ******",
        ),
    ],
)
def test_a_short_password_is_masked_only_where_it_stands_as_one(
    message: str, dsn: str, scrubbed: str
) -> None:
    from rsu.projector.pg import scrub

    assert scrub(Exception(message), dsn) == scrubbed


def test_a_connection_error_with_a_one_character_password_stays_readable() -> None:
    with pytest.raises(TargetError) as err:
        PgTarget("postgresql://u:a@127.0.0.1:1/db")
    text = str(err.value)
    assert text.startswith("cannot connect to postgresql://u:***@127.0.0.1:1/db: ")
    assert text.count("***") == 1
    assert "failed" in text and "127.0.0.1" in text
