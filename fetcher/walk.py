"""The walk: partner -> races -> race -> events -> participant and removed-participant listings.

Work is split into small tasks (one per partner, race and event) run by a thread pool of
``concurrency`` workers. A task returns the tasks it discovered (a partner task returns one race
task per race, a race task one event task per event); only the main thread submits them, so no
worker ever waits for another and the pool cannot deadlock. Every failure is recorded as a
:class:`~rsu.fetcher.report.Failure` and the other tasks go on.

Requests per partner, in order (``format=json`` always):

1. ``auth_check``: ``GET /Rest/races?results_per_page=1&only_partner_races=T``;
2. ``races``: ``GET /Rest/races?events=T&only_partner_races=T&results_per_page=N&page=P``
   (+ ``start_date``/``end_date`` as ``YYYY-MM-DD`` unless all races are asked for), every page;
   With ``race_ids`` only those races are walked; when a single partner is in scope, a
   requested race missing from its list is still asked for in step 3 (``direct_races``);
   otherwise a requested race that no partner listed is a failure of the run. With a cadence
   (:mod:`rsu.fetcher.cadence`) a race that is not due yet gets no further request this run;
3. ``race``: ``GET /Rest/race/{race_id}`` per race (all events, past ones included); when it
   fails, the events listed with the race in step 2 are used (and the race counts as failed);
4. per event, ``removed_participants``: ``GET /Rest/race/{race_id}/removed-participants``, then
   ``participants``: ``GET /Rest/race/{race_id}/participants?event_id=E&sort=
   registration_id ASC&include_questions=T&results_per_page=N[&after_registration_id=L]
   [&modified_after_timestamp=T]``, each until a page proves the end (empty, or shorter than a
   page the server is known to serve: :class:`~rsu.fetcher.paging.PageProof`; a page shorter
   than the size asked is not enough, a server may serve fewer); each listing ends with one
   ``ListingCompleted``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from rsu.journal import ListingCompleted

from .boundary import Scope, guarded
from .budget import PartnerBudget, RequestGate
from .cadence import Cadence, SyncClock, next_due, race_starts
from .client import (
    ApiClient,
    CircuitBreaker,
    Exchange,
    RetryPolicy,
    RunContext,
    SessionPool,
    Timeouts,
    secret_values,
)
from .credentials import CallerRegistration, Credential
from .cursor import race_listing_states
from .denials import PERMISSION_DENIED, denied_since
from .grouping import Group, next_parts, plan_groups, splittable
from .paging import SERVED_AT_LEAST, PageProof, keyset_next, page_number_next, paginate
from .report import Failure, Progress, log
from .shapes import RaceTimes

#: Most worker threads of a walk (partners x concurrency, capped): a thread that waits for its
#: credential's rate holds no request slot, so several per partner keep every budget busy.
MAX_WORKERS = 32
#: A unit of work; returns the follow-up tasks it discovered.
Task = Callable[[], list["Task"]]

LISTING_PATHS = {
    "participants": "/Rest/race/{race_id}/participants",
    "removed_participants": "/Rest/race/{race_id}/removed-participants",
}


@dataclass(frozen=True)
class WalkSettings:
    """Walk parameters (see :class:`rsu.fetcher.FetchOptions` for their meaning and units)."""

    base_url: str
    race_ids: tuple[int, ...]
    start_date: str | None
    end_date: str | None
    full: bool
    full_every: float
    overlap_seconds: int
    page_size: int
    races_page_size: int
    max_rps: float
    policy: RetryPolicy
    timeouts: Timeouts
    direct_races: bool = False
    caller: CallerRegistration | None = None
    events_per_call: int = 100
    #: Skip races that are not due (``None``: walk every race; see :mod:`rsu.fetcher.cadence`).
    cadence: Cadence | None = None


class Walker:
    """Runs the walk of one fetch run over a set of credentials (see module docstring)."""

    def __init__(
        self,
        settings: WalkSettings,
        context: RunContext,
        sessions: SessionPool,
        progress: Progress,
        now: float | None = None,
    ) -> None:
        self.s = settings
        self.context = context
        self.stats = context.stats
        self.sessions = sessions
        self.progress = progress
        self.now = time.time() if now is None else now
        self.cancelled = threading.Event()
        #: One breaker for the run: every partner talks to the same API host.
        self.breaker = CircuitBreaker(settings.policy.unreachable_after)
        self._lock = threading.Lock()
        #: Races walked (by any partner) and partners whose race list could not be read fully.
        self.walked_races: set[int] = set()
        self.unlisted_partners: set[int] = set()
        #: Partners whose every task ran to its end (an interrupted run leaves the others out).
        self.finished_partners: set[int] = set()
        #: When races were last synced, from the journal (for the cadence).
        self.sync_clock = SyncClock(context.journal)
        #: Requests in flight and each credential's rate (set up again by :meth:`run`).
        self.gate = RequestGate(2)

    # -- driving ---------------------------------------------------------------------------

    def run(self, credentials: list[Credential], concurrency: int) -> None:
        """Walk every credential's partner with at most ``concurrency`` requests in flight;
        returns when all tasks are done. A task's unexpected exception fails its scope only
        (:mod:`rsu.fetcher.boundary`); ``JournalError`` is re-raised after cancelling what has
        not started. A ``KeyboardInterrupt`` (Ctrl-C, SIGTERM) also interrupts the breaker:
        the tasks in flight send no retry and no further request, so the run ends within one
        request attempt.

        Each partner has its own task queue and up to ``concurrency`` tasks running, taken
        round-robin across partners, so every credential's rate budget is in use at once; the
        slots in flight are shared through :class:`~rsu.fetcher.budget.RequestGate`, which a
        thread waits for without holding one (see :mod:`rsu.fetcher.budget`). With
        ``concurrency`` 1 one thread runs every task in turn."""
        self.progress.add_total("partners", len(credentials))
        self.gate = RequestGate(max(1, concurrency))
        per_partner = max(1, concurrency)
        queues: dict[int, deque[Task]] = {}
        for c in credentials:
            scope = Scope("partner", c.timing_partner_id, None, "races", "/Rest/races")
            task = self.scoped(scope, c)(partial(self.partner_task, c))
            queues.setdefault(c.timing_partner_id, deque()).append(task)
            self.gate.set_active(c.timing_partner_id, True)
        running: Counter[int] = Counter()
        # concurrency 1: one thread, the walk is sequential and its order reproducible
        workers = 1 if concurrency <= 1 else min(MAX_WORKERS, per_partner * max(1, len(queues)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch") as pool:
            pending: dict[Future[list[Task]], int] = {}

            def fill() -> None:
                """Submit queued tasks, one partner at a time in turn, up to each share."""
                submitted = True
                while submitted:
                    submitted = False
                    for pid, queue in queues.items():
                        if queue and running[pid] < per_partner:
                            pending[pool.submit(self._run_task, queue.popleft())] = pid
                            running[pid] += 1
                            submitted = True

            try:
                fill()
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        pid = pending.pop(fut)
                        running[pid] -= 1
                        queues[pid].extend(fut.result())
                        if not queues[pid] and not running[pid]:
                            self.gate.set_active(pid, False)
                            self.finished_partners.add(pid)
                    fill()
            except BaseException as exc:
                self.cancelled.set()
                if isinstance(exc, KeyboardInterrupt):  # Ctrl-C, SIGTERM: no more retries
                    self.breaker.interrupt()
                for fut in pending:
                    fut.cancel()
                raise
        self.check_requested_races()

    def _run_task(self, task: Task) -> list[Task]:
        """Run ``task``; whatever happens, the thread keeps no request slot afterwards."""
        try:
            return task()
        finally:
            self.gate.release()

    def check_requested_races(self) -> None:
        """Record a failure for every requested race that no partner walked (it was in no
        partner's race list, and several partners were in scope so it was not asked for
        directly)."""
        missing = [r for r in dict.fromkeys(self.s.race_ids) if r not in self.walked_races]
        for race_id in missing:
            message = (
                f"race {race_id} was not in any partner's race list; "
                "pass --partner ID to ask RunSignUp for it directly"
            )
            if self.unlisted_partners:
                pids = ", ".join(map(str, sorted(self.unlisted_partners)))
                message += f" (the race list of partner(s) {pids} could not be read)"
            self.stats.fail(Failure("race", None, race_id, None, "races", None, message))
            self.progress.note(message)

    # -- tasks -----------------------------------------------------------------------------

    def partner_task(self, credential: Credential) -> list[Task]:
        """Auth check and race listing of one partner; returns one task per race."""
        if self.stopped():
            return []
        pid = credential.timing_partner_id
        client = ApiClient(
            self.s.base_url,
            credential,
            self.context,
            self.sessions,
            PartnerBudget(pid, self.s.max_rps, self.gate),
            self.s.policy,
            self.s.timeouts,
            breaker=self.breaker,
            caller=self.s.caller,
        )
        log.info("partner %s: auth check (%s)", pid, credential.auth_kind)
        ex = client.get(
            "auth_check", "/Rest/races", {"results_per_page": "1", "only_partner_races": "T"}
        )
        if not ex.ok:
            self._fail("partner", pid, None, None, "auth_check", ex)
            with self._lock:
                self.unlisted_partners.add(pid)
            self.progress.advance("partners")
            self.progress.note(f"partner {pid}: auth check failed: {ex.error_msg}")
            return []
        races: dict[int, list[int]] = {}
        times: dict[int, RaceTimes] = {}
        params = {
            "events": "T",
            "only_partner_races": "T",
            "results_per_page": str(self.s.races_page_size),
        }
        if self.s.start_date:
            params["start_date"] = self.s.start_date
        if self.s.end_date:
            params["end_date"] = self.s.end_date

        def fetch(page: int) -> Exchange:
            return client.get("races", "/Rest/races", {**params, "page": str(page)}, page=page)

        listing_error: str | None = None
        # RunSignUp may serve fewer races a page than asked: a page shorter than asked but not
        # than one served (or 50) is no proof of the end (see PageProof).
        races_end = PageProof(floor=min(self.s.races_page_size, SERVED_AT_LEAST)).stop
        for _page, ex in paginate(fetch, 1, page_number_next, races_end):
            if ex.ok and ex.info is not None:
                self.stats.add(pages=1)
                self.progress.advance("pages")
                for rid, events in ex.info.races.items():
                    races.setdefault(rid, events)
                for rid, listed_times in ex.info.race_times.items():
                    times.setdefault(rid, listed_times)
            else:
                self._fail("partner", pid, None, None, "races", ex)
                listing_error = ex.error_msg or "no answer"
                with self._lock:
                    self.unlisted_partners.add(pid)
        if self.s.race_ids:
            if self.s.direct_races:
                # one partner in scope: a race it did not list (past, private, outside the
                # window) is still asked for directly; RunSignUp answers 201/7 if it is not hers
                races = {r: races.get(r, []) for r in self.s.race_ids}
            else:
                races = {r: e for r, e in races.items() if r in self.s.race_ids}
        races = self.due_races(pid, races, times)  # the cadence: only races that are due
        with self._lock:
            self.walked_races.update(races)
        if listing_error is None:
            log.info("partner %s: %d races", pid, len(races))
            self.progress.note(f"partner {pid}: {len(races)} races")
        else:
            note = f"partner {pid}: races listing failed ({listing_error}); {len(races)} races read"
            log.warning("%s", note)
            self.progress.note(note)
        self.progress.advance("partners")
        self.progress.add_total("races", len(races))
        return [
            self.scoped(Scope("race", pid, rid, "race", f"/Rest/race/{rid}"), credential)(
                partial(self.race_task, client, rid, listed)
            )
            for rid, listed in races.items()
        ]

    def race_task(
        self,
        client: ApiClient,
        race_id: int,
        listed_events: list[int],
    ) -> list[Task]:
        """``GET /Rest/race/{race_id}``; returns one task per event."""
        if self.stopped():
            return []
        pid = client.credential.timing_partner_id
        ex = client.get("race", f"/Rest/race/{race_id}", {}, race_id=race_id)
        if ex.ok and ex.info is not None:
            events = ex.info.event_ids
        elif ex.error_code == PERMISSION_DENIED and (
            since := denied_since(self.context.journal, pid, race_id, self.context.run_id or "")
        ):
            # denied again, as in an earlier run: known lost, a warning (see .denials)
            self.stats.warn(
                f"partner {pid} race {race_id}: race (code 7): denied again: {ex.error_msg} (as "
                f"in the run at {since[:19]}Z; access lost, see rsu status); its listings are "
                "not asked for until the race answers again"
            )
            self.progress.advance("races")
            return []
        else:
            self._fail("race", pid, race_id, None, "race", ex)
            events = listed_events
            log.info("race %s: using %d events from the races list", race_id, len(events))
        self.stats.add(races=1, events=len(events))
        self.progress.advance("races")
        self.progress.add_total("events", len(events))
        path = LISTING_PATHS["participants"].format(race_id=race_id)
        scope = Scope("race", pid, race_id, "participants", path)
        task = partial(self.listings_task, client, race_id, events)
        return [self.scoped(scope, client.credential)(task)] if events else []

    def listings_task(
        self,
        client: ApiClient,
        race_id: int,
        event_ids: list[int],
    ) -> list[Task]:
        """Both listings of a race's events: removed participants first, then participants,
        several events per call (:mod:`rsu.fetcher.grouping`).

        In that order a complete participants listing finds refunds, transfers and deferrals
        already recorded with their reasons, so only registrations that vanished without a
        removal record are retired as missing, even when the removed listing fails.
        """
        pid = client.credential.timing_partner_id
        events = list(dict.fromkeys(event_ids))
        for endpoint in ("removed_participants", "participants"):
            states = race_listing_states(self.context.journal, pid, race_id, endpoint, events)
            groups = plan_groups(
                states,
                now=self.now,
                full=self.s.full,
                full_every=self.s.full_every,
                overlap_seconds=self.s.overlap_seconds,
                events_per_call=self.s.events_per_call,
            )
            for group in groups:
                if self.stopped():
                    return []
                self.listing(client, race_id, group, endpoint)
        self.progress.advance("events", len(events))
        return []

    def listing(self, client: ApiClient, race_id: int, group: Group, endpoint: str) -> None:
        """Read one listing of ``group``'s events to its end and journal its
        ``ListingCompleted`` (complete when ``group.cursor`` is ``None``, else incremental).

        The first call asks for every event of the group; when its page is full, events go on
        with keyset pages of their own (:func:`~rsu.fetcher.grouping.continuations`). When
        RunSignUp refuses the several-event call itself (an error code such as 301 "Event not
        found" or 7 for one of the events, or an HTTP 4xx), each event is listed on its own, so
        one bad event never fails the others."""
        pid = client.credential.timing_partner_id
        asked = group.event_ids
        cursor_ts = group.cursor
        listing_id = uuid.uuid4().hex
        path = LISTING_PATHS[endpoint].format(race_id=race_id)
        params = {
            "sort": "registration_id ASC",
            "results_per_page": str(self.s.page_size),
        }
        if endpoint == "participants":
            params["include_questions"] = "T"
        if cursor_ts is not None:
            params["modified_after_timestamp"] = str(cursor_ts)

        def fetcher(events: tuple[int, ...]) -> Callable[[int], Exchange]:
            def fetch(after: int) -> Exchange:
                p = {"event_id": ",".join(map(str, events)), **params}
                if after:
                    p["after_registration_id"] = str(after)
                return client.get(
                    endpoint,
                    path,
                    p,
                    race_id=race_id,
                    event_id=events[0] if len(events) == 1 else None,
                    listing_id=listing_id,
                    cursor=after or None,
                )

            return fetch

        proof = PageProof(floor=min(self.s.page_size, SERVED_AT_LEAST))
        stop = proof.stop
        pages = rows = requests = 0
        page_seqs: list[int] = []
        registrations: set[int] = set()  # read in this listing, each once (the summary's count)
        max_lm: int | None = None
        first_page_time: int | None = None
        failed: Exchange | None = None
        ended = True
        # (events asked together, after_registration_id to start from): the group first, then
        # any event whose part of a full several-event page may go on
        parts: list[tuple[tuple[int, ...], int]] = [(asked, 0)]
        while parts and failed is None:
            events, start = parts.pop(0)
            part_ended = False
            for _after, ex in paginate(fetcher(events), start, keyset_next, stop):
                requests += ex.attempts
                if not ex.ok or ex.info is None or ex.seq is None:
                    failed = ex
                    break
                if pages == 0:
                    first_page_time = ex.server_time
                pages += 1
                rows += ex.info.rows
                registrations |= ex.info.registration_ids
                page_seqs.append(ex.seq)
                if ex.info.max_last_modified is not None:
                    max_lm = max(max_lm or 0, ex.info.max_last_modified)
                self.progress.advance("pages")
                if len(events) > 1:
                    parts.extend(next_parts(ex.info, events, self.s.page_size, proof.served))
                    # each event's part of the page is at most one page under either reading
                    proof.observe(max((n for n, _ in ex.info.per_event.values()), default=0))
                    part_ended = True
                    break
                part_ended = stop(ex)
            ended = ended and part_ended
        if failed is not None and pages == 0 and len(asked) > 1 and splittable(failed):
            log.info(
                "race %s: %s of events %s in one call failed (%s); listing each on its own",
                race_id,
                endpoint,
                ",".join(map(str, asked)),
                failed.error_msg,
            )
            for eid in asked:
                self.listing(client, race_id, Group((eid,), group.cursor, group.previous), endpoint)
            return
        previous = group.previous
        if cursor_ts is not None and previous is not None:
            max_lm = previous if max_lm is None else max(max_lm, previous)
        # A row edited while this listing ran may sit on a page already read, with a
        # last_modified below the newest one seen on later pages: never let the next cursor pass
        # the server's clock at the first page (the overlap then covers clock granularity).
        next_cursor = max_lm
        if max_lm is not None and first_page_time is not None and pages > 1:
            next_cursor = min(max_lm, max(first_page_time, previous or 0))
        ok = failed is None
        complete = ok and ended and cursor_ts is None
        single = asked[0] if len(asked) == 1 else None
        event = ListingCompleted(
            endpoint=endpoint,
            race_id=race_id,
            event_id=single,
            event_ids=[] if single is not None else list(asked),
            listing_id=listing_id,
            mode="full" if cursor_ts is None else "incremental",
            complete=complete,
            ok=ok,
            pages=pages,
            rows=rows,
            page_seqs=page_seqs,
            max_last_modified=max_lm,
            next_cursor=next_cursor,
            modified_after=cursor_ts,
            requests=requests,
            retries=max(0, requests - pages - (1 if failed is not None else 0)),
            error_code=None if failed is None else failed.error_code,
            error_msg=None if failed is None else failed.error_msg,
            http_status=None if failed is None else failed.http_status,
        )
        self.context.journal.append(
            event,
            run_id=self.context.run_id,
            timing_partner_id=pid,
            race_id=race_id,
            event_id=single,
        )
        counter = "participants" if endpoint == "participants" else "removed_participants"
        self.stats.add(
            pages=pages,
            listings=1,
            complete_listings=int(complete),
            incremental_listings=int(cursor_ts is not None),
            **{counter: len(registrations)},
        )
        if failed is not None:
            self._fail("event", pid, race_id, single, endpoint, failed)
        elif not ended:
            self.stats.fail(
                Failure(
                    "event",
                    pid,
                    race_id,
                    single,
                    endpoint,
                    None,
                    "paging stopped before a short page (cursor did not advance)",
                )
            )

    # -- cadence ---------------------------------------------------------------------------

    def due_races(
        self, pid: int, races: dict[int, list[int]], times: dict[int, RaceTimes]
    ) -> dict[int, list[int]]:
        """``races`` (race id -> listed event ids) without the races that are not due at
        ``self.now`` by the cadence (:func:`~rsu.fetcher.cadence.next_due`, from their listed
        ``times`` and the journal's last sync); all of them when no cadence applies. The others
        are counted as ``races_not_due`` and noted, with the soonest next due (UTC)."""
        cadence = self.s.cadence
        if cadence is None or not races:
            return races
        due: dict[int, list[int]] = {}
        later: list[tuple[float, int]] = []
        for rid, events in races.items():
            listed = times.get(rid)
            starts = (
                race_starts(listed.timezone, listed.event_starts, listed.race_dates)
                if listed is not None
                else []
            )
            last = self.sync_clock.last_synced(pid, rid, events)
            when = next_due(starts, last, self.now, cadence)
            if when <= self.now:
                due[rid] = events
            else:
                later.append((when, rid))
        if later:
            self.stats.add(races_not_due=len(later))
            when, rid = min(later)
            note = (
                f"partner {pid}: {len(later)} of {len(races)} races not due yet (cadence; next: "
                f"race {rid} at {datetime.fromtimestamp(when, UTC):%Y-%m-%d %H:%M} UTC; "
                "--all syncs every race now)"
            )
            log.info("%s", note)
            self.progress.note(note)
        return due

    # -- helpers ---------------------------------------------------------------------------

    def scoped(self, scope: Scope, credential: Credential) -> Callable[[Task], Task]:
        """Wrap a task of ``scope`` in the last-resort boundary (:func:`~rsu.fetcher.boundary.
        guarded`): an unexpected exception fails that scope only."""
        secrets = secret_values(credential, self.s.caller)
        return lambda task: guarded(task, scope, self.context, secrets)

    def stopped(self) -> bool:
        """True when no new request should start: the run was cancelled, or RunSignUp refused
        the installation's caller registration (every further call would fail the same way)."""
        return self.cancelled.is_set() or self.breaker.halt_reason is not None

    def _fail(
        self,
        level: str,
        pid: int,
        race_id: int | None,
        event_id: int | None,
        endpoint: str,
        ex: Exchange,
    ) -> None:
        self.stats.fail(
            Failure(
                level, pid, race_id, event_id, endpoint, ex.error_code, ex.error_msg, ex.skipped
            )
        )
