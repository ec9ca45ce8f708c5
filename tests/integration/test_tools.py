"""The seven task tools, driven through the Agents SDK by a scripted model, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from agents import Agent, RunConfig, Runner
from agents.items import ModelResponse, ToolCallOutputItem
from agents.models.interface import Model
from agents.tool import FunctionTool
from agents.usage import Usage
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText
from pydantic import BaseModel, ConfigDict

from app.agents.tools import TASK_TOOLS, AgentContext, ToolContext
from app.contracts import TaskCreate
from app.services.tasks import TaskQuery, TaskService

TODAY = dt.date(2025, 3, 10)


def clock() -> dt.date:
    return TODAY


Call = tuple[str, dict[str, Any]]


class ScriptedModel(Model):
    """Returns predetermined tool calls, one batch per model turn, then a final message."""

    def __init__(self, *turns: list[Call]) -> None:
        self.turns = list(turns)
        self.calls = 0

    async def get_response(
        self, system_instructions, input, model_settings, tools, output_schema, handoffs, tracing, **_
    ):  # type: ignore[no-untyped-def, override]
        self.calls += 1
        if not self.turns:
            message = ResponseOutputMessage(
                id=f"msg_{self.calls}",
                type="message",
                role="assistant",
                status="completed",
                content=[ResponseOutputText(type="output_text", text="done", annotations=[])],
            )
            return ModelResponse(output=[message], usage=Usage(), response_id=None)
        schemas = {t.name: t.params_json_schema for t in tools if isinstance(t, FunctionTool)}
        output = []
        for index, (name, arguments) in enumerate(self.turns.pop(0)):
            # A strict schema wants every property; a real model sends null for the ones it skips.
            full = {prop: arguments.get(prop) for prop in schemas[name]["properties"]}
            assert set(arguments) <= set(full), f"{name} has no parameter among {set(arguments) - set(full)}"
            output.append(
                ResponseFunctionToolCall(
                    id=f"fc_{self.calls}_{index}",
                    call_id=f"call_{self.calls}_{index}",
                    type="function_call",
                    name=name,
                    arguments=json.dumps(full),
                    status="completed",
                )
            )
        return ModelResponse(output=output, usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:  # pragma: no cover
        raise NotImplementedError


async def run(context: Any, *turns: list[Call]) -> tuple[list[dict[str, Any]], Any]:
    """Run the scripted turns; return each tool's parsed JSON result and the run result."""
    agent = Agent[Any](name="tester", instructions="test", tools=list(TASK_TOOLS), model=ScriptedModel(*turns))
    result = await Runner.run(agent, "go", context=context, run_config=RunConfig(tracing_disabled=True))
    assert result.final_output == "done"
    outputs = [item.output for item in result.new_items if isinstance(item, ToolCallOutputItem)]
    assert all(isinstance(output, str) for output in outputs)
    return [json.loads(output) for output in outputs], result


def context_for(session_maker: Any, user: str = "alice") -> AgentContext:
    return AgentContext(user_id=user, session_maker=session_maker, clock=clock)


async def stored(session_maker: Any, user: str = "alice", **query: Any) -> list[Any]:
    async with TaskService.begin(session_maker, user, clock=clock) as service:
        return (await service.list(TaskQuery(**query))).items


def test_tools_have_strict_schemas_and_no_user_parameter() -> None:
    assert [t.name for t in TASK_TOOLS] == [
        "add_task",
        "list_tasks",
        "get_task",
        "update_task",
        "complete_task",
        "delete_task",
        "task_summary",
    ]
    for tool in TASK_TOOLS:
        schema = tool.params_json_schema
        assert tool.strict_json_schema, tool.name
        assert schema["additionalProperties"] is False
        assert set(schema["required"]) == set(schema["properties"]), tool.name
        assert not {"user", "user_id", "owner"} & set(schema["properties"]), tool.name
        assert tool.description


