"""Prefetch (issue 12): read, decode and normalise the next ``/participants`` pages in a worker.

Projecting a page costs about as much Python work (read and check the body, decode it, build each
registration's values with :mod:`rsu.projector.typed`) as SQLite work (the upsert). Worker
processes (:data:`WORKERS`, spawned: fresh interpreters sharing no SQLite state, lock or open
file with this one, each taking the pages whose seq is its number modulo their count) read the
journal file on their own read-only connections, in seq order from the checkpoint, and for each
of their ``/participants`` success pages send :func:`page_values`, ``marshal``-ed, through a
one-way pipe each (each message written whole by one thread of the worker while the next page is
prepared): a worker is at most :data:`_AHEAD` pages and the pipe's buffer ahead (memory stays
bounded), and a message is either whole or, if the worker dies while writing it, ends the stream
(``EOFError`` here, never a read that waits forever for the rest of a message).

Two forms, chosen by the worker (:func:`_work`): a page of the first listing of its scope in this
run is sent as each registration's row as a new registration would be upserted, without the
body (the main process would not read it); a page of a later listing also with the checked body
(the re-seen shortcuts read it) and, per row, where ``MISSING`` would go for a stored
registration.

The main process keeps every decision and every write, in seq order, inside the per-event
``SAVEPOINT`` and the checkpoint-per-batch transaction of the runner: it upserts a page of the
first form as prepared only when none of its registrations is stored nor twice in it
(:meth:`Applier._new_page`), and otherwise projects that page from its body itself; a page of the
second form goes through :meth:`Applier._prefetched_page`, which looks up the stored
registrations as before and puts ``MISSING`` back for them (``typed_values(reg, stored=False)``
is ``typed_values(reg, stored=True)`` with ``None`` for ``MISSING``: they differ in nothing else).
A page the worker did not prepare (appended meanwhile, an unreadable blob, the worker gone or not
started yet), or whose typed path failed there (``None``: not of that shape, or nested too deeply
for the worker, see :data:`_STACK_MARGIN`), is projected in the main process as without a
worker: the tables are the same either way.

A process, not a thread: msgspec and the value building hold the GIL, and so would starve the
thread waiting to go on with its ``executemany``.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import marshal
import multiprocessing
import os
import queue
import signal
import sys
import threading
import types
from collections.abc import Iterator
from typing import Any

from rsu.journal import Journal, JournalError, JournalRow, ResponseReceived, open_db

from . import typed
from .normalize import INT64_MAX as _I64_MAX
from .normalize import INT64_MIN as _I64_MIN
from .normalize import MISSING

#: Start a worker only when at least this many journal events are left to project (starting the
#: worker, about 0.2 s, and the first page's wait cost more than they save on a few events).
MIN_EVENTS = 40
#: Worker processes (page ``seq`` goes to worker ``seq % WORKERS``). One prepares a page in
#: about the time the main process takes to write it, and slower whenever the machine is busy;
#: two (at a lower priority, :data:`_NICE`) keep the main process from waiting even on 2 cores
#: (``benchmarks/projection.py``: 0.80-0.82 against 0.78 with one, same runs; with
#: ``--unique-answers`` 3.9 s against 4.1-4.5 s).
WORKERS = 2
#: Niceness the workers add to their own: the main process, which writes, goes first.
_NICE = 5
#: Seconds between the main process's checks that the worker is still there.
_WORKER_POLL = 1.0
#: Journal events per read in the worker.
_READ_BATCH = 200
#: The worker's GIL switch interval (Python's default: 5 ms). Its writer thread needs the GIL
#: back each time a write into the pipe returns; at 5 ms it waited for it longer than the main
#: process took to write a page (the main process then waited 0.8 s of 3.5 for pages, 0.2 s at
#: 0.1 ms: ``benchmarks/projection.py``).
_SWITCH_SECONDS = 0.0001
#: Prepared pages the worker keeps ahead of the pipe (each about 500 bytes per registration).
_AHEAD = 2
#: ``fcntl`` F_SETPIPE_SZ (Linux), and the pipe buffer asked for: a whole prepared page per read
#: (at most ``/proc/sys/fs/pipe-max-size``, 1 MiB by default, for a process without privileges).
_F_SETPIPE_SZ = 1031
_PIPE_BYTES = 1 << 20
#: Python frames the worker keeps unused: how deeply nested a body msgspec decodes depends on
#: the frames below the call, and the main process decodes far down its stack (the CLI, a test
#: runner); a page nested too deeply for the worker is left to the main process, which then
#: decodes it, or fails to, as without a worker.
_STACK_MARGIN = 300
#: A page the worker did not prepare: project it in the main process.
NOT_PREFETCHED: Any = object()
#: ``(seq, (body sha256, timing partner, race id), body or None, page_values or None)``, sent
#: ``marshal``-ed; body ``None``: not sent (the main process reads it itself if it needs it);
#: page_values ``None``: not of the typed shape.
_Message = tuple[int | None, tuple[str, int, int] | None, bytes | None, Any]
_END: _Message = (None, None, None, None)


#: ``(upsert rows, positions of MISSING per row or None, event ids, a registration twice)``;
#: instead of ``missing`` a dict of page constants (:func:`_page_constants`): the rows are in
#: the short new-registration form of :func:`_new_rows` (usable only when none of the page's
#: registrations is stored).
Prepared = tuple[
    list[tuple[Any, ...]], list[tuple[int, ...] | None] | dict[int, Any], list[int], bool
]


def page_values(
    tp: int, race_id: int, seq: int, raw: bytes, *, stored: bool = True
) -> Prepared | None:
    """A ``/participants`` page of the common shape prepared for :meth:`Applier._prefetched_page`
    (with ``stored``) or :meth:`Applier._new_page`: each registration's full
    ``runsignup_participants`` row as a new registration would be upserted (``tp, race_id,
    event_id, registration_id``, the data columns of ``typed_values(reg, stored=False)``, then
    ``source_seq = last_seen_seq = seq`` and no event change), in the order
    that method takes them (a repeated key keeps its first place and its last values); with
    ``stored``, per row the data column positions that are ``MISSING`` for a stored registration
    (``None``: none), else instead of that list the page's constants and the rows in the short
    form of :func:`_new_rows`; the event ids;
    whether a ``(race_id, registration_id)`` occurs twice. ``None`` when the typed path does not
    apply to the page."""
    if not stored:
        return _new_rows(tp, race_id, seq, raw)
    regs = typed.page_registrations(race_id, raw)
    if regs is None:
        return None
    typed_values = typed.typed_values
    rows: list[tuple[Any, ...]] = []
    missing: list[tuple[int, ...] | None] = []
    shapes: dict[tuple[int, ...], tuple[int, ...]] = {}
    events: set[int] = set()
    reg_ids: set[int] = set()
    try:
        for (_race, event_id, reg_id), reg in regs.items():
            values = typed_values(reg, True)
            events.add(event_id)
            reg_ids.add(reg_id)
            if MISSING in values:  # few columns at most: list.index is a C loop
                cols = list(values)
                found: list[int] = []
                i = cols.index(MISSING)
                while True:
                    found.append(i)
                    cols[i] = None
                    if MISSING not in cols:
                        break
                    i = cols.index(MISSING, i)
                idx = tuple(found)
                missing.append(shapes.setdefault(idx, idx))  # one object: marshal refers to it
                values = tuple(cols)
            else:
                missing.append(None)
            rows.append((tp, race_id, event_id, reg_id, *values, seq, seq, None, None))
    except Exception:  # the main process's generic path decides (and records the error)
        return None
    return rows, missing, sorted(events), len(reg_ids) != len(rows)


def _new_rows(tp: int, race_id: int, seq: int, raw: bytes) -> Prepared | None:
    """:func:`page_values` without ``stored``: each registration's row as a new registration, in
    the short form ``(event_id, registration_id, data columns up to question_responses)`` (the
    partner, the race, the removal columns and the provenance are the same for every row of the
    page: :meth:`Applier._new_page` writes them as constants), without the page's constant
    columns (:func:`_page_constants`, returned in the place of the ``MISSING`` positions), in
    page order, each registration as sent (a repeated one is then ``twice``, and the main
    process does not use these rows)."""
    regs = typed.page_list(raw)
    if regs is None:
        return None
    typed_values = typed.typed_values
    rows: list[tuple[Any, ...]] = []
    events: set[int] = set()
    reg_ids: set[int] = set()
    try:
        for event_id, reg in regs:
            reg_id = reg.registration_id
            rows.append(typed_values(reg, False, (event_id, reg_id), ()))
            events.add(event_id)
            reg_ids.add(reg_id)
    except Exception:  # the main process's generic path decides (and records the error)
        return None
    rows, constants = _page_constants(rows)
    return rows, constants, sorted(events), len(reg_ids) != len(rows)


def _page_constants(rows: list[tuple[Any, ...]]) -> tuple[list[Any], dict[int, int | None]]:
    """The data columns (positions from 2 in the short form) whose value is the same ``None``
    or BIGINT integer in every row of the page (fees of one price, teams nobody joined, the
    imported flag...), and the rows without them: :meth:`Applier._new_page` writes those as
    constants of its statement, so SQLite binds fewer values per row."""
    if len(rows) < 2:
        return rows, {}
    cols = list(zip(*rows, strict=True))
    constants: dict[int, int | None] = {}
    for p in range(2, len(cols)):
        col = cols[p]
        v = col[0]
        if (v is None or (v.__class__ is int and _I64_MIN <= v <= _I64_MAX)) and col.count(
            v
        ) == len(col):
            constants[p] = v
    if not constants:
        return rows, constants
    varying = [c for p, c in enumerate(cols) if p not in constants]
    return list(zip(*varying, strict=True)), constants


def with_constants(rows: list[tuple[Any, ...]], constants: dict[int, Any]) -> list[tuple[Any, ...]]:
    """The short-form rows of :func:`_new_rows` with their page constants put back."""
    if not constants:
        return rows
    width = len(rows[0]) + len(constants) if rows else 0
    keep = [p for p in range(width) if p not in constants]
    template = [constants.get(p) for p in range(width)]
    out = []
    for r in rows:
        full = template.copy()
        for p, v in zip(keep, r, strict=True):
            full[p] = v
        out.append(tuple(full))
    return out


def race_id_of(row: JournalRow, ev: ResponseReceived) -> int | None:
    """The ``race_id`` a response is about: the journal row's, else the response event's."""
    return row.race_id if row.race_id is not None else ev.race_id


def _prefetchable(row: JournalRow) -> int | None:
    """The race id of a ``/participants`` success page that may take the typed path."""
    ev = row.event
    if (
        not isinstance(ev, ResponseReceived)
        or ev.endpoint != "participants"
        or not 200 <= ev.status < 400
        or not row.body_sha256
        or row.timing_partner_id is None
    ):
        return None
    return race_id_of(row, ev)


def _work(
    path: str, after_seq: int, out: Any, parent: int, taken: Any, part: tuple[int, int]
) -> None:
    """The worker process ``part = (k, n)``: prepare every prefetchable page after
    ``after_seq`` whose seq is ``k`` modulo ``n``, in seq order, then send ``_END``. It ends by
    itself when the main process is gone (even killed), and never writes to the operator's
    terminal (a failure here only means the main process reads and decodes the pages itself).

    A page of the first listing of its scope (timing partner, race, event) seen in this run is
    sent as new-registration rows only, without its body: the main process, which starts the
    worker on empty tables (a first projection, a rebuild; see ``runner``) unless the shortcuts
    are off, rarely has any of them stored, and reads the body itself when it does. A page of a
    later listing is sent with its body (the re-seen shortcuts read it) and the ``MISSING``
    positions of its rows, and so is a first listing's page whose new-registration form fails
    (:func:`_new_rows` takes every copy of a repeated registration, the typed path only the
    last, which may still apply). Pages up to ``taken.value`` (a shared integer the main
    process raises) are skipped: the main process did them itself."""
    if os.getppid() != parent:  # the main process (pid ``parent``) died while this one started
        os._exit(0)
    gc.disable()  # pages decode to acyclic objects: the cyclic GC only slows it down
    sys.setswitchinterval(_SWITCH_SECONDS)
    with contextlib.suppress(OSError):
        os.nice(_NICE)
    sys.setrecursionlimit(sys.getrecursionlimit() - _STACK_MARGIN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the main process decides
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # keep no pipe of whoever runs ``rsu`` open after the main process
        os.dup2(devnull, fd)

    # A thread writes the messages, so the next page is prepared while the main process still
    # reads this one (a blocking write would keep the worker at most one page ahead).
    ahead: queue.Queue[bytes | None] = queue.Queue(maxsize=_AHEAD)

    def write() -> None:
        while (message := ahead.get()) is not None:
            try:  # returns once the whole message is in the pipe
                out.send_bytes(message)
            except OSError:  # EPIPE: the main process is gone (it held the only read end)
                os._exit(0)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()

    def send(message: _Message) -> None:
        ahead.put(marshal.dumps(message))

    #: (timing partner, race, scope event) -> listing_id of its first listing in this run
    first_listing: dict[tuple[int, int, int | None], str] = {}
    with contextlib.suppress(Exception):
        db = open_db(path, readonly=True)
        journal = Journal(db, migrate=False)
        for batch in journal.read(after_seq, _READ_BATCH):
            for row in batch:
                if os.getppid() != parent:
                    os._exit(0)
                race_id = _prefetchable(row)
                if race_id is None:
                    continue
                ev: Any = row.event
                tp: int = row.timing_partner_id  # type: ignore[assignment]
                scope = row.event_id if row.event_id is not None else ev.event_id
                listing = str(ev.listing_id)
                first = first_listing.setdefault((tp, race_id, scope), listing) == listing
                if row.seq % part[1] != part[0] or row.seq <= taken.value:
                    continue
                try:
                    raw = journal.body(row.body_sha256)
                except (KeyError, JournalError):  # the main process reads it and reports it
                    continue
                rows = page_values(tp, race_id, row.seq, raw, stored=not first)
                if first and rows is None:  # maybe a repeated registration's dropped copy
                    first, rows = False, page_values(tp, race_id, row.seq, raw)
                ident = (row.body_sha256, tp, race_id)
                send((row.seq, ident, None if first and rows is not None else raw, rows))
    send(_END)
    ahead.put(None)
    writer.join()


@contextlib.contextmanager
def _main_module_hidden() -> Iterator[None]:
    """While a worker is spawned, hide the ``__main__`` module from ``multiprocessing``, which
    would otherwise have the worker import it too (``rsu``'s command line: 0.4 s of imports the
    worker never uses, :func:`_work` lives here); ``Process.start`` hands over its preparation
    data before it returns."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


