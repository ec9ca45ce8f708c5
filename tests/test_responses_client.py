"""`ResponsesClient` parses each streamed Responses event by its tag, into exactly what the stock
openai client builds; what the tagged union does not accept takes the client's own path."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI
from openai.types.responses import ResponseStreamEvent, ResponseTextDeltaEvent

from app.agents.offline.model import step_events
from app.agents.offline.planner import Reply, ToolCall
from app.agents.providers import ResponsesClient
from tests.fake_model_server import FakeModelServer


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