async def test_add_list_and_report_changed_ids(session_maker) -> None:
    context = context_for(session_maker)
    results, _ = await run(
        context,
        # Calls in one turn run concurrently; separate turns keep the numbering predictable.
        [("add_task", {"title": "Buy milk", "due_date": "tomorrow", "tags": ["Home"], "priority": "low"})],
        [("add_task", {"title": "Write report", "due_date": "2025-03-01", "description": "Q1"})],
        [("list_tasks", {"status": "open"}), ("list_tasks", {"overdue": True})],
    )
    milk, report, listed, overdue = results
    assert milk["ok"] is True
    assert milk["task"] == {
        "id": milk["task"]["id"],
        "number": 1,
        "title": "Buy milk",
        "priority": "low",
        "completed": False,
        "due_date": "2025-03-11",
        "tags": ["home"],
    }
    assert report["task"]["overdue"] is True
    assert report["task"]["description"] == "Q1"
    assert milk["changed_ids"] == [milk["task"]["id"]]
    assert context.changed_task_ids == {milk["task"]["id"], report["task"]["id"]}
    assert [t["number"] for t in listed["tasks"]] == [1, 2]
    assert listed["total"] == 2
    assert "next_cursor" not in listed
    assert "changed_ids" not in listed
    assert [t["number"] for t in overdue["tasks"]] == [2]

    rows = await stored(session_maker)
    assert [(t.number, t.title, t.due_date, t.tags) for t in rows] == [
        (1, "Buy milk", dt.date(2025, 3, 11), ["home"]),
        (2, "Write report", dt.date(2025, 3, 1), []),
    ]


async def test_parallel_adds_in_one_turn_get_distinct_numbers(session_maker) -> None:
    context = context_for(session_maker)
    results, _ = await run(context, [("add_task", {"title": f"task {i}"}) for i in range(5)])
    assert all(result["ok"] for result in results)
    assert sorted(result["task"]["number"] for result in results) == [1, 2, 3, 4, 5]
    assert len(context.changed_task_ids) == 5
    assert sorted(t.title for t in await stored(session_maker)) == [f"task {i}" for i in range(5)]


async def test_update_complete_reopen_and_delete_by_number_or_id(session_maker) -> None:
    async with TaskService.begin(session_maker, "alice", clock=clock) as service:
        plan = await service.create(TaskCreate(title="Plan trip", due_date=dt.date(2025, 4, 1), tags=["travel"]))
        await service.create(TaskCreate(title="Read book"))
    context = context_for(session_maker)
    results, _ = await run(
        context,
        [
            (
                "update_task",
                {"task": "1", "title": "Plan Lisbon trip", "priority": "high", "clear": ["due_date"]},
            )
        ],
        [("complete_task", {"task": "#2"})],
        [("update_task", {"task": "2", "completed": False, "tags": ["Fun", "fun"]})],
        [("get_task", {"task": str(plan.id)})],
        [("delete_task", {"task": str(plan.id)})],
        [("task_summary", {})],
    )
    updated, completed, reopened, fetched, deleted, summary = results
    assert updated["task"]["title"] == "Plan Lisbon trip"
    assert updated["task"]["priority"] == "high"
    assert "due_date" not in updated["task"]
    assert updated["task"]["tags"] == ["travel"]  # not given: unchanged
    assert completed["task"]["completed"] is True
    assert completed["task"]["completed_at"]
    assert reopened["task"]["completed"] is False
    assert "completed_at" not in reopened["task"]
    assert reopened["task"]["tags"] == ["fun"]
    assert fetched == {"ok": True, "task": updated["task"]}
    assert deleted["deleted"]["title"] == "Plan Lisbon trip"
    assert deleted["changed_ids"] == [str(plan.id)]
    assert summary["summary"]["total"] == 1
    assert summary["summary"]["open"] == 1
    assert summary["summary"]["today"] == "2025-03-10"

    remaining = await stored(session_maker)
    assert [(t.number, t.title, t.completed, t.tags) for t in remaining] == [(2, "Read book", False, ["fun"])]
    assert len(context.changed_task_ids) == 2


async def test_domain_errors_are_results_the_run_survives(session_maker) -> None:
    context = context_for(session_maker)
    results, _ = await run(
        context,
        [
            ("get_task", {"task": "42"}),
            ("complete_task", {"task": "the milk one"}),
            ("add_task", {"title": "Party", "due_date": "next blursday"}),
            ("add_task", {"title": "   "}),
            ("list_tasks", {"due_before": "soonish"}),
            ("list_tasks", {"cursor": "nonsense"}),
        ],
        [("add_task", {"title": "Party", "due_date": "2025-12-31"})],
    )
    missing, unparsable, bad_date, blank, bad_bound, bad_cursor, recovered = results
    assert missing["ok"] is False
    assert "no task #42" in missing["error"]
    assert unparsable == {"ok": False, "error": unparsable["error"], "field": "task"}
    assert bad_date["ok"] is False
    assert bad_date["field"] == "due_date"
    assert "YYYY-MM-DD" in bad_date["error"]
    assert blank["field"] == "title"
    assert bad_bound["field"] == "due_before"
    assert bad_cursor["field"] == "cursor"
    assert recovered["ok"] is True
    assert [t.title for t in await stored(session_maker)] == ["Party"]
    assert context.changed_task_ids == {recovered["task"]["id"]}