class _Worker:
    """One worker process (the pages whose seq is ``k`` modulo ``n``) and the read end of its
    pipe, with its next message (``head``)."""

    def __init__(self, ctx: Any, path: str, after_seq: int, taken: Any, part: tuple[int, int]):
        self.reader, writer = ctx.Pipe(duplex=False)
        with contextlib.suppress(OSError):  # a page per read, not 64 KiB (Linux; else as is)
            fcntl.fcntl(writer.fileno(), _F_SETPIPE_SZ, _PIPE_BYTES)
        self.proc = ctx.Process(
            target=_work, args=(path, after_seq, writer, os.getpid(), taken, part), daemon=True
        )
        with _main_module_hidden():
            self.proc.start()
        writer.close()  # the worker holds the only write end: its exit is EOF here
        self.head: _Message | None = None
        self.done = False
        self.started = False  # a message arrived: from now on wait for the worker

    def next(self, wait: bool) -> _Message | None:
        """The worker's next message; ``None``: none there yet, before its first one (and not
        ``wait``)."""
        while True:
            try:
                if self.reader.poll(_WORKER_POLL if wait or self.started else 0):
                    # our own worker wrote it: trusted
                    message: _Message = marshal.loads(self.reader.recv_bytes())  # noqa: S302
                    self.started = True
                    return message
            except (EOFError, OSError):  # the worker ended, maybe in the middle of a message
                return _END
            if not self.proc.is_alive():
                return _END
            if not (wait or self.started):
                return None

    def close(self) -> None:
        """Stop the worker and close the pipe."""
        if self.proc.is_alive():
            self.proc.terminate()
        self.proc.join()
        self.reader.close()


