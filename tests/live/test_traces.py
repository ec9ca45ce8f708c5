"""OpenTelemetry traces over real HTTP (issue 32): a live server exports its spans to a local OTLP/HTTP
receiver (testkit/otlp_receiver.py), which decodes the protobuf.

A ChatKit turn with two tool round trips and a title is one trace: the request's span, the turn's,
each model call and each tool call under the turn, the tools' SQL under the tools; an MCP tool call is
a trace of its own. No span carries the user's words, a task's title or the reply. With
OTEL_SDK_DISABLED the same endpoint receives nothing (no exporter was made).
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
from testkit.otlp_receiver import OtlpReceiver, ReceivedSpan

from app.agents.offline.planner import Reply, ToolCall
from tests.support.auth import server_token
from tests.support.chatkit_client import ChatKitClient
from tests.support.fake_model_server import FakeModelServer
from tests.support.mcp import call, mcp_client
from tests.support.servers import unique_user

pytestmark = pytest.mark.live

MESSAGE = "add buy milk, then list my tasks"
# Words of the message, the task's title, the reply and the thread's title: none may be in a span.
PRIVATE_WORDS = ("milk", "list my tasks", "shopping", "one task", "groceries")


@pytest.fixture
def otlp_receiver():
    receiver = OtlpReceiver()
    yield receiver
    receiver.close()


def _script() -> list[object]:
    return [
        ToolCall(
            "add_task", {"title": "Buy milk", "description": None, "priority": None, "due_date": None, "tags": None}
        ),
        ToolCall("list_tasks", {}),
        Reply("Added “Buy milk”; you have one task."),
    ]


def _env(fake: FakeModelServer, receiver: OtlpReceiver, **extra: str) -> dict[str, str]:
    return {
        "MODEL_PROVIDER": "openai-compatible",
        "OPENAI_BASE_URL": fake.base_url,
        "MODEL_API_KEY": fake.api_key,
        "MODEL": "mimo-v2-flash",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_SERVICE_NAME": "taskpilot-under-test",
        "OTEL_EXPORTER_OTLP_HEADERS": "x-collector-key=test-collector-key",
        **extra,
    }


def children(spans: list[ReceivedSpan], parent: ReceivedSpan) -> list[ReceivedSpan]:
    return sorted((s for s in spans if s.parent_id == parent.span_id), key=lambda s: s.start_ns)


def tree(spans: list[ReceivedSpan], root: ReceivedSpan, depth: int = 0) -> list[str]:
    """The span tree under `root` as indented names, SQL spans of one parent folded into one line."""
    lines = ["  " * depth + root.name]
    sql: dict[str, int] = {}
    for child in children(spans, root):
        if "db.operation.name" in child.attributes:
            sql[child.name] = sql.get(child.name, 0) + 1
        else:
            lines.extend(tree(spans, child, depth + 1))
    lines.extend("  " * (depth + 1) + f"{name} x{count}" for name, count in sorted(sql.items()))
    return lines


def _turn_done(spans: list[ReceivedSpan]) -> bool:
    names = [s.name for s in spans]
    return "chatkit.turn" in names and any(n.startswith("POST /chatkit") for n in names)


async def test_a_turn_is_one_trace_of_model_tool_and_sql_spans_without_message_text(
    live_server_factory, fake_model, otlp_receiver: OtlpReceiver, server_database_url: str
) -> None:
    fake = fake_model(_script(), title="Milk shopping")
    server = live_server_factory(_env(fake, otlp_receiver, DATABASE_URL=server_database_url))
    user = unique_user("traces")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        alice = ChatKitClient(http, server_token(server.env, user))
        turn = await alice.create_thread(MESSAGE)
        assert turn.status == 200 and not turn.of_type("error"), turn.of_type("error")
        assert len(fake.requests) == 4  # three answer calls (two tool round trips) and a title

    spans = otlp_receiver.wait_for(_turn_done)
    [turn_span] = [s for s in spans if s.name == "chatkit.turn"]
    trace = [s for s in spans if s.trace_id == turn_span.trace_id]
    [request] = [s for s in trace if not s.parent_id]
    assert request.name == "POST /chatkit"
    assert turn_span.parent_id == request.span_id
    assert request.resource["service.name"] == "taskpilot-under-test"
    assert otlp_receiver.headers[0].get("x-collector-key") == "test-collector-key"

    under_turn = children(trace, turn_span)
    models = [s for s in under_turn if s.name == "model.call"]
    tools = [s for s in under_turn if s.name == "tool.call"]
    # The title's call runs beside the answer's (started with the turn), so its place among them varies.
    answers = [m for m in models if m.attributes["taskpilot.model.purpose"] == "answer"]
    assert sorted(m.attributes["taskpilot.model.purpose"] for m in models) == ["answer", "answer", "answer", "title"]
    assert {m.attributes["gen_ai.request.model"] for m in models} == {"mimo-v2-flash"}
    assert all(m.attributes["taskpilot.model.status"] == "ok" for m in models)
    assert [m.attributes["taskpilot.model.retries"] for m in answers] == [0, 0, 0]
    # Each call's tokens are what the fake reported for it.
    reported = [{k: m.attributes[f"gen_ai.usage.{k}_tokens"] for k in fake.usage_sent[0]} for m in models]
    assert sorted(reported, key=str) == sorted(fake.usage_sent, key=str)
    total = {k: sum(u[k] for u in fake.usage_sent) for k in fake.usage_sent[0]}
    assert {k: turn_span.attributes[f"gen_ai.usage.{k}_tokens"] for k in total} == total

    assert [t.attributes["gen_ai.tool.name"] for t in tools] == ["add_task", "list_tasks"]
    assert all(t.attributes["taskpilot.tool.outcome"] == "ok" for t in tools)
    assert all(t.end_ns > t.start_ns for t in tools)
    # The tools' SQL nests under them: statement kind and table, nothing of the statement's text.
    add_sql = children(trace, tools[0])
    assert any(s.name == "INSERT tasks" for s in add_sql), [s.name for s in add_sql]
    list_sql = children(trace, tools[1])
    assert any(s.name == "SELECT tasks" for s in list_sql), [s.name for s in list_sql]
    for sql in add_sql + list_sql:
        assert set(sql.attributes) <= {
            "db.system.name",
            "db.operation.name",
            "db.collection.name",
            "db.operation.batch.size",
        }
        assert sql.attributes["db.system.name"] == ("sqlite" if "sqlite" in server_database_url else "postgresql")
    # The Store's statements are traced too (on PostgreSQL its hot ones go straight to asyncpg).
    store_sql = {s.name for s in trace if s.attributes.get("db.collection.name") in {"chat_items", "chat_threads"}}
    assert {"INSERT chat_threads", "SELECT chat_items"} <= store_sql, store_sql
    # Model calls come after the turn started, and every span of the trace ends inside the request's.
    assert all(request.start_ns <= s.start_ns and s.end_ns <= request.end_ns for s in trace)

    everything = json.dumps([(s.name, s.attributes, s.resource, s.events) for s in spans]).lower()
    for word in PRIVATE_WORDS:
        assert word not in everything, word
    assert fake.api_key not in everything and server_token(server.env, user) not in everything
    print("\n".join(tree(trace, request)))


async def test_an_mcp_tool_call_is_a_span_of_its_own_and_a_retried_call_counts_its_retry(
    live_server_factory, fake_model, otlp_receiver
) -> None:
    # The model's first answer is a 429: the client retries it once (MODEL calls allow one retry).
    server = live_server_factory(_env(fake_model([429, Reply("Hello there")]), otlp_receiver))
    user = unique_user("traces-mcp")
    async with mcp_client(server.base_url, user) as client:
        failed, result = await call(client, "add_task", {"title": "Buy groceries"})
        assert not failed and result["ok"]
    # A search's words are in the query string, which no span keeps.
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        found = await http.get(
            "/api/tasks",
            params={"q": "groceries"},
            headers={"Authorization": f"Bearer {server_token(server.env, user)}"},
        )
        assert found.status_code == 200 and len(found.json()["items"]) == 1
        turn = await ChatKitClient(http, server_token(server.env, user)).create_thread("hi")
        assert turn.assistant_text() == "Hello there"
    spans = otlp_receiver.wait_for(
        lambda spans: {"mcp.tool_call", "GET /api/tasks", "chatkit.turn"} <= {s.name for s in spans}
    )
    [answer] = [s for s in spans if s.attributes.get("taskpilot.model.purpose") == "answer"]
    assert (answer.attributes["taskpilot.model.status"], answer.attributes["taskpilot.model.retries"]) == ("ok", 1)
    [search] = [s for s in spans if s.name == "GET /api/tasks"]
    assert search.attributes["http.target"] == "/api/tasks"
    [tool] = [s for s in spans if s.name == "mcp.tool_call"]
    assert tool.attributes["gen_ai.tool.name"] == "add_task"
    assert tool.attributes["taskpilot.tool.outcome"] == "ok"
    assert any(s.name == "INSERT tasks" and s.parent_id == tool.span_id for s in spans)
    root = next(s for s in spans if s.trace_id == tool.trace_id and not s.parent_id)
    assert root.name.startswith("POST /mcp")
    assert "groceries" not in json.dumps([s.attributes for s in spans]).lower()


async def test_with_the_sdk_disabled_nothing_is_exported(live_server_factory, fake_model, otlp_receiver) -> None:
    fake = fake_model(_script(), title="Milk shopping")
    server = live_server_factory(_env(fake, otlp_receiver, OTEL_SDK_DISABLED="true"))
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        alice = ChatKitClient(http, server_token(server.env, unique_user("traces-off")))
        turn = await alice.create_thread(MESSAGE)
        assert turn.status == 200 and not turn.of_type("error")
    # A worker that traced would flush on shutdown: stopping the server leaves nothing queued.
    assert server.stop() == 0
    time.sleep(0.2)
    assert otlp_receiver.requests == 0 and otlp_receiver.spans == []
    assert "tracing on" not in server.log()


@pytest.mark.postgres
async def test_each_worker_flushes_its_spans_when_it_stops(
    live_server_factory, fake_model, otlp_receiver, fresh_postgres_url: str
) -> None:
    """Two workers, each with its own exporter; spans still queued when the server is stopped reach
    the collector (the batch delay is raised past the test's length, so only the shutdown flush sends)."""
    fake = fake_model(_script(), title="Milk shopping")
    env = _env(fake, otlp_receiver, DATABASE_URL=fresh_postgres_url, WORKERS="2")
    # Read by the SDK's batch processor itself (a test knob, not a TaskPilot setting): no timed export.
    env["OTEL_BSP_SCHEDULE_DELAY"] = "600000"
    server = live_server_factory(env)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        alice = ChatKitClient(http, server_token(server.env, unique_user("traces-flush")))
        turn = await alice.create_thread(MESSAGE)
        assert turn.status == 200 and not turn.of_type("error")
    assert otlp_receiver.spans == []  # nothing sent yet: the batch waits
    assert server.stop() == 0
    spans = otlp_receiver.wait_for(_turn_done, timeout=5)
    assert [s.name for s in spans].count("chatkit.turn") == 1
    assert server.log().count("tracing on") == 2  # one provider per worker process
