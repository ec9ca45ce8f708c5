"""Server-Sent Events transport for ChatKit streams: the frames the library writes, sent as they
come, with `: keepalive` comments while idle, the admission slot held while the stream runs, and an
`error` frame (not a cut connection) when a shutdown or a failure ends a stream that has opened.

The ChatKit library already frames its events (`data: <json>\n\n`); nothing here re-wraps them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from app.ops import metrics
from app.ops.admission import StreamSlot
from app.ops.drain import Drain

log = logging.getLogger("app.chatkit")

KEEPALIVE_FRAME = b": keepalive\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


RESTART_FRAME = (
    b'data: {"type":"error","code":"custom","message":"The server is restarting. Your message and the '
    b'partial answer are saved; send again to continue.","allow_retry":true}\n\n'
)
FAILURE_FRAME = (
    b'data: {"type":"error","code":"custom","message":"Something went wrong while answering; send your '
    b'message again.","allow_retry":true}\n\n'
)
_CUT = object()
_NOTHING = object()


async def with_keepalive(
    frames: AsyncIterator[bytes], interval: float, drain: Drain | None = None, slot: StreamSlot | None = None
) -> AsyncIterator[bytes]:
    """Yield `frames`, inserting an SSE comment whenever nothing was sent for `interval` seconds.

    One producer task drives the whole ChatKit generator (it sets and resets context variables,
    which must happen in one task) into a small queue; this side waits on the queue with a
    timeout, so a long tool call never blocks the keepalive. When the client goes away, the
    producer is cancelled, and ChatKit's cancellation handling persists the partial answer.
    The same happens when a shutdown cuts the stream (`drain`), and the client is told why.
    The turn's admission `slot` is released when the producer has finished, whichever way.
    """
    queue: asyncio.Queue[Any] = asyncio.Queue()
    started = time.perf_counter()
    first = True
    sent = False

    async def produce() -> None:
        try:
            async for frame in frames:
                await queue.put(frame)
        except asyncio.CancelledError:
            queue.put_nowait(_CUT)
            raise
        except BaseException as exc:  # surfaced to the consumer, which ends the stream with an error event
            await queue.put(exc)
            return
        await queue.put(None)

    producer = asyncio.create_task(produce())
    if slot is not None:
        producer.add_done_callback(lambda _: slot.release())
    if drain is not None:
        drain.track(producer)
    metrics.ACTIVE_STREAMS.inc()
    held: Any = _NOTHING  # what ended a run of ready frames, handled next
    try:
        while True:
            if held is not _NOTHING:
                item, held = held, _NOTHING
            elif queue.empty():
                try:
                    # Not `wait_for`, which runs the wait in a task of its own, once per frame.
                    async with asyncio.timeout(interval):
                        item = await queue.get()
                except TimeoutError:
                    sent = True
                    yield KEEPALIVE_FRAME
                    continue
            else:
                item = queue.get_nowait()
            if isinstance(item, bytes):
                # Frames that are ready together go out as one chunk: one send through the
                # middleware and the server instead of one per delta. The client's SSE parser
                # sees exactly the same frames.
                if not queue.empty():
                    ready = [item]
                    while not queue.empty():
                        following = queue.get_nowait()
                        if not isinstance(following, bytes):
                            held = following
                            break
                        ready.append(following)
                    item = b"".join(ready)
                if first:
                    metrics.TIME_TO_FIRST_EVENT.observe(time.perf_counter() - started)
                    first = False
                sent = True
                yield item
                continue
            if item is None:
                return
            if item is _CUT:
                yield RESTART_FRAME
                return
            if not sent:
                raise item  # nothing sent yet: `started` lets the central mapping answer (503)
            # Past the first frame the status line is sent: raising would cut the connection
            # with no word to the client. The server above already turns its failures into an
            # `error` event; this catches whatever still escapes (serialising, the library).
            log.warning("stream failed after it opened", extra={"fields": {"error": type(item).__name__}})
            yield FAILURE_FRAME
            return
    finally:
        metrics.ACTIVE_STREAMS.dec()
        if not producer.done():
            producer.cancel()
            # Shielded: were this side cancelled again while it waits (the server ending the
            # response of a client that left), a plain `await` would pass that cancellation on
            # to the producer in the middle of its cleanup, which ChatKit's and the turn lease's
            # shields do not stop (a native cancel); the release of the thread's lease was then
            # lost and the thread refused turns until the lease expired. The producer finishes
            # its cleanup whatever happens here.
            with contextlib.suppress(BaseException):
                await asyncio.shield(producer)


async def started(frames: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """`frames` once its first frame (or keepalive) is ready.

    The first frame comes after the stream's first store writes (the thread, the user's
    message). Waiting for it before the 200 is sent turns a failure there (the database is
    down) into an HTTP error from the central mapping (503), not a 200 stream that dies.
    """
    try:
        first = await anext(aiter(frames))
    except StopAsyncIteration:
        first = None

    async def resumed() -> AsyncIterator[bytes]:
        try:
            if first is None:
                return
            yield first
            async for frame in frames:
                yield frame
        finally:
            await frames.aclose()  # type: ignore[attr-defined]

    return resumed()
