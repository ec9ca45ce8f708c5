"""The offline model: a deterministic Agents SDK `Model` so TaskPilot works with no API key.

It behaves like a (very literal) tool-calling model: each call reads the conversation the
runner gives it, and either calls one of the task tools or writes the reply, streaming it in
small deltas as Responses events. It understands plain task requests in English and Urdu
(`app.agents.offline.intents`), hands Urdu conversations to the Urdu specialist when a handoff is
offered, resolves "the groceries task" by searching first, acts on exactly the task an @-tag names
(the id the server resolved it to, `app.agents.chatkit.entities`), and says plainly that it is the
offline assistant when asked something outside its reach.

`delay_ms` paces the deltas (benchmarks use it to hold streams open like a real model).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
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

from app.agents.chatkit.structured_input import ASK_USER
from app.agents.chatkit.time_zone import GET_TIME_ZONE
from app.agents.offline import replies
from app.agents.offline.intents import (
    PRIORITY_CHOICES,
    Intent,
    forced_intent,
    language_of,
    parse,
    parse_tagged,
    priority_question,
)
from app.agents.offline.planner import Reply, Step, ToolCall, plan
from app.agents.offline.transcript import (
    Done,
    as_dict,
    read_turn,
    structured_answer,
    turn_attachments,
    turn_tags,
)
from app.core.ids import prefixed_id

DELTA_CHARS = 12
_TODAY = re.compile(r"\btoday is (\d{4}-\d{2}-\d{2})\b")
# The zone of that date, as `app.agents.assistant.today_sentence` words it: the user's, or the
# server's default (DEFAULT_TIME_ZONE) when the user's is unknown.
_ZONE = re.compile(
    r"\btoday is \d{4}-\d{2}-\d{2} in (?:the user's time zone \((?P<user>[^)\s]+)\)"
    r"|(?P<default>[^,\s]+), the server's default time zone)"
)


def zone_of(instructions: str | None) -> tuple[str, bool] | None:
    """The zone the instructions' "today" is in, and whether it is the server's default."""
    match = _ZONE.search(instructions or "")
    if match is None:
        return None
    if match.group("user"):
        return match.group("user"), False
    return match.group("default"), True


def depends_on_today(read: Callable[[date], Intent], intent: Intent, today: date) -> bool:
    """Whether the answer changes with the user's date: a relative date in what they said
    ("tomorrow", "friday", "due today": `read` on another day gives another intent), an overdue
    filter, or the summary (it counts overdue and due-today tasks)."""
    if intent.kind == "summary" or intent.overdue:
        return True
    return read(today + timedelta(days=1)) != intent


def _chosen_earlier(intent: Intent, done: list[Done]) -> str | None:
    """The tool the composer forced on this turn's first call, read back from the calls made: the
    SDK forces only the first call, so on later ones the model must remember why it made it. A
    first call the text's own intent would not have started with was forced."""
    if not done:
        return None
    natural, first = plan(intent, []), done[0]
    if (
        isinstance(natural, ToolCall)
        and natural.name == first.name
        and all(first.arguments.get(name) == value for name, value in natural.arguments.items())
    ):
        return None
    return first.name


class OfflineModel(Model):
    """A deterministic task assistant speaking the Responses streaming protocol."""

    def __init__(self, *, delay_ms: int = 0, today: Callable[[], date] | None = None) -> None:
        self.delay = delay_ms / 1000
        self.fixed_today = today

    def today(self, instructions: str | None = None) -> date:
        """Today's date: fixed by the caller, else read from the instructions like a real model
        does ("today is 2026-11-23 in the user's time zone"), else the UTC date."""
        if self.fixed_today is not None:
            return self.fixed_today()
        match = _TODAY.search(instructions or "")
        if match:
            try:
                return date.fromisoformat(match.group(1))
            except ValueError:
                pass
        return datetime.now(UTC).date()

    # ---- deciding -----------------------------------------------------------------------------

    def decide(
        self,
        input: str | list[TResponseInputItem],
        tools: list[Tool],
        handoffs: list[Handoff],
        instructions: str | None = None,
        tool_choice: Any = None,
    ) -> Step:
        """The next step. `tool_choice` is the run's `ModelSettings.tool_choice`: a tool's name forces
        that tool now (the composer's choice); "auto", "required", "none" or None leave it to the text."""
        items = (
            [{"role": "user", "type": "message", "content": input}]
            if isinstance(input, str)
            else [as_dict(i) for i in input]
        )
        user_text, done, handed_off = read_turn(items)
        attachments = turn_attachments(items)
        if not user_text.strip():
            if attachments:
                return Reply(replies.attachments_received(attachments, "en", asked=False))
            return Reply(replies.nothing_to_do("en"))
        today = self.today(instructions)
        tags = [(note.text, note.task_id) for note in turn_tags(items)]
        # "..., which priority should I use?": the request without the question, which `ask_user` settles.
        without_question = priority_question(user_text)
        if without_question is not None:
            user_text = without_question

        def read(on: date) -> Intent:
            return parse_tagged(user_text, tags, on) if tags else parse(user_text, on)

        intent = read(today)
        available = {t.name: t for t in tools if isinstance(t, FunctionTool)}
        asked = any(call.name == GET_TIME_ZONE for call in done)
        done = [call for call in done if call.name != GET_TIME_ZONE]
        forced = tool_choice if isinstance(tool_choice, str) and tool_choice in available else None
        chosen = forced or _chosen_earlier(intent, done)
        if chosen is not None:
            intent = forced_intent(chosen, user_text, today) or intent
        urdu_handoff = next((h for h in handoffs if "urdu" in h.tool_name.lower()), None)
        if urdu_handoff is not None and not handed_off and chosen is None and language_of(user_text) == "ur":
            return ToolCall(urdu_handoff.tool_name, {})
        if (
            GET_TIME_ZONE in available
            and forced is None
            and not asked
            and not done
            and depends_on_today(read, intent, today)
        ):
            # The user's zone is unknown and the answer depends on their date: ask the page first.
            return ToolCall(GET_TIME_ZONE, {})
        if without_question is not None and intent.kind == "add" and not intent.problem and not intent.priority:
            answer = structured_answer(items)
            if answer is None and ASK_USER in available and forced is None and not done:
                question = replies.which_priority(intent.title)
                return ToolCall(ASK_USER, {"question": question, "choices": list(PRIORITY_CHOICES)})
            # Answered: that priority (a choice, or one typed in its words); skipped: the default.
            intent.priority = next((p for p in PRIORITY_CHOICES if p in (answer or "").lower().split()), None)
        step = plan(intent, done)
        if isinstance(step, ToolCall):
            tool = available.get(step.name)
            if tool is None:
                return Reply(replies.cannot(intent.language))
            return ToolCall(step.name, _fit_arguments(step.arguments, tool))
        zone = zone_of(instructions)
        if zone is not None and done and depends_on_today(read, intent, today):
            # A date read relative to today: say where that today is, as a real model is told to.
            step = Reply(f"{step.text} {replies.zone_note(zone[0], default=zone[1], lang=intent.language)}")
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
        step = self.decide(input, tools, handoffs, system_instructions, model_settings.tool_choice)
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
        step = self.decide(input, tools, handoffs, system_instructions, model_settings.tool_choice)
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
