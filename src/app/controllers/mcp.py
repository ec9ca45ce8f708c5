"""`/mcp`: the task tools over MCP (streamable HTTP), authenticated with the API's bearer tokens.

The mount verifies `Authorization: Bearer <token>` with the same authenticator as the REST API
(401 problem+json otherwise, 429 once an address has failed too often), records the token's user
and the `Time-Zone` header's zone (400 problem+json when it is not an IANA zone) in the request
scope, and hands the request to the MCP server's session manager
(`app.agents.mcp`). The transport is stateless (no MCP session survives a request) with JSON
responses: every request carries its own token, and any instance can answer any request.

Only POST is served. A stateless server has nothing to push, so the optional GET event stream
would only hold a connection open forever (one user held 300 of them); the MCP spec lets a server
answer 405 there, which official clients take as "no server stream".
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import asgi
from litestar.handlers import ASGIRouteHandler
from litestar.types import Receive, Scope, Send
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette import types as starlette

from app.agents.mcp import TIME_ZONE_STATE_KEY, USER_ID_STATE_KEY
from app.contracts import Problem
from app.core.clock import parse_time_zone
from app.core.errors import DomainError, PayloadTooLarge, RequestTimeout
from app.http.auth import Authenticator
from app.http.problems import PROBLEM_MEDIA_TYPE, domain_problem

# OPTIONS stays with the transport (CORS preflights); everything else but POST is refused.
_PASSED_METHODS = frozenset({"POST", "OPTIONS"})


class AuthenticatedMCP:
    """The MCP server as an ASGI app that first authenticates the bearer token."""

    def __init__(self, server: MCPServer[Any], authenticator: Authenticator, *, max_request_bytes: int) -> None:
        server.streamable_http_app(
            stateless_http=True,
            json_response=True,
            max_request_body_size=max_request_bytes,
            # DNS-rebinding protection guards servers that trust the network; every request here
            # must carry a bearer token a rebound page cannot have, and behind a proxy the Host
            # header is the public name, which an allowlist of loopback hosts would refuse.
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        self.session_manager = server.session_manager
        self.authenticator = authenticator
        self.max_request_bytes = max_request_bytes

    @asynccontextmanager
    async def lifespan(self, _app: object = None) -> AsyncIterator[None]:
        async with self.session_manager.run():
            yield

    async def __call__(self, scope: starlette.Scope, receive: starlette.Receive, send: starlette.Send) -> None:
        if scope["type"] != "http":  # pragma: no cover - MCP speaks HTTP only
            return
        state = scope.setdefault("state", {})
        request_id = str(state.get("request_id", ""))
        method = str(scope.get("method", ""))
        if method not in _PASSED_METHODS:
            detail = f"{method} is not allowed on /mcp: this stateless MCP server has no event stream; POST requests."
            await _problem(scope, send, 405, HTTPStatus(405).phrase, detail, request_id, [(b"allow", b"POST")])
            return
        authorization = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
        client = scope.get("client")
        try:
            principal = await self.authenticator.bearer(
                authorization, client=client[0] if client else None, request_id=request_id
            )
        except DomainError as exc:  # 429 once an address failed too often, 401 otherwise
            await _domain_problem(scope, send, exc, request_id)
            return
        state[USER_ID_STATE_KEY] = principal.user_id
        raw_zone = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"time-zone"), None)
        try:
            state[TIME_ZONE_STATE_KEY] = parse_time_zone(raw_zone) if raw_zone is not None else None
        except DomainError as exc:
            await _domain_problem(scope, send, exc, request_id)
            return
        # The body is read here, not by the MCP transport: the transport turns any exception while
        # reading (a stalled body's `RequestTimeout`) into a 500 with a logged traceback.
        try:
            body = await _read_body(receive, self.max_request_bytes)
        except RequestTimeout as exc:
            await _domain_problem(scope, send, exc, request_id)
            return
        if body is None:
            detail = f"The request body is larger than {self.max_request_bytes} bytes; send a smaller body."
            await _domain_problem(scope, send, PayloadTooLarge(detail), request_id)
            return
        if _has_invalid_id(body):
            await _invalid_request(send, "Invalid Request: id must be a string or an integer (never null in MCP).")
            return
        await self.session_manager.handle_request(scope, _replay(body, receive), send)


def _has_invalid_id(body: bytes) -> bool:
    """Whether a JSON-RPC message in the body has an `id` that is not a string or an integer.

    The transport reads a message with such an id (an object, a list, true, 1.5, null) as a
    notification and answers 202 with nothing, so the client waits forever for its answer."""
    try:
        decoded = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return False  # the transport answers a parse error (or refuses the nesting) itself
    messages = decoded if isinstance(decoded, list) else [decoded]
    return any(isinstance(message, dict) and "id" in message and not _is_id(message["id"]) for message in messages)


def _is_id(value: object) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


async def _invalid_request(send: starlette.Send, message: str) -> None:
    """JSON-RPC 2.0's answer to a request it cannot identify: -32600 with a null id."""
    body = msgspec.json.encode({"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": message}})
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: starlette.Receive, limit: int) -> bytes | None:
    """The whole request body, or None once it exceeds `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)  # the client left; the transport sees an empty body
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: starlette.Receive) -> starlette.Receive:
    """A `receive` that hands over the already-read body once, then waits on the real one."""
    pending = True

    async def replay() -> starlette.Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def mcp_route(app: AuthenticatedMCP) -> ASGIRouteHandler:
    @asgi("/mcp", is_mount=True, copy_scope=True)
    async def mcp_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        """The task tools over MCP (streamable HTTP); authenticates its own bearer tokens."""
        # Litestar's and Starlette's ASGI aliases describe the same protocol in different types.
        await app(scope, receive, send)  # type: ignore[arg-type]

    return mcp_endpoint


async def _domain_problem(scope: starlette.Scope, send: starlette.Send, exc: DomainError, request_id: str) -> None:
    """A domain error answered as Litestar's central map answers it (`app.http.problems`)."""
    problem = domain_problem(exc)
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in problem.headers.items()]
    await _problem(
        scope, send, problem.status, problem.title, problem.detail, request_id, headers, errors=problem.errors
    )


async def _problem(
    scope: starlette.Scope,
    send: starlette.Send,
    status: int,
    title: str,
    detail: str,
    request_id: str,
    headers: list[tuple[bytes, bytes]],
    *,
    errors: list[dict[str, str]] | None = None,
) -> None:
    """A problem+json answer sent straight from the mount (Litestar's handlers do not see it)."""
    problem = Problem(
        type="about:blank",
        title=title,
        status=status,
        detail=detail,
        # A mount rewrites `path` to what follows the mount point; `raw_path` is what was asked.
        instance=bytes(scope.get("raw_path") or b"").decode("latin-1") or str(scope.get("path", "")),
        request_id=request_id or None,
        errors=errors or None,
    )
    body = msgspec.json.encode(problem)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
