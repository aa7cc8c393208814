"""A race whose detail keeps answering RunSignUp error 7 (Permission Denied).

The first run whose ``GET /Rest/race/{race_id}`` answers error 7 fails (exit 1): the partner just
lost access to a race, which an operator must hear about. A later run that gets the same answer
again, with no successful race detail in between, only warns: the race is known lost (``rsu
status``: access lost, ``runsignup_races.access_lost_at``), and failing every run until someone
cleans up the partner's RunSignUp account would hide every new failure behind an old one. The
projector applies the same rule to the journaled ``fetch_failed`` (a ``warning`` row in
``sync_history``), so ``rsu sync`` exits 0 on such a run.

Read from the journal only (the fetcher never reads the projection).
"""

from __future__ import annotations

from rsu.journal import FetchFailed, Journal, ResponseReceived

#: RunSignUp's error code for Permission Denied.
PERMISSION_DENIED = 7
_PAGE = 200
#: Journal rows read at most for one decision; beyond, the denial counts as new (an error).
_MAX_ROWS = 5000


def denied_since(journal: Journal, timing_partner_id: int, race_id: int, run_id: str) -> str | None:
    """The ``recorded_at`` (UTC) of the newest ``fetch_failed`` of the race detail
    (``GET /Rest/race/{race_id}``) of ``timing_partner_id`` with error 7 in a run other than
    ``run_id``, when no run read the race detail successfully after it; ``None`` otherwise (this
    run's denial is then new). A run read the detail when it journaled a race-detail
    ``response_received`` and no race-detail ``fetch_failed``.

    Raises :class:`rsu.journal.JournalError` if the journal cannot be read."""
    failed_runs: set[str | None] = {run_id}
    denied: tuple[int, str] | None = None
    for row in journal.find(
        kind="fetch_failed",
        timing_partner_id=timing_partner_id,
        race_id=race_id,
        newest_first=True,
        limit=_MAX_ROWS,
    ):
        ev = row.event
        if not isinstance(ev, FetchFailed) or ev.endpoint != "race":
            continue
        if ev.error_code == PERMISSION_DENIED and row.run_id != run_id:
            denied = (row.seq, row.recorded_at)
            failed_runs.add(row.run_id)
            break
        failed_runs.add(row.run_id)  # a later failure of the detail (a 5xx): no success
    if denied is None:
        return None
    after, read = denied[0], 0
    while read < _MAX_ROWS:
        page = journal.find(
            kind="response_received",
            timing_partner_id=timing_partner_id,
            race_id=race_id,
            after_seq=after,
            limit=_PAGE,
        )
        for row in page:
            ev = row.event
            read_ok = isinstance(ev, ResponseReceived) and ev.endpoint == "race"
            if read_ok and row.run_id not in failed_runs:
                return None  # read successfully since
        if len(page) < _PAGE:
            return denied[1]
        read += len(page)
        after = page[-1].seq
    return None
