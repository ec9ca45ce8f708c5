"""`POST /chatkit`: the self-hosted ChatKit protocol, unchanged.

Everything that can be wrong with a request (body, type, fields, ownership, size) is answered
before a stream opens, as problem+json with a 4xx status. Once a stream is open, failures are
ChatKit `error` events and the stream ends cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from chatkit.server import StreamingResult
from litestar import Controller, Request, Response, post
from litestar.response import Stream

from app.agents.server import ProtocolError, TaskPilotChatKitServer
from app.auth import RequestContext
from app.contracts import ChatKitRequest
from app.errors import problem_response

KEEPALIVE_FRAME = b": keepalive\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def with_keepalive(frames: AsyncIterator[bytes], interval: float) -> AsyncIterator[bytes]:
    """Yield `frames`, inserting an SSE comment whenever nothing was sent for `interval` seconds.

    One producer task drives the whole ChatKit generator (it sets and resets context variables,
    which must happen in one task) into a small queue; this side waits on the queue with a
    timeout, so a long tool call never blocks the keepalive. When the client goes away, the
    producer is cancelled, and ChatKit's cancellation handling persists the partial answer.
    """
    queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=64)

    async def produce() -> None:
        try:
            async for frame in frames:
                await queue.put(frame)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # surfaced to the consumer, which re-raises it
            await queue.put(exc)
            return
        await queue.put(None)

    producer = asyncio.create_task(produce())
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), timeout=interval)
            except TimeoutError:
                yield KEEPALIVE_FRAME
                continue
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        if not producer.done():
            producer.cancel()
            with contextlib.suppress(BaseException):
                await producer


class ChatKitController(Controller):
    tags = ["ChatKit"]

    @post(
        "/chatkit",
        status_code=200,
        operation_id="ChatKitProtocol",
        summary="Self-hosted ChatKit protocol endpoint",
        description=(
            "Point a ChatKit front end's `api.url` here. Streaming requests (threads.create, "
            "threads.add_user_message, threads.custom_action, ...) answer `text/event-stream` with "
            "`data: <ChatKit event JSON>` frames and `: keepalive` comments while idle; the others "
            "answer `application/json`. Invalid requests answer problem+json before any stream opens."
        ),
        response_description="A ChatKit event stream (text/event-stream) or a ChatKit JSON object",
    )
    async def chatkit(
        self,
        request: Request[Any, Any, Any],
        data: ChatKitRequest,
        context: RequestContext,
        chatkit_server: TaskPilotChatKitServer,
    ) -> Response[bytes] | Stream:
        result = await chatkit_server.process(await request.body(), context)
        if isinstance(result, StreamingResult):
            return Stream(
                with_keepalive(result.json_events, chatkit_server.keepalive_seconds),
                media_type="text/event-stream",
                headers=SSE_HEADERS,
            )
        return Response(content=result.json, media_type="application/json", status_code=200)


def handle_protocol_error(request: Request[Any, Any, Any], exc: ProtocolError) -> Response[bytes]:
    """A ChatKit request refused before its stream opened: problem+json naming what to fix."""
    return problem_response(request, exc.status, exc.detail, errors=exc.errors or None)
