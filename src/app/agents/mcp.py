"""The seven task tools over MCP (streamable HTTP), authenticated with the API's bearer tokens.

`TaskMCP` is an ASGI app: it verifies `Authorization: Bearer <token>` with the same verifier as
the REST API (401 problem+json otherwise), records the token's user in the request scope, and
hands the request to the MCP SDK's session manager. Each tool runs `app.agents.tools.TaskOperations`
for that user, so REST, chat and MCP share one implementation of every rule.

The transport is stateless (no MCP session survives a request) with JSON responses: every
request carries its own token, any instance can answer any request, and nothing lives in memory
between requests. The session manager still needs a running task group: enter `lifespan()` for
as long as the app serves (`app.asgi` adds it to the Litestar lifespan).

Tool results are the same JSON objects as the Agents SDK tools (see `app.agents.tools`), as
structured content; a broken rule (unknown task, bad date) is a tool result with `isError: true`
whose text is that JSON.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol

import msgspec
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import ToolAnnotations
from starlette.types import Receive, Scope, Send

from app import __version__
from app.agents import tools as agent_tools
from app.agents.tools import ClearableField, TaskOperations, TaskScope, encode_result
from app.auth import AuthError, bearer_token
from app.contracts import Problem, TaskPriority, TaskSort, TaskStatus
from app.store.tasks import SessionMaker, utc_today

USER_ID_STATE_KEY = "user_id"
INSTRUCTIONS = (
    "Manage the signed-in user's tasks. Refer to tasks by their number (3) or id. Dates are "
    "YYYY-MM-DD (today and tomorrow are understood); 'today' is the UTC date."
)


class _Principal(Protocol):
    @property
    def user_id(self) -> str: ...


class Verifier(Protocol):
    """What `app.auth.TokenVerifier` offers: a verified token's user, or an `AuthError`."""

    def verify(self, token: str, *, request_id: str = "") -> Awaitable[_Principal]: ...


