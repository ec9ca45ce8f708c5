"""The offline model: a deterministic Agents SDK `Model` so TaskPilot works with no API key.

It behaves like a (very literal) tool-calling model: each call reads the conversation the
runner gives it, and either calls one of the task tools or writes the reply, streaming it in
small deltas as Responses events. It understands plain task requests in English and Urdu
(`app.agents.intents`), hands Urdu conversations to the Urdu specialist when a handoff is
offered, resolves "the groceries task" by searching first, and says plainly that it is the
offline assistant when asked something outside its reach.

`delay_ms` paces the deltas (benchmarks use it to hold streams open like a real model).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from agents.agent_output import AgentOutputSchemaBase
from agents.handoffs import Handoff
from agents.items import ModelResponse, TResponseInputItem, TResponseStreamEvent
from agents.model_settings import ModelSettings
from agents.models.interface import Model, ModelTracing
from agents.tool import FunctionTool, Tool
from agents.usage import Usage
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseFunctionToolCall,
    ResponseOutputItem,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
)
from openai.types.responses.response_prompt_param import ResponsePromptParam

from app.agents import replies
from app.agents.intents import Intent, language_of, parse
from app.ids import prefixed_id

# Conversions of non-user items (widgets, hidden context) also arrive as role=user messages;
# these prefixes mark them so the model does not mistake them for what the person typed.
CONTEXT_PREFIXES = (
    "Hidden context for the agent",
    "The following graphical UI widget",
    "A message was displayed to the user",
    "The user is referring to this",
    "# User-provided context",
    "[context]",
)
DELTA_CHARS = 12
# The converter introduces every attachment as `[attachment] name (type, N bytes)`.
ATTACHMENT_PREFIX = "[attachment]"
_ATTACHMENT_LABEL = re.compile(
    r"^\[attachment\] (?P<name>.+) \((?P<mime>[^,()\s]+), (?:(?P<size>\d+) bytes|not uploaded)\)(?::|$)"
)


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Reply:
    text: str


Step = ToolCall | Reply


@dataclass(slots=True)
class _Done:
    """A tool call already made in this turn, with its parsed output."""

    name: str
    arguments: dict[str, Any]
    output: Any


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "".join(parts)
    return ""


def _as_dict(item: Any) -> dict[str, Any]:
    if isinstance(item, dict):
        return item
    dump = getattr(item, "model_dump", None)
    return dump() if callable(dump) else {}


def _parse_output(output: Any) -> Any:
    text = _text_of(output) if not isinstance(output, str) else output
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return {"text": text}


def _typed_text(content: Any) -> str:
    """The text of a user message without its attachments (their labels and contents)."""
    if isinstance(content, list):
        content = [
            part
            for part in content
            if not (isinstance(part, dict) and str(part.get("text", "")).startswith(ATTACHMENT_PREFIX))
        ]
    return _text_of(content)


def attachments_of(content: Any) -> list[replies.AttachmentNote]:
    """The attachments of a user message, from the labels the converter gives them."""
    notes: list[replies.AttachmentNote] = []
    for part in content if isinstance(content, list) else []:
        text = part.get("text") if isinstance(part, dict) else None
        if isinstance(text, str) and (match := _ATTACHMENT_LABEL.match(text.split("\n", 1)[0])):
            size = match.group("size")
            notes.append(replies.AttachmentNote(name=match.group("name"), size=int(size) if size else None))
    return notes


def _last_user_message(items: list[dict[str, Any]]) -> int:
    last_user = -1
    for index, item in enumerate(items):
        if item.get("role") == "user" and item.get("type", "message") == "message":
            content = item.get("content")
            text = _typed_text(content)
            if (text and not text.startswith(CONTEXT_PREFIXES)) or attachments_of(content):
                last_user = index
    return last_user


def turn_attachments(items: list[dict[str, Any]]) -> list[replies.AttachmentNote]:
    """What the person attached to their last message."""
    last_user = _last_user_message(items)
    return attachments_of(items[last_user].get("content")) if last_user >= 0 else []


def read_turn(items: list[dict[str, Any]]) -> tuple[str, list[_Done], bool]:
    """The last thing the person typed, the tool calls made since, and whether a handoff happened."""
    last_user = _last_user_message(items)
    user_text = _typed_text(items[last_user].get("content")) if last_user >= 0 else ""
    calls: dict[str, dict[str, Any]] = {}
    done: list[_Done] = []
    handed_off = False
    for item in items[last_user + 1 :]:
        kind = item.get("type")
        if kind == "function_call":
            calls[str(item.get("call_id"))] = item
        elif kind == "function_call_output":
            call = calls.get(str(item.get("call_id")))
            if call is None:
                continue
            name = str(call.get("name"))
            if name.startswith("transfer_to_"):
                handed_off = True
                continue
            try:
                arguments = json.loads(call.get("arguments") or "{}")
            except ValueError:
                arguments = {}
            done.append(_Done(name=name, arguments=arguments, output=_parse_output(item.get("output"))))
    return user_text, done, handed_off


class OfflineModel(Model):
    """A deterministic task assistant speaking the Responses streaming protocol."""

    def __init__(self, *, delay_ms: int = 0, today: Callable[[], date] | None = None) -> None:
        self.delay = delay_ms / 1000
        self.today = today or (lambda: datetime.now(UTC).date())

    # ---- deciding -----------------------------------------------------------------------------

    def decide(
        self,
        input: str | list[TResponseInputItem],
        tools: list[Tool],
        handoffs: list[Handoff],
    ) -> Step:
        items = (
            [{"role": "user", "type": "message", "content": input}]
            if isinstance(input, str)
            else [_as_dict(i) for i in input]
        )
        user_text, done, handed_off = read_turn(items)
        attachments = turn_attachments(items)
        if not user_text.strip():
            if attachments:
                return Reply(replies.attachments_received(attachments, "en", asked=False))
            return Reply(replies.nothing_to_do("en"))
        urdu_handoff = next((h for h in handoffs if "urdu" in h.tool_name.lower()), None)
        if urdu_handoff is not None and not handed_off and language_of(user_text) == "ur":
            return ToolCall(urdu_handoff.tool_name, {})
        intent = parse(user_text, self.today())
        available = {t.name: t for t in tools if isinstance(t, FunctionTool)}
        step = plan(intent, done)
        if isinstance(step, ToolCall):
            tool = available.get(step.name)
            if tool is None:
                return Reply(replies.cannot(intent.language))
            return ToolCall(step.name, _fit_arguments(step.arguments, tool))
        if attachments:
            return Reply(replies.attachments_received(attachments, intent.language, asked=True) + "\n\n" + step.text)
        return step

    # ---- the Model interface ------------------------------------------------------------------

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> ModelResponse:
        step = self.decide(input, tools, handoffs)
        output: list[ResponseOutputItem] = [_function_call(step) if isinstance(step, ToolCall) else _message(step.text)]
        return ModelResponse(output=output, usage=Usage(requests=1), response_id=None)

    async def stream_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> AsyncIterator[TResponseStreamEvent]:
        step = self.decide(input, tools, handoffs)
        async for event in step_events(step, self.delay):
            yield event


async def step_events(step: Step, delay: float = 0.0) -> AsyncIterator[TResponseStreamEvent]:
    """The Responses streaming events of one model step: a function call, or a message in deltas."""
    seq = _Counter()
    yield ResponseCreatedEvent(type="response.created", response=_response([]), sequence_number=seq())
    final: ResponseOutputItem
    if isinstance(step, ToolCall):
        call = _function_call(step)
        yield ResponseOutputItemAddedEvent(
            type="response.output_item.added", item=call, output_index=0, sequence_number=seq()
        )
        yield ResponseFunctionCallArgumentsDoneEvent(
            type="response.function_call_arguments.done",
            arguments=call.arguments,
            item_id=call.id or "",
            output_index=0,
            sequence_number=seq(),
        )
        yield ResponseOutputItemDoneEvent(
            type="response.output_item.done", item=call, output_index=0, sequence_number=seq()
        )
        final = call
    else:
        message_id = prefixed_id("msg")
        empty = ResponseOutputMessage(id=message_id, type="message", role="assistant", status="in_progress", content=[])
        yield ResponseOutputItemAddedEvent(
            type="response.output_item.added", item=empty, output_index=0, sequence_number=seq()
        )
        yield ResponseContentPartAddedEvent(
            type="response.content_part.added",
            item_id=message_id,
            output_index=0,
            content_index=0,
            part=ResponseOutputText(type="output_text", text="", annotations=[]),
            sequence_number=seq(),
        )
        for delta in _chunks(step.text):
            if delay:
                await asyncio.sleep(delay)
            yield ResponseTextDeltaEvent(
                type="response.output_text.delta",
                item_id=message_id,
                output_index=0,
                content_index=0,
                delta=delta,
                logprobs=[],
                sequence_number=seq(),
            )
        yield ResponseTextDoneEvent(
            type="response.output_text.done",
            item_id=message_id,
            output_index=0,
            content_index=0,
            text=step.text,
            logprobs=[],
            sequence_number=seq(),
        )
        yield ResponseContentPartDoneEvent(
            type="response.content_part.done",
            item_id=message_id,
            output_index=0,
            content_index=0,
            part=ResponseOutputText(type="output_text", text=step.text, annotations=[]),
            sequence_number=seq(),
        )
        final = _message(step.text, message_id)
        yield ResponseOutputItemDoneEvent(
            type="response.output_item.done", item=final, output_index=0, sequence_number=seq()
        )
    yield ResponseCompletedEvent(type="response.completed", response=_response([final]), sequence_number=seq())


class _Counter:
    def __init__(self) -> None:
        self.value = -1

    def __call__(self) -> int:
        self.value += 1
        return self.value


def _chunks(text: str) -> list[str]:
    """Word-aligned deltas of about DELTA_CHARS characters, like a model's token stream."""
    chunks: list[str] = []
    current = ""
    for word in text.split(" "):
        piece = word if not current else " " + word
        if current and len(current) + len(piece) > DELTA_CHARS:
            chunks.append(current)
            current = " " + word if chunks else word
        else:
            current += piece
    if current:
        chunks.append(current)
    return chunks or [""]


