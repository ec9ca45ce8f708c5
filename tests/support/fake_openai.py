"""A local stand-in for OpenAI's ChatKit sessions API, served over real HTTP on 127.0.0.1.

It implements `POST /v1/chatkit/sessions` and `POST /v1/chatkit/sessions/{id}/cancel` the way
the `openai` SDK expects them (bodies shaped like `openai.types.beta.chatkit.ChatSession`,
OpenAI-style error bodies, `x-request-id`), checks the bearer key and the `OpenAI-Beta`
header the SDK sends, records every request, and can be told to fail: any status with any
headers and error body, or answer slowly. Given `workflows`, it knows only those and answers
any other workflow id the way OpenAI does: 404 "Workflow with id '…' not found."

Run alone to try a server by hand (docs/hosted-mode.md's local fake):

    python -m tests.support.fake_openai --key sk-local-test --workflow wf_local --port 8765
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.http_thread import serve_in_thread

BETA_HEADER = "chatkit_beta=v1"
_CANCEL_PATH = re.compile(r"^/v1/chatkit/sessions/([^/]+)/cancel$")


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Failure:
    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def error_body(message: str, *, type_: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


class FakeOpenAI:
    def __init__(
        self, api_key: str, *, workflows: Iterable[str] | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.api_key = api_key
        self.workflows = set(workflows) if workflows is not None else None
        self.requests: list[Recorded] = []
        self.sessions: dict[str, dict[str, Any]] = {}
        self._failures: dict[str, deque[Failure]] = {"create": deque(), "cancel": deque()}
        self._delays: dict[str, deque[float]] = {"create": deque(), "cancel": deque()}
        self._before_create: deque[Callable[[], None]] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                outer._handle(self)

            def log_message(self, *args: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self.base_url = f"{self.url}/v1"
        self._thread = serve_in_thread(self.httpd)

    # --- test controls --------------------------------------------------------------------

    def fail(
        self,
        operation: str,
        status: int,
        *,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` `operation` ("create" or "cancel") requests with `status`."""
        with self._lock:
            for _ in range(times):
                self._failures[operation].append(Failure(status, body, dict(headers or {})))

    def delay(self, seconds: float, *, times: int = 1, operation: str = "create") -> None:
        """Make the next `times` requests of `operation` ("create" or "cancel") wait `seconds`
        before answering. Per operation, so a sign-out's cancel never takes a delay meant for a
        mint."""
        with self._lock:
            self._delays[operation].extend([seconds] * times)

    def before_next_create(self, action: Callable[[], None]) -> None:
        """Run `action` (on the fake's thread) when the next create arrives, before it is answered
        (or failed, see `fail`): something that happens while the server waits for OpenAI."""
        with self._lock:
            self._before_create.append(action)

    def creates(self) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path == "/v1/chatkit/sessions"]

    def cancels(self) -> list[str]:
        with self._lock:
            return [m.group(1) for r in self.requests if (m := _CANCEL_PATH.match(r.path))]

    def stop(self) -> None:
        self._stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    # --- the API --------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        headers = {k.lower(): v for k, v in handler.headers.items()}
        path = handler.path.split("?", 1)[0]
        kind = "create" if path == "/v1/chatkit/sessions" else "cancel" if _CANCEL_PATH.match(path) else None
        authorized = headers.get("authorization") == f"Bearer {self.api_key}"
        beta = headers.get("openai-beta") == BETA_HEADER
        with self._lock:
            self.requests.append(Recorded("POST", path, headers, body))
            # Everything queued for "the next request" is taken as it arrives, not after its delay:
            # a request held by `delay` that the server gave up on must not take a failure queued
            # later for another one (the hosted page's 504 step, then its 503 step).
            delays = self._delays[kind] if kind else None
            wait = delays.popleft() if delays else 0.0
            action = failure = None
            if kind is not None and authorized and beta:
                action = self._before_create.popleft() if kind == "create" and self._before_create else None
                failure = self._failures[kind].popleft() if self._failures[kind] else None
        if wait:
            self._stopping.wait(wait)

        if not authorized:
            presented = headers.get("authorization", "").removeprefix("Bearer ")
            masked = f"{presented[:3]}***{presented[-4:]}" if presented else ""
            # OpenAI quotes a masked key back; TaskPilot must never pass that message on.
            self._send(
                handler,
                401,
                error_body(
                    f"Incorrect API key provided: {masked}.",
                    type_="invalid_request_error",
                    code="invalid_api_key",
                ),
            )
            return
        if not beta:
            self._send(
                handler,
                400,
                error_body("Missing OpenAI-Beta: chatkit_beta=v1", type_="invalid_request_error"),
            )
            return
        if kind is None:
            self._send(handler, 404, error_body(f"Unknown path {path}", type_="invalid_request_error"))
            return
        if action is not None:
            action()
        if failure is not None:
            body_out = failure.body or error_body(f"Injected failure {failure.status}", type_="server_error")
            self._send(handler, failure.status, body_out, failure.headers)
            return

        if kind == "create":
            self._create(handler, body)
        else:
            match = _CANCEL_PATH.match(path)
            assert match is not None
            self._cancel(handler, match.group(1))

    def _create(self, handler: BaseHTTPRequestHandler, body: Any) -> None:
        if not isinstance(body, dict) or not isinstance(body.get("user"), str) or not body["user"]:
            self._send(handler, 400, error_body("'user' is required", type_="invalid_request_error"))
            return
        workflow = body.get("workflow")
        if not isinstance(workflow, dict) or not str(workflow.get("id", "")).startswith("wf_"):
            self._send(handler, 400, error_body("'workflow.id' is invalid", type_="invalid_request_error"))
            return
        if self.workflows is not None and workflow["id"] not in self.workflows:
            # What OpenAI answers for an unknown id, or one from another project than the key's.
            message = f"Workflow with id '{workflow['id']}' not found."
            self._send(handler, 404, error_body(message, type_="invalid_request_error"))
            return
        ttl = (body.get("expires_after") or {}).get("seconds", 600)
        limit = (body.get("rate_limits") or {}).get("max_requests_per_1_minute", 10)
        config = body.get("chatkit_configuration") or {}
        session = {
            "id": f"cksess_{secrets.token_hex(16)}",
            "object": "chatkit.session",
            "client_secret": f"ek_{secrets.token_urlsafe(32)}",
            "expires_at": int(time.time()) + int(ttl),
            "max_requests_per_1_minute": limit,
            "rate_limits": {"max_requests_per_1_minute": limit},
            "status": "active",
            "user": body["user"],
            "workflow": {
                "id": workflow["id"],
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
                "history": {
                    "enabled": (config.get("history") or {}).get("enabled", True),
                    "recent_threads": None,
                },
            },
        }
        with self._lock:
            self.sessions[session["id"]] = session
        self._send(handler, 200, session)

    def _cancel(self, handler: BaseHTTPRequestHandler, session_id: str) -> None:
        with self._lock:
            session = self.sessions.get(session_id)
            if session is not None:
                session["status"] = "cancelled"
                session = dict(session)
        if session is None:
            self._send(
                handler,
                404,
                error_body(f"No session found with id '{session_id}'.", type_="invalid_request_error"),
            )
            return
        self._send(handler, 200, session)

    def _send(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> None:
        payload = json.dumps(body).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.send_header("x-request-id", f"req_{secrets.token_hex(8)}")
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test); nothing to answer


def main() -> None:
    parser = argparse.ArgumentParser(description="A local fake of OpenAI's ChatKit sessions API.")
    parser.add_argument("--key", required=True, help="the API key it accepts (any other is answered 401)")
    parser.add_argument("--workflow", action="append", help="a workflow id it knows (repeatable; default: any wf_…)")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    fake = FakeOpenAI(args.key, workflows=args.workflow, port=args.port)
    print(f"OPENAI_BASE_URL={fake.base_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
