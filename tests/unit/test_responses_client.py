"""`ResponsesClient` parses each streamed Responses event by its tag, into exactly what the stock
openai client builds; what the tagged union does not accept takes the client's own path."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI, omit
from openai.types.responses import ResponseStreamEvent, ResponseTextDeltaEvent

from app.agents.offline.model import step_events
from app.agents.offline.planner import Reply, ToolCall
from app.agents.providers import ResponsesClient
from tests.support.fake_model_server import FakeModelServer


async def _events() -> list[dict[str, Any]]:
    """Every kind of event a streamed answer has: a tool call's and a text message's."""
    steps = [ToolCall("list_tasks", {"status": "all"}), Reply("Here are your tasks, all three of them.")]
    return [json.loads(e.model_dump_json(exclude_none=True)) for step in steps async for e in step_events(step)]


def _parse(client: AsyncOpenAI, data: object) -> Any:
    response = httpx.Response(200, request=httpx.Request("POST", "http://127.0.0.1/v1/responses"))
    return client._process_response_data(data=data, cast_to=ResponseStreamEvent, response=response)  # type: ignore[arg-type]


async def test_every_stream_event_is_the_same_object_the_stock_client_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = ResponsesClient(api_key="k", base_url="http://127.0.0.1:9/v1")
    stock = AsyncOpenAI(api_key="k", base_url="http://127.0.0.1:9/v1")
    events = await _events()
    assert {e["type"] for e in events} >= {
        "response.created",
        "response.output_item.added",
        "response.function_call_arguments.done",
        "response.output_text.delta",
        "response.completed",
    }
    expected = [_parse(stock, data) for data in events]
    # The tagged path builds every one of them: the client's slow union walk is never reached.
    slow_path: list[object] = []
    original = AsyncOpenAI._process_response_data

    def counting(self: AsyncOpenAI, **kwargs: Any) -> Any:
        slow_path.append(kwargs["data"])
        return original(self, **kwargs)

    monkeypatch.setattr(AsyncOpenAI, "_process_response_data", counting)
    for data, theirs in zip(events, expected, strict=True):
        mine = _parse(fast, data)
        assert type(mine) is type(theirs), data["type"]
        assert mine == theirs
    assert slow_path == []


async def test_an_event_the_tagged_union_does_not_know_takes_the_clients_own_path() -> None:
    fast = ResponsesClient(api_key="k", base_url="http://127.0.0.1:9/v1")
    stock = AsyncOpenAI(api_key="k", base_url="http://127.0.0.1:9/v1")
    newer = {"type": "response.some_future_event", "sequence_number": 3, "detail": {"x": 1}}
    malformed = {"type": "response.output_text.delta", "sequence_number": "not a number", "delta": "hi"}
    for data in (newer, malformed):
        mine, theirs = _parse(fast, data), _parse(stock, data)
        assert type(mine) is type(theirs)
        assert mine == theirs
    assert isinstance(_parse(fast, malformed), ResponseTextDeltaEvent)  # loosely built, as the SDK does


async def test_events_a_lenient_server_sends_without_required_fields_skip_the_slow_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OpenAI-compatible servers (and older API versions) leave out fields this SDK's types
    require; such an event is built as the type its tag names, as the stock client ends up doing,
    without first trying every member of the union."""
    fast = ResponsesClient(api_key="k", base_url="http://127.0.0.1:9/v1")
    stock = AsyncOpenAI(api_key="k", base_url="http://127.0.0.1:9/v1")
    events = await _events()
    lenient: list[dict[str, Any]] = []
    for data in events:
        data = json.loads(json.dumps(data))
        data.pop("logprobs", None)
        usage = (data.get("response") or {}).get("usage") or {}
        (usage.get("input_tokens_details") or {}).pop("cache_write_tokens", None)
        lenient.append(data)
    assert any("logprobs" in e for e in events) and any("logprobs" not in e for e in lenient)
    expected = [_parse(stock, data) for data in lenient]
    slow_path: list[object] = []
    original = AsyncOpenAI._process_response_data

    def counting(self: AsyncOpenAI, **kwargs: Any) -> Any:
        slow_path.append(kwargs["data"])
        return original(self, **kwargs)

    monkeypatch.setattr(AsyncOpenAI, "_process_response_data", counting)
    for data, theirs in zip(lenient, expected, strict=True):
        mine = _parse(fast, data)
        assert type(mine) is type(theirs), data["type"]
        assert mine == theirs
    assert slow_path == []


@pytest.fixture
def fake() -> Iterator[FakeModelServer]:
    server = FakeModelServer([Reply("One two three four five six seven eight nine ten.")])
    yield server
    server.close()


