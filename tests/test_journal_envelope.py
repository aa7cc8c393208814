"""The RunSignUp error envelope, read from the recorded real error responses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rsu.journal.envelope import runsignup_error

REAL = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "runsignup" / "real"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("error-6-key-authentication-failed.json", (6, "Key authentication failed")),
        ("error-7-permission-denied.json", (7, "Permission Denied")),
        ("error-201-race-not-found.json", (201, "Race not found.")),
        ("error-301-event-not-found.json", (301, "Event not found.")),
        ("race-detail-1649-events-periods.json", None),
        ("participants-page-event-661702-trimmed.json", None),
    ],
)
def test_recorded_responses(name: str, expected: tuple[int, str] | None) -> None:
    if not REAL.is_dir():
        pytest.skip(f"recorded RunSignUp responses not found at {REAL} (../shared is absent)")
    assert runsignup_error(json.loads((REAL / name).read_bytes())) == expected


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"error": "Invalid parameters"}, (None, "Invalid parameters")),
        (
            {"error": {"error_code": "14", "error_msg": "Request throttled."}},
            (14, "Request throttled."),
        ),
        ({"error": {"error_code": True}}, (None, "")),
        ({"error": None}, (None, "")),
        ({"races": []}, None),
        ([{"error": {"error_code": 6}}], None),
        ("error", None),
    ],
)
def test_shapes(doc: object, expected: tuple[int | None, str] | None) -> None:
    assert runsignup_error(doc) == expected
