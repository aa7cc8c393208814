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

#: The characters :func:`printable` replaces: C0 except tab/newline/CR, DEL, C1 (0x9b is a
#: one-byte CSI), the Unicode line and paragraph separators, every bidi control (the marks ALM
#: U+061C, LRM U+200E, RLM U+200F, the embeddings and overrides U+202A-U+202E, the isolates
#: U+2066-U+2069), and the invisible format characters (Unicode category Cf) that can hide or
#: smuggle text: soft hyphen U+00AD, Mongolian vowel separator U+180E, zero width space U+200B,
#: word joiner and invisible operators U+2060-U+2064, the deprecated U+206A-U+206F, BOM U+FEFF,
#: interlinear annotations U+FFF9-U+FFFB and the tags U+E0001, U+E0020-U+E007F (so a
#: subdivision flag such as Scotland's shows as the black flag and replacements).
#: Category Cf kept (:data:`KEPT_FORMAT`): the joiners ZWNJ U+200C and ZWJ U+200D, which
#: Persian, Indic scripts and emoji sequences need, and the script-bound format characters
#: that render visibly or only inside their script (Arabic, Syriac, Kaithi number signs,
#: Egyptian hieroglyph, shorthand and musical format controls).
CONTROLS = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\xad\u061c\u180e\u200b\u200e\u200f\u2028\u2029"
    "\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000e0001\U000e0020-\U000e007f]"
)
#: The code points of Unicode category Cf (format) that :data:`CONTROLS` leaves as they are,
#: as inclusive ranges; every other Cf character is replaced.
KEPT_FORMAT = (
    (0x0600, 0x0605),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x200C, 0x200D),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
)
_BREAKS = re.compile("[\t\n\r]")


def printable(value: object, *, keep_newlines: bool = False) -> str:
    """``str(value)`` with every control character (:data:`CONTROLS`: C0, DEL, C1 including ESC
    and CSI, Unicode line separators, bidi controls and invisible format characters) replaced
    by U+FFFD, and tabs, carriage returns and newlines by a space (newlines kept with
    ``keep_newlines``, for multi-line log records).
    ``None`` becomes ``""``."""
    if value is None:
        return ""
    text = CONTROLS.sub(REPLACEMENT, str(value))
    if keep_newlines:
        return re.sub("[\t\r]", " ", text)
    return _BREAKS.sub(" ", text)


def json_safe(document: str) -> str:
    """A JSON text (e.g. from ``json.dumps(..., ensure_ascii=False)``) with every control
    character that JSON leaves raw (:data:`CONTROLS`: DEL, C1, Unicode line separators, bidi
    controls, invisible format characters) written as a ``\\uXXXX`` escape (a surrogate pair
    ``\\udb40\\udc01`` above U+FFFF, as JSON spells those): the same JSON value, nothing a
    terminal would act on."""
    return CONTROLS.sub(_escape, document)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