class TaskMCP:
    """The task tools as an authenticated, stateless MCP streamable-HTTP ASGI app."""

    def __init__(
        self,
        *,
        session_maker: SessionMaker,
        verifier: Verifier,
        max_request_bytes: int = 1_048_576,
        clock: Callable[[], dt.date] = utc_today,
    ) -> None:
        self.session_maker = session_maker
        self.verifier = verifier
        self.clock = clock
        self.server: MCPServer[Any] = MCPServer(
            name="TaskPilot",
            instructions=INSTRUCTIONS,
            version=__version__,
            tools=self._tools(),
        )
        self.server.streamable_http_app(
            stateless_http=True,
            json_response=True,
            max_request_body_size=max_request_bytes,
            # DNS-rebinding protection guards servers that trust the network; every request
            # here must carry a bearer token a rebound page cannot have, and behind a proxy the
            # Host header is the public name, which an allowlist of loopback hosts would refuse.
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        self.session_manager = self.server.session_manager

    @asynccontextmanager
    async def lifespan(self, _app: object = None) -> AsyncIterator[None]:
        async with self.session_manager.run():
            yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # pragma: no cover - MCP speaks HTTP only
            return
        state = scope.setdefault("state", {})
        request_id = str(state.get("request_id", ""))
        authorization = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
        try:
            principal = await self.verifier.verify(bearer_token(authorization), request_id=request_id)
        except AuthError as exc:
            await _unauthorized(scope, send, exc.reason, request_id)
            return
        state[USER_ID_STATE_KEY] = principal.user_id
        await self.session_manager.handle_request(scope, receive, send)

    # ---- tools -------------------------------------------------------------------------------

    def _operations(self, ctx: Context[Any, Any]) -> TaskOperations:
        request = ctx.request_context.request
        scope: dict[str, Any] = getattr(request, "scope", None) or {}
        user_id = scope.get("state", {}).get(USER_ID_STATE_KEY)
        if not isinstance(user_id, str) or not user_id:
            # Only reachable if the app is mounted without `__call__` (which authenticates).
            raise ToolError("this request is not authenticated")
        return TaskOperations(TaskScope(user_id=user_id, session_maker=self.session_maker, clock=self.clock))

    def _tools(self) -> list[Tool]:
        mcp = self

        async def add_task(
            ctx: Context[Any, Any],
            title: str,
            description: str | None = None,
            priority: TaskPriority | None = None,
            due_date: str | None = None,
            tags: list[str] | None = None,
        ) -> dict[str, Any]:
            return _answer(
                await mcp._operations(ctx).add_task(
                    title=title, description=description, priority=priority, due_date=due_date, tags=tags
                )
            )

        async def list_tasks(
            ctx: Context[Any, Any],
            status: TaskStatus | None = None,
            priority: TaskPriority | None = None,
            overdue: bool | None = None,
            due_before: str | None = None,
            due_after: str | None = None,
            tag: str | None = None,
            search: str | None = None,
            sort: TaskSort | None = None,
            limit: int | None = None,
            cursor: str | None = None,
        ) -> dict[str, Any]:
            return _answer(
                await mcp._operations(ctx).list_tasks(
                    status=status,
                    priority=priority,
                    overdue=overdue,
                    due_before=due_before,
                    due_after=due_after,
                    tag=tag,
                    search=search,
                    sort=sort,
                    limit=limit,
                    cursor=cursor,
                )
            )

        async def get_task(ctx: Context[Any, Any], task: str | int) -> dict[str, Any]:
            return _answer(await mcp._operations(ctx).get_task(task=task))

        async def update_task(
            ctx: Context[Any, Any],
            task: str | int,
            title: str | None = None,
            description: str | None = None,
            priority: TaskPriority | None = None,
            due_date: str | None = None,
            tags: list[str] | None = None,
            completed: bool | None = None,
            clear: list[ClearableField] | None = None,
        ) -> dict[str, Any]:
            return _answer(
                await mcp._operations(ctx).update_task(
                    task=task,
                    title=title,
                    description=description,
                    priority=priority,
                    due_date=due_date,
                    tags=tags,
                    completed=completed,
                    clear=clear,
                )
            )

        async def complete_task(ctx: Context[Any, Any], task: str | int) -> dict[str, Any]:
            return _answer(await mcp._operations(ctx).complete_task(task=task))

        async def delete_task(ctx: Context[Any, Any], task: str | int) -> dict[str, Any]:
            return _answer(await mcp._operations(ctx).delete_task(task=task))

        async def task_summary(ctx: Context[Any, Any]) -> dict[str, Any]:
            return _answer(await mcp._operations(ctx).task_summary())

        read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)
        hints: dict[str, ToolAnnotations] = {
            "add_task": ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False),
            "list_tasks": read_only,
            "get_task": read_only,
            "update_task": ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False),
            "complete_task": ToolAnnotations(
                read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
            ),
            "delete_task": ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False),
            "task_summary": read_only,
        }
        functions = (add_task, list_tasks, get_task, update_task, complete_task, delete_task, task_summary)
        return [_tool(function, hints[function.__name__]) for function in functions]


def _tool(function: Callable[..., Awaitable[dict[str, Any]]], annotations: ToolAnnotations) -> Tool:
    """An MCP tool whose description and argument docs are the Agents SDK tool's: one text for both."""
    twin = next(t for t in agent_tools.TASK_TOOLS if t.name == function.__name__)
    tool = Tool.from_function(
        function,
        name=twin.name,
        description=twin.description,
        annotations=annotations,
        structured_output=True,
    )
    documented = twin.params_json_schema.get("properties", {})
    for name, schema in tool.parameters.get("properties", {}).items():
        description = documented.get(name, {}).get("description")
        if description:
            schema["description"] = description
    return tool


def _answer(result: dict[str, Any]) -> dict[str, Any]:
    if not result.get("ok"):
        raise ToolError(encode_result(result))
    return result


async def _unauthorized(scope: Scope, send: Send, reason: str, request_id: str) -> None:
    problem = Problem(
        type="about:blank",
        title="Unauthorized",
        status=401,
        detail=f"Authentication failed: {reason}.",
        # A mount rewrites `path` to what follows the mount point; `raw_path` is what was asked.
        instance=bytes(scope.get("raw_path") or b"").decode("latin-1") or str(scope.get("path", "")),
        request_id=request_id or None,
    )
    body = msgspec.json.encode(problem)
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b'Bearer realm="taskpilot", error="invalid_token"'),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
