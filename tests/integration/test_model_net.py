"""The lean transport's sockets (`app.agents.net`) against real loopback servers: what httpcore's own
backend does (bodies, EOF, keep-alive, TLS) and its failures, as httpx and then the openai package
name them."""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from agents import ModelSettings

from app.agents.net import AsyncioStream, AsyncioTransport
from app.agents.transport import LIMITS, LeanResponsesModel, Transport
from tests.support.loopback import serving
from tests.support.tls import self_signed


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request's body (its head read and dropped)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return await reader.readexactly(length)


def answer(body: bytes, *, close: bool = False) -> bytes:
    connection = b"Connection: close\r\n" if close else b""
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), connection, body)


def client(ssl_context: ssl.SSLContext | None = None, timeout: float = 5) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=AsyncioTransport(LIMITS, ssl_context), timeout=timeout)


async def test_a_streamed_body_comes_in_its_reads_and_ends_where_the_server_closes() -> None:
    parts = [b"data: one\n\n", b"data: two\n\n", b"x" * 200_000]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served.bodies.append(await read_request(reader))
        # No length: the body is whatever comes before the server closes (read until EOF).
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
        for part in parts:
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.01)

    async with (
        serving(handler) as served,
        client() as http,
        http.stream("POST", f"http://127.0.0.1:{served.port}/v1", content=b"hello" * 1000) as response,
    ):
        assert response.status_code == 200
        chunks = [chunk async for chunk in response.aiter_raw()]
    assert served.bodies == [b"hello" * 1000]
    assert b"".join(chunks) == b"".join(parts)
    assert chunks[0] == parts[0]  # each arrival handed on as it comes, not held for more


async def test_requests_one_after_another_share_one_kept_alive_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            body = await read_request(reader)
            writer.write(answer(b"echo " + body))
            await writer.drain()

    async with serving(handler) as served, client() as http:
        for n in range(3):
            response = await http.post(f"http://127.0.0.1:{served.port}/", content=str(n).encode())
            assert response.content == f"echo {n}".encode()
            assert isinstance(response.extensions["network_stream"], AsyncioStream)
        assert served.connections == 1


async def test_a_kept_alive_connection_the_server_closed_is_not_reused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"ok"))  # no "Connection: close", then closed all the same
        await writer.drain()

    async with serving(handler) as served, client() as http:
        for _ in range(2):
            response = await http.get(f"http://127.0.0.1:{served.port}/")
            assert response.content == b"ok"
            await asyncio.sleep(0.05)  # the close arrives while the connection is idle in the pool
        assert served.connections == 2


async def test_tls_to_a_server_whose_certificate_is_trusted_and_not_to_one_that_is_not(tmp_path: Path) -> None:
    cert, key = self_signed("localhost", tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(answer(b"secret"))
            await writer.drain()

    trusting = httpx.create_ssl_context(verify=ssl.create_default_context(cafile=str(cert)))
    async with serving(handler, server_context) as served, client(trusting) as http:
        for _ in range(2):
            response = await http.get(f"https://localhost:{served.port}/")
            assert response.content == b"secret"
        stream = response.extensions["network_stream"]
        assert stream.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
        assert stream.get_extra_info("server_addr")[1] == served.port
        assert stream.get_extra_info("is_readable") is False
        assert served.connections == 1
        async with client() as untrusting:  # httpx's default roots: a self-signed certificate fails
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await untrusting.get(f"https://localhost:{served.port}/")


def _transport(port: int, timeout: float = 5) -> Transport:
    return Transport(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", timeout_seconds=timeout, max_retries=0)


async def test_a_refused_connection_is_the_openai_packages_connection_error() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # closed again: nothing listens there
    transport = _transport(port)
    try:
        assert isinstance(transport.client._transport, AsyncioTransport)
        with pytest.raises(openai.APIConnectionError) as raised:
            await transport.send("/responses", {"model": "m"}, stream=True)
        assert type(raised.value) is openai.APIConnectionError
        assert isinstance(raised.value.__cause__, httpx.ConnectError)
    finally:
        await transport.aclose()


async def _streamed(port: int, timeout: float = 5) -> list[Any]:
    """The events of a streamed model response read through the lean transport from `port`."""
    transport = _transport(port, timeout)
    model = LeanResponsesModel("m", openai.AsyncOpenAI(api_key="k", base_url=transport.base_url), transport)
    try:
        stream = await model._fetch_response(None, "hi", ModelSettings(), [], None, [], stream=True)
        return [event async for event in stream]  # type: ignore[union-attr]
    finally:
        await transport.aclose()


HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
DELTA = b'data: {"type":"response.output_text.delta","item_id":"m","output_index":0,"content_index":0,"delta":"hi"}\n\n'


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def test_a_stream_that_goes_silent_is_the_openai_packages_timeout() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(HEAD + _chunk(DELTA))
        await writer.drain()
        await asyncio.sleep(30)  # then nothing

    async with serving(handler) as served:
        with pytest.raises(openai.APITimeoutError) as raised:
            await _streamed(served.port, timeout=0.3)
    assert isinstance(raised.value.__cause__, httpx.ReadTimeout)


@pytest.mark.parametrize("ending", ["closed", "reset"])
async def test_a_server_that_breaks_off_mid_stream_is_the_openai_packages_connection_error(ending: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(HEAD + _chunk(DELTA) + _chunk(DELTA[:20]))
        await writer.drain()
        await asyncio.sleep(0.05)
        if ending == "reset":  # an RST, not a FIN: the client's next read fails rather than ends
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    async with serving(handler) as served:
        with pytest.raises(openai.APIConnectionError) as raised:
            await _streamed(served.port)
    assert type(raised.value) is openai.APIConnectionError
    expected = httpx.ReadError if ending == "reset" else httpx.RemoteProtocolError  # h11: a body cut short
    assert isinstance(raised.value.__cause__, expected)


async def test_a_request_the_server_does_not_read_is_a_write_timeout() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)  # reads nothing: the client's send buffer fills

    async with serving(handler) as served, client(timeout=0.3) as http:
        with pytest.raises(httpx.WriteTimeout):
            await http.post(f"http://127.0.0.1:{served.port}/", content=b"x" * (64 * 1024 * 1024))


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
async def test_a_reader_that_falls_behind_pauses_the_socket_and_then_gets_every_byte(tls: bool, tmp_path: Path) -> None:
    body = bytes(range(256)) * 4096  # 1 MiB: far past the high-water mark while nobody reads

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(body))
        await writer.drain()

    server_context, trusting = None, None
    if tls:
        cert, key = self_signed("localhost", tmp_path)
        server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_context.load_cert_chain(cert, key)
        trusting = httpx.create_ssl_context(verify=ssl.create_default_context(cafile=str(cert)))
    host = "localhost" if tls else "127.0.0.1"
    async with (
        serving(handler, server_context) as served,
        client(trusting, timeout=5) as http,
        http.stream("GET", f"{'https' if tls else 'http'}://{host}:{served.port}/") as response,
    ):
        stream = response.extensions["network_stream"]
        protocol = stream._protocol
        while not protocol.reading_paused:  # the socket is paused once the unread bytes pile up
            await asyncio.sleep(0.01)
        received = b"".join([chunk async for chunk in response.aiter_raw()])
    assert received == body
