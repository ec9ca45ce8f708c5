"""`app.agents.sdk_json`: the Agents SDK's `_to_dump_compatible`, plain JSON tested by exact type
first. Each test expects what the library's own function gives: equal values, the same types, and
fresh containers (the SDK relies on the copy: the tools' schemas are shared)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import agents.util._json as library_json
import pytest
from agents import function_tool
from agents.models.openai_responses import Converter

from app.agents import sdk_json


def _library(obj: Any) -> Any:
    """The library's function with its recursion kept in the library (not through ours)."""
    saved = library_json._to_dump_compatible_internal
    library_json._to_dump_compatible_internal = sdk_json._library
    try:
        return sdk_json._library(obj)
    finally:
        library_json._to_dump_compatible_internal = saved


def _shape(value: Any) -> Any:
    """`value` with each container's type kept, to compare types as well as values."""
    if isinstance(value, dict):
        return (type(value), {k: _shape(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return (type(value), [_shape(v) for v in value])
    return (type(value), value)


@function_tool
def add_task(title: str, due: str | None = None, tags: list[str] | None = None) -> str:
    """Add a task."""
    return title


VALUES = [
    "text",
    3,
    2.5,
    True,
    None,
    b"raw",
    {"a": [1, (2, 3)], "b": {"c": None}},
    OrderedDict(a=1),
    ({"x": "y"},),
    {"set": frozenset({1})},
    (v for v in (1, 2)),
]


def test_installed_in_place_of_the_library_function() -> None:
    import app.agents.assistant  # noqa: F401  (installs it)

    assert library_json._to_dump_compatible_internal is sdk_json.dump_compatible


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_same_result_as_the_library(value: Any) -> None:
    if type(value).__name__ == "generator":
        assert sdk_json.dump_compatible(x for x in (1, 2)) == _library(x for x in (1, 2)) == [1, 2]
        return
    assert _shape(sdk_json.dump_compatible(value)) == _shape(_library(value))


def test_tool_params_are_copied_as_the_library_copies_them() -> None:
    tools = Converter.convert_tools([add_task], [], model=None).tools
    ours, theirs = sdk_json.dump_compatible(list(tools)), _library(list(tools))
    assert _shape(ours) == _shape(theirs)
    assert ours[0]["parameters"] is not add_task.params_json_schema  # a copy, as the library makes
