"""`POST /chatkit`: the self-hosted ChatKit protocol, unchanged.

Everything that can be wrong with a request (body, type, fields, ownership, size) is answered
before a stream opens, as problem+json with a 4xx status. Once a stream is open, failures are
ChatKit `error` events and the stream ends cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from chatkit.server import StreamingResult
from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency, Provide
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    Reference,
    Schema,
)
from litestar.params import JSONBody
from litestar.response import Stream
from litestar.utils.scope.state import ScopeState

from app.agents.server import TaskPilotChatKitServer
from app.contracts import ChatKitRequest
from app.core.context import RequestContext
from app.core.errors import PayloadTooLarge, ServiceUnavailable
from app.core.limits import enforce
from app.http.client_tools import provide_client_tools
from app.http.openapi import problem_spec
from app.http.openapi_chatkit import (
    ANSWERS_KEY,
    CLIENT_TOOLS_HEADER,
    CLIENT_TOOLS_HEADER_DESCRIPTION,
    CLIENT_TOOLS_KEY,
    ITEM_SCHEMA_KEY,
    JSON_ANSWER_SCHEMA,
    TASK_ACTION_SCHEMA,
    WIDGET_ACTIONS_KEY,
    chatkit_schemas,
    client_tool_results,
    event_item_schema,
)
from app.ops import metrics
from app.ops.admission import Admission, StreamSlot
from app.ops.drain import Drain
from app.ops.ratelimit import Limits
from app.settings import Settings

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
STREAMING_TYPES = frozenset(
    {
        "threads.create",
        "threads.add_user_message",
        "threads.add_client_tool_output",
        "threads.add_structured_input",
        "threads.retry_after_item",
        "threads.custom_action",
    }
)
TRANSCRIBE = "input.transcribe"
# What only a dictation request carries: its type, or its audio field. Looked for in the first
# MAX_REQUEST_BYTES of a larger body, whichever order the client put its keys in. A look-alike
# (the text inside metadata) only buys reading on to the dictation limit as that user: the
# decoded type is checked again before anything else is done with the body.
_DICTATION_MARK = re.compile(rb'"(?:type"\s*:\s*"input\.transcribe"|audio_base64"\s*:)')
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
            with contextlib.suppress(BaseException):
                await producer


# Every non-200 answer of /chatkit is problem+json; without these the spec showed Litestar's
# default 400 (application/json, another body) and none of the others (found by schemathesis).
CHATKIT_RESPONSES = {
    400: problem_spec(
        "Not a valid ChatKit request (malformed JSON, unknown type, invalid or missing fields), "
        "or a Time-Zone header that is not an IANA zone"
    ),
    401: problem_spec("No valid bearer token"),
    404: problem_spec("The thread, item or attachment does not exist or belongs to another user"),
    409: problem_spec(
        "A turn is already running on this thread (threads.retry_after_item); a message is already waiting "
        "on this thread for the running turn (threads.add_user_message: one queues at a time); or what the "
        "request answers was already answered by another submit (threads.add_client_tool_output with no "
        "pending client tool call, threads.add_structured_input for an input no longer pending)"
    ),
    413: problem_spec(
        "The body is larger than MAX_REQUEST_BYTES, or input.transcribe audio is larger than TRANSCRIPTION_MAX_BYTES"
    ),
    415: problem_spec("input.transcribe audio of a type the transcription API does not accept"),
    429: problem_spec(
        "Too many chat messages from this user, as many answers streaming as one user may have at once "
        "(CHATKIT_MAX_STREAMS_PER_USER), or too many failed sign-ins from this address; see Retry-After"
    ),
    501: problem_spec("The request needs a feature this server has not configured (dictation, feedback)"),
    502: problem_spec(
        "OpenAI refused, rate-limited or dropped the transcription (for example OPENAI_API_KEY was rejected); "
        "the audio may have reached OpenAI, so a load balancer must not re-send it (see Retry-After when set)"
    ),
    503: problem_spec(
        "The server is carrying as many streams as it can (CHATKIT_MAX_STREAMS), is restarting, or its database "
        "is unavailable; nothing was done, retry after Retry-After"
    ),
    504: problem_spec("OpenAI did not transcribe the audio within OPENAI_TIMEOUT_SECONDS"),
}


@dataclass
class _EventStreamMediaType(OpenAPIMediaType):
    """`text/event-stream` with the schema of each event (OpenAPI 3.2's `itemSchema`, see
    `app.http.openapi_chatkit` for why it is given as `x-item-schema`)."""

    item_schema: dict[str, Any] | None = field(default=None, metadata={"alias": ITEM_SCHEMA_KEY})


@dataclass
class _ChatKitOperation(Operation):
    """The ChatKit protocol in the operation: the request union (`ChatKitRequest`), the JSON
    answers and the event stream of the 200, the answer of each request type, TaskPilot's widget
    actions and client-tool results, and the optional ChatKit headers."""

    chatkit_answers: dict[str, Any] | None = field(default=None, metadata={"alias": ANSWERS_KEY})
    widget_actions: dict[str, str] | None = field(default=None, metadata={"alias": WIDGET_ACTIONS_KEY})
    client_tool_results: dict[str, Any] | None = field(default=None, metadata={"alias": CLIENT_TOOLS_KEY})

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse) and ok.content is not None:
            ok.content["application/json"] = OpenAPIMediaType(
                schema=Reference(f"#/components/schemas/{JSON_ANSWER_SCHEMA}")
            )
            ok.content["text/event-stream"] = _EventStreamMediaType(
                schema=Schema(
                    type=OpenAPIType.STRING,
                    description="`data: <ChatKit event JSON>` frames, and `: keepalive` comments while idle",
                ),
                item_schema=event_item_schema(),
            )
        self.chatkit_answers = chatkit_schemas().answers
        self.widget_actions = {"$ref": f"#/components/schemas/{TASK_ACTION_SCHEMA}"}
        self.client_tool_results = client_tool_results()
        parameters = list(self.parameters or [])
        if not any(getattr(p, "name", "").lower() == CLIENT_TOOLS_HEADER.lower() for p in parameters):
            parameters.append(
                Parameter(
                    name=CLIENT_TOOLS_HEADER,
                    param_in="header",
                    required=False,
                    schema=Schema(type=OpenAPIType.STRING, examples=["get_time_zone"]),
                    description=CLIENT_TOOLS_HEADER_DESCRIPTION,
                )
            )
        self.parameters = parameters


def body_over_request_limit(settings: Settings) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The body is larger than MAX_REQUEST_BYTES ({settings.max_request_bytes} bytes); "
        "only input.transcribe may carry more (its audio, up to TRANSCRIPTION_MAX_BYTES).",
        field="body",
    )


def body_reader(settings: Settings) -> Callable[[Request[Any, Any, Any]], Awaitable[None]]:
    """The `before_request` hook of /chatkit: its body, read no further than its type allows.

    It runs after the guards, so the caller is already known (an anonymous body is never read).
    Every type is held to MAX_REQUEST_BYTES, and only the first MAX_REQUEST_BYTES of a larger
    body are read before the decision: beyond them only a dictation request (when dictation is
    on) may go on, up to the room its audio needs. Nothing is JSON-decoded until the whole body
    is within its limit (a body that only looks like dictation is decoded, then refused by its
    type in the handler). The body is left where Litestar reads `data` and `request.body()` from.
    """
    limit = settings.max_request_bytes
    dictation_limit = settings.chatkit_max_body_bytes  # equal to `limit` while dictation is off

    def over_dictation_limit() -> PayloadTooLarge:
        # A new error each time: one raised again and again would keep every request's frames
        # (and the chunks they hold) alive in its growing traceback.
        if dictation_limit <= limit:  # dictation is off: the one limit is MAX_REQUEST_BYTES
            return body_over_request_limit(settings)
        return PayloadTooLarge(
            f"The body is larger than the largest input.transcribe request ({dictation_limit} bytes, "
            "room for TRANSCRIPTION_MAX_BYTES of audio as base64): send shorter audio.",
            field="body",
        )

    async def read_body(request: Request[Any, Any, Any]) -> None:
        declared = request.content_length
        if declared is not None and declared > dictation_limit:
            raise over_dictation_limit()
        chunks: list[bytes] = []
        size = 0
        allowed = limit
        async for chunk in request.stream():
            size += len(chunk)
            chunks.append(chunk)
            if size <= allowed:
                continue
            if allowed == dictation_limit:
                raise over_dictation_limit()
            head = b"".join(chunks)
            chunks = [head]
            if not _DICTATION_MARK.search(head, 0, limit):
                raise body_over_request_limit(settings)
            allowed = dictation_limit
            if size > allowed:
                raise over_dictation_limit()
        ScopeState.from_scope(request.scope).body = b"".join(chunks)

    return read_body


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
            "answer `application/json`. Invalid requests answer problem+json before any stream opens. "
            "The request body is ChatKit's request union (`ChatKitRequest`, discriminated by `type`); "
            f"`{ANSWERS_KEY}` names each type's answer (a `ChatKitJsonAnswer` member, or the event "
            f"stream), `{ITEM_SCHEMA_KEY}` the schema of each stream event (OpenAPI 3.2's `itemSchema`), "
            f"`{WIDGET_ACTIONS_KEY}` the `params.action` of threads.custom_action that TaskPilot's "
            f"widgets send, and `{CLIENT_TOOLS_KEY}` the `params.result` of "
            "threads.add_client_tool_output for each client tool TaskPilot may call."
        ),
        response_description="A ChatKit event stream (text/event-stream) or a ChatKit JSON object",
        responses=CHATKIT_RESPONSES,
        operation_class=_ChatKitOperation,
        dependencies={"client_tools": Provide(provide_client_tools, sync_to_thread=False)},
    )
    async def chatkit(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[ChatKitRequest],
        context: NamedDependency[RequestContext],
        chatkit_server: NamedDependency[TaskPilotChatKitServer],
        limits: NamedDependency[Limits],
        drain: NamedDependency[Drain],
        admission: NamedDependency[Admission],
        time_zone: NamedDependency[str | None],
        client_tools: NamedDependency[frozenset[str]],
        settings: NamedDependency[Settings],
    ) -> Response[bytes] | Stream:
        body = await request.body()  # already read, within its limit, by `body_reader`
        if len(body) > settings.max_request_bytes and data.type != TRANSCRIBE:
            raise body_over_request_limit(settings)
        if time_zone is not None or client_tools:
            context = replace(context, time_zone=time_zone, client_tools=client_tools)
        slot: StreamSlot | None = None
        if data.type in STREAMING_TYPES:
            if drain.draining:
                metrics.TURNS_REFUSED.labels(reason="draining").inc()
                raise ServiceUnavailable("The server is restarting; retry in a moment.", retry_after=2)
            # First, before the store is read or written: a turn refused here (the worker is full,
            # or this user holds their share) leaves no trace, not even a hit on the chat rate limit.
            slot = await admission.admit(context.user_id)
        elif data.type == TRANSCRIBE:
            # Each dictation is a paid call to OpenAI: it counts against the user's chat budget.
            await enforce(
                limits.chat,
                context.user_id,
                "Too many chat requests; wait before dictating another message.",
                on_refusal=metrics.RATE_LIMITED.labels(limit="chat").inc,
            )
        try:
            if slot is not None:
                budget = await enforce(
                    limits.chat,
                    context.user_id,
                    "Too many chat requests; wait before sending another message.",
                    on_refusal=metrics.RATE_LIMITED.labels(limit="chat").inc,
                )
                context = replace(context, chat_budget=budget)
            result = await chatkit_server.process(body, context)
            if isinstance(result, StreamingResult):
                frames = with_keepalive(result.json_events, chatkit_server.keepalive_seconds, drain, slot)
                return Stream(await started(frames), media_type="text/event-stream", headers=SSE_HEADERS)
        except BaseException:
            if slot is not None:
                slot.release()
            raise
        if slot is not None:
            slot.release()  # a streaming type that answered JSON (ChatKit does not, but never leak a slot)
        return Response(content=result.json, media_type="application/json", status_code=200)
