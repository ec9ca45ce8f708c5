"""The lean model transport (`app.agents.transport`) on its own: its SSE parser, the openai
client's retry rule and exceptions, the turn's retry notice, and non-streamed answers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import msgspec
import openai
import pydantic
import pytest
from agents import Agent, ModelSettings, RunConfig, Runner
from openai import Omit
from openai._models import construct_type
from openai.types.chat import ChatCompletionChunk
from openai.types.responses import ResponseTextDeltaEvent

from app.agents.chat_transport import chunk as chat_chunk
from app.agents.chatkit import notices
from app.agents.offline.planner import Reply
from app.agents.providers import ProviderConfig, build_model_provider
from app.agents.transport import (
    LeanResponsesModel,
    Transport,
    encoded_body,
    request_body,
    retry_wait,
    sse_data,
    stream_event,
)
from app.ops.openai_failures import describe_openai_failure
from tests.support.fake_model_server import FakeModelServer, Recorded


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def _parsed(*parts: bytes) -> list[bytes]:
    return [data async for data in sse_data(_chunks(*parts))]


async def test_events_split_anywhere_across_reads_come_out_whole() -> None:
    body = b'event: a\ndata: {"x": 1}\n\n: keep-alive\n\ndata: {"y":\ndata: 2}\r\n\r\ndata: [DONE]\n\n'
    whole = await _parsed(body)
    assert whole == [b'{"x": 1}', b'{"y":\n2}', b"[DONE]"]
    for cut in range(1, len(body)):
        assert await _parsed(body[:cut], body[cut:]) == whole, cut
    # A last event without its blank line still counts (a server that closes right after it).
    assert await _parsed(b"data: {}") == [b"{}"]


async def test_a_crlf_split_between_reads_ends_one_line_not_two() -> None:
    # A server ending its lines with "\r\n", a read ending between the "\r" and the "\n".
    body = b'data: {"y":\r\ndata: 2}\r\n\r\ndata: {"z": 3}\r\n\r\n'
    whole = await _parsed(body)
    assert whole == [b'{"y":\n2}', b'{"z": 3}']
    for cut in range(1, len(body)):
        assert await _parsed(body[:cut], body[cut:]) == whole, cut
    assert await _parsed(b"data: {}\r") == [b"{}"]


async def test_events_read_a_byte_at_a_time_come_out_whole() -> None:
    # Every boundary at once: each "\r", "\n" and multi-byte character split from its neighbours.
    body = 'data: {"y":\r\ndata: "é€😀"}\r\n\r\n: ping\n\ndata: {"z": 3}\r\rdata: [DONE]\n\n'.encode()
    whole = await _parsed(body)
    assert whole == ['{"y":\n"é€😀"}'.encode(), b'{"z": 3}', b"[DONE]"]
    assert await _parsed(*(body[i : i + 1] for i in range(len(body)))) == whole


def test_a_delta_is_built_unvalidated_and_anything_else_as_the_stock_path_builds_it() -> None:
    delta = stream_event(
        {"type": "response.output_text.delta", "item_id": "m", "output_index": 0, "content_index": 0, "delta": "hi"}
    )
    assert isinstance(delta, ResponseTextDeltaEvent) and delta.delta == "hi"
    created = stream_event(
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "sequence_number": 1,
            "item": {"id": "m", "type": "message", "status": "in_progress", "content": [], "role": "assistant"},
        }
    )
    assert type(created.item).__name__ == "ResponseOutputMessage"  # type: ignore[union-attr]


def test_the_wait_before_a_retry_is_the_openai_clients() -> None:
    assert retry_wait(0, httpx.Headers({"retry-after": "3"})) == 3
    assert retry_wait(0, httpx.Headers({"retry-after-ms": "250"})) == 0.25
    # Beyond two minutes, or none: exponential backoff from 0.5 s with up to 25% off, at most 8 s.
    assert 0.375 <= retry_wait(0, httpx.Headers({"retry-after": "600"})) <= 0.5
    assert 0.75 <= retry_wait(1, None) <= 1.0
    assert 6.0 <= retry_wait(10, None) <= 8.0


class _Scripted(httpx.AsyncBaseTransport):
    """Answers each request with the next of `answers`; an exception is raised as the transport's."""

    def __init__(self, answers: list[httpx.Response | Exception]) -> None:
        self.answers = answers
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


