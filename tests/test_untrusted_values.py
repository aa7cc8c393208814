"""Digit strings from the network: ``str.isdigit`` takes ``"²"`` (and ``int()`` refuses more than
4,300 digits), so a value that passes the test must still not reach ``int()`` and raise
(review findings)."""

from __future__ import annotations

from pathlib import Path

import pytest
from export_helpers import MARATHON, make_db, person
from project_helpers import new_journal
from test_audit import World, page, reg
from test_credentials_store import _FakeSession, _stored_bearer
from typer.testing import CliRunner

from rsu.cli.main import app
from rsu.fetcher.oauth import refresh_due_tokens
from rsu.journal.envelope import runsignup_error
from rsu.journal.registration_audit import audit_registration

NOT_INTS = ["²", "1" * 5000]


@pytest.mark.parametrize("code", NOT_INTS)
def test_an_error_code_that_is_no_int_is_no_code(code: str) -> None:
    doc = {"error": {"error_code": code, "error_msg": "Race not found."}}
    assert runsignup_error(doc) == (None, "Race not found.")


@pytest.mark.parametrize("value", NOT_INTS)
def test_audit_skips_an_id_that_is_no_int(tmp_path: Path, value: str) -> None:
    j = new_journal(tmp_path / "rsu.db")
    w = World(j)
    first = {**reg(9, 11, 1), "event_id": value}  # an event_id that is no int: the element's
    w.listing("participants", 11, page(11, [first]))
    other = {**reg(10, 11, 3), "registration_id": value}
    w.listing("participants", 11, page(11, [reg(9, 11, 4), other]), complete=False)
    (timeline,) = audit_registration(j, 9).timelines
    assert [(v.event_id, v.record["bib_num"]) for v in timeline.versions] == [(11, 1), (11, 4)]
    j.close()


def test_audit_skips_a_body_nested_too_deep(tmp_path: Path) -> None:
    j = new_journal(tmp_path / "rsu.db")
    w = World(j)
    w.listing("participants", 11, page(11, [reg(9, 11, 1)]))
    w.listing("participants", 11, b'{"registration_id": 9, "x": ' + b"[" * 100_000, complete=False)
    (timeline,) = audit_registration(j, 9).timelines
    assert [v.seq for v in timeline.versions] == [1]
    j.close()


@pytest.mark.parametrize(
    ("expires_in", "headers"),
    [('"²"', {}), ('"' + "1" * 5000 + '"', {}), ("3600", {"Content-Length": "²"})],
)
def test_a_refresh_answer_with_odd_digits_is_no_crash(
    tmp_path: Path, expires_in: str, headers: dict[str, str]
) -> None:
    conn, cred = _stored_bearer(tmp_path)
    body = '{"access_token": "NEWTOKEN123", "expires_in": ' + expires_in + "}"
    session = _FakeSession(200, body.encode(), headers)
    fresh, _ = refresh_due_tokens(
        conn, [cred], "https://runsignup.com", now=1050.0, session=session
    )  # type: ignore[arg-type]
    expected = 1050.0 + 3600 if expires_in == "3600" else None
    assert [(c.secret, c.expires_at) for c in fresh] == [("NEWTOKEN123", expected)]


def test_export_sorts_a_bib_of_unicode_digits_as_text(tmp_path: Path) -> None:
    db = make_db(
        tmp_path / "rsu.db",
        [person(1, MARATHON, bib_num="²"), person(2, MARATHON, bib_num="7" * 5000)],
    )
    res = CliRunner().invoke(app, ["export", "--db", str(db), "--race", "100", "-f", "csv"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == ["2", "1"]


def test_export_since_of_unicode_digits_is_a_usage_error(tmp_path: Path) -> None:
    db = make_db(tmp_path / "rsu.db", [person(1, MARATHON)])
    res = CliRunner().invoke(
        app, ["export", "--db", str(db), "--race", "100", "-f", "csv", "--since", "²"]
    )
    assert res.exit_code == 2 and "neither 'last' nor an export id" in res.output


def test_journal_log_and_import_take_a_body_nested_too_deep(tmp_path: Path) -> None:
    deep = b"[" * 60_000  # under the 64 KiB that journal log peeks into
    j = new_journal(tmp_path / "rsu.db")
    World(j).listing("participants", 11, deep, complete=False)
    j.close()
    res = CliRunner().invoke(app, ["journal", "log", "--db", str(tmp_path / "rsu.db")])
    assert res.exit_code == 0, res.output
    assert "participants HTTP 200 60000 B" in res.output
    (tmp_path / "deep.json").write_bytes(deep)
    args = [
        "journal",
        "import",
        str(tmp_path / "deep.json"),
        "--endpoint",
        "races",
        "--partner",
        "5",
    ]
    res = CliRunner().invoke(app, [*args, "--db", str(tmp_path / "rsu.db")])
    assert res.exit_code == 0, res.output
    assert "not valid JSON (maximum recursion depth exceeded" in res.output
