"""The offline model's planner: given the person's intent and the calls already made this turn,
the next step — one tool call, or the reply."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.agents.offline import replies
from app.agents.offline.intents import Intent
from app.agents.offline.transcript import Done


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Reply:
    text: str


Step = ToolCall | Reply


# ---- planning: what to do next, given the intent and the calls already made this turn ---------


def plan(intent: Intent, done: list[Done]) -> Step:
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


def _plan_on_tagged(intent: Intent, done: list[Done]) -> Step:
    """One call per tagged task, by the id the server resolved the tag to (never by title: two
    tasks may share one), then one reply about all of them."""
    lang = intent.language
    if len(done) < len(intent.task_ids):
        return _action_call(intent, intent.task_ids[len(done)])
    said = [replies.after_action(intent, call.output, lang) for call in done]
    if intent.untagged:
        said.append(replies.not_your_task(intent.untagged, lang))
    return Reply(" ".join(said))


def _plan_on_one_task(intent: Intent, done: list[Done]) -> Step:
    lang = intent.language
    if intent.tagged:
        return _plan_on_tagged(intent, done)
    if not intent.has_reference:
        return Reply(replies.which_task(intent, lang))
    if intent.number is not None:
        if not done:
            return _action_call(intent, str(intent.number))
        return Reply(replies.after_action(intent, done[-1].output, lang))
    if intent.kind == "delete":
        # The delete tool resolves title words itself; several matches become a choice shown to the user.
        if not done:
            return _action_call(intent, intent.reference or "")
        matches = done[-1].output.get("matches") if isinstance(done[-1].output, dict) else None
        if matches:
            return Reply(replies.pick_to_delete(intent, matches, lang))
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
