"""A fast local stand-in for OpenAI's ChatKit sessions API and Responses API: bare ASGI for granian.

`tests/support/fake_openai.py` (a threaded `http.server`) is right for tests but costs more per request
than the calls being measured, and would share the benchmark's GIL. This one answers the same
requests with the same bodies (`openai.types.beta.chatkit.ChatSession` shaped, `x-request-id`),
checks the bearer key and the `OpenAI-Beta` header like the real API, and runs in a process of
its own. TaskPilot and the direct SDK calls in `bench/mint.py` both talk to it.

`POST /v1/responses` streams a model's answer as the Responses API does (`response.created`,
the message's item and part, FAKE_RESPONSES_DELTAS `response.output_text.delta` events
FAKE_RESPONSES_DELAY_MS apart, then the `done` events and `response.completed`); without
`"stream": true` (a thread title) it answers the whole response at once. `POST /v1/chat/completions`
streams the same answer as Chat Completions chunks (the role chunk, FAKE_RESPONSES_DELTAS content
deltas, the finish chunk, the usage chunk when `stream_options.include_usage` asks, `[DONE]`). The frames are built
once at start-up, so the stand-in's own CPU per delta stays far below the server's it feeds.

    FAKE_OPENAI_KEY          the API key it accepts
    FAKE_RESPONSES_DELTAS    text deltas per streamed answer (default 20)
    FAKE_RESPONSES_DELAY_MS  pause before each delta (default 0)
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

BETA_HEADER = b"chatkit_beta=v1"


def _session(body: dict[str, Any]) -> dict[str, Any]:
    workflow = body.get("workflow") or {}
    config = body.get("chatkit_configuration") or {}
    ttl = (body.get("expires_after") or {}).get("seconds", 600)
    limit = (body.get("rate_limits") or {}).get("max_requests_per_1_minute", 10)
    return {
        "id": f"cksess_{secrets.token_hex(16)}",
        "object": "chatkit.session",
        "client_secret": f"ek_{secrets.token_urlsafe(32)}",
        "expires_at": int(time.time()) + int(ttl),
        "max_requests_per_1_minute": limit,
        "rate_limits": {"max_requests_per_1_minute": limit},
        "status": "active",
        "user": body.get("user"),
        "workflow": {
            "id": workflow.get("id"),
            "version": workflow.get("version"),
            "state_variables": workflow.get("state_variables"),
            "tracing": {"enabled": True},
        },
        "chatkit_configuration": {
            "automatic_thread_titling": {
                "enabled": (config.get("automatic_thread_titling") or {}).get("enabled", True)
            },
            "file_upload": {
                "enabled": (config.get("file_upload") or {}).get("enabled", False),
                "max_file_size": 512,
                "max_files": 10,
            },
            "history": {"enabled": (config.get("history") or {}).get("enabled", True), "recent_threads": None},
        },
    }


DELTA_TEXT = "Here is what I found "  # five words a delta, like a model's token stream
TITLE = "Planning the week"


def _response(output: list[dict[str, Any]], status: str) -> dict[str, Any]:
    return {
        "id": f"resp_{secrets.token_hex(12)}",
        "object": "response",
        "created_at": int(time.time()),
        "model": "gpt-5-mini",
        "status": status,
        "output": output,
        "parallel_tool_calls": False,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": 200,
            "output_tokens": 60,
            "total_tokens": 260,
            # Every field the openai package's types (generated from the API's spec) require: an event
            # without one (`cache_write_tokens` here, `logprobs` on the text's done event) fails
            # validation and is built by `construct_type`, ~1.4 ms more CPU per answer on the 2-CPU
            # machine than the real API's complete events (`logprobs` as tests/data/model_streams/
            # has it; that corpus, written by hand, lacks `cache_write_tokens` too).
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    }


def _message(message_id: str, text: str, status: str) -> dict[str, Any]:
    content = (
        [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}] if status == "completed" else []
    )
    return {"id": message_id, "type": "message", "role": "assistant", "status": status, "content": content}


class ResponsesScript:
    """The SSE frames of one streamed answer, with the per-answer ids left as placeholders."""

    def __init__(self, deltas: int) -> None:
        self.deltas = deltas
        text = DELTA_TEXT * deltas
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        head = [
            {"type": "response.created", "response": _response([], "in_progress")},
            {"type": "response.output_item.added", "output_index": 0, "item": _message("MSGID", "", "in_progress")},
            {
                "type": "response.content_part.added",
                "item_id": "MSGID",
                "output_index": 0,
                "content_index": 0,
                "part": part,
            },
        ]
        tail = [
            {
                "type": "response.output_text.done",
                "item_id": "MSGID",
                "output_index": 0,
                "content_index": 0,
                "text": text,
                "logprobs": [],
            },
            {
                "type": "response.content_part.done",
                "item_id": "MSGID",
                "output_index": 0,
                "content_index": 0,
                "part": {**part, "text": text},
            },
            {"type": "response.output_item.done", "output_index": 0, "item": _message("MSGID", text, "completed")},
            {"type": "response.completed", "response": _response([_message("MSGID", text, "completed")], "completed")},
        ]
        delta = {
            "type": "response.output_text.delta",
            "item_id": "MSGID",
            "output_index": 0,
            "content_index": 0,
            "delta": DELTA_TEXT,
            "logprobs": [],
        }
        self.head = [self._frame(e) for e in head]
        self.delta = self._frame(delta)
        self.tail = [self._frame(e) for e in tail]

    @staticmethod
    def _frame(event: dict[str, Any]) -> str:
        return f"event: {event['type']}\ndata: {json.dumps({**event, 'sequence_number': 'SEQ'})}\n\n"

    def frames(self) -> list[str]:
        return [*self.head, *([self.delta] * self.deltas), *self.tail]


def chat_frames(deltas: int, include_usage: bool) -> list[bytes]:
    """The SSE frames of one streamed Chat Completions answer, as OpenAI sends them."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**CHAT_CHUNK, "choices": [choice], "usage": None}

    chunks = [chunk({"role": "assistant", "content": "", "refusal": None})]
    chunks += [chunk({"content": DELTA_TEXT})] * deltas
    chunks.append(chunk({}, "stop"))
    if include_usage:
        usage = {"prompt_tokens": 1000, "completion_tokens": deltas, "total_tokens": 1000 + deltas}
        chunks.append({**CHAT_CHUNK, "choices": [], "usage": usage})
    return [f"data: {json.dumps(c)}\n\n".encode() for c in chunks] + [b"data: [DONE]\n\n"]