class _Turn:
    def __init__(self) -> None:
        self.retries: list[dict[str, Any]] = []

    async def retrying(self, **details: Any) -> None:
        self.retries.append(details)


def _sse(text: str) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=text.encode())


def _error(status: int, **headers: str) -> httpx.Response:
    body = {"error": {"message": f"nope {status}", "type": "server_error", "code": "c"}}
    return httpx.Response(status, headers={"x-request-id": "req_1", **headers}, json=body)


async def _send(answers: list[httpx.Response | Exception], max_retries: int = 1) -> tuple[Any, _Turn, _Scripted]:
    scripted = _Scripted(answers)
    transport = Transport(
        base_url="http://model.test/v1",
        api_key="k",
        timeout_seconds=5,
        max_retries=max_retries,
        headers={"OpenAI-Project": "proj_1", "User-Agent": "AsyncOpenAI/Python"},
        http_transport=scripted,
    )
    turn = _Turn()
    token = notices.current.set(turn)  # type: ignore[arg-type]
    try:
        return await transport.send("/responses", {"model": "m", "input": []}, stream=True), turn, scripted
    except Exception as exc:
        return exc, turn, scripted
    finally:
        notices.current.reset(token)
        await transport.aclose()


async def test_a_429_is_retried_after_the_servers_wait_and_the_turn_is_told_first() -> None:
    answer, turn, scripted = await _send([_error(429, **{"retry-after-ms": "20"}), _sse("data: [DONE]\n\n")])
    assert isinstance(answer, httpx.Response) and answer.status_code == 200
    assert turn.retries == [{"attempt": 1, "of": 1, "wait": 0.02, "status": 429}]
    assert len(scripted.requests) == 2
    sent = scripted.requests[0]
    assert sent.headers["authorization"] == "Bearer k"
    assert sent.headers["openai-project"] == "proj_1"
    assert json.loads(sent.content) == {"model": "m", "input": []}


@pytest.mark.parametrize(
    ("answers", "exception", "kind"),
    [
        ([_error(401)], openai.AuthenticationError, "auth"),
        ([_error(400)], openai.BadRequestError, "bad_request"),
        (
            [_error(429, **{"retry-after-ms": "1"}), _error(429, **{"retry-after-ms": "1"})],
            openai.RateLimitError,
            "rate_limit",
        ),
        ([_error(503, **{"retry-after-ms": "1"}), _error(500)], openai.InternalServerError, "server_error"),
        ([httpx.ConnectError("refused"), httpx.ConnectError("refused")], openai.APIConnectionError, "unreachable"),
        ([httpx.ReadTimeout("slow"), httpx.ReadTimeout("slow")], openai.APITimeoutError, "timeout"),
    ],
)
async def test_failures_are_the_openai_packages_exceptions_and_keep_their_kind(
    answers: list[Any], exception: type[Exception], kind: str
) -> None:
    failure, turn, scripted = await _send(list(answers))
    assert type(failure) is exception
    described = describe_openai_failure(failure)
    assert described is not None and described.kind == kind
    if isinstance(failure, openai.APIStatusError):
        assert failure.request_id == "req_1" and failure.body == {
            "message": failure.body["message"],
            "type": "server_error",
            "code": "c",
        }  # type: ignore[index]
    # Retried once when the rule says so (not a 400 or 401), the turn told each time.
    assert len(scripted.requests) == len(answers) and len(turn.retries) == len(answers) - 1


