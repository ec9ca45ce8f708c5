"""The assistant: an orchestrator that manages tasks, and an Urdu specialist it hands off to.

History reaches the model as items converted from the thread (`app.agents.history`),
newest first until `MODEL_CONTEXT_TOKENS` is spent, never pasted into the instructions. Thread
items are the unit of trimming, so a client tool call and its output (one item) stay together.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Any

import openai
from agents import Agent, FunctionTool, ItemHelpers, ModelSettings, RunConfig, Runner, RunResultStreaming, StopAtTools
from agents.items import TResponseInputItem
from agents.models.interface import ModelProvider, ModelTracing
from chatkit.agents import AgentContext, ThreadItemConverter
from chatkit.types import (
    ThreadItem,
    ThreadMetadata,
    UserMessageItem,
)
from openai.types.shared import Reasoning
from pydantic import ConfigDict, Field, SkipValidation

from app.agents import agent_identity, model_defaults, sdk_json
from app.agents.chatkit.composer import NO_CHOICE, TurnChoice
from app.agents.chatkit.entities import resolve_tags
from app.agents.chatkit.structured_input import ASK_USER, ASK_USER_TOOL
from app.agents.chatkit.time_zone import GET_TIME_ZONE, GET_TIME_ZONE_TOOL
from app.agents.history import TaskPilotConverter, estimate_tokens, item_to_input, plain_text_message
from app.agents.hooks import ProgressHooks
from app.agents.messages import Language, say
from app.agents.tools import TASK_TOOLS, ToolContext, with_fixed_arguments
from app.core.clock import utc_today
from app.ops import metrics, model_calls, tracing
from app.ops.openai_failures import OpenAIFailureKind, describe_openai_failure
from app.services.usage import Tokens, TurnTokens

log = logging.getLogger("app.assistant")

agent_identity.install()  # the SDK's per-turn agent identity map, without a signature per agent (see the module)
sdk_json.install()  # the SDK's copy of each request's tools, plain JSON tested by exact type (see the module)
model_defaults.install()  # the SDK's default settings per model call, deep-copied field by field (see the module)

INSTRUCTIONS_VERSION = "2026-12-07.3"

ORCHESTRATOR_INSTRUCTIONS = f"""\
You are TaskPilot, a concise assistant that manages the signed-in user's tasks (instructions v{INSTRUCTIONS_VERSION}).
- Use the task tools for every question about tasks; never invent tasks, numbers or dates.
- Refer to tasks by their number (#3) and title. Dates are ISO (YYYY-MM-DD); {{today}}
- Before deleting, confirm with the user unless they explicitly asked to delete that specific task.
- To delete a task named by words of its title, pass those words to delete_task: when several tasks
  match, the user is shown them to pick one, so do not ask which one in text.
- After changing tasks, say briefly what changed. Keep answers short; use lists for several tasks.
- When the user asks you which priority (or due date) to give a task, or a request leaves open something
  a few options settle, call ask_user with those options instead of asking in text; then act on the answer.
- If the user writes in Urdu (in Urdu script, or Urdu in Latin letters such as "kal doodh lena hai"),
  hand off to the Urdu specialist.
"""

URDU_INSTRUCTIONS = f"""\
You are TaskPilot's Urdu specialist (instructions v{INSTRUCTIONS_VERSION}). Always answer in Urdu,
in the script the user writes: Urdu script, or Latin letters if they write Urdu that way (Roman Urdu).
- Use the task tools for every question about tasks; never invent tasks, numbers or dates.
- Task titles are in Urdu, as the user would write them on a list: a short noun phrase with the verb
  in its dictionary form, e.g. "دودھ خریدنا" or "دودھ کی خریداری", "ڈاکٹر کو فون کرنا"; never the
  sentence's oblique form ("دودھ خریدنے") nor words like "کا کام", dates or priorities in the title.
- Read کل as tomorrow, پرسوں as the day after, اگلے جمعہ as next Friday; ضروری / اہم / فوری mean high
  priority, کم ترجیح / غیر ضروری low.
- Give the tools ISO dates (YYYY-MM-DD); {{today}} In your Urdu replies write dates for Urdu readers,
  e.g. "7 دسمبر 2026", never an ISO date inside Urdu text (it reads reversed right to left).
- Refer to tasks by their number and title.
- Before deleting, confirm unless the user explicitly asked to delete that specific task.
- To delete a task named by words of its title, pass those words to delete_task (several matches
  are shown to the user to pick one).
- When the user asks which priority to use, call ask_user with the choices (in Urdu) instead of asking in text.
- Keep answers short and polite.
"""

TITLE_MAX_CHARS = 60
TITLE_TIMEOUT_SECONDS = 10.0
TITLE_INSTRUCTIONS = (
    "Write a short thread title (at most 6 words) for a conversation that starts with the user's "
    "message below. Use the user's language. Answer with the title only, no quotes."
)


class TurnContext(AgentContext[Any], ToolContext):
    """The run context of one turn: ChatKit's streaming context plus what the task tools need.

    `user_id` is copied from the authenticated request context, never from model output.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    user_id: str
    session_maker: Annotated[Any, SkipValidation]
    changed_task_ids: set[str] = Field(default_factory=set)
    # The user's tasks this turn knows by id (tagged in the conversation, or named by a tool
    # result): a reply naming one carries an entity annotation for it (app.agents.chatkit.entities).
    named_tasks: dict[str, dict[str, Any]] = Field(default_factory=dict)
    max_tasks: int = 0  # QUOTA_TASKS_PER_USER, for the task tools
    # The user's IANA time zone when known (app.agents.chatkit.time_zone), and "today" there: the task
    # tools, the widgets and the instructions all read the date from this one clock.
    time_zone: str | None = None
    # True when `time_zone` is DEFAULT_TIME_ZONE, not the user's: replies must say so.
    default_zone: bool = False
    # Which zone the dates are in, in words, for tool results (`app.agents.chatkit.time_zone.zone_sentence`).
    dates_note: str | None = None
    clock: Annotated[Callable[[], date], SkipValidation] = utc_today
    # The turn's notices and progress (app.agents.chatkit.notices.TurnNotices), for the run hooks.
    notices: Annotated[Any, SkipValidation] = None
    # The conversation's language ("en" or "ur", app.agents.chatkit.language): the language of the
    # fixed strings the turn shows (progress lines, widget labels), whichever agent answers.
    language: str = "en"
    # The model the turn runs with, and when (perf_counter) its model call in flight started: the run
    # hooks record each call's outcome and latency (app.ops.model_calls), the turn a failed one's.
    model: str | None = None
    model_call_started: float | None = None
    # That call's span (app.ops.tracing.ModelCallSpan) while tracing is on: the hooks start and end
    # it, the turn ends it when the call fails.
    model_span: Annotated[Any, SkipValidation] = None


@dataclass
class Assistant:
    """Runs a turn: history from the store, the agents, and the configured model."""

    provider: ModelProvider
    model_name: str
    context_tokens: int = 16_000
    title_with_model: bool = False
    converter: ThreadItemConverter = field(default_factory=TaskPilotConverter)
    history_page: int = 50
    # Chat Completions servers (vLLM, Ollama, ...) may accept only a string as a message's content.
    plain_text_content: bool = False
    # REASONING_EFFORT / REASONING_SUMMARY (`providers.reasoning_settings`); None: nothing sent.
    reasoning: Reasoning | None = None
    # The Agents SDK's own traces to OpenAI (AGENTS_TRACING=openai); off unless asked for by name.
    agents_tracing: bool = False

    def __post_init__(self) -> None:
        self.urdu = Agent[TurnContext](
            name="Urdu specialist",
            handoff_description="Answers users who write in Urdu, in Urdu, and manages their tasks.",
            instructions=_dated(URDU_INSTRUCTIONS),
            tools=[*TASK_TOOLS, ASK_USER_TOOL],
            # ask_user shows a structured input: the turn ends there, and the answer resumes it.
            tool_use_behavior=StopAtTools(stop_at_tool_names=[ASK_USER]),
            model=self.model_name,
        )
        self.orchestrator = Agent[TurnContext](
            name="TaskPilot",
            instructions=_dated(ORCHESTRATOR_INSTRUCTIONS),
            tools=[*TASK_TOOLS, ASK_USER_TOOL],
            tool_use_behavior=StopAtTools(stop_at_tool_names=[ASK_USER]),
            handoffs=[self.urdu],
            model=self.model_name,
        )
        # Built once, copied per run: `RunConfig.__post_init__` resolves the declared type of its
        # `model_settings` (`typing.get_type_hints(RunConfig)`) whenever they are set, ~3 ms of CPU
        # (about a tenth of a turn's) for the same settings every time.
        self._run_config = RunConfig(
            model_provider=self.provider,
            # Chat Completions servers send a stream's token counts only when asked.
            model_settings=ModelSettings(include_usage=True, reasoning=self.reasoning),
            tracing_disabled=not self.agents_tracing,
        )

    async def history(
        self, thread: ThreadMetadata, turn: TurnContext, up_to: str | None = None
    ) -> list[TResponseInputItem]:
        """The newest thread items that fit the token budget, oldest first, as model input.

        `up_to` (an item id) ends the history at that item: a turn answers the message it was
        started for, never one stored after it. When that item is not in the thread, nothing is cut.
        """
        if up_to is not None:
            cut = await self._history(thread, turn, up_to)
            if cut is not None:
                return cut
        return await self._history(thread, turn, None) or []

    async def _history(
        self, thread: ThreadMetadata, turn: TurnContext, up_to: str | None
    ) -> list[TResponseInputItem] | None:
        selected: list[list[TResponseInputItem]] = []
        budget = self.context_tokens
        after: str | None = None
        reached = up_to is None
        while True:
            page = await turn.store.load_thread_items(thread.id, after, self.history_page, "desc", turn.request_context)
            # Each tag is looked up among this user's tasks now (it may name another user's task,
            # or one deleted since): one query per page, only when the page has tags.
            data, tagged = await resolve_tags(list(page.data), turn.task_scope)
            turn.named_tasks.update(tagged)
            for item in data:
                if not reached:
                    reached = item.id == up_to
                    if not reached:
                        continue  # newer than the message this turn answers
                # The newest item is the thread's last: only it gets what ChatKit adds for the last one.
                converted = await self._convert(item, last=not selected)
                cost = estimate_tokens(converted)
                if selected and cost > budget:
                    return [entry for group in reversed(selected) for entry in group]
                budget -= cost
                selected.append(converted)
            if not page.has_more or budget <= 0:
                break
            after = page.after
        if not reached:
            return None
        return [entry for group in reversed(selected) for entry in group]

    async def _convert(self, item: ThreadItem, *, last: bool) -> list[TResponseInputItem]:
        return await item_to_input(self.converter, item, last=last)

    async def run(
        self, thread: ThreadMetadata, turn: TurnContext, choice: TurnChoice = NO_CHOICE, *, up_to: str | None = None
    ) -> RunResultStreaming:
        """One turn, answering the thread up to the item `up_to` (the turn's user message; None:
        the newest). `choice` (the composer's, checked by the server) forces a tool on the first
        model call (the SDK resets it to `auto` once a tool ran) and picks the run's model."""
        history = await self.history(thread, turn, up_to)
        if self.plain_text_content:
            history = [plain_text_message(item) for item in history]
        # A shallow per-run copy (same tools, same instructions): the Agents SDK keeps a registry
        # of the runs using each Agent object and walks all of them on every run start, model
        # turn and run end (its concurrent tool-mutation guard), so with one shared Agent each
        # turn cost O(open streams): ~1 ms per call, ~6 ms per turn, at 1,000 open streams
        # (bench/streams.py). With a copy per run that walk is over one entry.
        # `copy.copy`, not `Agent.clone`: clone is `dataclasses.replace`, which runs `Agent.__post_init__`
        # again (its checks, and `typing.get_type_hints(Agent)` for the settings' declared type), ~0.3 ms
        # per agent per turn for agents validated once here already. A shallow copy is what clone makes
        # too: the same tools, handoffs and settings objects; the lists are replaced, never appended to.
        urdu, orchestrator = copy.copy(self.urdu), copy.copy(self.orchestrator)
        if turn.time_zone is None and GET_TIME_ZONE in getattr(turn.request_context, "client_tools", ()):
            # Nobody said where the user is, and the front end answers get_time_zone: the agents
            # may ask it (a client tool, which ends the run; the answer resumes it with the zone known).
            for agent in (urdu, orchestrator):
                agent.tools = [*agent.tools, GET_TIME_ZONE_TOOL]
                agent.tool_use_behavior = _stopping_at(agent.tool_use_behavior, GET_TIME_ZONE)
        orchestrator.handoffs = [urdu]
        if choice.tool is not None:
            orchestrator.model_settings = orchestrator.model_settings.resolve(ModelSettings(tool_choice=choice.tool))
            if choice.arguments:
                orchestrator.tools = [
                    with_fixed_arguments(tool, choice.arguments)
                    if isinstance(tool, FunctionTool) and tool.name == choice.tool
                    else tool
                    for tool in orchestrator.tools
                ]
        run_config = copy.copy(self._run_config)  # the settings are shared, never changed in place
        run_config.model = choice.model
        return Runner.run_streamed(
            orchestrator, history, context=turn, hooks=ProgressHooks(), max_turns=12, run_config=run_config
        )

    async def title(
        self,
        message: UserMessageItem,
        thread: ThreadMetadata,
        model: str | None = None,
        *,
        tokens: TurnTokens | None = None,
    ) -> str:
        """A short thread title for the first message: the model's when one is configured (`model`,
        the one the composer chose for the turn, else MODEL), else (or when that fails) the
        message's first sentence. The model call's tokens are added to `tokens`."""
        text = " ".join(getattr(part, "text", "") for part in message.content).strip()
        if self.title_with_model and text:
            started = time.perf_counter()
            span = tracing.ModelCallSpan.start(model or self.model_name, purpose="title")
            try:
                # One model call, not an agent run: `Runner.run` around it cost 3.3-3.7 ms of CPU
                # against 1.8-1.9 ms for the call alone (a title needs no tools, hooks or turns).
                response = await asyncio.wait_for(
                    self.provider.get_model(model or self.model_name).get_response(
                        system_instructions=TITLE_INSTRUCTIONS,
                        input=text[:2000],
                        model_settings=ModelSettings(),
                        tools=[],
                        output_schema=None,
                        handoffs=[],
                        tracing=ModelTracing.ENABLED if self.agents_tracing else ModelTracing.DISABLED,
                        previous_response_id=None,
                        conversation_id=None,
                        prompt=None,
                    ),
                    timeout=TITLE_TIMEOUT_SECONDS,
                )
                model_calls.record(model or self.model_name, "ok", time.perf_counter() - started)
                if span is not None:
                    span.end("ok", Tokens.of(response.usage).counts())
                    span = None
                if tokens is not None:
                    tokens.add(model or self.model_name, response.usage)
                answer = " ".join(filter(None, (ItemHelpers.extract_last_text(item) for item in response.output)))
                title = " ".join(answer.split()).strip("\"'“”‘’ ")
                if title:
                    return summarize_title(title)
            except Exception as exc:  # a title is a nicety: never fail the turn for it
                model_calls.failed(model or self.model_name, exc, time.perf_counter() - started)
                if span is not None:
                    span.end(metrics.error_kind(exc))
                    span = None
                fields, traceback = model_error_log(exc)
                log.info("title generation failed", exc_info=traceback, extra={"fields": fields})
            finally:
                if span is not None:  # cancelled (the client went away) before the call ended
                    span.end("cancelled")
        return summarize_title(text)


def _stopping_at(behavior: Any, tool_name: str) -> Any:
    """`behavior`, also stopping the run when `tool_name` is called (a client tool: the page answers)."""
    if isinstance(behavior, dict) and "stop_at_tool_names" in behavior:
        return StopAtTools(stop_at_tool_names=[*behavior["stop_at_tool_names"], tool_name])
    if behavior != "run_llm_again":
        return behavior  # a custom rule decides itself
    return StopAtTools(stop_at_tool_names=[tool_name])


def _dated(template: str) -> Any:
    def instructions(run_context: Any, agent: Any) -> str:
        return template.format(today=today_sentence(run_context.context))

    return instructions


def today_sentence(context: Any) -> str:
    """What the instructions say about today: the date where the user is, or that the zone is unknown."""
    clock = getattr(context, "clock", None)
    today = (clock() if callable(clock) else utc_today()).isoformat()
    zone = getattr(context, "time_zone", None)
    if zone and getattr(context, "default_zone", False):
        return (
            f"today is {today} in {zone}, the server's default time zone: the user's own time zone is unknown. "
            "When your reply uses a relative date (today, tomorrow, overdue, due today), say that it is a "
            f"date in {zone}."
        )
    if zone:
        return f"today is {today} in the user's time zone ({zone})."
    if isinstance(context, TurnContext):
        return (
            f"today is {today} in UTC. The user's time zone is unknown: call {GET_TIME_ZONE} before you "
            "use today's date (today, tomorrow, overdue, due today, this week)."
        )
    return f"today is {today} (UTC)."


def summarize_title(text: str) -> str:
    """First sentence of the message, trimmed to a word boundary, capitalised."""
    text = " ".join(text.split())
    if not text:
        return "New chat"
    sentence = re.split(r"(?<=[.!?؟۔])\s", text, maxsplit=1)[0].rstrip(".!?؟۔ ")
    if len(sentence) > TITLE_MAX_CHARS:
        cut = sentence[:TITLE_MAX_CHARS].rsplit(" ", 1)[0]
        sentence = (cut or sentence[:TITLE_MAX_CHARS]) + "…"
    return sentence[:1].upper() + sentence[1:]


def model_error_log(exc: BaseException) -> tuple[dict[str, Any], bool]:
    """What a log line may say of a failed model call: its kind (and a provider's status), and
    whether a traceback may go with it. Not for a provider's error: its message is the provider's
    response body, which may hold a key, an internal address or the user's own text echoed back."""
    fields: dict[str, Any] = {"error": type(exc).__name__}
    if isinstance(exc, openai.APIError):
        fields["status"] = getattr(exc, "status_code", None)
        return fields, False
    return fields, not isinstance(exc, OSError)


# What each kind of failure (`app.ops.openai_failures`) means for the person waiting on a reply.
_MODEL_FAILURES: tuple[OpenAIFailureKind, ...] = (
    "auth", "rate_limit", "timeout", "unreachable", "not_found", "bad_request", "refused",
)  # fmt: skip


def _model_words(lang: Language) -> dict[OpenAIFailureKind, str]:
    return {kind: say(f"error.model.{kind}", lang) for kind in _MODEL_FAILURES}


def describe_model_error(exc: BaseException, lang: Language = "en") -> tuple[str, bool]:
    """A message a person can act on (in the conversation's language), and whether retrying may help."""
    failure = describe_openai_failure(exc)
    if failure is not None and failure.kind != "unreadable":
        # A spent quota reads as a rate limit here: the person can only wait or tell an administrator.
        return failure.words(_model_words(lang)), failure.kind != "auth" and failure.kind != "not_found"
    name = type(exc).__name__
    if name == "MaxTurnsExceeded":
        return say("error.max_turns", lang), True
    return say("error.generic", lang), True
