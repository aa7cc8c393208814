"""SIGKILL ``rsu project`` mid-batch at several points; restarts end with the same tables."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from project_helpers import (
    Builder,
    copy_db,
    dump,
    j,
    new_journal,
    participants_body,
    race_obj,
    registration,
    removed_body,
    removed_registration,
)

from rsu.projector import project


def _rsu_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "rsu"
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-c", "import sys; from rsu.cli.main import app; sys.exit(app())"]


def _journal(path: Path) -> None:
    jn = new_journal(path)
    b = Builder(jn)
    b.run_started()
    b.race(j({"race": race_obj(1, event_ids=(11, 12))}), 1)
    for ev in (11, 12):
        pages = [
            participants_body(ev, [registration(r, ev) for r in range(k, k + 250)])
            for k in range(1, 10_001, 250)
        ]
        b.listing(1, ev, pages)
    b.listing(
        1,
        11,
        [removed_body(11, [removed_registration(5, 11, "deferred", None, 1)])],
        endpoint="removed_participants",
    )
    b.listing(1, 11, [participants_body(11, [registration(r, 11, 1) for r in range(1, 200)])])
    b.fetch_failed("race", 2, code=201, msg="Race not found.")
    b.run_finished()
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


def test_sigkill_mid_batch_then_restart(tmp_path):
    path = tmp_path / "rsu.db"
    _journal(path)
    reference = copy_db(new_journal(path).db.conn)
    project(reference.db)
    expected = dump(reference.db.conn)
    last = reference.last_seq()

    rnd = random.Random(20240101)
    cmd = [*_rsu_cmd(), "project", "--db", str(path), "--batch-size", "1"]
    env = {**os.environ, "TZ": "Asia/Kolkata"}
    kills, midway = 0, 0
    for _ in range(8):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rnd.uniform(0.4, 1.6))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        cp = _checkpoint(path)
        midway += 0 < cp < last
        if cp == last:
            break
    assert kills >= 2, "the projector finished before it could be killed"
    assert midway >= 1
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert done.returncode in (0, 1), done.stderr
    final = new_journal(path)
    assert dump(final.db.conn) == expected
    assert _checkpoint(path) == last
