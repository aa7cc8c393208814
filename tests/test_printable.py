"""journal/printable.py: which characters an operator never sees raw. Every bidi control
(the implicit marks ALM U+061C, LRM U+200E, RLM U+200F included) and every invisible format
character of Unicode category Cf that can hide text is replaced (``printable``) or escaped
(``json_safe``); the joiners and script-bound format characters are kept, and every other Cf
character is covered."""

from __future__ import annotations

import json
import sys
import unicodedata

import pytest

from rsu.journal.printable import CONTROLS, KEPT_FORMAT, json_safe, printable


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("a\u061cb\u200ec\u200fd", "a\ufffdb\ufffdc\ufffdd"),
        ("Ja\u200bne\ufeff", "Ja\ufffdne\ufffd"),
        ("Ja\xadne", "Ja\ufffdne"),
        ("x\u2060\u2064\u206a\u206f\ufff9y", "x\ufffd\ufffd\ufffd\ufffd\ufffdy"),
        ("run\U000e0001\U000e0041\U000e007f", "run\ufffd\ufffd\ufffd"),
        # kept: ZWNJ in Persian, ZWJ in an emoji sequence, an Arabic number sign
        ("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", None),
        ("\U0001f469\u200d\U0001f4bb", None),
        ("\u0600\u0661\u0662", None),
    ],
)
def test_printable_replaces_bidi_marks_and_invisible_format_characters(
    text: str, shown: str | None
) -> None:
    assert printable(text) == (text if shown is None else shown)


def test_json_safe_escapes_them_and_keeps_the_value() -> None:
    text = "a\u061cb\u200ec\u200fd\u200b\U000e0041\u200d"
    document = json_safe(json.dumps({"name": text}, ensure_ascii=False))
    assert document == ('{"name": "a\\u061cb\\u200ec\\u200fd\\u200b\\udb40\\udc41\u200d"}')
    assert json.loads(document) == {"name": text}


def test_every_format_character_is_replaced_or_deliberately_kept() -> None:
    kept = [
        code
        for code in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code)) == "Cf" and not CONTROLS.fullmatch(chr(code))
    ]
    outside = [
        f"U+{code:04X}"
        for code in kept
        if not any(low <= code <= high for low, high in KEPT_FORMAT)
    ]
    assert outside == []
    # and nothing kept is replaced after all
    assert [
        f"U+{code:04X}"
        for low, high in KEPT_FORMAT
        for code in range(low, high + 1)
        if CONTROLS.fullmatch(chr(code))
    ] == []
