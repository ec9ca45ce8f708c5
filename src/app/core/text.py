"""What text TaskPilot can store: the one rule every edge applies to strings from outside.

PostgreSQL's `text` and `jsonb` cannot hold U+0000, and no UTF-8 database can hold an unpaired
UTF-16 surrogate (U+D800-U+DFFF, which JSON's `\\ud800` escapes and URL percent-escapes can
produce). Such a string used to reach the driver and fail there as a 500 (or, inside a ChatKit
stream, cut it after the thread was created). SQLite would store it, so the rule is applied to
every input on every database: the same request gets the same answer everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from app.core.errors import DomainError

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class UnstorableText(DomainError, ValueError):
    """A string holds a character no database can store. A `ValueError` too, so a msgspec
    `__post_init__` raising it becomes an ordinary validation error of the decoded body."""


def is_storable(value: str) -> bool:
    return _UNSTORABLE.search(value) is None


def unstorable_detail(field: str) -> str:
    return (
        f"{field} contains a NUL character (U+0000) or an unpaired surrogate, which cannot be stored: "
        "remove it and retry."
    )


def first_unstorable(value: object, path: str = "") -> str | None:
    """The dotted path (`params.input.content.0.text`) of the first string in `value` — nested
    dicts (keys too), lists and tuples — that cannot be stored; None when every one can."""
    if isinstance(value, str):
        return None if is_storable(value) else (path or "body")
    if isinstance(value, Mapping):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and not is_storable(key):
                return path or "body"
            found = first_unstorable(item, child)
            if found is not None:
                return found
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = first_unstorable(item, f"{path}.{index}" if path else str(index))
            if found is not None:
                return found
    return None


def require_storable(value: object, field: str) -> None:
    """Raise `UnstorableText` naming the field (or the path inside it) when `value` holds a
    string that cannot be stored."""
    found = first_unstorable(value, field)
    if found is not None:
        raise UnstorableText(unstorable_detail(found), field=found)