class _BrokenBody(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"error": {"mess'
        raise httpx.ReadError("connection reset")


async def test_an_error_answer_whose_body_breaks_off_keeps_its_status_and_kind() -> None:
    broken = httpx.Response(503, headers={"retry-after-ms": "1"}, stream=_BrokenBody())
    failure, turn, scripted = await _send([broken, _error(500)])
    assert type(failure) is openai.InternalServerError
    assert len(scripted.requests) == 2 and len(turn.retries) == 1  # retried as a 503 is
    failure, _, _ = await _send([httpx.Response(401, stream=_BrokenBody())])
    assert type(failure) is openai.AuthenticationError


async def test_a_non_streamed_answer_is_the_same_on_both_transports() -> None:
    fake = FakeModelServer([Reply("First answer."), Reply("First answer.")])
    try:
        results = []
        for transport in ("openai", "lean"):
            provider, name = build_model_provider(
                ProviderConfig(
                    provider="openai",
                    model="gpt-5-mini",
                    api_key=fake.api_key,
                    base_url=fake.base_url,
                    transport=transport,
                )
            )
            result = await Runner.run(
                Agent(name="a", instructions="i"), "hello", run_config=RunConfig(model_provider=provider, model=name)
            )
            results.append((result.final_output, result.context_wrapper.usage.output_tokens > 0))
        assert results[0] == results[1] == ("First answer.", True)
        assert fake.requests[0] == fake.requests[1]
    finally:
        fake.close()


@pytest.mark.parametrize(
    ("provider", "transport"), [("openai", "lean"), ("openai", "openai"), ("openai-compatible", "lean")]
)
async def test_closing_the_provider_closes_the_upstream_connections_it_opened(provider: str, transport: str) -> None:
    """A worker's shutdown (`Services.on_shutdown`) closes the provider: the lean transport's pool
    and the openai client built for it, not left open until the process exits."""
    fake = FakeModelServer([Reply("First answer.")])
    try:
        built, name = build_model_provider(
            ProviderConfig(
                provider=provider, model="gpt-5-mini", api_key=fake.api_key, base_url=fake.base_url, transport=transport
            )
        )
        await Runner.run(
            Agent(name="a", instructions="i"), "hello", run_config=RunConfig(model_provider=built, model=name)
        )
        await built.aclose()
        client = cast(Any, built).owned_client
        assert client.is_closed()
        lean = getattr(built, "transport", None)
        assert lean is None or lean._client is None  # a later call would open a new pool
    finally:
        fake.close()


async def test_a_non_streamed_answer_whose_body_breaks_off_is_a_connection_failure() -> None:
    transport = Transport(
        base_url="http://model.test/v1",
        api_key="k",
        timeout_seconds=5,
        max_retries=0,
        http_transport=_Scripted([httpx.Response(200, stream=_BrokenBody())]),
    )
    client = openai.AsyncOpenAI(api_key="k", base_url="http://model.test/v1")
    model = LeanResponsesModel("m", client, transport)
    try:
        with pytest.raises(openai.APIConnectionError) as raised:
            await model._fetch_response(None, "hello", ModelSettings(), [], None, [], stream=False)
        assert describe_openai_failure(raised.value).kind == "unreachable"  # type: ignore[union-attr]
    finally:
        await transport.aclose()
        await client.close()


def _same_model(a: Any, b: Any, path: str = "$") -> None:
    """`a` and `b` built alike: the same classes, fields, fields set, extra fields and values, all the way down."""
    assert type(a) is type(b), (path, type(a), type(b))
    if isinstance(a, pydantic.BaseModel):
        assert a.model_fields_set == b.model_fields_set, path
        assert list(a.__dict__) == list(b.__dict__), path
        for name in a.__dict__:
            _same_model(a.__dict__[name], b.__dict__[name], f"{path}.{name}")
        assert (a.__pydantic_extra__ or {}).keys() == (b.__pydantic_extra__ or {}).keys(), path
        for name in a.__pydantic_extra__ or {}:
            _same_model(a.__pydantic_extra__[name], b.__pydantic_extra__[name], f"{path}.{name}")  # type: ignore[index]
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for n, (x, y) in enumerate(zip(a, b, strict=True)):
            _same_model(x, y, f"{path}[{n}]")
    else:
        assert a == b, (path, a, b)


_TEXT_CHUNK = {
    "id": "chatcmpl-1",
    "object": "chat.completion.chunk",
    "created": 1,
    "model": "m",
    "service_tier": "default",
    "system_fingerprint": None,
    "choices": [{"index": 0, "delta": {"content": "hi"}, "logprobs": None, "finish_reason": None}],
    "usage": None,
    "obfuscation": "Xy",
}


@pytest.mark.parametrize(
    "data",
    [
        _TEXT_CHUNK,
        {"choices": [{"index": 0, "delta": {"role": "assistant"}}]},  # a lenient server: no id, created, object
        {"choices": []},
        {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}},
        {
            "choices": [],
            "usage": {
                "prompt_tokens": 1,
                "completion_tokens": 2,
                "total_tokens": 3,
                "prompt_tokens_details": {"cached_tokens": 1},
                "completion_tokens_details": {"reasoning_tokens": 1},
            },
        },
        {
            "id": "c",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}
                        ]
                    },
                }
            ],
        },
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"function": {"arguments": "{"}}]}}]},  # no index
        {"choices": [{"index": 0, "delta": {"content": "x", "reasoning_content": "r", "thinking_blocks": [{"a": 1}]}}]},
        {"choices": [{"index": "0", "delta": {"content": 5, "role": "bot"}, "finish_reason": "weird"}], "created": 1.5},
        {"choices": [{"index": True, "delta": {"content": None, "refusal": "no"}, "finish_reason": "stop"}]},
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {"content": "a"},
                    "logprobs": {"content": [{"token": "a", "logprob": -1, "bytes": None, "top_logprobs": []}]},
                }
            ]
        },
        {"choices": [{"index": 0, "delta": None}, {"index": 1}], "extra": {"a": [1]}},
        {"choices": None, "service_tier": "flex"},
        {"choices": [{"index": 0, "delta": {"function_call": {"name": "x"}}}, "not a choice"]},
        {"choices": [{"index": 0, "delta": ["not", "a", "delta"]}]},
        ["not", "a", "chunk"],
    ],
)
def test_a_chunk_is_built_as_the_openai_client_builds_it(data: Any) -> None:
    """The stock client (non-strict) builds each chunk with `construct_type`; so does the lean
    path, only without the walk where a value needs none: the same objects, lenient input too."""
    decoded = json.loads(json.dumps(data))
    _same_model(chat_chunk(json.loads(json.dumps(data))), construct_type(type_=ChatCompletionChunk, value=decoded))


