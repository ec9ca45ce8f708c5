"""ASGI middleware: the request id that ties a response to its log lines, and the access log.

Every response carries `X-Request-ID` (the caller's, when it is sane), and one access line and
the request metrics are written per request, labelled by the route template that matched.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.ops import metrics

_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_PARAMETER_TYPE = re.compile(r"\{(\w+):[^}]*\}")
access_log = logging.getLogger("app.access")


def route_label_of(scope: Scope) -> str:
    """The full route template that matched (`/api/tasks/{task_id}`, `/mcp`), or "unmatched".

    A handler's own `paths` are relative to its controller (`/`, `/{task_id:uuid}`), which made
    `/api/tasks` and `/` one label; the router's template is the whole path, without the types.
    """
    handler: Any = scope.get("route_handler")
    if handler is None:
        return "unmatched"
    if getattr(handler, "is_mount", False):
        # A mount's template is what is left after it; the mount point is the route.
        return str(sorted(getattr(handler, "paths", None) or ["/"])[0])
    template = str(scope.get("path_template") or "") or "/"
    return _PARAMETER_TYPE.sub(r"{\1}", template)


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    """Propagate `X-Request-ID` (or make one), return it, and write one access line per request."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        incoming = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = incoming if _REQUEST_ID_OK.match(incoming) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        started = time.perf_counter()
        status_holder = {"status": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            route_label = route_label_of(scope)
            duration = time.perf_counter() - started
            method = str(scope.get("method", ""))
            metrics.HTTP_REQUESTS.labels(method=method, route=route_label, status=str(status_holder["status"])).inc()
            metrics.HTTP_LATENCY.labels(method=method, route=route_label).observe(duration)
            access_log.info(
                "request",
                extra={
                    "fields": {
                        "request_id": request_id,
                        "method": scope.get("method"),
                        # A mount (/mcp) rewrites `path` to what follows it; `raw_path` is what was asked.
                        "path": bytes(scope.get("raw_path") or b"").decode("latin-1") or scope.get("path"),
                        "route": route_label,
                        "status": status_holder["status"],
                        "duration_ms": round(duration * 1000, 2),
                        "user_id": state.get("user_id"),
                    }
                },
            )

    return middleware