def _response(output: list[ResponseOutputItem]) -> Response:
    return Response(
        id=prefixed_id("resp"),
        created_at=time.time(),
        model="offline",
        object="response",
        output=output,
        tool_choice="auto",
        tools=[],
        parallel_tool_calls=False,
    )


def _message(text: str, message_id: str | None = None) -> ResponseOutputMessage:
    return ResponseOutputMessage(
        id=message_id or prefixed_id("msg"),
        type="message",
        role="assistant",
        status="completed",
        content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
    )


def _function_call(step: ToolCall) -> ResponseFunctionToolCall:
    return ResponseFunctionToolCall(
        id=prefixed_id("fc"),
        call_id=prefixed_id("call"),
        type="function_call",
        name=step.name,
        arguments=json.dumps(step.arguments, ensure_ascii=False),
        status="completed",
    )


def _fit_arguments(arguments: dict[str, Any], tool: FunctionTool) -> dict[str, Any]:
    """Arguments shaped to the tool's schema: strict schemas want every property, null when unset."""
    properties = tool.params_json_schema.get("properties", {})
    return {name: arguments.get(name) for name in properties}


# ---- planning: what to do next, given the intent and the calls already made this turn ---------


def plan(intent: Intent, done: list[_Done]) -> Step:
    lang = intent.language
    if intent.problem and intent.kind in {"add", "update"}:
        return Reply(replies.problem(intent, lang))
    match intent.kind:
        case "greeting":
            return Reply(replies.greeting(lang))
        case "help":
            return Reply(replies.help_text(lang))
        case "unknown":
            return Reply(replies.unknown(lang))
        case "add":
            if not done:
                return ToolCall(
                    "add_task",
                    {
                        "title": intent.title,
                        "description": intent.description,
                        "priority": intent.priority,
                        "due_date": intent.due_date.isoformat() if intent.due_date else None,
                        "tags": intent.tags or None,
                    },
                )
            return Reply(replies.after_add(done[-1].output, lang))
        case "list":
            if not done:
                return ToolCall("list_tasks", _list_arguments(intent))
            return Reply(replies.after_list(done[-1].output, intent, lang))
        case "summary":
            if not done:
                return ToolCall("task_summary", {})
            return Reply(replies.after_summary(done[-1].output, lang))
        case "get" | "complete" | "reopen" | "delete" | "update":
            return _plan_on_one_task(intent, done)


