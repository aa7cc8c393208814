"""XML output: RunSignUp answers XML when ``format=json`` is not sent (``format`` defaults to xml).

The element layout follows the JSON structure: object keys become child elements, list items
take the singular of the list's key (``races`` -> ``race``), an item that is a one-key object
(``{"race": {...}}``) is emitted as that key's element, ``null`` becomes an empty element and
``"T"``/``"F"`` flags stay as text.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape


def _singular(name: str) -> str:
    if name.endswith("ies"):
        return name[:-3] + "y"
    if name.endswith("s") and len(name) > 1:
        return name[:-1]
    return "item"


def _emit(name: str, value: Any, out: list[str]) -> None:
    if isinstance(value, dict):
        out.append(f"<{name}>")
        for key, child in value.items():
            _emit(str(key), child, out)
        out.append(f"</{name}>")
    elif isinstance(value, list):
        out.append(f"<{name}>")
        for item in value:
            if isinstance(item, dict) and len(item) == 1:
                ((key, child),) = item.items()
                _emit(str(key), child, out)
            else:
                _emit(_singular(name), item, out)
        out.append(f"</{name}>")
    elif value is None:
        out.append(f"<{name}/>")
    elif isinstance(value, bool):
        out.append(f"<{name}>{'T' if value else 'F'}</{name}>")
    else:
        out.append(f"<{name}>{escape(str(value))}</{name}>")


def to_xml(obj: Any, root: str = "response") -> bytes:
    """Serialise a JSON-like object as UTF-8 XML bytes.

    A dict with one key (``{"races": [...]}``, ``{"error": {...}}``) uses that key as the root
    element; anything else is wrapped in ``<root>``.
    """
    out = ['<?xml version="1.0" encoding="utf-8"?>']
    if isinstance(obj, dict) and len(obj) == 1:
        ((key, value),) = obj.items()
        _emit(str(key), value, out)
    else:
        _emit(root, obj, out)
    return "".join(out).encode()