async def test_list_pages_with_a_cursor(session_maker) -> None:
    async with TaskService.begin(session_maker, "alice", clock=clock) as service:
        for i in range(5):
            await service.create(TaskCreate(title=f"task {i + 1}"))
    first, _ = await run(context_for(session_maker), [("list_tasks", {"limit": 3})])
    assert [t["number"] for t in first[0]["tasks"]] == [1, 2, 3]
    assert first[0]["total"] == 5
    second, _ = await run(context_for(session_maker), [("list_tasks", {"limit": 3, "cursor": first[0]["next_cursor"]})])
    assert [t["number"] for t in second[0]["tasks"]] == [4, 5]
    assert "next_cursor" not in second[0]


async def test_delete_by_title_words_deletes_one_match_and_returns_several_without_deleting(session_maker) -> None:
    async with TaskService.begin(session_maker, "alice", clock=clock) as service:
        milk = await service.create(TaskCreate(title="Buy milk"))
        goat = await service.create(TaskCreate(title="Milk the goat"))
        await service.create(TaskCreate(title="Call mom"))
    async with TaskService.begin(session_maker, "bob", clock=clock) as service:
        await service.create(TaskCreate(title="Bob's mom party"))
    context = context_for(session_maker)
    results, _ = await run(
        context,
        [("delete_task", {"task": "milk"})],
        [("delete_task", {"task": "unicorn"})],
        [("delete_task", {"task": "  "})],
        [("delete_task", {"task": "MOM"})],  # one of Alice's matches; Bob's "mom" is not hers
    )
    several, none, empty, one = results
    assert several["ok"] is False and several["field"] == "task"
    assert [t["id"] for t in several["matches"]] == [str(milk.id), str(goat.id)]
    assert "nothing was deleted" in several["error"] and "#1 Buy milk, #2 Milk the goat" in several["error"]
    assert "changed_ids" not in several
    assert none == {
        "ok": False,
        "error": "No task matches “unicorn”: list the tasks to find its number.",
        "field": "task",
    }
    assert empty["ok"] is False and "matches" not in empty
    assert one["deleted"]["title"] == "Call mom" and one["changed_ids"] == [one["deleted"]["id"]]
    assert sorted(t.title for t in await stored(session_maker, status="all")) == ["Buy milk", "Milk the goat"]
    assert [t.title for t in await stored(session_maker, "bob")] == ["Bob's mom party"]


async def test_tools_act_only_for_the_context_user(session_maker) -> None:
    async with TaskService.begin(session_maker, "alice", clock=clock) as service:
        secret = await service.create(TaskCreate(title="Alice's secret"))
    bob = context_for(session_maker, "bob")
    results, _ = await run(
        bob,
        [
            ("list_tasks", {"status": "all"}),
            ("get_task", {"task": str(secret.id)}),
            ("get_task", {"task": "1"}),
            ("update_task", {"task": str(secret.id), "title": "hijacked"}),
            ("complete_task", {"task": str(secret.id)}),
            ("delete_task", {"task": str(secret.id)}),
            ("task_summary", {}),
        ],
    )
    listed, *attempts, summary = results
    assert listed["tasks"] == []
    assert listed["total"] == 0
    assert all(result["ok"] is False for result in attempts)
    assert all("secret" not in result["error"] for result in attempts)
    assert summary["summary"]["total"] == 0
    assert bob.changed_task_ids == set()
    alice_tasks = await stored(session_maker)
    assert [(t.title, t.completed) for t in alice_tasks] == [("Alice's secret", False)]


@dataclass
class ChatRequestContext:
    """Stands in for the ChatKit server's request context, which carries the user and sessions."""

    user_id: str
    session_maker: Any


class TurnLike(BaseModel, ToolContext):
    """Shaped like chatkit's pydantic AgentContext mixed with ToolContext, as the ChatKit layer does."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    request_context: Any
    changed_task_ids: set[str] = set()


async def test_a_pydantic_context_with_the_user_on_its_request_context(session_maker) -> None:
    turn = TurnLike(request_context=ChatRequestContext(user_id="carol", session_maker=session_maker))
    results, _ = await run(turn, [("add_task", {"title": "From chat"})])
    assert results[0]["ok"] is True
    assert turn.changed_task_ids == {results[0]["task"]["id"]}
    assert [t.title for t in await stored(session_maker, "carol")] == ["From chat"]
    assert await stored(session_maker, "alice") == []


async def test_a_context_without_a_user_fails_loudly_not_silently(session_maker) -> None:
    class Anonymous(BaseModel, ToolContext):
        changed_task_ids: set[str] = set()

    with pytest.raises(LookupError):
        Anonymous().task_scope()