ACTION_TOOLS = {
    "get": "get_task",
    "complete": "complete_task",
    "delete": "delete_task",
    "update": "update_task",
}


def _list_arguments(intent: Intent) -> dict[str, Any]:
    return {
        "status": intent.status or "open",
        "priority": intent.priority,
        "overdue": intent.overdue or None,
        "due_before": intent.due_before.isoformat() if intent.due_before else None,
        "due_after": intent.due_after.isoformat() if intent.due_after else None,
        "tag": intent.tag,
        "search": intent.search,
        "limit": 20,
    }


def _action_call(intent: Intent, task_ref: str) -> ToolCall:
    if intent.kind == "reopen":
        # There is no reopen tool: reopening is an update of `completed`.
        return ToolCall("update_task", {"task": task_ref, "completed": False})
    name = ACTION_TOOLS[intent.kind]
    arguments: dict[str, Any] = {"task": task_ref}
    if intent.kind == "update":
        arguments.update(intent.update_fields())
        if intent.clear_due_date:
            arguments.pop("due_date", None)
            arguments["clear"] = ["due_date"]
    return ToolCall(name, arguments)


def _plan_on_one_task(intent: Intent, done: list[_Done]) -> Step:
    lang = intent.language
    if not intent.has_reference:
        return Reply(replies.which_task(intent, lang))
    if intent.number is not None:
        if not done:
            return _action_call(intent, str(intent.number))
        return Reply(replies.after_action(intent, done[-1].output, lang))
    # A title fragment: search first, then act on the single match.
    if not done:
        status = "open" if intent.kind == "complete" else "completed" if intent.kind == "reopen" else "all"
        return ToolCall(
            "list_tasks",
            {"status": status, "search": intent.reference, "limit": 10},
        )
    if len(done) == 1:
        matches = replies.tasks_in(done[0].output)
        if len(matches) != 1:
            return Reply(replies.ambiguous(intent, matches, lang))
        return _action_call(intent, str(matches[0].get("number") or matches[0].get("id")))
    return Reply(replies.after_action(intent, done[-1].output, lang))
