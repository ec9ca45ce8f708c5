"""The lean transport's network layer: httpcore's connection pool over plain asyncio sockets.

Why: a streamed text delta's largest cost was the HTTP client's socket read (issue 30's profile,
~0.12 of ~0.33 ms), and much of that is httpcore's default AnyIO backend rather than HTTP: an
`anyio.fail_after` scope and anyio's stream wrappers around every read. httpcore lets a caller
bring its own backend (`AsyncNetworkBackend`, public API), so this module gives it one built on an
`asyncio.Protocol`: a read of bytes already received costs no timer at all, and a read that waits
arms one `call_later`. HTTP itself (h11, httpcore's pool, keep-alive) is unchanged. httpx sits in
front (`AsyncioTransport`) for a client that wants it; the lean transport sends to the pool directly
(`transport.Transport`), its requests and exceptions still httpx's.

Failures are httpcore's exceptions exactly where its own backends raise them (timeouts as
Connect/Read/WriteTimeout, socket and TLS errors as ConnectError/ReadError/WriteError), and then
httpx's, as `httpx.AsyncHTTPTransport` maps them.
"""

from __future__ import annotations

import asyncio
import select
import ssl
import typing
import urllib.request
from collections import deque
from collections.abc import AsyncIterator, Iterable
from typing import Any, Final

import httpcore
import httpx

# httpcore's `SOCKET_OPTION` (not exported).
SocketOption = tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]

# Stop reading from the socket while this much is received and not yet read (asyncio streams' 64 KiB
# limit, doubled, as theirs is): a slow reader holds the sender back instead of filling memory.
HIGH_WATER: Final = 128 * 1024
# As anyio's `connect_tcp`: the next address is tried when one has not connected within 250 ms.
HAPPY_EYEBALLS_DELAY: Final = 0.25