async def _chat_turn(transport: str, script: list[Any], *, api_key: str | None = None) -> dict[str, Any]:
    """One streamed run of an agent on `openai-compatible` over `transport` against a fake server
    answering `script`: its output or exception, the retries the turn was told of, the requests made."""
    fake = FakeModelServer(script)
    turn = _Turn()
    token = notices.current.set(turn)  # type: ignore[arg-type]
    provider, name = build_model_provider(
        ProviderConfig(
            provider="openai-compatible",
            model="gpt-5-mini",
            api_key=api_key or fake.api_key,
            base_url=fake.base_url,
            transport=transport,
        )
    )
    try:
        result = Runner.run_streamed(
            Agent(name="a", instructions="i"), "hello", run_config=RunConfig(model_provider=provider, model=name)
        )
        try:
            async for _ in result.stream_events():
                pass
            outcome: Any = result.final_output
        except Exception as exc:
            outcome = exc
        return {"outcome": outcome, "retries": turn.retries, "requests": fake.requests}
    finally:
        notices.current.reset(token)
        await provider.aclose()  # type: ignore[attr-defined]
        fake.close()


def _failure(outcome: Any) -> Any:
    if not isinstance(outcome, openai.APIStatusError):
        return outcome
    described = describe_openai_failure(outcome)
    return (type(outcome), outcome.status_code, outcome.body, described.kind if described else None)


