"""Request-body deadlines: a body that stops arriving, or takes too long in all, is answered 408
and its connection closed.

Granian (2.8) times out reading request *headers* (`HTTP_HEADER_READ_TIMEOUT_SECONDS`, passed by
`app.ops.serving`) but not bodies: a client that sends headers and then stalls would hold a socket,
a worker task and a buffer forever. This middleware bounds each wait for the next body chunk
(`HTTP_BODY_READ_TIMEOUT_SECONDS`) and the whole body (`HTTP_BODY_TOTAL_TIMEOUT_SECONDS`, counted
from the app's first read of it): a byte every few seconds meets the first bound for ever.

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
SLOW_BODY_DETAIL = (
    "The request body did not arrive in full in the time this server allows for one body; the connection was "
    "closed. Send it again over a faster connection, or send less."
)


def timed_receive(receive: Receive, timeout: float, total_timeout: float) -> Receive:
    """`receive`, but an incomplete body that is silent for `timeout` seconds, or still incomplete
    `total_timeout` seconds after its first read, raises `RequestTimeout`."""
    body_done = False
    deadline: float | None = None

    async def receive_with_timeout() -> ReceiveMessage:
        nonlocal body_done, deadline
        if body_done:
            return await receive()
        now = asyncio.get_running_loop().time()
        if deadline is None:
            deadline = now + total_timeout
        wait = min(timeout, deadline - now)
        if wait <= 0:
            raise RequestTimeout(SLOW_BODY_DETAIL)
        try:
            async with asyncio.timeout(wait):
                message = await receive()
        except TimeoutError:
            late = asyncio.get_running_loop().time() >= deadline
            raise RequestTimeout(SLOW_BODY_DETAIL if late else STALLED_BODY_DETAIL) from None
        if message["type"] != "http.request" or not message.get("more_body", False):
            body_done = True
        return message

    return receive_with_timeout


def body_read_timeout_middleware(timeout: float, total_timeout: float) -> Callable[[ASGIApp], ASGIApp]:
    """A Litestar middleware factory: every HTTP request's body is read with `timed_receive`."""

    def wrap(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            await app(scope, timed_receive(receive, timeout, total_timeout), send)

        return middleware

    return wrap
