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


# A password written with an unquoted space (or an unencoded "&") is split by libpq, which then
# quotes the piece after the space in its parse error: no part of it may show, anywhere.
_KV_SPLIT = "host=127.0.0.1 port=1 password=Ab1 Zq9wv dbname=z"
_URL_SPLIT = "postgresql://127.0.0.1:1/z?password=Ab1&Zq9wv&dbname=z"
_KV_SHOWN = '<malformed key=value DSN: the word after the value of password has no "=">'
_URL_SHOWN = (
    "postgresql://127.0.0.1:1/z?password=***&***&dbname=z: "
    'malformed URL: the parameter after password has no "="'
)


def test_a_split_password_never_shows_through_rsu_project(tmp_path):
    from project_helpers import new_journal
    from typer.testing import CliRunner

    from rsu.cli.main import app

    new_journal(tmp_path / "rsu.db").close()
    runner = CliRunner()
    kv = runner.invoke(app, ["project", "--db", str(tmp_path / "rsu.db"), "--target", _KV_SPLIT])
    assert (kv.exit_code, kv.output) == (
        2,
        f"error: --target {_KV_SHOWN} is not a PostgreSQL URL "
        "(postgresql://USER:PASSWORD@HOST:PORT/DBNAME)\n",
    )
    url = runner.invoke(app, ["project", "--db", str(tmp_path / "rsu.db"), "--target", _URL_SPLIT])
    assert (url.exit_code, url.output) == (1, f"error: cannot connect to {_URL_SHOWN}\n")


def test_a_split_password_never_shows_through_the_library(tmp_path):
    from project_helpers import new_journal

    from rsu.projector import project

    new_journal(tmp_path / "rsu.db").close()
    with pytest.raises(ValueError) as kv:
        project(tmp_path / "rsu.db", target=_KV_SPLIT)
    assert str(kv.value) == f"target {_KV_SHOWN} is not a postgresql:// URL"
    with pytest.raises(TargetError) as url:
        project(tmp_path / "rsu.db", target=_URL_SPLIT)
    assert str(url.value) == f"cannot connect to {_URL_SHOWN}"
    with pytest.raises(TargetError) as direct:  # PgTarget itself takes a key=value DSN
        PgTarget(_KV_SPLIT)
    assert str(direct.value) == f"cannot connect to {_KV_SHOWN}"


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        (
            "password=Ab1 Zq9=1",
            "the word after the value of password is no libpq connection keyword",
        ),
        ("password='Ab1 Zq9", "the quoted value of password has no closing quote"),
        ("host=h dbnmae=z", '"dbnmae" (after host=) is no libpq connection keyword'),
        ("host=h dbname", '"dbname" (after host=) has no "="'),
        ("sslpassword=Ab1 Zq9 host=h", 'the word after the value of sslpassword has no "="'),
    ],
)
def test_a_malformed_key_value_dsn_names_the_key_never_the_value(dsn, shown):
    assert mask_dsn(dsn) == f"<malformed key=value DSN: {shown}>"
    with pytest.raises(TargetError) as err:
        PgTarget(dsn)
    assert str(err.value) == f"cannot connect to <malformed key=value DSN: {shown}>"


@pytest.mark.parametrize(
    ("dsn", "masked"),
    [
        ("host=h password = 'a b\\' c' user=u", "host=h password = *** user=u"),
        ("host=h password=a\\ b user=u", "host=h password=*** user=u"),
        (
            "scram_client_key=Zq9 oauth_client_secret=Zq8 host=h",
            "scram_client_key=*** oauth_client_secret=*** host=h",
        ),
        (
            "postgresql://h/db?oauth_client_secret=Zq9&sslmode=require",
            "postgresql://h/db?oauth_client_secret=***&sslmode=require",
        ),
        # a key libpq does not know may be a misspelt password: its value is not shown
        (
            "postgresql://h/db?passwrod=Zq9&sslmode=require",
            "postgresql://h/db?passwrod=***&sslmode=require",
        ),
    ],
)
def test_a_well_formed_dsn_masks_every_secret_value(dsn, masked):
    assert mask_dsn(dsn) == masked
