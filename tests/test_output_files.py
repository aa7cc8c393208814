"""Operator output files (``--summary-file``, the run lock) never replace or truncate a path
that is not a plain file of ours: a device, a FIFO, a symlink (review findings)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from rsu.fetcher.report import write_summary
from rsu.journal import JournalError
from rsu.journal.runlock import RunLock, lock_path


def test_summary_into_a_fifo_writes_into_it_and_keeps_the_fifo(tmp_path):
    fifo = tmp_path / "summary.fifo"  # stands for /dev/null or /dev/stdout (as root: replaced)
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # so opening for writing never waits
    try:
        write_summary(fifo, {"ok": True})
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
        assert json.loads(os.read(reader, 65536)) == {"ok": True}
    finally:
        os.close(reader)


def test_summary_through_a_symlink_replaces_the_target_and_keeps_the_link(tmp_path):
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "summary.json"
    link.symlink_to(real)
    write_summary(link, {"ok": 1})
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert json.loads(real.read_text()) == {"ok": 1}
    assert stat.S_IMODE(real.stat().st_mode) == 0o600


def test_run_lock_never_truncates_what_a_symlinked_lock_file_points_at(tmp_path):
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    db = tmp_path / "rsu.db"
    lock_path(db).symlink_to(victim)
    with pytest.raises(JournalError) as err:
        RunLock.acquire(db, "rsu sync")
    assert victim.read_text() == "keep me"
    assert str(lock_path(db)) in str(err.value)


def test_one_atomic_write_for_summaries_and_exports(tmp_path, monkeypatch):
    """``write_summary`` and ``rsu export -o`` share :func:`rsu.journal.files.write_atomically`:
    a failed write leaves the old file and no temporary file; a good one is mode 0600."""
    import errno

    from rsu.export.writing import write_output
    from rsu.journal import files

    out = tmp_path / "out.csv"
    out.write_bytes(b"yesterday")
    write_output(b"today", out)
    assert (out.read_bytes(), stat.S_IMODE(out.stat().st_mode)) == (b"today", 0o600)

    def disk_full(fd, data):
        os.write(fd, data[:2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files, "_write_all", disk_full)
    for write in (lambda: write_output(b"tomorrow", out), lambda: write_summary(out, {})):
        with pytest.raises(OSError, match="No space left on device"):
            write()
    assert out.read_bytes() == b"today"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]
