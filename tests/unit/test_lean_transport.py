"""The lean model transport (`app.agents.transport`) on its own: its SSE parser, the openai
client's retry rule and exceptions, the turn's retry notice, and non-streamed answers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import openai
import pytest
from agents import Agent, ModelSettings, RunConfig, Runner
from openai.types.responses import ResponseTextDeltaEvent

from app.agents.chatkit import notices
from app.agents.offline.planner import Reply
from app.agents.providers import ProviderConfig, build_model_provider
from app.agents.transport import LeanResponsesModel, Transport, retry_wait, sse_data, stream_event
from app.ops.openai_failures import describe_openai_failure
from tests.support.fake_model_server import FakeModelServer


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
