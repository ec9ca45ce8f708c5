"""The Agents SDK's `_to_dump_compatible`, with plain JSON values tested by exact type first.

Why: the SDK copies each request's tool list with it at every model call (its
`_materialize_responses_tool_params`: each tool's whole JSON schema), and its walk asks every value
`isinstance(value, Mapping)`, `list | tuple` and `Iterable`: ABC checks that cost most for the
scalars, the bulk of a schema. ~0.8 ms of a provider-path turn's ~16 ms of fixed CPU
(bench/deltas.py `--profile`, `short.prof`).

`dump_compatible` answers a str, int, float, bool or None, and a dict, list or tuple (exactly those
types), as the library does — the value itself; a new dict; a new list — and hands every other
value to the library's own code (whose recursion comes back here, by name). `install` puts it in
place of the library's; tests/unit/test_sdk_json.py pins the equality.
"""

from __future__ import annotations

from typing import Any, Final

import agents.util._json as sdk_json

_library: Final = sdk_json._to_dump_compatible_internal
# The JSON scalars' exact types (also `app.agents.transport`'s request body walk).
JSON_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


def dump_compatible(obj: Any) -> Any:
    """The library's `_to_dump_compatible_internal(obj)`."""
    kind = type(obj)
    if kind in JSON_SCALARS:
        return obj
    if kind is dict:
        return {k: dump_compatible(v) for k, v in obj.items()}
    if kind is list or kind is tuple:
        return [dump_compatible(x) for x in obj]
    return _library(obj)


def install() -> None:
    """`dump_compatible` in place of the library's (its `_to_dump_compatible` looks it up by name)."""
    sdk_json._to_dump_compatible_internal = dump_compatible


__all__ = ["JSON_SCALARS", "dump_compatible", "install"]
