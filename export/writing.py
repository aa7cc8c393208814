"""Writing an export: rows to the bytes of the target's file, and the file to disk or stdout.

Delimited files are written with the :mod:`csv` module (quoting only where needed); NDJSON is one
compact JSON object per line, every control character written as a ``\\uXXXX`` escape (the
exact value, nothing a terminal acts on). ``None`` is written as an empty field (``null`` in
NDJSON).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rsu.journal.files import write_atomically
from rsu.journal.printable import json_safe

from .profiles import Profile


def encode(profile: Profile, headers: Sequence[str], rows: Iterable[dict[str, Any]]) -> bytes:
    """The file's bytes: ``rows`` (``header -> value`` dicts) in ``profile``'s layout and
    encoding, with ``headers`` as the header row (delimited) or key order (NDJSON)."""
    buf = io.StringIO(newline="")
    if profile.kind == "ndjson":
        for row in rows:
            obj = {h: row.get(h) for h in headers}
            text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
            # json.dumps escapes only C0: DEL, C1, line separators, bidi and format controls too
            buf.write(json_safe(text) + "\n")
    else:
        writer = csv.writer(buf, delimiter=profile.delimiter, lineterminator=profile.newline)
        writer.writerow(headers)
        for row in rows:
            writer.writerow(["" if row.get(h) is None else row.get(h) for h in headers])
    return profile.bom + buf.getvalue().encode(profile.encoding)


def output_problem(path: Path | None) -> str | None:
    """Why ``path`` cannot be an export's output file (a directory, or a folder that does not
    exist), as a message naming it; ``None`` when it can (also stdout, ``None``, and a device or
    FIFO, which :func:`write_output` writes into)."""
    if path is None:
        return None
    if path.is_dir():
        return f"--output {path} is a directory; give a file name"
    if not path.parent.is_dir():
        return f"--output {path}: folder {path.parent} does not exist"
    return None


def write_output(data: bytes, path: Path | None) -> None:
    """Write ``data`` to ``path`` (mode 0600) atomically, or to standard output when ``path`` is
    ``None`` (see :func:`rsu.journal.files.write_atomically`: a device or FIFO is written into,
    never replaced; a symlink's target is replaced, not the link). Raises ``OSError`` when the
    file cannot be written."""
    if path is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    write_atomically(path, data)
