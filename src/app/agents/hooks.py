"""Run hooks that make tool work visible in ChatKit while it happens.

Each tool call becomes a task in a workflow ("Adding task…", then "Added #4 Buy milk"); a
list or summary also shows the task-list widget, whose buttons act on the tasks in place; a
delete whose words match several tasks shows them as a choice.
When one model response calls several task tools at once, `progress_update`s count them
("Completing 12 tasks…", "Completed 3 of 12 tasks…"). Model calls start and end the turn's
slow-model watch (`app.agents.chatkit.notices`).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from agents import Agent, ModelResponse, RunContextWrapper, RunHooks, Tool
from chatkit.agents import AgentContext
from chatkit.types import CustomTask

from app.agents.chatkit.notices import BATCH_MIN, ToolBatch, TurnNotices
from app.agents.chatkit.widgets import choice_widget, task_list_widget
from app.agents.messages import CATALOGUE, Language, counted, say
from app.core.clock import utc_today
from app.ops import metrics, model_calls, tracing
from app.services.usage import Tokens

log = logging.getLogger("app.assistant")

TASK_TOOLS = frozenset(
    {"add_task", "list_tasks", "get_task", "update_task", "complete_task", "delete_task", "task_summary"}
)


def _language(turn: Any) -> Language:
    lang = getattr(turn, "language", "en")
    return "ur" if lang == "ur" else "en"


def _running(tool: str, lang: Language) -> str:
    return say(f"running.{tool}", lang)


def _finished(tool: str, result: dict[str, Any], lang: Language = "en") -> str:
    if result.get("matches"):
        return say("finished.matches", lang, count=len(result["matches"]))
    if not result.get("ok", True):
        return say("finished.failed", lang, doing=_running(tool, lang).rstrip("…"), error=result.get("error", "error"))
    task = result.get("task") or result.get("deleted") or {}
    name = f"#{task.get('number')} {task.get('title')}" if task else ""
    if tool == "list_tasks":
        total = result.get("total", len(result.get("tasks", [])))
        return counted("finished.list_tasks", total, lang)
    if tool == "task_summary":
        return say("finished.task_summary", lang)
    key = f"finished.{tool}"
    return (say(key, lang, name=name) if key in CATALOGUE else say("finished.other", lang, tool=tool)).strip()


def _notices(context: RunContextWrapper[Any]) -> TurnNotices | None:
    notices = getattr(context.context, "notices", None)
    return notices if isinstance(notices, TurnNotices) else None


def _call_key(context: RunContextWrapper[Any], tool: Tool) -> str:
    """One tool call: several calls of the same tool may run at once (a batch)."""
    return str(getattr(context, "tool_call_id", None) or tool.name)


def _called_tools(response: ModelResponse) -> tuple[str, ...]:
    """The task tools a model response calls, in order."""
    names = (getattr(item, "name", None) for item in response.output if getattr(item, "type", "") == "function_call")
    return tuple(name for name in names if name in TASK_TOOLS)


class ProgressHooks(RunHooks[Any]):
    def __init__(self) -> None:
        self._task_index: dict[str, int] = {}
        self._batch: ToolBatch | None = None

    async def on_llm_start(
        self, context: RunContextWrapper[Any], agent: Agent[Any], system_prompt: str | None, input_items: list[Any]
    ) -> None:
        if hasattr(context.context, "model_call_started"):
            context.context.model_call_started = time.perf_counter()
        notices = _notices(context)
        if hasattr(context.context, "model_span"):
            model = getattr(context.context, "model", None) or str(agent.model)
            retries = notices.retries if notices is not None else 0
            context.context.model_span = tracing.ModelCallSpan.start(model, purpose="answer", retries_before=retries)
        if notices is not None:
            notices.model_started()

    async def on_llm_end(self, context: RunContextWrapper[Any], agent: Agent[Any], response: ModelResponse) -> None:
        started = getattr(context.context, "model_call_started", None)
        if started is not None:
            context.context.model_call_started = None
            model = getattr(context.context, "model", None) or str(agent.model)
            model_calls.record(model, "ok", time.perf_counter() - started)
        notices = _notices(context)
        span = getattr(context.context, "model_span", None)
        if span is not None:
            context.context.model_span = None
            retries = notices.retries if notices is not None else None
            span.end("ok", Tokens.of(response.usage).counts(), retries_after=retries)
        if notices is None:
            return
        notices.model_ended()
        called = _called_tools(response)
        # The SDK runs the calls of one response together: this is the batch the tools below end.
        self._batch = ToolBatch(called, lang=notices.lang) if len(called) >= BATCH_MIN else None
        if self._batch is not None:
            await notices.progress(self._batch.started_text(), icon="batch")

    async def on_tool_start(self, context: RunContextWrapper[Any], agent: Agent[Any], tool: Tool) -> None:
        turn = context.context
        if not isinstance(turn, AgentContext) or tool.name not in TASK_TOOLS:
            return
        task = CustomTask(title=_running(tool.name, _language(turn)), status_indicator="loading")
        await turn.add_workflow_task(task)
        if turn.workflow_item is not None:
            self._task_index[_call_key(context, tool)] = len(turn.workflow_item.workflow.tasks) - 1

    async def on_tool_end(self, context: RunContextWrapper[Any], agent: Agent[Any], tool: Tool, result: Any) -> None:
        turn = context.context
        if not isinstance(turn, AgentContext) or tool.name not in TASK_TOOLS:
            return
        try:
            data = json.loads(result) if isinstance(result, str) else dict(result)
        except (TypeError, ValueError):
            data = {"ok": False, "error": "unreadable result"}
        metrics.TOOL_CALLS.labels(tool=tool.name, outcome="ok" if data.get("ok") else "error").inc()
        notices = _notices(context)
        if self._batch is not None and notices is not None and tool.name in self._batch.tools:
            await notices.progress(self._batch.finished_one(), icon="batch")
        index = self._task_index.pop(_call_key(context, tool), None)
        if turn.workflow_item is not None and index is not None and index < len(turn.workflow_item.workflow.tasks):
            done = CustomTask(title=_finished(tool.name, data, _language(turn)), status_indicator="complete")
            await turn.update_workflow_task(done, index)
        if tool.name == "list_tasks" and data.get("ok"):
            tasks = data.get("tasks", [])
            clock = getattr(turn, "clock", None) or utc_today  # the user's date marks what is overdue
            lang = _language(turn)
            widget, copy_text = task_list_widget(say("list.title", lang), tasks, clock(), lang)
            await turn.stream_widget(widget, copy_text=copy_text)
        if tool.name == "delete_task" and data.get("matches"):
            # Several tasks matched: the user picks the one to delete (and then confirms it).
            widget, copy_text = choice_widget(data["matches"], lang=_language(turn))
            await turn.stream_widget(widget, copy_text=copy_text)

    async def on_handoff(self, context: RunContextWrapper[Any], from_agent: Agent[Any], to_agent: Agent[Any]) -> None:
        turn = context.context
        if isinstance(turn, AgentContext):
            lang = _language(turn)
            key = f"agent.{to_agent.name}"
            agent = say(key, lang) if key in CATALOGUE else to_agent.name
            await turn.add_workflow_task(
                CustomTask(title=say("handoff", lang, agent=agent), status_indicator="complete")
            )
