"""The lean transport's direct path (`Transport.send` straight to httpcore's pool, without httpx's
client) against real loopback servers: the bytes it sends, the answers, failures and retries it
makes of what comes back, all as httpx's client path (`Transport` given httpx's own transport, the
path a configured proxy takes) makes them; and a configured proxy still used."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import openai
import pytest

from app.agents.chatkit import notices
from app.agents.transport import DirectAnswer, Transport, json_body
from tests.support.loopback import serving

# What each connection of the scripted server answers, request after request (kept alive).
Script = list[bytes]


class Recorder:
    def __init__(self, script: Script) -> None:
        self.script = list(script)
        self.heads: list[bytes] = []  # each request's head as it came, byte for byte
        self.bodies: list[bytes] = []

    async def handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while self.script:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            self.heads.append(head)
            self.bodies.append(await reader.readexactly(length))
            writer.write(self.script.pop(0))
            await writer.drain()


def _answer(status: str, body: bytes, *headers: bytes) -> bytes:
    head = b"".join(h + b"\r\n" for h in headers)
    return b"HTTP/1.1 %s\r\n%sContent-Length: %d\r\n\r\n%s" % (status.encode(), head, len(body), body)


OK = _answer("200 OK", b'{"ok": true}', b"Content-Type: application/json", b"x-request-id: req_ok")
ERROR_BODY = b'{"error": {"message": "nope", "type": "server_error", "code": "c"}}'


@asynccontextmanager
async def transports(port: int) -> AsyncIterator[dict[str, Transport]]:
    """The direct path and httpx's client path, to the same server."""
    made = {
        "direct": Transport(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", timeout_seconds=5, max_retries=1),
        "httpx": Transport(
            base_url=f"http://127.0.0.1:{port}/v1",
            api_key="k",
            timeout_seconds=5,
            max_retries=1,
            http_transport=httpx.AsyncHTTPTransport(),
        ),
    }
    try:
        yield made
    finally:
        for transport in made.values():
            await transport.aclose()


class _Turn:
    def __init__(self) -> None:
        self.retries: list[tuple[int, int, int | None]] = []

    async def retrying(self, *, attempt: int, of: int, wait: float, status: int | None) -> None:
        self.retries.append((attempt, of, status))


async def _exchange(transport: Transport, stream: bool, kwargs: dict[str, Any]) -> tuple[Any, _Turn]:
    turn = _Turn()
    token = notices.current.set(turn)  # type: ignore[arg-type]
    try:
        answer = await transport.send("/responses", kwargs, stream=stream)
        return await json_body(answer), turn
    except openai.APIError as failure:
        return failure, turn
    finally:
        notices.current.reset(token)


def _described(outcome: Any, port: int) -> Any:
    """What a caller can read of an outcome: the JSON, or the exception and what it carries."""
    if not isinstance(outcome, openai.APIError):
        return outcome
    described: dict[str, Any] = {
        "type": type(outcome),
        "message": outcome.message,
        "body": outcome.body,
        "method": outcome.request.method,
        "url": str(outcome.request.url).replace(str(port), "PORT"),
        "request_headers": [(k, v.replace(str(port).encode(), b"PORT")) for k, v in outcome.request.headers.raw],
        "cause": type(outcome.__cause__),
    }
    if isinstance(outcome, openai.APIStatusError):
        described |= {
            "status": outcome.status_code,
            "request_id": outcome.request_id,
            "headers": outcome.response.headers.raw,
            "content": outcome.response.content,
        }
    return described


@pytest.mark.parametrize(
    ("script", "exchanges"),
    [
        ([OK, OK], 2),
        ([_answer("429 Too Many Requests", ERROR_BODY, b"retry-after-ms: 1", b"x-request-id: req_1"), OK], 1),
        ([_answer("500 Internal Server Error", ERROR_BODY, b"x-request-id: req_1")] * 2, 1),
        ([_answer("401 Unauthorized", ERROR_BODY, b"x-request-id: req_1")], 1),
        ([_answer("400 Bad Request", b"not json", b"x-request-id: req_1")], 1),
        ([_answer("200 OK", gzip.compress(b'{"zipped": 1}'), b"Content-Encoding: gzip"), OK], 2),
        ([_answer("200 OK", b"{}", b"Set-Cookie: __cf_bm=abc; Path=/; HttpOnly"), OK, OK], 3),
    ],
    ids=["ok", "429-then-ok", "500-twice", "401", "400-not-json", "gzip", "cookie-kept"],
)
async def test_the_direct_path_sends_and_answers_as_httpxs_client_does(script: Script, exchanges: int) -> None:
    """The same request bytes (headers in httpx's order: Host, its defaults merged with ours, a
    Cookie its jar keeps, Content-Length), the same answers, exceptions, retries and notices."""
    kwargs = {"model": "m", "input": [], "extra_headers": {"user-agent": "Agents/Python 0.24"}}
    seen: dict[str, list[Any]] = {}
    for path in ("direct", "httpx"):
        recorder = Recorder(script)
        async with serving(recorder.handler) as served, transports(served.port) as made:
            transport = made[path]
            outcomes = []
            for n in range(exchanges):
                outcome, turn = await _exchange(transport, n % 2 == 1, kwargs)
                outcomes.append((_described(outcome, served.port), turn.retries))
            if path == "direct":
                assert transport._direct is not None  # (the path under test)
        heads = [head.replace(str(served.port).encode(), b"PORT") for head in recorder.heads]
        seen[path] = [heads, recorder.bodies, outcomes]
    assert seen["direct"] == seen["httpx"]
    assert len(seen["direct"][0]) == len(script)  # every answer asked for


async def test_the_direct_path_writes_httpxs_log_line_when_it_is_seen(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder([OK])
    async with serving(recorder.handler) as served, transports(served.port) as made:
        with caplog.at_level(logging.INFO, logger="httpx"):
            answer = await made["direct"].send("/responses", {"model": "m"}, stream=False)
            assert isinstance(answer, DirectAnswer)
            assert await json_body(answer) == {"ok": True}
    assert [r.getMessage() for r in caplog.records if r.name == "httpx"] == [
        f'HTTP Request: POST http://127.0.0.1:{served.port}/v1/responses "HTTP/1.1 200 OK"'
    ]


async def test_a_configured_proxy_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """With HTTP_PROXY set the request goes to the proxy (httpx's client path), not to the host."""
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    recorder = Recorder([OK])
    async with serving(recorder.handler) as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        transport = Transport(base_url="http://model.test/v1", api_key="k", timeout_seconds=5, max_retries=0)
        try:
            answer = await transport.send("/responses", {"model": "m"}, stream=False)
            assert await json_body(answer) == {"ok": True}
            assert transport._direct is None
        finally:
            await transport.aclose()
    assert recorder.heads[0].startswith(b"POST http://model.test/v1/responses HTTP/1.1\r\n")
    assert json.loads(recorder.bodies[0]) == {"model": "m"}
