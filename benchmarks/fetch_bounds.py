"""Benchmark: the cost of bounding each request (deadline timer, streamed body under a size cap,
own gzip decoding, scrubbing echoed secrets) against plain ``requests`` ``.content`` reading the
same bodies from the same loopback server, in the same run. Prints requests/s and MB/s of both
and their ratio, for an identity and a gzip body of a realistic participants page.

    .venv/bin/python benchmarks/fetch_bounds.py [--requests 200] [--rows 2500]
"""

from __future__ import annotations

import argparse
import gzip
import json
import time

import requests

from rsu.fetcher.client import ApiClient, Call, RateLimiter, SessionPool
from rsu.fetcher.credentials import Credential
from rsu.fetcher.redact import BodyScrubber
from rsu.simulator import LoopbackServer
from rsu.simulator.wire import Request, Response


def page(rows: int) -> bytes:
    """A participants page of ``rows`` registrations (about 800 bytes each)."""
    row = {
        "registration_id": 0,
        "user": {"first_name": "Alexandra", "last_name": "Montgomery", "email": "a@example.com"},
        "bib_num": "1234",
        "amount_paid": "$55.00",
        "address": {"street": "1 Main Street", "city": "Springfield", "zipcode": "01234"},
        "last_modified": 1790000000,
        "question_responses": [{"question_id": i, "response": "Yes" * 20} for i in range(6)],
    }
    out = [dict(row, registration_id=1000 + i) for i in range(rows)]
    return json.dumps([{"event": {"event_id": 1}, "participants": out}]).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rows", type=int, default=2500)
    args = parser.parse_args()
    body = page(args.rows)
    zipped = gzip.compress(body, 6)

    def app(req: Request) -> Response:
        if req.path.endswith("gz"):
            return Response(200, zipped, headers={"Content-Encoding": "gzip"})
        return Response(200, body)

    cred = Credential(1, "api_key", "K3yValue-0123456789", "S3cretValue-0123456789")
    with LoopbackServer(app) as api:
        plain = requests.Session()
        client = ApiClient(api.base_url, cred, None, SessionPool(), RateLimiter(0))
        scrubber = BodyScrubber(cred.secret_values())
        for path in ("/id", "/gz"):
            url = api.base_url + path
            call = client.call("participants", path, {})

            def baseline(url: str = url, call: Call = call) -> int:
                return len(plain.get(url, params=call.send, timeout=(10, 60)).content)

            def bounded(call: Call = call) -> int:
                answer = client._send(call)
                return len(scrubber.scrub(answer.body)[0])

            results = {}
            for name, fn in (("requests .content", baseline), ("bounded + scrub", bounded)):
                fn()  # warm the connection
                started = time.perf_counter()
                total = sum(fn() for _ in range(args.requests))
                seconds = time.perf_counter() - started
                results[name] = seconds
                print(
                    f"{path} {name:18} {args.requests / seconds:8.1f} req/s "
                    f"{total / seconds / 1e6:8.1f} MB/s ({len(body) / 1e6:.2f} MB body)"
                )
            ratio = results["bounded + scrub"] / results["requests .content"]
            print(f"{path} bounded / baseline time: {ratio:.2f}")


if __name__ == "__main__":
    main()
