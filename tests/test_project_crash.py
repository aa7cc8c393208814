"""SIGKILL ``rsu project`` mid-batch at several points; restarts end with the same tables."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from crash_helpers import killed_at
from project_helpers import (
    Builder,
    big_listing_run,
    copy_db,
    dump,
    new_journal,
)
from test_project_indexes import ALL, _indexes

from rsu.projector import project


def _journal(path: Path) -> None:
    jn = new_journal(path)
    big_listing_run(Builder(jn), registrations=10_000, per_page=250, changed=199)
    jn.close()


def _checkpoint(path: Path) -> int:
    jn = new_journal(path)
    try:
        row = jn.db.conn.execute(
            "SELECT value FROM projector_state WHERE name = 'checkpoint'"
        ).fetchone()
    except Exception:  # tables not created yet
        row = None
    jn.close()
    return 0 if row is None else row[0]


#: (batch size, apply calls before the kill): kills inside batches of 1 and of 37 events, on the
#: first event of a run, deep into a run and on its last events.
KILLS = [(1, 1), (1, 5), (37, 40), (37, 1), (1, 13), (37, 20), (200, 25), (1, 30)]


def test_sigkill_mid_batch_then_restart(tmp_path):
    path = tmp_path / "rsu.db"
    _journal(path)
    reference = copy_db(new_journal(path).db.conn)
    project(reference.db)
    expected = dump(reference.db.conn)
    last = reference.last_seq()

    env = {**os.environ, "TZ": "Asia/Kolkata"}
    checkpoints = []
    for batch_size, n in KILLS:
        before = _checkpoint(path)
        args = ["project", "--db", str(path), "--batch-size", str(batch_size)]
        proc = subprocess.run(
            [*killed_at("apply", n), *args], env=env, capture_output=True, text=True
        )
        assert proc.returncode == -signal.SIGKILL, (before, batch_size, n, proc.stderr)
        # The kill landed on event before + n, in the middle of a batch that started at a multiple
        # of batch_size: everything before that batch is committed, nothing of it is.
        cp = _checkpoint(path)
        assert cp == before + (n - 1) // batch_size * batch_size, (before, batch_size, n)
        checkpoints.append(cp)
    assert 0 < checkpoints[-1] < last, "every kill must land mid-way through the journal"
    assert checkpoints == sorted(checkpoints)
    done = subprocess.run(
        [*killed_at("apply", 10**9), "project", "--db", str(path)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode in (0, 1), done.stderr
    final = new_journal(path)
    assert dump(final.db.conn) == expected
    assert _checkpoint(path) == last
    # the first projection (killed) left the readers' look-up indexes out; the last made them
    assert _indexes(final.db.conn) == _indexes(reference.db.conn) == ALL
