"""Task length limits live in one table (`app.contracts.TASK_LIMITS`): the REST contracts, the
service's rules, the tools' schemas and the words the model reads all say the same numbers."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from app.agents.tools import TASK_TOOLS
from app.contracts import TASK_LIMITS, TaskCreate


def _tool(name: str) -> dict[str, Any]:
    tool = next(tool for tool in TASK_TOOLS if tool.name == name)
    properties: dict[str, Any] = tool.params_json_schema["properties"]
    return properties


def _numbers(text: str) -> set[int]:
    return {int(n.replace(",", "")) for n in re.findall(r"\d[\d,]*", text)}


def test_the_rest_contract_is_the_table() -> None:
    schema = msgspec.json.schema(TaskCreate)["$defs"]["TaskCreate"]["properties"]
    assert schema["title"]["maxLength"] == TASK_LIMITS.title
    assert schema["description"]["anyOf"][0]["maxLength"] == TASK_LIMITS.description
    assert schema["tags"]["maxItems"] == TASK_LIMITS.tags
    assert schema["tags"]["items"]["maxLength"] == TASK_LIMITS.tag


def test_the_tools_tell_the_model_the_tables_numbers() -> None:
    """Tool descriptions are docstrings (the one declaration both adapters read): when the table
    changes, this names the words to change with it."""
    add = _tool("add_task")
    assert _numbers(add["title"]["description"]) == {1, TASK_LIMITS.title}, add["title"]
    assert _numbers(add["description"]["description"]) == {TASK_LIMITS.description}, add["description"]
    assert _numbers(add["tags"]["description"]) == {TASK_LIMITS.tags, 1, TASK_LIMITS.tag}, add["tags"]
    update = _tool("update_task")
    assert _numbers(update["tags"]["description"]) == {TASK_LIMITS.tags, 1, TASK_LIMITS.tag}, update["tags"]
