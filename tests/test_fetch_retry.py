"""The steps of one request, each a small pure function (issue 9): classify an answer or an
error into a :class:`Verdict`, and decide the next attempt with the immutable
:class:`RetryState` (urllib3 ``Retry``'s shape: ``increment`` returns the next state or ``None``).
"""

from __future__ import annotations

import dataclasses

import pytest
import requests

from rsu.fetcher.bounded import BodyTooLarge, DeadlineExceeded
from rsu.fetcher.client import (
    Answer,
    RetryPolicy,
    RetryState,
    Verdict,
    backoff_seconds,
    classify_answer,
    classify_error,
)
from rsu.fetcher.shapes import PageInfo

POLICY = RetryPolicy(max_attempts=3, backoff_factor=0.5, jitter=0.0, retry_after_cap=30.0)
RACES = b'{"races": [{"race": {"race_id": 7, "events": [{"event_id": 70}]}}]}'


def _answer(status: int, body: bytes = RACES, **headers: str) -> Answer:
    return Answer(status, {k.replace("_", "-"): v for k, v in headers.items()}, body, 1.0)


def _summary(v: Verdict) -> tuple[bool, bool, float | None, int | None, int | None, str]:
    ex = v.exchange
    return (ex.ok, v.retry, v.retry_after, ex.http_status, ex.error_code, ex.error_msg)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (_answer(503, b"busy", Retry_After="2"), (False, True, 2.0, 503, None, "HTTP 503")),
        (_answer(429, b"slow down"), (False, True, None, 429, None, "HTTP 429")),
        (
            _answer(302, b"", Location="https://evil.example:8443/x?api_secret=S"),
            (False, False, None, 302, None, "HTTP 302 redirect to evil.example:8443 not followed"),
        ),
        (_answer(404, b"nope"), (False, False, None, 404, None, "HTTP 404")),
        (
            _answer(200, b'{"error": {"error_code": 14, "error_msg": "Request throttled."}}',
                    Retry_After="1"),
            (False, True, 1.0, 200, 14, "RunSignUp error 14: Request throttled."),
        ),
        (
            _answer(200, b'{"error": {"error_code": 6, "error_msg": "Bad key."}}'),
            (False, False, None, 200, 6, "RunSignUp error 6: Bad key."),
        ),
        (
            _answer(200, b"<html>502 Bad Gateway</html>"),
            (False, True, None, 200, None,
             "races body is not JSON: JSON is malformed: invalid character (byte 0)"),
        ),
        (
            _answer(200, b'{"races": [{"race": {"race_id": 1e300}}]}'),
            (False, False, None, 200, None,
             "races body has an unexpected shape: Expected `int | str`, got `float` - at "
             "`$.races[0].race.race_id`"),
        ),
    ],
)  # fmt: skip
def test_classify_answer(answer: Answer, expected: tuple) -> None:  # type: ignore[type-arg]
    assert _summary(classify_answer("races", answer, 1, POLICY)) == expected


def test_classify_answer_ok_and_caller_error() -> None:
    ok = classify_answer("races", _answer(200, Date="Mon, 30 Nov 2026 05:00:00 GMT"), 2, POLICY)
    assert ok.exchange.ok and not ok.retry and ok.halt is None
    assert ok.exchange.info == PageInfo(rows=1, races={7: [70]})
    assert (ok.exchange.attempts, ok.exchange.server_time) == (2, 1796014800)
    body = b'{"error": {"error_code": 17, "error_msg": "Invalid API caller credentials."}}'
    for status in (400, 200):
        v = classify_answer("races", _answer(status, body), 1, POLICY)
        assert (v.retry, v.exchange.error_code, v.exchange.http_status) == (False, 17, status)
        assert v.halt == v.exchange.error_msg
        assert v.halt.startswith("RunSignUp refused this installation's caller registration")


@pytest.mark.parametrize(
    ("exc", "retry", "status"),
    [
        (requests.ConnectionError("Connection refused"), True, None),
        (requests.exceptions.ReadTimeout("Read timed out"), True, None),
        (requests.exceptions.ChunkedEncodingError("IncompleteRead"), True, None),
        (DeadlineExceeded("no complete answer within the 1 s deadline"), True, None),
        (requests.exceptions.InvalidHeader("bad header"), False, None),
        (BodyTooLarge("response body decoded is over the 1 MiB cap", 200), False, 200),
    ],
)
def test_classify_error(exc: Exception, retry: bool, status: int | None) -> None:
    v = classify_error(exc, 3, f"{type(exc).__name__}: {exc}")
    assert (v.retry, v.no_response, v.exchange.http_status, v.exchange.attempts) == (
        retry,
        retry,
        status,
        3,
    )
    assert not v.exchange.ok


def test_retry_state_increments_until_the_policy_gives_up() -> None:
    retry = Verdict(classify_error(requests.ConnectionError("x"), 1, "x").exchange, retry=True)
    first = RetryState(POLICY)
    second = first.increment(retry)
    assert second == RetryState(POLICY, 2, backoff_seconds(1, POLICY))
    third = second.increment(dataclasses.replace(retry, retry_after=7.5))
    assert third == RetryState(POLICY, 3, 7.5)  # the server's Retry-After wins
    assert third.increment(retry) is None  # max_attempts reached
    assert first.increment(dataclasses.replace(retry, retry=False)) is None  # not retryable
    assert first == RetryState(POLICY)  # immutable: increment never changes a state
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.attempt = 5  # type: ignore[misc]
