"""The user's time zone, which decides "today", "tomorrow" and "overdue".

Where it comes from, first found wins:
1. the request's `Time-Zone` header (the page sends the browser's zone on every request);
2. what the thread remembers: the page's last answer to `get_time_zone` (thread metadata);
3. the `get_time_zone` client tool, only for a front end that says it answers it (the
   `ChatKit-Client-Tools: get_time_zone` request header): the assistant is given this tool, and
   the run stops when it is called (ChatKit client tools): the turn ends with a pending
   `client_tool_call` item, the page answers it through `threads.add_client_tool_output` with
   `{"time_zone": "<IANA name>"}`, and the stored turn resumes with the zone known;
4. otherwise `DEFAULT_TIME_ZONE` (UTC unless configured). A stock ChatKit front end sends neither
   header and answers no client tool: asking it would end the turn with nothing done. Replies that
   used a relative date then say which zone it was in (`zone_sentence`).
"""

from __future__ import annotations

from typing import Any

from agents import FunctionTool, RunContextWrapper, function_tool
from chatkit.agents import ClientToolCall
from chatkit.types import ClientToolCallItem, ThreadItem, ThreadMetadata
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from app.core.clock import parse_time_zone
from app.core.errors import DomainError, ProtocolError

GET_TIME_ZONE = "get_time_zone"
ANSWER_KEY = "time_zone"  # the one key of the page's answer
RESULT_FIELD = f"params.result.{ANSWER_KEY}"
THREAD_METADATA_KEY = "time_zone"
# Every client tool TaskPilot's assistant may call; the rest of a `ChatKit-Client-Tools` list is ignored.
CLIENT_TOOLS: frozenset[str] = frozenset({GET_TIME_ZONE})


def zone_sentence(zone: str, *, default: bool) -> str:
    """Which zone relative dates are in, in words a model can pass on (a tool result carries it)."""
    if default:
        return (
            f"Relative dates (today, tomorrow, overdue, due today) are dates in {zone}, this server's default "
            f"time zone: the user's own time zone is unknown. Say in the reply that such a date is a date in {zone}."
        )
    return f"Relative dates (today, tomorrow, overdue, due today) are dates in the user's time zone, {zone}."


async def _get_time_zone(ctx: RunContextWrapper[Any]) -> str:
    """Ask the user's browser for the user's IANA time zone (such as Asia/Karachi).

    Call it before you use today's date (today, tomorrow, overdue, due today, this week) while
    the user's time zone is unknown; the browser's answer is this tool's result.
    """
    ctx.context.client_tool_call = ClientToolCall(name=GET_TIME_ZONE, arguments={})
    return "Asked the user's browser for its time zone."


GET_TIME_ZONE_TOOL: FunctionTool = function_tool(_get_time_zone, name_override=GET_TIME_ZONE)


class TimeZoneToolResult(BaseModel):
    """The client's answer to `get_time_zone`: `params.result` of threads.add_client_tool_output."""

    model_config = ConfigDict(extra="forbid")

    time_zone: str = Field(
        description="The user's IANA time zone, e.g. the browser's Intl.DateTimeFormat().resolvedOptions().timeZone",
        examples=["Asia/Karachi"],
    )


# The client tools TaskPilot may ask a client to run, each with the result model its answer is
# validated with (and the OpenAPI document's schema of that result).
CLIENT_TOOL_RESULTS: dict[str, type[BaseModel]] = {GET_TIME_ZONE: TimeZoneToolResult}
_RESULT_ADAPTER: TypeAdapter[TimeZoneToolResult] = TypeAdapter(TimeZoneToolResult)


def checked_answer(result: Any) -> str:
    """The zone of the page's answer to `get_time_zone` (exactly `{"time_zone": "Asia/Karachi"}`), or
    a `ProtocolError` naming the field (the missing one, or else the first one too many), before any
    stream opens."""
    try:
        value = _RESULT_ADAPTER.validate_python(result).time_zone
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if all(error["type"] == "extra_forbidden" for error in errors):
            # Whatever else the answer carries would be stored and sent to the model on every later turn.
            field = f"params.result.{min(str(error['loc'][0]) for error in errors)}"
            raise ProtocolError(
                f'{field} is not part of the answer to {GET_TIME_ZONE}: send only {{"time_zone": "<IANA name>"}}.',
                field=field,
            ) from None
        raise ProtocolError(
            f'{RESULT_FIELD} is missing: answer {GET_TIME_ZONE} with {{"time_zone": "<IANA name>"}}, '
            "for example the browser's Intl.DateTimeFormat().resolvedOptions().timeZone.",
            field=RESULT_FIELD,
        ) from None
    try:
        return parse_time_zone(value, field=RESULT_FIELD, source="body")
    except DomainError as exc:
        raise ProtocolError(exc.detail, errors=exc.errors) from None


def answered_zone(item: ThreadItem | None) -> str | None:
    """The zone a completed `get_time_zone` call item holds (already checked when it was answered)."""
    if not isinstance(item, ClientToolCallItem) or item.name != GET_TIME_ZONE or item.status != "completed":
        return None
    return _valid(item.output.get("time_zone") if isinstance(item.output, dict) else None)


def remembered_zone(thread: ThreadMetadata) -> str | None:
    return _valid((thread.metadata or {}).get(THREAD_METADATA_KEY))


def remember_zone(thread: ThreadMetadata, zone: str) -> None:
    """Keep the zone on the thread (the library saves a changed thread and tells the client)."""
    if remembered_zone(thread) != zone:
        thread.metadata = {**(thread.metadata or {}), THREAD_METADATA_KEY: zone}


def _valid(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_time_zone(value)
    except DomainError:
        return None
