"""Reasoning summaries over real HTTP: REASONING_EFFORT / REASONING_SUMMARY reach the Responses
request, and the summary the model streams is ChatKit's reasoning workflow (its `ThoughtTask`s),
streamed and stored (through both model transports); unset, the request carries no `reasoning` at all."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.agents.offline.planner import Reply, ToolCall
from tests.support.auth import server_token
from tests.support.chatkit_client import ChatKitClient
from tests.support.fake_model_server import FakeModelServer, Reasoned, turn_requests

THOUGHT = "The user wants a task added; add_task with high priority fits."
SECOND_THOUGHT = "Done: confirm in one line."


def _responses(fake: FakeModelServer, **extra: str) -> dict[str, str]:
    return {
        "MODEL_PROVIDER": "openai",
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_API_KEY": fake.api_key,
        "MODEL": "gpt-5-mini",
        **extra,
    }


def _workflows(events: list[Any]) -> list[Any]:
    return [e.item for e in events if e.type == "thread.item.done" and e.item.type == "workflow"]


@pytest.mark.parametrize("transport", ["lean", "openai"])
async def test_the_reasoning_summary_streams_as_a_reasoning_workflow(
    live_server_factory, fake_model, transport: str
) -> None:
    add_milk = {"title": "Buy milk", "description": None, "priority": "high", "due_date": None, "tags": None}
    fake = fake_model(
        [
            Reasoned((THOUGHT,), ToolCall("add_task", add_milk)),
            Reasoned((SECOND_THOUGHT,), Reply("Added #1 Buy milk.")),
        ]
    )
    server = live_server_factory(
        _responses(fake, REASONING_EFFORT="low", REASONING_SUMMARY="detailed", MODEL_TRANSPORT=transport)
    )
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        alice = ChatKitClient(http, server_token(server.env, "alice"))
        result = await alice.create_thread("add buy milk, high priority")
        assert result.status == 200
        assert not result.of_type("error"), result.of_type("error")
        assert result.assistant_text() == "Added #1 Buy milk."

        # The first thought streams delta by delta into a new reasoning workflow...
        updates = [e.update for e in result.of_type("thread.item.updated") if e.update.type.startswith("workflow.")]
        assert updates[0].type == "workflow.task.added"
        assert updates[0].task.type == "thought"
        assert len([u for u in updates if u.type == "workflow.task.updated" and u.task.type == "thought"]) > 1
        # ...which the tool call's task and the second model call's thought join, in order.
        [workflow] = _workflows(result.events)
        assert workflow.workflow.type == "reasoning"
        tasks = [(t.type, getattr(t, "content", None) or getattr(t, "title", None)) for t in workflow.workflow.tasks]
        assert tasks == [("thought", THOUGHT), ("custom", "Added #1 Buy milk"), ("thought", SECOND_THOUGHT)]

        stored = (await alice.items(result.thread_id, order="asc", limit=50)).body["data"]
        stored_thoughts = [
            task["content"]
            for item in stored
            if item["type"] == "workflow"
            for task in item["workflow"]["tasks"]
            if task["type"] == "thought"
        ]
        assert stored_thoughts == [THOUGHT, SECOND_THOUGHT]

    turns = turn_requests(fake)
    assert len(turns) == 2
    assert all(body["reasoning"] == {"effort": "low", "summary": "detailed"} for body in turns)


async def test_reasoning_is_off_by_default(live_server_factory, fake_model) -> None:
    fake = fake_model([Reasoned(("A thought the model shares anyway.",), Reply("Hello!"))])
    server = live_server_factory(_responses(fake))
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        alice = ChatKitClient(http, server_token(server.env, "alice"))
        result = await alice.create_thread("hello")
        assert result.status == 200
        assert result.assistant_text() == "Hello!"
    [body] = turn_requests(fake)
    assert "reasoning" not in body


async def test_an_effort_without_a_summary_asks_for_none(live_server_factory, fake_model) -> None:
    fake = fake_model([Reply("Hello!")])
    server = live_server_factory(_responses(fake, REASONING_EFFORT="minimal", REASONING_SUMMARY="off"))
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        alice = ChatKitClient(http, server_token(server.env, "alice"))
        assert (await alice.create_thread("hello")).assistant_text() == "Hello!"
    [body] = turn_requests(fake)
    assert body["reasoning"] == {"effort": "minimal"}
