"""Local stand-ins for a model provider over real HTTP: Chat Completions and Responses, streaming.

Each request pops the next scripted step (`ToolCall`, `ToolCalls` (several in one response, Chat
Completions), `Reply`, `Recorded` (a recorded stream or error answer, sent as it is), or an HTTP status to
fail with); `Slow(seconds, step)` answers that step after a silence, `Held(step)` once the test
releases it, `Reasoned(summary, step)` (Responses) after streaming a reasoning summary. Requests whose
instructions ask for a thread title get `title` instead, so title
generation never consumes the script. Every request body is recorded.

Every answer reports token `usage` in its API's shape (a Chat Completions stream only when the request
asks with `stream_options.include_usage`), different for each request; `usage_sent` lists what was
reported, as `{"input", "cached_input", "output", "reasoning"}`, for tests to compare against.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from app.agents.offline.model import _chunks, step_events
from app.agents.offline.planner import Reply, ToolCall
from tests.support.http_thread import serve_in_thread

TITLE_MARKER = "thread title"


@dataclass(frozen=True)
class ToolCalls:
    """Several tool calls in one model response (as a model acting on many tasks at once sends)."""

    calls: list[ToolCall]


@dataclass(frozen=True)
class Reasoned:
    """`step` (a Responses answer) after a reasoning item whose summary parts stream as
    `response.reasoning_summary_text.delta` events, as a reasoning model asked for a summary sends."""

    summary: tuple[str, ...]
    step: Any


@dataclass(frozen=True)
class Held:
    """`step`, answered only once the test sets `release`; `reached` is set when the request arrives
    (the turn is then provably running, waiting on its model call)."""

    step: Any
    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class Recorded:
    """A recorded upstream answer (tests/data/model_streams/): a stream, sent byte for byte, or, with
    a `status`, an error answer of that status with `headers` and `body` (JSON)."""

    body: bytes
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Slow:
    """`step`, answered only after `seconds` of silence (a slow model: not even the headers)."""

    seconds: float
    step: Any


class FakeModelServer:
    def __init__(self, script: list[Any], *, api_key: str = "test-key", title: str | int = "Scripted title") -> None:
        """`title`: the answer to every thread-title request, or a status each of them fails with."""
        self.script: deque[Any] = deque(script)
        self.api_key = api_key
        self.title = title
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.usage_sent: list[dict[str, int]] = []
        self._usage_lock = threading.Lock()
        self.received_at: list[float] = []  # time.monotonic() of each request's arrival, as `requests`
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                outer.received_at.append(time.monotonic())
                outer.requests.append(body)
                outer.paths.append(self.path)
                if self.headers.get("Authorization") != f"Bearer {outer.api_key}":
                    self._json(
                        401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}
                    )
                    return
                if self.path.endswith("/chat/completions"):
                    outer._chat(self, body)
                elif self.path.endswith("/responses"):
                    outer._responses(self, body)
                else:
                    self._json(404, {"error": {"message": "no such route"}})

            def _json(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = serve_in_thread(self.httpd)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # ---- script ------------------------------------------------------------------------------

    def _next(self, body: dict[str, Any]) -> Any:
        text = json.dumps(body.get("messages") or body.get("instructions") or "")
        if TITLE_MARKER in text:
            return self.title if isinstance(self.title, int) else Reply(self.title)
        step = self.script.popleft() if self.script else Reply("(script exhausted)")
        if isinstance(step, Slow):
            time.sleep(step.seconds)
            step = step.step
        if isinstance(step, Held):
            step.reached.set()
            step.release.wait(timeout=60)
            step = step.step
        return step

    def _usage(self) -> dict[str, int]:
        """This answer's token counts (distinct per answer: the nth answered has n in it), recorded
        as sent. Numbered by answers, not by requests received: a title's request runs beside the
        answer's, so how many had arrived when one is answered is a race, and the sum of a turn's
        counts would be too."""
        with self._usage_lock:
            n = len(self.usage_sent) + 1
            usage = {"input": 1000 + 7 * n, "cached_input": 3 * n, "output": 40 + 5 * n, "reasoning": 2 * n}
            self.usage_sent.append(usage)
        return usage

    def _chat_usage(self) -> dict[str, Any]:
        u = self._usage()
        return {
            "prompt_tokens": u["input"],
            "completion_tokens": u["output"],
            "total_tokens": u["input"] + u["output"],
            "prompt_tokens_details": {"cached_tokens": u["cached_input"]},
            "completion_tokens_details": {"reasoning_tokens": u["reasoning"]},
        }

    def _responses_usage(self) -> dict[str, Any]:
        u = self._usage()
        return {
            "input_tokens": u["input"],
            "input_tokens_details": {"cached_tokens": u["cached_input"]},
            "output_tokens": u["output"],
            "output_tokens_details": {"reasoning_tokens": u["reasoning"]},
            "total_tokens": u["input"] + u["output"],
        }

    @staticmethod
    def _sse_start(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-cache")
        handler.end_headers()

    @classmethod
    def _recorded(cls, handler: Any, step: Recorded) -> None:
        if step.status != 200:
            handler.send_response(step.status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(step.body)))
            for name, value in step.headers:
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(step.body)
            return
        cls._sse_start(handler)
        handler.wfile.write(step.body)
        handler.wfile.flush()

    # ---- Chat Completions ------------------------------------------------------------------------

    def _chat(self, handler: Any, body: dict[str, Any]) -> None:
        step = self._next(body)
        if isinstance(step, int):
            handler._json(step, {"error": {"message": f"scripted failure {step}", "type": "server_error"}})
            return
        if isinstance(step, Recorded):
            self._recorded(handler, step)
            return
        created = int(time.time())
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": None}
            if isinstance(step, ToolCall):
                message["tool_calls"] = [
                    {
                        "id": f"call_{len(self.requests)}",
                        "type": "function",
                        "function": {"name": step.name, "arguments": json.dumps(step.arguments)},
                    }
                ]
            else:
                message["content"] = step.text
            handler._json(
                200,
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": created,
                    "model": body.get("model", "fake"),
                    "choices": [
                        {
                            "index": 0,
                            "message": message,
                            "finish_reason": "tool_calls" if isinstance(step, ToolCall) else "stop",
                        }
                    ],
                    "usage": self._chat_usage(),
                },
            )
            return
        self._sse_start(handler)

        def chunk(delta: dict[str, Any], finish: str | None = None) -> None:
            payload = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": created,
                "model": body.get("model", "fake"),
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            handler.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
            handler.wfile.flush()

        if isinstance(step, ToolCall | ToolCalls):
            chunk({"role": "assistant", "content": None})
            calls = step.calls if isinstance(step, ToolCalls) else [step]
            for index, call in enumerate(calls):
                arguments = json.dumps(call.arguments)
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "id": f"call_{len(self.requests)}" + (f"_{index}" if len(calls) > 1 else ""),
                                "type": "function",
                                "function": {"name": call.name, "arguments": ""},
                            }
                        ]
                    }
                )
                for part in (arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]):
                    chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
            chunk({}, "tool_calls")
        else:
            chunk({"role": "assistant", "content": ""})
            for part in _chunks(step.text):
                chunk({"content": part})
            chunk({}, "stop")
        if (body.get("stream_options") or {}).get("include_usage"):
            # OpenAI's last chunk when asked: no choices, the whole response's usage.
            usage_chunk = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": created,
                "model": body.get("model", "fake"),
                "choices": [],
                "usage": self._chat_usage(),
            }
            handler.wfile.write(f"data: {json.dumps(usage_chunk)}\n\n".encode())
        handler.wfile.write(b"data: [DONE]\n\n")
        handler.wfile.flush()

    # ---- Responses -----------------------------------------------------------------------------

    def _responses(self, handler: Any, body: dict[str, Any]) -> None:
        import asyncio

        step = self._next(body)
        if isinstance(step, int):
            handler._json(step, {"error": {"message": f"scripted failure {step}", "type": "server_error"}})
            return
        if isinstance(step, Recorded):
            self._recorded(handler, step)
            return

        reasoning = step.summary if isinstance(step, Reasoned) else None
        answer = step.step if isinstance(step, Reasoned) else step

        async def collect() -> list[Any]:
            return [event async for event in step_events(answer)]

        events = [json.loads(event.model_dump_json(exclude_none=True)) for event in asyncio.run(collect())]
        if reasoning is not None:
            events = _with_reasoning(events, reasoning, len(self.requests))
        if not body.get("stream"):
            handler._json(200, {**events[-1]["response"], "usage": self._responses_usage()})
            return
        self._sse_start(handler)
        for payload in events:
            if payload["type"] == "response.completed":
                payload["response"]["usage"] = self._responses_usage()
            handler.wfile.write(f"event: {payload['type']}\ndata: {json.dumps(payload)}\n\n".encode())
        handler.wfile.flush()


def _with_reasoning(events: list[dict[str, Any]], summary: tuple[str, ...], n: int) -> list[dict[str, Any]]:
    """`events` (one answer's, as JSON) preceded by a reasoning item with `summary`, streamed part by
    part and delta by delta; the answer's items move one output index down, as the API numbers them."""
    item_id = f"rs_fake_{n}"
    done_item = {"id": item_id, "type": "reasoning", "summary": [{"type": "summary_text", "text": t} for t in summary]}
    where = {"item_id": item_id, "output_index": 0}
    added: list[dict[str, Any]] = [
        {"type": "response.output_item.added", "output_index": 0, "item": {**done_item, "summary": []}}
    ]
    for index, text in enumerate(summary):
        part = {"type": "summary_text", "text": ""}
        added.append({"type": "response.reasoning_summary_part.added", **where, "summary_index": index, "part": part})
        for delta in _chunks(text):
            added.append(
                {"type": "response.reasoning_summary_text.delta", **where, "summary_index": index, "delta": delta}
            )
        added.append({"type": "response.reasoning_summary_text.done", **where, "summary_index": index, "text": text})
        added.append(
            {
                "type": "response.reasoning_summary_part.done",
                **where,
                "summary_index": index,
                "part": {**part, "text": text},
            }
        )
    added.append({"type": "response.output_item.done", "output_index": 0, "item": done_item})
    for event in events:
        if "output_index" in event:
            event["output_index"] += 1
        if event["type"] == "response.completed":
            event["response"]["output"] = [done_item, *event["response"]["output"]]
    merged = [events[0], *added, *events[1:]]  # after response.created
    for number, event in enumerate(merged):
        event["sequence_number"] = number
    return merged


def turn_requests(fake: FakeModelServer) -> list[dict[str, Any]]:
    """The requests of turns (not of title generation)."""
    return [body for body in fake.requests if TITLE_MARKER not in json.dumps(body.get("instructions") or "")]
