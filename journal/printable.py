"""Strings from the network made safe to show an operator: :func:`printable`.

A race name, an error message or any other string a server sent can hold terminal control
sequences (``ESC [2J`` clears the screen, ``ESC ]0;...BEL`` retitles the window, OSC 8 forges a
link), bidi overrides that reorder what is read, or line breaks that forge extra log lines. Every
place that prints such a string (``rsu status``, ``rsu history``, fetch failures and warnings, the
progress notes, the log file, ``rsu journal log``) passes it through :func:`printable` first.
Output meant for machines (``--json``, ``journal show --body``) keeps the exact value instead,
with the same characters written as JSON ``\\uXXXX`` escapes (:func:`json_safe`).
"""

from __future__ import annotations

import re

#: What replaces each control character: visible, and never part of a sequence.
REPLACEMENT = "\ufffd"

#: The characters :func:`printable` replaces (C0 except tab/newline/CR, DEL, C1 -- 0x9b is a
#: one-byte CSI --, Unicode line separators, bidi embeddings, overrides and isolates).
CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_BREAKS = re.compile("[\t\n\r]")


def printable(value: object, *, keep_newlines: bool = False) -> str:
    """``str(value)`` with every control character (C0, DEL, C1 including ESC and CSI, Unicode
    line separators and bidi controls) replaced by U+FFFD, and tabs, carriage returns and
    newlines by a space (newlines kept with ``keep_newlines``, for multi-line log records).
    ``None`` becomes ``""``."""
    if value is None:
        return ""
    text = CONTROLS.sub(REPLACEMENT, str(value))
    if keep_newlines:
        return re.sub("[\t\r]", " ", text)
    return _BREAKS.sub(" ", text)


def json_safe(document: str) -> str:
    """A JSON text (e.g. from ``json.dumps(..., ensure_ascii=False)``) with every control
    character that JSON leaves raw (DEL, C1, Unicode line separators, bidi controls) written as
    a ``\\uXXXX`` escape: the same JSON value, nothing a terminal would act on."""
    return CONTROLS.sub(lambda m: f"\\u{ord(m.group()):04x}", document)
