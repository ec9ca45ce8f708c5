"""The `ChatKit-Client-Tools` request header: the client tools a ChatKit front end answers.

A ChatKit front end with default options registers no `onClientTool` handler: a client tool call
it did not expect ends the turn with nothing done. So TaskPilot offers its model a client tool only
when the request names it here, as a comma-separated list (`ChatKit-Client-Tools: get_time_zone`).
Names TaskPilot has no client tool of are ignored, so a front end may list more than this server uses.
"""

from __future__ import annotations

from typing import Annotated

from litestar.params import HeaderParameter

from app.agents.chatkit.time_zone import CLIENT_TOOLS

CLIENT_TOOLS_HEADER = "ChatKit-Client-Tools"
# Longer values are not lists of tool names; only this much is read.
MAX_CLIENT_TOOLS_CHARS = 1024
CLIENT_TOOLS_DESCRIPTION = (
    "Comma-separated names of the ChatKit client tools this front end answers (its `onClientTool`). "
    f'TaskPilot has one: `{", ".join(sorted(CLIENT_TOOLS))}` (answer `{{"time_zone": "<IANA name>"}}`); '
    "the assistant asks for it only when this header names it and the request has no `Time-Zone` header. "
    "Without it, dates are in DEFAULT_TIME_ZONE and no client tool call is ever sent. Unknown names are ignored."
)


def parse_client_tools(value: str | None) -> frozenset[str]:
    """The client tools of TaskPilot's that `value` names; unknown names and empty items are ignored."""
    if not value:
        return frozenset()
    names = {part.strip() for part in value[:MAX_CLIENT_TOOLS_CHARS].split(",")}
    return frozenset(names & CLIENT_TOOLS)


def provide_client_tools(
    client_tools_header: Annotated[
        str | None,
        HeaderParameter(name=CLIENT_TOOLS_HEADER, description=CLIENT_TOOLS_DESCRIPTION, required=False),
    ] = None,
) -> frozenset[str]:
    return parse_client_tools(client_tools_header)
