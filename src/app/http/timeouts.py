"""The request-body read timeout: a body that stops arriving is answered 408 and its connection closed.

Granian (2.8) times out reading request *headers* (`HTTP_HEADER_READ_TIMEOUT_SECONDS`, passed by
`app.ops.serving`) but not bodies: a client that sends headers and then stalls would hold a socket,
a worker task and a buffer forever. This middleware bounds each wait for the next body chunk.

It only times the body. Once the last chunk has arrived, `receive()` is what a streaming response
awaits to learn that the client went away, and an SSE stream may legitimately wait on it for as
long as the stream lasts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

from app.core.errors import RequestTimeout

STALLED_BODY_DETAIL = (
    "The request body stopped arriving before it was complete; the connection was closed. Send the whole body again."
)


def timed_receive(receive: Receive, timeout: float) -> Receive:
    """`receive`, but an incomplete body that is silent for `timeout` seconds raises `RequestTimeout`."""
    body_done = False

    async def receive_with_timeout() -> ReceiveMessage:
        nonlocal body_done
        if body_done:
            return await receive()
        try:
            async with asyncio.timeout(timeout):
                message = await receive()
        except TimeoutError:
            raise RequestTimeout(STALLED_BODY_DETAIL) from None
        if message["type"] != "http.request" or not message.get("more_body", False):
            body_done = True
        return message

    return receive_with_timeout


def body_read_timeout_middleware(timeout: float) -> Callable[[ASGIApp], ASGIApp]:
    """A Litestar middleware factory: every HTTP request's body is read with `timed_receive(timeout)`."""

    def wrap(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            await app(scope, timed_receive(receive, timeout), send)

        return middleware

    return wrap