class _Protocol(asyncio.Protocol):
    """What the event loop received for one connection, and who waits for more."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.eof = False
        self.lost: Exception | None = None  # the error that ended the connection, if one did
        self.reading_paused = False
        self.writing_paused = False
        self.waiter: asyncio.Future[None] | None = None  # a read waiting for data or the end
        self.drain: asyncio.Future[None] | None = None  # a write waiting for the buffer to empty

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > HIGH_WATER and not self.reading_paused and self.transport is not None:
            self.transport.pause_reading()
            self.reading_paused = True
        _wake(self.waiter)

    def eof_received(self) -> bool:
        self.eof = True
        _wake(self.waiter)
        return False  # the transport closes itself: HTTP/1.1 never half-closes a response

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.lost = exc
        _wake(self.waiter)
        _wake(self.drain)

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        _wake(self.drain)


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


async def _wait(waiter: asyncio.Future[None], timeout: float | None) -> None:
    """`waiter`, or TimeoutError after `timeout` seconds: one timer handle, not a timeout scope."""
    if timeout is None:
        await waiter
        return
    timer = asyncio.get_running_loop().call_later(timeout, _expire, waiter)
    try:
        await waiter
    finally:
        timer.cancel()


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One TCP (or TLS, or Unix socket) connection, as httpcore's connections read and write it."""

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self._protocol
        if not protocol.chunks and not protocol.eof:
            protocol.waiter = asyncio.get_running_loop().create_future()
            try:
                await _wait(protocol.waiter, timeout)
            except TimeoutError as exc:
                raise httpcore.ReadTimeout(exc) from exc
            finally:
                protocol.waiter = None
        chunks = protocol.chunks
        if not chunks:
            if protocol.lost is not None:  # reset, or a TLS error: anyio's BrokenResourceError
                raise httpcore.ReadError(protocol.lost) from protocol.lost
            return b""  # the end of the stream, as httpcore's backends answer it
        data = chunks.popleft()
        if chunks and len(data) < max_bytes:
            # Several arrivals since the last read: one read takes them (as a socket's recv would).
            while chunks and len(data) + len(chunks[0]) <= max_bytes:
                data += chunks.popleft()
        if len(data) > max_bytes:
            chunks.appendleft(data[max_bytes:])
            data = data[:max_bytes]
        protocol.buffered -= len(data)
        if protocol.reading_paused and protocol.buffered <= HIGH_WATER // 2:
            protocol.reading_paused = False
            self._transport.resume_reading()
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        protocol = self._protocol
        if protocol.lost is not None or self._transport.is_closing():
            raise httpcore.WriteError(protocol.lost or "the connection is closed")
        self._transport.write(buffer)
        if not protocol.writing_paused:
            return
        protocol.drain = asyncio.get_running_loop().create_future()
        try:
            await _wait(protocol.drain, timeout)
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(exc) from exc
        finally:
            protocol.drain = None
        if protocol.lost is not None:
            raise httpcore.WriteError(protocol.lost) from protocol.lost

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(
                    self._transport, self._protocol, ssl_context, server_hostname=server_hostname
                )
        except TimeoutError as exc:
            self._transport.close()
            raise httpcore.ConnectTimeout(exc) from exc
        except (OSError, ssl.SSLError) as exc:  # ssl.SSLError is an OSError; named for the reader
            self._transport.close()
            raise httpcore.ConnectError(exc) from exc
        if transport is None:  # the connection closed during the handshake
            self._transport.close()
            raise httpcore.ConnectError("the connection closed during the TLS handshake")
        # The TLS transport now feeds the protocol: flow control must pause and resume that one
        # (asyncio does not call `connection_made` again). Pausing the TCP transport underneath
        # and resuming the TLS one left a reader that fell behind waiting forever.
        self._protocol.transport = transport
        return AsyncioStream(transport, self._protocol)

    def get_extra_info(self, info: str) -> Any:
        transport = self._transport
        if info == "ssl_object":
            return transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return transport.get_extra_info("sockname")
        if info == "server_addr":
            return transport.get_extra_info("peername")
        if info == "socket":
            return transport.get_extra_info("socket")
        if info == "is_readable":
            # httpcore asks this of an idle keep-alive connection: readable means the server closed
            # it (or sent something unasked), so it must not be reused. What the loop has already
            # received counts, and so does what the socket holds that the loop has not read yet.
            protocol = self._protocol
            if protocol.eof or protocol.chunks or transport.is_closing():
                return True
            sock = transport.get_extra_info("socket")
            if sock is None or sock.fileno() < 0:
                return True
            poller = select.poll()  # not select(): a descriptor past 1023 is normal in a busy worker
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend on the running asyncio loop."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        local = (local_address, 0) if local_address is not None else None
        return await _connect(
            loop.create_connection(_Protocol, host, port, local_addr=local, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY),
            timeout,
            socket_options,
        )  # asyncio's TCP sockets have TCP_NODELAY set already

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[SocketOption] | None = None
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        return await _connect(loop.create_unix_connection(_Protocol, path), timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def _connect(
    connecting: typing.Coroutine[Any, Any, tuple[asyncio.BaseTransport, _Protocol]],
    timeout: float | None,
    socket_options: Iterable[SocketOption] | None,
) -> AsyncioStream:
    try:
        async with asyncio.timeout(timeout):
            transport, protocol = await connecting
    except TimeoutError as exc:
        raise httpcore.ConnectTimeout(exc) from exc
    except OSError as exc:
        raise httpcore.ConnectError(exc) from exc
    stream = AsyncioStream(typing.cast(asyncio.Transport, transport), protocol)
    try:
        sock = transport.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
    except OSError as exc:
        transport.close()
        raise httpcore.ConnectError(exc) from exc
    return stream


def proxied() -> bool:
    """Whether the environment names an HTTP proxy (HTTP_PROXY, HTTPS_PROXY or ALL_PROXY, any case),
    as httpx reads it: then httpx's own transport is used, which knows proxies and NO_PROXY."""
    proxies = urllib.request.getproxies()
    return any(proxies.get(scheme) for scheme in ("http", "https", "all"))


# httpcore's exceptions to httpx's, as `httpx.AsyncHTTPTransport` maps them (the most specific
# match: an exception's own class first, then its bases).
_HTTPX_ERRORS: Final[dict[type[Exception], type[httpx.HTTPError]]] = {
    httpcore.ConnectTimeout: httpx.ConnectTimeout,
    httpcore.ReadTimeout: httpx.ReadTimeout,
    httpcore.WriteTimeout: httpx.WriteTimeout,
    httpcore.PoolTimeout: httpx.PoolTimeout,
    httpcore.TimeoutException: httpx.TimeoutException,
    httpcore.ConnectError: httpx.ConnectError,
    httpcore.ReadError: httpx.ReadError,
    httpcore.WriteError: httpx.WriteError,
    httpcore.NetworkError: httpx.NetworkError,
    httpcore.ProxyError: httpx.ProxyError,
    httpcore.UnsupportedProtocol: httpx.UnsupportedProtocol,
    httpcore.LocalProtocolError: httpx.LocalProtocolError,
    httpcore.RemoteProtocolError: httpx.RemoteProtocolError,
    httpcore.ProtocolError: httpx.ProtocolError,
}


def httpx_error(exc: Exception) -> httpx.HTTPError | None:
    """httpx's exception for an httpcore one (None for anything else), with the same message."""
    for kind in type(exc).__mro__:
        mapped = _HTTPX_ERRORS.get(kind)
        if mapped is not None:
            return mapped(str(exc))
    return None


class HttpxBody(httpx.AsyncByteStream):
    """httpcore's response body as httpx's response reads it, httpcore's failures named as httpx's."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream  # httpcore's response body: an async iterable of bytes with `aclose`

    async def __aiter__(self) -> AsyncIterator[bytes]:
        # One try around the whole loop (not a context manager entered per chunk).
        try:
            async for part in self._stream:
                yield part
        except Exception as exc:
            mapped = httpx_error(exc)
            if mapped is None:
                raise
            raise mapped from exc

    async def aclose(self) -> None:
        await self._stream.aclose()


class AsyncioTransport(httpx.AsyncBaseTransport):
    """httpx's transport for direct connections (`httpx.AsyncHTTPTransport` without a proxy, HTTP/1.1),
    its pool's sockets ours (`AsyncioBackend`). TLS is httpx's default context (certifi's roots, or
    SSL_CERT_FILE / SSL_CERT_DIR)."""

    def __init__(self, limits: httpx.Limits, ssl_context: ssl.SSLContext | None = None) -> None:
        # (Public: the lean transport sends to it directly, without httpx's client; `transport.Transport`.)
        self.pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=AsyncioBackend(),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
            headers=request.headers.raw,
            content=typing.cast(httpx.AsyncByteStream, request.stream),
            extensions=request.extensions,
        )
        try:
            response = await self.pool.handle_async_request(core_request)
        except Exception as exc:
            mapped = httpx_error(exc)
            if mapped is None:
                raise
            raise mapped from exc
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=HttpxBody(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.pool.aclose()
