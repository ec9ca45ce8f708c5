"""A fast local stand-in for OpenAI's ChatKit sessions API: a bare ASGI app for granian.

`tests/fake_openai.py` (a threaded `http.server`) is right for tests but costs more per request
than the calls being measured, and would share the benchmark's GIL. This one answers the same
requests with the same bodies (`openai.types.beta.chatkit.ChatSession` shaped, `x-request-id`),
checks the bearer key and the `OpenAI-Beta` header like the real API, and runs in a process of
its own. TaskPilot and the direct SDK calls in `bench/mint.py` both talk to it.

    FAKE_OPENAI_KEY   the API key it accepts
"""

from __future__ import annotations

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


def create_app() -> Callable[[Scope, Receive, Send], Awaitable[None]]:
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
        if headers.get(b"openai-beta") != BETA_HEADER:
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
