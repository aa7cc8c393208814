"""Operator output files written whole or not at all: :func:`write_atomically`.

An export (``rsu export -o``) and a run summary (``--summary-file``) are read by other programs,
often while ``rsu`` writes the next one (a timing laptop polling the start list, a monitor reading
the summary). Each is written into a new private temporary file beside its path and renamed over
it, so a reader sees the old file or the new one, never half of one, and a full disk leaves the
old file as it was.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600: into a new temporary file in ``path``'s folder
    (``.<name>.<random>``, mode 0600), then renamed over ``path``.

    A ``path`` that exists and is no regular file (``/dev/null``, ``/dev/stdout``, a FIFO) is
    written into, never replaced: a rename would replace the device node itself (as root,
    ``/dev/null`` became a file). A symlink's target is replaced and the link kept. Raises
    ``OSError`` when the file cannot be written (a full disk, a read-only or missing folder);
    then ``path`` is as it was and no temporary file is left.
    """
    if path.exists() and not path.resolve().is_file():
        with open(path, "wb") as fh:
            fh.write(data)
        return
    path = path.resolve() if path.is_symlink() else path  # keep the link, replace its target
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to the open file ``fd``. Raises ``OSError`` (``ENOSPC``)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
