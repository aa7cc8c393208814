"""Helpers for projector tests: build journals in-process, generate bodies, dump tables.

Bodies follow RunSignUp's shapes (``shared/docs/runsignup-api.md`` §4). ``recorded_at`` is frozen
to a per-step logical clock so that two journals built from the same steps are identical.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import msgspec

from rsu.journal import (
    FetchFailed,
    Journal,
    ListingCompleted,
    RequestFailed,
    ResponseReceived,
    RunFinished,
    RunStarted,
    open_db,
)
from rsu.projector.schema import TABLES

REPO = Path(__file__).resolve().parent.parent
REAL = REPO.parent / "shared" / "fixtures" / "runsignup" / "real"
DATA = Path(__file__).resolve().parent / "data" / "projector"

FIRST_NAMES = ["Alex", "Zoë", "José", "  Mary Ann", "李", "O'Brien", "Ñandú", "Blair"]
LAST_NAMES = ["Sample", "Müller", "van der Berg", "Smith-Jones", "Ólafsdóttir", "Ng "]
GENDERS = ["M", "F", "X", None, "U"]


def j(obj: Any) -> bytes:
    """Compact JSON bytes with PHP ``\\/`` escapes, as RunSignUp sends them."""
    return msgspec.json.encode(obj).replace(b"/", b"\\/")


def money(cents: int) -> str:
    return f"${cents // 100}.{cents % 100:02d}"


def registration(reg_id: int, event_id: int, version: int = 0) -> dict[str, Any]:
    """A realistic ``/participants`` registration; ``version`` changes bib, fee and team."""
    k = reg_id * 7 + version
    return {
        "registration_id": reg_id,
        "event_id": event_id,
        "user": {
            "user_id": 1_000_000 + reg_id,
            "first_name": FIRST_NAMES[reg_id % len(FIRST_NAMES)],
            "middle_name": None,
            "last_name": LAST_NAMES[k % len(LAST_NAMES)],
            "email": f"runner{reg_id}@example.com",
            "address": {
                "street": f"{reg_id} Main St",
                "city": "Testville",
                "state": "GA",
                "zipcode": f"{reg_id % 100000:05d}",
                "country_code": "US",
            },
            "dob": f"19{50 + reg_id % 50}-0{1 + reg_id % 9}-1{reg_id % 10}",
            "gender": GENDERS[reg_id % len(GENDERS)],
            "phone": f"555-010-{reg_id % 10000:04d}",
        },
        "rsu_transaction_id": 5_000_000 + reg_id,
        "transaction_id": f"ay_{reg_id:012d}C_0",
        "bib_num": (reg_id + version) if k % 3 else f"{(reg_id + version) % 1000:04d}",
        "chip_num": None if k % 4 else f"C{reg_id}",
        "age": 20 + reg_id % 50,
        "registration_date": (
            f"{1 + reg_id % 12}/{1 + reg_id % 28}/2023 {reg_id % 24:02d}:{reg_id % 60:02d}"
        ),
        "team_id": None,
        "team_name": None if version % 2 == 0 else f"Team {version}",
        "team_type_id": None,
        "team_type": None,
        "team_bib_num": None,
        "last_modified": 1_700_000_000 + reg_id * 10 + version * 100_000,
        "imported": "F",
        "race_fee": money(3500 + 500 * version),
        "offline_payment_amount": "$0.00",
        "processing_fee": "$3.80",
        "processing_fee_paid_by_user": "$3.80",
        "processing_fee_paid_by_race": "$0.00",
        "partner_fee": "$0.75",
        "affiliate_profit": "$0.00",
        "extra_fees": "$0.00",
        "amount_paid": money(3880 + 500 * version),
        "usatf_discount_amount_in_cents": "$0.00",
        "usatf_discount_additional_field": None,
        "giveaway": "M",
        "giveaway_option_id": 1,
        "question_responses": [
            {"question_id": "1", "question_text": "First race?", "response": "No"},
            {"question_id": 2, "question_text": "Shirt", "responses": ["S", "M"]},
        ],
    }


def removed_registration(
    reg_id: int, event_id: int, reason: str, new_id: int | None, when: int
) -> dict[str, Any]:
    """A ``/removed-participants`` row (dates as ``YYYY-MM-DD HH:MM:SS`` Eastern)."""
    return {
        "registration_id": reg_id,
        "event_id": event_id,
        "user": {"user_id": 1_000_000 + reg_id, "first_name": "Gone", "last_name": "Runner"},
        "bib_num": reg_id,
        "chip_num": None,
        "registration_date": "2023-01-02 03:04:05",
        "last_modified": "2023-11-14 17:13:20",
        "last_modified_ts": when,
        "removed_reason": reason,
        "new_registration_id": new_id,
    }


def participants_body(event_id: int, regs: Sequence[dict[str, Any]]) -> bytes:
    return j([{"event": {"event_id": event_id, "participants": []}, "participants": list(regs)}])


def removed_body(event_id: int, regs: Sequence[dict[str, Any]]) -> bytes:
    return j([{"event": {"event_id": event_id, "participants": list(regs)}}])


def race_obj(race_id: int, version: int = 0, event_ids: Sequence[int] = (11, 12)) -> dict[str, Any]:
    return {
        "race_id": race_id,
        "name": f" Race {race_id} v{version}",
        "next_date": "11/18/2017",
        "next_end_date": "11/18/2017",
        "last_date": None,
        "is_draft_race": "F",
        "is_registration_open": "T" if version % 2 == 0 else "F",
        "created": "5/21/2012 21:13",
        "last_modified": f"1/{9 + version % 20}/2017 17:10",
        "timezone": "America/Denver",
        "logo_url": "https://d368g9lw5ileu7.cloudfront.net/",
        "address": {
            "street": "1 Park",
            "city": "Arvada",
            "state": "CO",
            "zipcode": "80007",
            "country_code": "US",
        },
        "events": [
            {
                "event_id": e,
                "race_event_days_id": 58262,
                "name": f"Event {e}",
                "details": None,
                "start_time": "11/18/2017 09:00",
                "end_time": None,
                "registration_opens": "12/1/2016 02:00",
                "event_type": "running_race",
                "distance": "10K",
                "volunteer": "F",
                "require_dob": "T",
                "require_phone": "T",
                "registration_periods": [
                    {
                        "registration_opens": "12/1/2016 02:00",
                        "registration_closes": "6/1/2017 01:59",
                        "race_fee": money(3500 + 100 * version),
                        "processing_fee": "$3.80",
                    }
                ],
            }
            for e in event_ids
        ],
    }


class Builder:
    """Append RunSignUp-like fetch runs to a :class:`Journal` with a frozen logical clock.

    ``dup`` (a set of step numbers) appends each event of those steps twice, as a fetcher retry
    that got the same answer would.
    """

    def __init__(self, journal: Journal, tp: int = 1, run_id: str = "run-1") -> None:
        self.journal = journal
        self.tp = tp
        self.run_id = run_id
        self.tick = 0
        self.listings = 0

    @contextlib.contextmanager
    def _clock(self) -> Iterator[None]:
        self.tick += 1
        stamp = f"2024-01-01T00:{self.tick // 60 % 60:02d}:{self.tick % 60:02d}.000Z"
        with mock.patch("rsu.journal.store.utc_now_iso", lambda: stamp):
            yield

    def append(self, event: Any, body: bytes | None = None, *, times: int = 1, **cols: Any) -> int:
        cols.setdefault("run_id", self.run_id)
        cols.setdefault("timing_partner_id", self.tp)
        first = 0
        with self._clock():
            for _ in range(times):
                seq = self.journal.append(event, body, **cols)
                first = first or seq
        return first

    def response(
        self,
        endpoint: str,
        body: bytes,
        *,
        race_id: int | None = None,
        event_id: int | None = None,
        status: int = 200,
        listing_id: str | None = None,
        times: int = 1,
        query: dict[str, str] | None = None,
    ) -> int:
        ev = ResponseReceived(
            endpoint=endpoint,
            path=f"/Rest/{endpoint}",
            query=query or {},
            status=status,
            body_sha256="",
            body_size=len(body),
            listing_id=listing_id,
            race_id=race_id,
            event_id=event_id,
        )
        return self.append(ev, body, times=times, race_id=race_id, event_id=event_id)

    def races_listing(
        self,
        pages: Sequence[Sequence[dict[str, Any]]],
        *,
        per_page: int = 1000,
        window: tuple[str, str] | None = None,
        times: int = 1,
    ) -> list[int]:
        """A partner's ``GET /Rest/races?events=T&only_partner_races=T`` listing, one response
        per page of race objects (``window``: ``start_date``/``end_date``); returns the seqs."""
        seqs = []
        for number, races in enumerate(pages, 1):
            query = {"events": "T", "only_partner_races": "T", "results_per_page": str(per_page)}
            if window is not None:
                query.update(start_date=window[0], end_date=window[1])
            query["page"] = str(number)
            body = j({"races": [{"race": r} for r in races]})
            ev = ResponseReceived(
                endpoint="races",
                path="/Rest/races",
                query=query,
                body_sha256="",
                body_size=len(body),
                page=number,
            )
            seqs.append(self.append(ev, body, times=times))
        return seqs

    def run_started(self) -> int:
        return self.append(RunStarted(mode="full"))

    def run_finished(self) -> int:
        return self.append(RunFinished(status="ok"))

    def race(
        self,
        body: bytes,
        race_id: int,
        *,
        endpoint: str = "race",
        times: int = 1,
        query: dict[str, str] | None = None,
    ) -> int:
        """A race detail (``GET /Rest/race/{id}``, ``query`` as journaled: no secrets)."""
        return self.response(endpoint, body, race_id=race_id, times=times, query=query)

    def listing(
        self,
        race_id: int,
        event_id: int,
        pages: Sequence[bytes],
        *,
        endpoint: str = "participants",
        complete: bool = True,
        fail_after: bytes | None = None,
        error_code: int | None = None,
        times: int = 1,
    ) -> int:
        """Pages (each a successful response), an optional failing attempt body that ends the
        listing with ok=False, then ListingCompleted. Returns the ListingCompleted seq."""
        self.listings += 1
        lid = f"{self.run_id}-{self.tp}-{self.listings}"
        seqs = [
            self.response(
                endpoint, p, race_id=race_id, event_id=event_id, listing_id=lid, times=times
            )
            for p in pages
        ]
        ok = fail_after is None
        if fail_after is not None:
            self.response(
                endpoint,
                fail_after,
                race_id=race_id,
                event_id=event_id,
                listing_id=lid,
                times=times,
            )
        ev = ListingCompleted(
            endpoint=endpoint,
            race_id=race_id,
            event_id=event_id,
            listing_id=lid,
            mode="full" if complete else "incremental",
            complete=complete and ok,
            ok=ok,
            pages=len(pages),
            rows=0,
            page_seqs=seqs,
            requests=len(pages) + (0 if ok else 1),
            retries=0,
            error_code=error_code,
            error_msg=None if ok else "Request throttled." if error_code == 14 else "failed",
        )
        return self.append(ev, times=times, race_id=race_id, event_id=event_id)

    def fetch_failed(
        self,
        endpoint: str,
        race_id: int | None,
        *,
        code: int | None,
        msg: str,
        http_status: int | None = 200,
        times: int = 1,
    ) -> int:
        attempt = RequestFailed(
            endpoint=endpoint,
            path=f"/Rest/{endpoint}",
            error_class="X",
            attempt=3,
            final=True,
            race_id=race_id,
        )
        last = self.append(attempt, times=times, race_id=race_id)
        ev = FetchFailed(
            endpoint=endpoint,
            path=f"/Rest/{endpoint}",
            error_code=code,
            http_status=http_status,
            error_msg=msg,
            attempts=3,
            race_id=race_id,
            last_seq=last,
        )
        return self.append(ev, times=times, race_id=race_id)


def big_listing_run(b: Builder, registrations: int, per_page: int, changed: int) -> None:
    """Append the run the crash tests kill the projection in: race 1 with events 11 and 12,
    each listed in full (registrations ``1..registrations``, pages of ``per_page``), then a
    removal (registration 5 deferred), an incremental listing of event 11 changing
    registrations ``1..changed``, and a failed race 2 (error 201)."""
    b.run_started()
    b.race(j({"race": race_obj(1, event_ids=(11, 12))}), 1)
    for ev in (11, 12):
        pages = [
            participants_body(ev, [registration(r, ev) for r in range(k, k + per_page)])
            for k in range(1, registrations + 1, per_page)
        ]
        b.listing(1, ev, pages)
    b.listing(
        1,
        11,
        [removed_body(11, [removed_registration(5, 11, "deferred", None, 1)])],
        endpoint="removed_participants",
    )
    b.listing(
        1, 11, [participants_body(11, [registration(r, 11, 1) for r in range(1, changed + 1)])]
    )
    b.fetch_failed("race", 2, code=201, msg="Race not found.")
    b.run_finished()


def new_journal(path: str | Path = ":memory:") -> Journal:
    return Journal(open_db(path))


def copy_db(src: sqlite3.Connection, path: str | Path = ":memory:") -> Journal:
    """A new journal database holding a copy of ``src`` (journal and any tables)."""
    dst = open_db(path)
    src.backup(dst.conn)
    return Journal(dst)


PROVENANCE = ("source_seq", "last_seen_seq")
MAIN_TABLES = ("runsignup_races", "runsignup_events", "runsignup_participants", "sync_history")


def dump(
    conn: sqlite3.Connection, tables: Sequence[str] | None = None, exclude: Sequence[str] = ()
) -> str:
    """A deterministic text dump of the projection tables (rows ordered by primary key; when a
    primary-key column is excluded, by the dumped text, since the key order then depends on
    values left out of the dump)."""
    specs = {t.name: t for t in TABLES}
    out = []
    for name in tables or [t.name for t in TABLES]:
        t = specs[name]
        cols = [c for c in t.column_names if c not in exclude]
        out.append(f"## {name} ({', '.join(cols)})")
        lines = [
            json.dumps(r, ensure_ascii=False)
            for r in conn.execute(
                f"SELECT {', '.join(cols)} FROM {name} ORDER BY {', '.join(t.pk)}"
            )
        ]
        out.extend(sorted(lines) if set(t.pk) & set(exclude) else lines)
    return "\n".join(out) + "\n"


def rows(conn: sqlite3.Connection, sql: str, *params: Any) -> list[dict[str, Any]]:
    cur = conn.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def participant_rows(
    db_path: Path, *columns: str, removed: bool = False
) -> dict[tuple[int, int, int], tuple[Any, ...]]:
    """``(race_id, event_id, registration_id) -> (values of columns)`` of every active (or, with
    ``removed``, removed) row of ``runsignup_participants`` in the SQLite file ``db_path``."""
    wanted = "".join(f", {c}" for c in columns)
    where = "IS NOT NULL" if removed else "IS NULL"
    conn = sqlite3.connect(db_path)
    try:
        return {
            tuple(r[:3]): tuple(r[3:])
            for r in conn.execute(
                f"SELECT race_id, event_id, registration_id{wanted} "
                f"FROM runsignup_participants WHERE removed_at {where}"
            )
        }
    finally:
        conn.close()


def new_listing_id() -> str:
    return uuid.uuid4().hex
