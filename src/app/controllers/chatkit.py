"""`POST /chatkit`: the self-hosted ChatKit protocol, unchanged.

Everything that can be wrong with a request (body, type, fields, ownership, size) is answered
before a stream opens, as problem+json with a 4xx status. Once a stream is open, failures are
ChatKit `error` events and the stream ends cleanly.

The body is read within its limit by `app.http.bodies`, parsed once by the ChatKit server
(`app.agents.chatkit.requests`), and a stream goes out through `app.http.sse`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from chatkit.server import StreamingResult
from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency, Provide
from litestar.response import Stream

from app.agents.chatkit.server import TaskPilotChatKitServer
from app.core.context import RequestContext
from app.core.errors import ServiceUnavailable
from app.core.limits import enforce
from app.http.bodies import body_over_request_limit
from app.http.client_tools import provide_client_tools
from app.http.openapi import problem_spec
from app.http.openapi_chatkit import (
    ANSWERS_KEY,
    CLIENT_TOOLS_KEY,
    ITEM_SCHEMA_KEY,
    WIDGET_ACTIONS_KEY,
    ChatKitOperation,
)
from app.http.sse import SSE_HEADERS, started, with_keepalive
from app.ops import metrics
from app.ops.admission import Admission, StreamSlot
from app.ops.drain import Drain
from app.ops.ratelimit import Limits
from app.settings import Settings

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
        "(CHATKIT_MAX_STREAMS_PER_USER), too many failed sign-ins from this address, or (a new turn) the user's "
        "daily token budget is spent (QUOTA_TOKENS_PER_USER_PER_DAY, back at UTC midnight); see Retry-After"
    ),
    501: problem_spec("The request needs a feature this server has not configured (dictation, feedback)"),
    502: problem_spec(
        "OpenAI refused, rate-limited or dropped the transcription (for example OPENAI_API_KEY was rejected); "
        "the audio may have reached OpenAI, so a load balancer must not re-send it (see Retry-After when set)"
    ),
    503: problem_spec(
        "The server is carrying as many streams as it can (its adaptive limit, at most CHATKIT_MAX_STREAMS), is "
        "restarting, or its database "
        "is unavailable; nothing was done, retry after Retry-After"
    ),
    504: problem_spec("OpenAI did not transcribe the audio within OPENAI_TIMEOUT_SECONDS"),
}


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
        operation_class=ChatKitOperation,
        dependencies={"client_tools": Provide(provide_client_tools, sync_to_thread=False)},
    )
    async def chatkit(
        self,
        request: Request[Any, Any, Any],
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
        data = chatkit_server.parse(body)  # the one parse of the body; the server handles this object
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
            result = await chatkit_server.handle(data, context)
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