async def test_a_real_stream_over_http_yields_typed_events(fake: FakeModelServer) -> None:
    client = ResponsesClient(api_key=fake.api_key, base_url=fake.base_url)
    stream = await client.responses.create(model="gpt-5-mini", input="hi", stream=True)
    events = [event async for event in stream]
    deltas = [e for e in events if isinstance(e, ResponseTextDeltaEvent)]
    assert "".join(d.delta for d in deltas) == "One two three four five six seven eight nine ten."
    assert events[-1].type == "response.completed"
    await client.close()


HISTORY: list[Any] = [
    {"role": "user", "content": [{"type": "input_text", "text": "add milk"}], "type": "message"},
    {"type": "function_call", "call_id": "call_1", "name": "add_task", "arguments": '{"title": "milk"}'},
    {"type": "function_call_output", "call_id": "call_1", "output": '{"ok": true, "task": {"number": 1}}'},
    {"role": "assistant", "content": "Added #1 milk.", "type": "message"},
    {
        "role": "user",
        "type": "message",
        "content": [
            {"type": "input_text", "text": "and this?"},
            {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"},
        ],
    },
]
TOOLS: list[Any] = [
    {
        "type": "function",
        "name": "add_task",
        "description": "Add a task.",
        "parameters": {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]},
        "strict": False,
    }
]


async def _request_body(client: AsyncOpenAI, fake: FakeModelServer, **params: Any) -> dict[str, Any]:
    stream = await client.responses.create(model="gpt-5-mini", stream=True, instructions="Be brief.", **params)
    async for _ in stream:
        pass
    return fake.requests[-1]


async def test_the_conversation_and_tools_go_out_exactly_as_the_stock_client_sends_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Plain-JSON `input` and `tools` skip the client's parameter walk, and the request body is the
    one the stock client sends; anything else (here a pydantic object) still takes the walk."""
    import openai.resources.responses.responses as responses_module

    server = FakeModelServer([Reply("one"), Reply("two"), Reply("three"), Reply("four")])
    fast = ResponsesClient(api_key=server.api_key, base_url=server.base_url)
    stock = AsyncOpenAI(api_key=server.api_key, base_url=server.base_url)
    try:
        theirs = await _request_body(stock, server, input=HISTORY, tools=TOOLS)
        walked: list[set[str]] = []
        original = responses_module.async_maybe_transform

        async def recording(data: Any, expected_type: Any) -> Any:
            walked.append({k for k, v in data.items() if v is not omit})
            return await original(data, expected_type)

        monkeypatch.setattr(responses_module, "async_maybe_transform", recording)
        mine = await _request_body(fast, server, input=HISTORY, tools=TOOLS)
        assert mine == theirs
        assert "input" not in walked[-1] and "tools" not in walked[-1]

        # Not plain JSON: a pydantic model in the history is dumped by the client, as before.
        from openai.types.responses import EasyInputMessageParam, ResponseInputText

        part = ResponseInputText(type="input_text", text="add milk")
        odd: list[Any] = [EasyInputMessageParam(role="user", content=[part], type="message")]  # type: ignore[list-item]
        mine_odd = await _request_body(fast, server, input=odd, tools=TOOLS)
        monkeypatch.setattr(responses_module, "async_maybe_transform", original)
        theirs_odd = await _request_body(stock, server, input=odd, tools=TOOLS)
        assert mine_odd == theirs_odd
        assert mine_odd["input"][0]["content"] == [{"type": "input_text", "text": "add milk"}]
    finally:
        await fast.close()
        await stock.close()
        server.close()


async def test_chat_completions_messages_and_tools_go_out_as_the_stock_client_sends_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same for `MODEL_PROVIDER=openai-compatible`: `messages` and `tools` skip the walk."""
    import openai.resources.chat.completions.completions as completions_module

    server = FakeModelServer([Reply("one"), Reply("two")])
    fast = ResponsesClient(api_key=server.api_key, base_url=server.base_url)
    stock = AsyncOpenAI(api_key=server.api_key, base_url=server.base_url)
    messages: list[Any] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "add milk"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "add_task", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"ok": true}'},
    ]
    tools: list[Any] = [{"type": "function", "function": {k: v for k, v in TOOLS[0].items() if k != "type"}}]

    async def body(client: AsyncOpenAI) -> dict[str, Any]:
        stream = await client.chat.completions.create(model="m", messages=messages, tools=tools, stream=True)
        async for _ in stream:
            pass
        return server.requests[-1]

    try:
        theirs = await body(stock)
        walked: list[set[str]] = []
        original = completions_module.async_maybe_transform

        async def recording(data: Any, expected_type: Any) -> Any:
            walked.append({k for k, v in data.items() if v is not omit})
            return await original(data, expected_type)

        monkeypatch.setattr(completions_module, "async_maybe_transform", recording)
        mine = await body(fast)
        assert mine == theirs
        assert walked and "messages" not in walked[-1] and "tools" not in walked[-1]
    finally:
        await fast.close()
        await stock.close()
        server.close()
