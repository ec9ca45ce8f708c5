"""The seven task tools as an MCP server (the MCP SDK's `MCPServer`), made from their one declaration.

Each MCP tool is an adapter of an `app.agents.tools.TaskOperations` method: the same arguments,
description and result JSON as the Agents SDK tools, for the user the HTTP layer authenticated.
No HTTP here: `app.controllers.mcp` verifies the bearer token, puts the user id in the request
scope's state under `USER_ID_STATE_KEY`, and hands the request to this server's session manager.

Tool results are the tools' JSON objects as structured content; a broken rule (unknown task,
bad date) is a tool result with `isError: true` whose text is that JSON.
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp_types import ToolAnnotations

from app import __version__
from app.agents.tools import TOOL_DECLARATIONS, TaskOperations, TaskScope, ToolDeclaration, encode_result
from app.core.clock import Now, utcnow, zone_clock
from app.store.db import SessionMaker

USER_ID_STATE_KEY = "user_id"
TIME_ZONE_STATE_KEY = "time_zone"
INSTRUCTIONS = (
    "Manage the signed-in user's tasks. Refer to tasks by their number (3) or id. Dates are "
    "YYYY-MM-DD (today and tomorrow are understood); 'today' is the date in the zone of the "
    "request's Time-Zone header (an IANA name such as Asia/Karachi), else the date in the server's "
    "DEFAULT_TIME_ZONE (UTC unless configured)."
)
_READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
ANNOTATIONS: dict[str, ToolAnnotations] = {
    "add_task": ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False),
    "list_tasks": _READ_ONLY,
    "get_task": _READ_ONLY,
    "update_task": ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False),
    "complete_task": ToolAnnotations(
        read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
    ),
    "delete_task": ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False),
    "task_summary": _READ_ONLY,
}


def build_task_mcp_server(
    session_maker: SessionMaker, *, now: Now = utcnow, max_tasks: int = 0, default_time_zone: str = "UTC"
) -> MCPServer[Any]:
    """The MCP server of the task tools (its transport is set up by `app.controllers.mcp`)."""

    def operations(ctx: Context[Any, Any]) -> TaskOperations:
        request = ctx.request_context.request
        scope: dict[str, Any] = getattr(request, "scope", None) or {}
        state = scope.get("state", {})
        user_id = state.get(USER_ID_STATE_KEY)
        if not isinstance(user_id, str) or not user_id:
            # Only reachable if the server is mounted without the authenticating controller.
            raise ToolError("this request is not authenticated")
        clock = zone_clock(state.get(TIME_ZONE_STATE_KEY) or default_time_zone, now)  # checked by the controller
        return TaskOperations(TaskScope(user_id=user_id, session_maker=session_maker, clock=clock, max_tasks=max_tasks))

    def mcp_tool(declaration: ToolDeclaration) -> Tool:
        async def run(ctx: Context[Any, Any], **arguments: Any) -> dict[str, Any]:
            result = await operations(ctx).call(declaration.name, arguments, via="mcp")
            if not result.get("ok"):
                raise ToolError(encode_result(result))
            return result

        function = declaration.adapter("ctx", Context[Any, Any], run, dict[str, Any])
        tool = Tool.from_function(
            function,
            name=declaration.name,
            description=declaration.description,
            annotations=ANNOTATIONS[declaration.name],
            structured_output=True,
        )
        for name, schema in tool.parameters.get("properties", {}).items():
            if name in declaration.argument_docs:
                schema["description"] = declaration.argument_docs[name]
        return tool

    server: MCPServer[Any] = MCPServer(
        name="TaskPilot",
        instructions=INSTRUCTIONS,
        version=__version__,
        tools=[mcp_tool(declaration) for declaration in TOOL_DECLARATIONS],
    )
    return server