CHAT_CHUNK: dict[str, Any] = {
    "id": "chatcmpl-bench",
    "object": "chat.completion.chunk",
    "created": 1765100000,
    "model": "gpt-5-mini-2025-08-07",
    "service_tier": "default",
    "system_fingerprint": None,
}


def create_app() -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    script = ResponsesScript(int(os.environ.get("FAKE_RESPONSES_DELTAS", "20")))
    delay = int(os.environ.get("FAKE_RESPONSES_DELAY_MS", "0")) / 1000
    expected_auth = f"Bearer {os.environ.get('FAKE_OPENAI_KEY', 'sk-bench')}".encode()

    async def respond(send: Send, status: int, document: dict[str, Any]) -> None:
        payload = json.dumps(document).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"x-request-id", f"req_{secrets.token_hex(8)}".encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    async def stream_answer(send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"x-request-id", f"req_{secrets.token_hex(8)}".encode()),
                ],
            }
        )
        message_id = f"msg_{secrets.token_hex(12)}"
        frames = script.frames()
        for n, frame in enumerate(frames):
            if delay and script.head and len(script.head) <= n < len(script.head) + script.deltas:
                await asyncio.sleep(delay)
            data = frame.replace("MSGID", message_id).replace('"SEQ"', str(n)).encode()
            await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = bool(message.get("more_body", False))
        path = scope["path"]
        if scope["method"] == "GET":
            await respond(send, 200, {"ok": True})
            return
        headers = dict(scope["headers"])
        if headers.get(b"authorization") != expected_auth:
            await respond(
                send, 401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}
            )
            return
        if path == "/v1/chat/completions":
            body = json.loads(b"".join(chunks) or b"{}")
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]}
            )
            for frame in chat_frames(script.deltas, bool((body.get("stream_options") or {}).get("include_usage"))):
                await send({"type": "http.response.body", "body": frame, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        if path == "/v1/responses":
            body = json.loads(b"".join(chunks) or b"{}")
            if body.get("stream"):
                await stream_answer(send)
            else:
                await respond(
                    send, 200, _response([_message(f"msg_{secrets.token_hex(12)}", TITLE, "completed")], "completed")
                )
            return
        if headers.get(b"openai-beta") != BETA_HEADER:  # the ChatKit sessions API only
            await respond(send, 400, {"error": {"message": "Missing OpenAI-Beta", "type": "invalid_request_error"}})
            return
        if path == "/v1/chatkit/sessions":
            body = json.loads(b"".join(chunks) or b"{}")
            await respond(send, 200, _session(body))
        elif path.startswith("/v1/chatkit/sessions/") and path.endswith("/cancel"):
            session = _session({})
            session.update(id=path.split("/")[4], status="cancelled")
            await respond(send, 200, session)
        else:
            await respond(send, 404, {"error": {"message": f"Unknown path {path}", "type": "invalid_request_error"}})

    return app