class Prefetcher:
    """The main side of the workers: the checked body (:meth:`body`) and the prepared rows
    (:meth:`prepared`) of a journal seq; seqs must be asked in increasing order. Page ``seq``
    is prepared by worker ``seq % workers``.

    Until a worker's first message arrives the main process does not wait for it (unless
    :attr:`wait`): it projects that worker's pages itself and tells the workers to skip them,
    so a worker's start (about 0.2 s: a fresh interpreter importing ``rsu``) costs no time.
    After that it waits. Which pages a worker prepared then depends on timing; the tables
    never do.

    Call :meth:`close` when done (the workers are terminated if still running)."""

    def __init__(self, path: str, after_seq: int, workers: int = 1) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._taken = ctx.Value("q", after_seq, lock=False)
        self._workers: list[_Worker] = []
        try:
            for k in range(workers):
                self._workers.append(_Worker(ctx, path, after_seq, self._taken, (k, workers)))
        except BaseException:  # one refused (OSError): stop those already started
            self.close()
            raise

    #: Wait for the workers' message of every page (tests: then which pages they prepared does
    #: not depend on timing).
    wait = False

    def _entry(self, row: JournalRow) -> _Message | None:
        """The worker's message for this journal row (skipping those of earlier seqs), or
        ``None``; checked to be about the same body, partner and race as ``row``."""
        seq = row.seq
        w = self._workers[seq % len(self._workers)]
        while not w.done:
            if w.head is None:
                w.head = w.next(self.wait)
                if w.head is None:  # not there yet: the main process does this page
                    self._taken.value = seq
                    return None
            got = w.head[0]
            if got is None:
                w.done = True
            elif got > seq:
                return None
            elif got == seq:
                ident = (row.body_sha256, row.timing_partner_id, _prefetchable(row))
                return w.head if w.head[1] == ident else None
            else:
                w.head = None
        return None

    def body(self, row: JournalRow) -> bytes | None:
        """The body of the page ``row``, read and checked against its sha256 by the worker (as
        ``Journal.body`` does), or ``None`` when the worker did not read or did not send it."""
        entry = self._entry(row)
        return None if entry is None else entry[2]

    def prepared(self, row: JournalRow) -> Any:
        """What :func:`page_values` gave for the page ``row`` (a :data:`Prepared`; ``None``: not
        of the typed shape), or :data:`NOT_PREFETCHED`."""
        entry = self._entry(row)
        return NOT_PREFETCHED if entry is None else entry[3]

    def close(self) -> None:
        """Stop the workers and close the pipes."""
        for w in self._workers:
            w.close()


def start(journal: Journal, after_seq: int) -> Prefetcher | None:
    """A :class:`Prefetcher` for the journal's file from ``after_seq``, or ``None`` when there
    is little to project, the journal lives in memory or the system refuses the worker (a
    process, a pipe or shared memory: the main process then projects every page itself)."""
    last = journal.last_seq()
    if last - after_seq < MIN_EVENTS:
        return None
    row = journal.db.conn.execute("PRAGMA database_list").fetchone()
    path = row[2] if row is not None else ""
    if not path:
        return None
    try:
        return Prefetcher(path, after_seq, WORKERS)
    except OSError:  # EAGAIN (a task limit), EMFILE, ENOMEM...: the worker only saves time
        return None
