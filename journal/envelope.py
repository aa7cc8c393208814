"""RunSignUp's error envelope, read the same way everywhere (fetcher output, audit, projector).

RunSignUp sends errors with HTTP 200 as ``{"error": {"error_code": 201, "error_msg": "Race not
found."}}`` (see ``shared/docs/runsignup-api.md`` section 5 and the recorded ``error-*.json``); its
own OpenAPI declares ``{"error": "text"}``, so a string ``error`` is read as the message.
"""

from __future__ import annotations

from typing import Any


def runsignup_error(doc: Any) -> tuple[int | None, str] | None:
    """``(error_code, error_msg)`` when the decoded JSON ``doc`` is a RunSignUp error object, else
    ``None``. ``error_code`` is ``None`` when absent or not an integer; ``error_msg`` is ``""``
    when absent."""
    if not isinstance(doc, dict) or "error" not in doc:
        return None
    err = doc["error"]
    if isinstance(err, dict):
        raw = err.get("error_code")
        code: int | None = None
        if isinstance(raw, int) and not isinstance(raw, bool):
            code = raw
        elif isinstance(raw, str) and _digits(raw.strip()):
            code = int(raw.strip())
        msg = err.get("error_msg") or err.get("error_message") or ""
        return code, str(msg)
    return None, "" if err is None else str(err)


def _digits(text: str) -> bool:
    """Whether ``text`` is 1 to 18 ASCII digits: ``str.isdigit`` alone takes ``"²"``, which
    ``int()`` refuses, and ``int()`` refuses more than 4,300 digits."""
    return text.isascii() and text.isdigit() and len(text) <= 18