@pytest.mark.parametrize(
    ("script", "api_key"),
    [
        ([Reply("fine")], "wrong-key"),  # 401
        ([Recorded(b'{"error": {"message": "slow down"}}', status=429, headers=(("retry-after", "0.01"),))] * 2, None),
        (
            [
                Recorded(b'{"error": {"message": "slow down"}}', status=429, headers=(("retry-after-ms", "20"),)),
                Reply("ok"),
            ],
            None,
        ),
        ([500, Reply("back")], None),
        ([500, 503], None),
        ([400], None),
    ],
    ids=["401", "429-twice", "429-then-ok", "500-then-ok", "500-503", "400"],
)
async def test_chat_completions_failures_and_retries_are_the_stock_clients(
    script: list[Any], api_key: str | None
) -> None:
    stock = await _chat_turn("openai", list(script), api_key=api_key)
    lean = await _chat_turn("lean", list(script), api_key=api_key)
    assert _failure(lean["outcome"]) == _failure(stock["outcome"])
    assert [dict(r, wait=round(r["wait"], 2)) for r in lean["retries"] if r["status"] == 429] == [
        dict(r, wait=round(r["wait"], 2)) for r in stock["retries"] if r["status"] == 429
    ]
    assert [(r["attempt"], r["of"], r["status"]) for r in lean["retries"]] == [
        (r["attempt"], r["of"], r["status"]) for r in stock["retries"]
    ]
    assert lean["requests"] == stock["requests"]


async def test_a_non_streamed_chat_completion_is_the_same_on_both_transports() -> None:
    fake = FakeModelServer([Reply("First answer."), Reply("First answer.")])
    try:
        results = []
        for transport in ("openai", "lean"):
            provider, name = build_model_provider(
                ProviderConfig(
                    provider="openai-compatible",
                    model="gpt-5-mini",
                    api_key=fake.api_key,
                    base_url=fake.base_url,
                    transport=transport,
                )
            )
            result = await Runner.run(
                Agent(name="a", instructions="i"), "hello", run_config=RunConfig(model_provider=provider, model=name)
            )
            usage = result.context_wrapper.usage
            results.append(
                (result.final_output, usage.input_tokens > 0, usage.requests, result.raw_responses[0].output)
            )
            await provider.aclose()  # type: ignore[attr-defined]
        assert results[0][:3] == results[1][:3] == ("First answer.", True, 1)
        assert repr(results[0][3]) == repr(results[1][3])
        assert fake.requests[0] == fake.requests[1] and fake.paths == ["/v1/chat/completions"] * 2
    finally:
        fake.close()


class _Part(pydantic.BaseModel):
    type: str
    text: str | None = None


@pytest.mark.parametrize(
    "create_kwargs",
    [
        {"model": "m", "input": [{"role": "user", "content": "hi ✓"}], "stream": True, "temperature": 0.5},
        {"model": "m", "tools": [{"type": "function", "parameters": {"a": [1, 2.5, None, True]}}], "top_p": Omit()},
        {"model": "m", "input": [_Part(type="input_text", text="x"), (1, 2)], "extra_headers": {"X": "y"}},
        {"model": "m", "reasoning": {"effort": "low", "summary": Omit()}},  # an Omit below the top: dropped
        {"model": "m", "extra_body": {"service_tier": "flex"}, "extra_query": None, "timeout": 3},
    ],
    ids=["plain", "omit-at-top", "pydantic-and-tuple", "omit-below", "extra-body"],
)
def test_the_encoded_body_is_the_walked_one(create_kwargs: dict[str, Any]) -> None:
    assert encoded_body(create_kwargs) == msgspec.json.encode(request_body(create_kwargs))
