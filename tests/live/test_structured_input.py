"""Structured input over real HTTP with the offline model: an add request that asks which priority to
use gets a ChatKit structured input (a question with choices) instead of a default; the user's answer,
sent as `threads.add_structured_input`, resumes the turn and the task is added with it. A second submit
is a 409; a plain add request asks nothing. The client sends only `Authorization` (and the JSON content
type), as a stock ChatKit front end does; on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from app.agents.offline.planner import Reply, ToolCall
from tests.support.auth import server_token
from tests.support.chatkit_client import ChatKitClient, StreamResult
from tests.support.fake_model_server import FakeModelServer, turn_requests
from tests.support.servers import LiveServer, ServerPool, unique_user


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, live_servers: ServerPool) -> LiveServer:
    return live_servers.get(database=request.param)


@pytest.fixture
async def http(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        yield client


def _done(result: StreamResult, kind: str) -> list[Any]:
    return [e.item for e in result.events if e.type == "thread.item.done" and e.item.type == kind]


async def _tasks(http: httpx.AsyncClient, token: str) -> dict[str, dict[str, Any]]:
    response = await http.get("/api/tasks", params={"status": "all"}, headers={"Authorization": f"Bearer {token}"})
    return {task["title"]: task for task in response.json()["items"]}


def _answer(thread: str, item: str, *values: str, status: str = "answered") -> dict[str, Any]:
    answers = {"answer": {"values": list(values)}} if values else {}
    return {"thread_id": thread, "item_id": item, "input": {"status": status, "answers": answers}}


async def test_asking_which_priority_to_use_gets_choices_and_the_answer_adds_the_task(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    token = server_token(server.env, unique_user("quinn"))
    quinn = ChatKitClient(http, token)

    asked = await quinn.create_thread("add a task to buy milk tomorrow, which priority should I use?")
    assert asked.status == 200 and not asked.of_type("error"), asked.of_type("error")
    (question,) = _done(asked, "structured_input")
    assert question.status == "pending"
    (choice,) = question.inputs
    assert choice.type == "multiple_choice" and choice.question == "Which priority should “Buy milk” have?"
    assert [option.value for option in choice.options] == ["high", "medium", "low"]
    assert not _done(asked, "assistant_message")  # the question is the turn's answer
    assert await _tasks(http, token) == {}  # nothing added before the answer
    thread = asked.thread_id
    stored = (await quinn.items(thread, order="asc", limit=20)).body["data"]
    assert [(i["type"], i.get("status")) for i in stored] == [("user_message", None), ("structured_input", "pending")]

    answered = await quinn.request("threads.add_structured_input", _answer(thread, question.id, "high"))
    assert answered.status == 200 and not answered.of_type("error"), answered.of_type("error")
    (replaced,) = [e.item for e in answered.events if e.type == "thread.item.replaced"]
    assert replaced.id == question.id and replaced.status == "answered"
    assert replaced.inputs[0].answer.values == ["high"]
    assert answered.assistant_text().startswith("Added #1 “Buy milk” (due ")
    assert "high priority" in answered.assistant_text()
    milk = (await _tasks(http, token))["Buy milk"]
    assert milk["priority"] == "high"
    assert milk["due_date"] == (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()
    assert answered.of_type("client_effect")[0].data == {"ids": [milk["id"]]}

    # The answer is recorded once: a second submit resumes nothing.
    again = await quinn.request("threads.add_structured_input", _answer(thread, question.id, "low"))
    assert again.status == 409, again.body
    assert (await _tasks(http, token))["Buy milk"]["priority"] == "high"
    stored = (await quinn.items(thread, order="asc", limit=20)).body["data"]
    assert [i["type"] for i in stored] == ["user_message", "structured_input", "workflow", "assistant_message"]
    assert stored[1]["status"] == "answered"

    # A plain add request asks nothing.
    plain = await quinn.send(thread, "add a task to buy eggs")
    assert not _done(plain, "structured_input")
    assert (await _tasks(http, token))["Buy eggs"]["priority"] == "medium"


async def test_a_skipped_priority_question_adds_the_task_with_the_default(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    token = server_token(server.env, unique_user("rory"))
    rory = ChatKitClient(http, token)
    asked = await rory.create_thread("Add call the plumber. What priority should it have?")
    (question,) = _done(asked, "structured_input")
    assert question.inputs[0].question == "Which priority should “Call the plumber” have?"
    skipped = await rory.request(
        "threads.add_structured_input", _answer(asked.thread_id, question.id, status="skipped")
    )
    assert skipped.status == 200 and not skipped.of_type("error"), skipped.of_type("error")
    assert skipped.assistant_text().startswith("Added #1 “Call the plumber”")
    assert (await _tasks(http, token))["Call the plumber"]["priority"] == "medium"


async def test_a_real_model_asks_through_the_ask_user_tool_and_reads_the_answer(
    live_server_factory: Callable[..., LiveServer], fake_model: Callable[..., FakeModelServer]
) -> None:
    add_milk = {"title": "Buy milk", "description": None, "priority": "low", "due_date": None, "tags": None}
    fake = fake_model(
        [
            ToolCall("ask_user", {"question": "Which priority should “Buy milk” have?", "choices": ["high", "low"]}),
            ToolCall("add_task", add_milk),
            Reply("Added #1 Buy milk, low priority."),
        ]
    )
    server = live_server_factory(
        {
            "MODEL_PROVIDER": "openai",
            "OPENAI_BASE_URL": fake.base_url,
            "OPENAI_API_KEY": fake.api_key,
            "MODEL": "gpt-5-mini",
        }
    )
    token = server_token(server.env, "sam")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        sam = ChatKitClient(client, token)
        asked = await sam.create_thread("add buy milk; you pick the priority with me")
        (question,) = _done(asked, "structured_input")
        assert [o.value for o in question.inputs[0].options] == ["high", "low"]
        assert not _done(asked, "assistant_message")
        assert len(turn_requests(fake)) == 1  # the run stopped at ask_user: no second model call
        assert "ask_user" in json.dumps(turn_requests(fake)[0]["tools"])

        answered = await sam.request("threads.add_structured_input", _answer(asked.thread_id, question.id, "low"))
        assert answered.assistant_text() == "Added #1 Buy milk, low priority."
        assert (await _tasks(client, token))["Buy milk"]["priority"] == "low"
    # The resumed turn's model input holds the question and the answer.
    resumed = json.dumps(turn_requests(fake)[1]["input"])
    assert "<StructuredInput>" in resumed and "Which priority should \\u201cBuy milk\\u201d have?: low" in resumed
