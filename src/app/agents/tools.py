"""The seven task tools: one declaration (`TaskOperations`), two adapters made from it.

Why one long module: each tool is declared exactly once, here — its arguments, description and
rules — and both adapters (the Agents SDK's `TASK_TOOLS` and `app.agents.mcp`) are generated from
that declaration; splitting the declaration would bring back the copies this module removed.

`TASK_TOOLS` adapts the operations to the OpenAI Agents SDK (strict JSON schemas); `app.agents.mcp`
serves the same operations over MCP. Every operation calls `app.services.tasks.TaskService` in its own
session and transaction, for the user taken from the run context, never from an argument the
model can set.

Run context. A tool reads `RunContextWrapper.context`, which must be a `ToolContext`: either
`AgentContext(user_id=..., session_maker=...)`, or any class that mixes `ToolContext` in (for
example chatkit's pydantic `AgentContext`) and provides `user_id` and `session_maker` itself or on
its `request_context`. An optional `clock` attribute (a callable returning a `date`) fixes "today":
the date in the user's time zone (`app.core.clock.zone_clock`), the UTC date without one.

Arguments. Tasks are named by number ("3", "#3") or id. Dates are YYYY-MM-DD, "today" or
"tomorrow" (the clock's dates). `null` means "not given"; `update_task` empties a field only when it is listed
in `clear` (["description", "due_date", "tags"]), and reopens a task with `completed: false`.

Results. Each tool returns compact JSON text:
    {"ok": true, "task": {...}, "changed_ids": ["<uuid>"]}           add, update, complete
    {"ok": true, "task": {...}}                                      get
    {"ok": true, "deleted": {...}, "changed_ids": ["<uuid>"]}        delete
    {"ok": false, "error": "...", "field": "task", "matches": [...]}  delete by title words, several match
    {"ok": true, "tasks": [...], "total": 12, "next_cursor": "..."}  list (next_cursor only if more)
    {"ok": true, "summary": {...}}                                   summary
    {"ok": false, "error": "what went wrong and what to do", "field": "due_date"}
A task is `{"id", "number", "title", "priority", "completed"}` plus, when set, `description`,
`due_date`, `tags`, `completed_at` and `"overdue": true`. A rule the call broke (unknown task,
bad date, empty title) is an `ok: false` result the model can read and recover from, never an
exception that ends the run. A successful result that used today's date (a date argument, the
summary, an overdue task) also carries `"time_zone": "<which zone those dates are in, in words>"`
when the scope has a `dates_note` (ChatKit turns do; MCP calls name their zone in the request).

Changed tasks. A tool that changes tasks reports their ids twice: in its result's `changed_ids`,
and by adding them to `context.changed_task_ids` (a `set[str]`, or a list) when the context has
one, so a ChatKit turn can tell the page which tasks to refresh once the run ends.
"""

from __future__ import annotations

import copy
import datetime as dt
import inspect
import json
import typing
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import msgspec
from agents import FunctionTool, ModelBehaviorError, RunContextWrapper, default_tool_error_function, function_tool
from agents.function_schema import function_schema, generate_func_documentation
from pydantic import Field, ValidationError

from app.contracts import (
    TASK_LIMITS,
    ComposerToolIcon,
    ComposerToolOption,
    Task,
    TaskCreate,
    TaskPriority,
    TaskSort,
    TaskStatus,
    TaskSummary,
    TaskUpdate,
)
from app.core.clock import utc_today
from app.core.errors import DomainError
from app.core.text import first_unstorable, unstorable_detail
from app.ops import tracing
from app.services.tasks import TaskQuery, TaskService, parse_ref
from app.store.db import SessionMaker

TOOL_LIST_DEFAULT_LIMIT = 20
TOOL_LIST_MAX_LIMIT = 100
ClearableField = Literal["description", "due_date", "tags"]
TaskNumberOrId = str | int
"""How a model or an MCP client names a task: its number (3, "3", "#3") or its id."""
TaskTagList = Annotated[list[Annotated[str, Field(max_length=TASK_LIMITS.tag)]], Field(max_length=TASK_LIMITS.tags)]
"""A task's tags as the tools take them: bounded in the schema, so both adapters refuse a longer list
(or tag) while validating the arguments, before the tool runs (the service checks again)."""


@dataclass(frozen=True, slots=True)
class TaskScope:
    """Whose tasks an operation touches, and how it reaches the database."""

    user_id: str
    session_maker: SessionMaker
    clock: Callable[[], dt.date] = utc_today
    max_tasks: int = 0  # QUOTA_TASKS_PER_USER; 0 = none
    # Which zone the clock's dates are in, in words (`app.agents.chatkit.time_zone.zone_sentence`): a result
    # that used today's date carries it as `time_zone`, so the model can tell the user.
    dates_note: str | None = None


DATE_ARGUMENTS = ("due_date", "due_before", "due_after", "overdue")


def uses_today(name: str, arguments: dict[str, Any], result: dict[str, Any]) -> bool:
    """Whether a call's answer depends on today's date: a date argument (which may be "today" or
    "tomorrow"), the summary (due today, overdue), or an overdue task in the result."""
    if name == "task_summary" or any(arguments.get(key) not in (None, "") for key in DATE_ARGUMENTS):
        return True
    listed = result.get("tasks")
    tasks = [result.get("task"), *(listed if isinstance(listed, list) else [])]
    return any(isinstance(task, dict) and task.get("overdue") for task in tasks)


class ToolContext:
    """Base (or mixin) of a run context the task tools can use; see the module docstring."""

    def task_scope(self) -> TaskScope:
        for holder in (self, getattr(self, "request_context", None)):
            user_id = getattr(holder, "user_id", None)
            session_maker = getattr(holder, "session_maker", None)
            if isinstance(user_id, str) and user_id and session_maker is not None:
                clock = getattr(holder, "clock", None) or getattr(self, "clock", None) or utc_today
                max_tasks = getattr(holder, "max_tasks", None) or getattr(self, "max_tasks", None) or 0
                note = getattr(self, "dates_note", None)
                return TaskScope(
                    user_id=user_id,
                    session_maker=session_maker,
                    clock=clock,
                    max_tasks=max_tasks,
                    dates_note=note if isinstance(note, str) else None,
                )
        raise LookupError(
            f"{type(self).__name__} gives the task tools no user_id and session_maker "
            "(on itself or on its request_context)"
        )

    def record_named(self, result: dict[str, Any]) -> None:
        """Remember the tasks a tool result names (not a deleted one: it links nowhere), so the
        turn's reply can carry entity annotations for them (`app.agents.chatkit.entities.annotate`)."""
        named = getattr(self, "named_tasks", None)
        if not isinstance(named, dict):
            return
        listed = result.get("tasks")
        for task in [result.get("task"), *(listed if isinstance(listed, list) else [])]:
            if isinstance(task, dict) and isinstance(task.get("id"), str):
                named[task["id"]] = task

    def record_changed(self, ids: Iterable[str]) -> None:
        changed = getattr(self, "changed_task_ids", None)
        if isinstance(changed, set):
            changed.update(ids)
        elif isinstance(changed, list):
            changed.extend(i for i in ids if i not in changed)


@dataclass
class AgentContext(ToolContext):
    """The smallest run context for the task tools: a user and a way to open sessions."""

    user_id: str
    session_maker: SessionMaker
    clock: Callable[[], dt.date] = utc_today
    changed_task_ids: set[str] = field(default_factory=set)


def compact_task(task: Task, today: dt.date) -> dict[str, Any]:
    """A task as the model reads it: what identifies it and what is set, nothing empty."""
    data: dict[str, Any] = {
        "id": str(task.id),
        "number": task.number,
        "title": task.title,
        "priority": task.priority,
        "completed": task.completed,
    }
    if task.description:
        data["description"] = task.description
    if task.due_date is not None:
        data["due_date"] = task.due_date.isoformat()
        if not task.completed and task.due_date < today:
            data["overdue"] = True
    if task.tags:
        data["tags"] = task.tags
    if task.completed_at is not None:
        data["completed_at"] = task.completed_at.isoformat(timespec="seconds")
    return data


def _summary_data(summary: TaskSummary) -> dict[str, Any]:
    return msgspec.to_builtins(summary)  # type: ignore[no-any-return]


def parse_due_date(value: str, today: dt.date) -> dt.date:
    """`YYYY-MM-DD`, `today` or `tomorrow`; a `DomainError` on `due_date` otherwise."""
    text = value.strip().lower()
    if text == "today":
        return today
    if text == "tomorrow":
        if today == dt.date.max:
            raise DomainError("tomorrow is past the last date a task can have (9999-12-31).", field="due_date")
        return today + dt.timedelta(days=1)
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise DomainError(
            f"{value!r} is not a date: use YYYY-MM-DD (for example {today.isoformat()}), today or tomorrow.",
            field="due_date",
        ) from None


def _optional_date(value: str | None, today: dt.date, name: str) -> dt.date | None:
    if value is None or not value.strip():
        return None
    try:
        return parse_due_date(value, today)
    except DomainError as exc:
        raise DomainError(exc.detail, field=name) from None


DELETE_MATCH_LIMIT = 10


def _names_a_task(ref: TaskNumberOrId) -> bool:
    """Whether `ref` is a task number or id (anything else is words of a title)."""
    try:
        parse_ref(ref)
    except DomainError:
        return False
    return True


def _ambiguous(words: str, matches: list[dict[str, Any]]) -> dict[str, Any]:
    if not matches:
        return {
            "ok": False,
            "error": f"No task matches “{words}”: list the tasks to find its number.",
            "field": "task",
        }
    names = ", ".join(f"#{t['number']} {t['title']}" for t in matches)
    return {
        "ok": False,
        "error": f"Several tasks match “{words}” ({names}); nothing was deleted. The user was shown them "
        "to pick the one to delete: ask them to pick it there, or to say its number.",
        "field": "task",
        "matches": matches,
    }


def _failure(exc: DomainError) -> dict[str, Any]:
    result: dict[str, Any] = {"ok": False, "error": exc.detail}
    if exc.field:
        result["field"] = exc.field
    return result


class TaskOperations:
    """The seven task operations for one scope; each returns a JSON-ready dict (see the module docstring)."""

    def __init__(self, scope: TaskScope) -> None:
        self.scope = scope

    async def call(self, name: str, arguments: dict[str, Any], *, via: str = "agent") -> dict[str, Any]:
        """Run the tool `name` for the assistant (`via="agent"`) or an MCP client (`"mcp"`), in a
        span of its own (app.ops.tracing); a string argument the database cannot store (NUL) is
        refused as a failure naming it, before it reaches a query (models and MCP clients both send them)."""
        with tracing.tool_call(name, via, arguments) as span:
            result = await self._call(name, arguments)
            tracing.tool_outcome(span, result)
            return result

    async def _call(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        field = first_unstorable(arguments)
        if field is not None:
            return {"ok": False, "error": unstorable_detail(field), "field": field}
        result: dict[str, Any] = await getattr(self, name)(**arguments)
        if self.scope.dates_note and result.get("ok") and uses_today(name, arguments, result):
            result["time_zone"] = self.scope.dates_note
        return result

    def _service(self) -> AbstractAsyncContextManager[TaskService]:
        return TaskService.begin(
            self.scope.session_maker, self.scope.user_id, clock=self.scope.clock, max_tasks=self.scope.max_tasks
        )

    def _changed(self, task: Task, key: str = "task") -> dict[str, Any]:
        return {"ok": True, key: compact_task(task, self.scope.clock()), "changed_ids": [str(task.id)]}

    async def add_task(
        self,
        *,
        title: str,
        description: str | None = None,
        priority: TaskPriority | None = None,
        due_date: str | None = None,
        tags: TaskTagList | None = None,
    ) -> dict[str, Any]:
        """Create a task for the user.

        Args:
            title: What to do, 1 to 200 characters.
            description: Optional details, up to 5,000 characters.
            priority: low, medium or high; null for medium.
            due_date: YYYY-MM-DD, today or tomorrow; null for none.
            tags: Up to 20 short labels (1 to 40 characters each) such as ["work"]; null for none.
        """
        try:
            data = TaskCreate(
                title=title,
                description=description or None,
                priority=priority or "medium",
                due_date=_optional_date(due_date, self.scope.clock(), "due_date"),
                tags=list(tags or []),
            )
            async with self._service() as tasks:
                task = await tasks.create(data)
        except DomainError as exc:
            return _failure(exc)
        return self._changed(task)

    async def list_tasks(
        self,
        *,
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
        """List the user's tasks, filtered and sorted. Use it to find a task's number from its title.

        Args:
            status: open (the default when null), completed or all.
            priority: Only tasks of this priority.
            overdue: true for open tasks past their due date, false to leave those out.
            due_before: Only tasks due on or before this date (YYYY-MM-DD, today or tomorrow).
            due_after: Only tasks due on or after this date (YYYY-MM-DD, today or tomorrow).
            tag: Only tasks with this tag.
            search: Only tasks whose title or description contains this text.
            sort: created_at (the default), updated_at, due_date, priority, number or title.
            limit: How many tasks to return, 1 to 100; null for 20.
            cursor: The next_cursor of a previous call with the same filters, for the next page.
        """
        today = self.scope.clock()
        try:
            query = TaskQuery(
                status=status or "open",
                priority=priority,
                overdue=overdue,
                due_before=_optional_date(due_before, today, "due_before"),
                due_after=_optional_date(due_after, today, "due_after"),
                tag=tag or None,
                search=search or None,
                sort=sort or "created_at",
                limit=max(1, min(limit or TOOL_LIST_DEFAULT_LIMIT, TOOL_LIST_MAX_LIMIT)),
                cursor=cursor or None,
            )
            async with self._service() as tasks:
                page = await tasks.list(query)
        except DomainError as exc:
            return _failure(exc)
        result: dict[str, Any] = {
            "ok": True,
            "tasks": [compact_task(task, today) for task in page.items],
            "total": page.total,
        }
        if page.next_cursor:
            result["next_cursor"] = page.next_cursor
        return result

    async def get_task(self, *, task: TaskNumberOrId) -> dict[str, Any]:
        """Show one task with all its details.

        Args:
            task: The task's number (such as "3") or id.
        """
        try:
            async with self._service() as tasks:
                found = await tasks.get(task)
        except DomainError as exc:
            return _failure(exc)
        return {"ok": True, "task": compact_task(found, self.scope.clock())}

    async def update_task(
        self,
        *,
        task: TaskNumberOrId,
        title: str | None = None,
        description: str | None = None,
        priority: TaskPriority | None = None,
        due_date: str | None = None,
        tags: TaskTagList | None = None,
        completed: bool | None = None,
        clear: list[ClearableField] | None = None,
    ) -> dict[str, Any]:
        """Change a task. Only the fields given (not null) change; `clear` empties fields.

        Args:
            task: The task's number (such as "3") or id.
            title: A new title.
            description: A new description.
            priority: A new priority.
            due_date: A new due date: YYYY-MM-DD, today or tomorrow.
            tags: The new complete list of up to 20 tags, 1 to 40 characters each (replaces the old ones).
            completed: true marks it done, false reopens it.
            clear: Fields to empty: description, due_date and/or tags.
        """
        given: dict[str, Any] = {
            "title": title,
            "description": description,
            "priority": priority,
            "tags": tags,
            "completed": completed,
        }
        changes: dict[str, Any] = {name: value for name, value in given.items() if value is not None}
        for name in clear or ():
            changes[name] = [] if name == "tags" else None
        try:
            if due_date is not None and "due_date" not in changes:
                changes["due_date"] = _optional_date(due_date, self.scope.clock(), "due_date")
            update = TaskUpdate(**changes)
            async with self._service() as tasks:
                updated = await tasks.update(task, update)
        except DomainError as exc:
            return _failure(exc)
        return self._changed(updated)

    async def complete_task(self, *, task: TaskNumberOrId) -> dict[str, Any]:
        """Mark a task as done.

        Args:
            task: The task's number (such as "3") or id.
        """
        try:
            async with self._service() as tasks:
                completed = await tasks.complete(task)
        except DomainError as exc:
            return _failure(exc)
        return self._changed(completed)

    async def delete_task(self, *, task: TaskNumberOrId) -> dict[str, Any]:
        """Delete a task for good. Named by words of its title, it deletes the one task they match;
        when several match, nothing is deleted, the result lists them as `matches` and the user is
        shown them to pick one.

        Args:
            task: The task's number (such as "3"), id, or words of its title (such as "milk").
        """
        try:
            async with self._service() as tasks:
                ref: TaskNumberOrId | uuid.UUID = task
                if not _names_a_task(task):
                    matches = await self._title_matches(tasks, str(task))
                    if len(matches) != 1:
                        return _ambiguous(str(task), [compact_task(t, self.scope.clock()) for t in matches])
                    ref = matches[0].id
                deleted = await tasks.delete(ref)
        except DomainError as exc:
            return _failure(exc)
        return self._changed(deleted, key="deleted")

    async def _title_matches(self, tasks: TaskService, words: str) -> list[Task]:
        if not words.strip():
            return []
        page = await tasks.list(TaskQuery(status="all", search=words.strip(), limit=DELETE_MATCH_LIMIT))
        return list(page.items)

    async def task_summary(self) -> dict[str, Any]:
        """Count the user's tasks: open, completed, overdue, due today, and open tasks by priority."""
        try:
            async with self._service() as tasks:
                summary = await tasks.summary()
        except DomainError as exc:
            return _failure(exc)
        return {"ok": True, "summary": _summary_data(summary)}


def encode_result(result: dict[str, Any]) -> str:
    return json.dumps(result, ensure_ascii=False, separators=(",", ":"))


# ---- the adapters, made from the one declaration above -------------------------------------------
# Each tool is a `TaskOperations` method: its signature is the tool's arguments, its docstring the
# tool's description and the arguments' descriptions. Optional arguments default to None, so an
# OpenAI-compatible model that omits them (vLLM, Ollama, MiMo do) still validates, while the strict
# schema sent to the model lists every argument as required, as strict mode demands.

TOOL_NAMES: tuple[str, ...] = (
    "add_task",
    "list_tasks",
    "get_task",
    "update_task",
    "complete_task",
    "delete_task",
    "task_summary",
)


@dataclass(frozen=True, slots=True)
class ToolDeclaration:
    """One task tool as both adapters need it: its name, docstring, and arguments with their types."""

    name: str
    doc: str
    description: str  # the docstring's summary
    argument_docs: dict[str, str]  # the docstring's `Args:` section
    parameters: tuple[inspect.Parameter, ...]  # positional-or-keyword, annotations resolved

    @classmethod
    def of(cls, name: str) -> ToolDeclaration:
        method = getattr(TaskOperations, name)
        hints = typing.get_type_hints(method, include_extras=True)  # keep the bounds (Annotated)
        parameters = tuple(
            parameter.replace(kind=inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=hints[parameter.name])
            for parameter in inspect.signature(method).parameters.values()
            if parameter.name != "self"
        )
        documentation = generate_func_documentation(method)
        return cls(
            name=name,
            doc=inspect.getdoc(method) or "",
            description=documentation.description or "",
            argument_docs=dict(documentation.param_descriptions or {}),
            parameters=parameters,
        )

    def adapter(
        self, context_name: str, context_type: Any, invoke: Callable[..., Awaitable[Any]], returns: Any
    ) -> Callable[..., Awaitable[Any]]:
        """A function `(context, <the tool's arguments>)` that calls `invoke(context, **arguments)`.

        Frameworks read a tool's schema from a function's signature, type hints and docstring;
        this one carries the declaration's, with the framework's context type first.
        """
        names = [parameter.name for parameter in self.parameters]

        async def tool(*args: Any, **kwargs: Any) -> Any:
            # The Agents SDK passes the context first, by position; the MCP SDK by its name.
            if context_name in kwargs:
                context, positional = kwargs.pop(context_name), args
            else:
                context, positional = args[0], args[1:]
            arguments = dict(zip(names, positional, strict=False)) | kwargs
            return await invoke(context, **arguments)

        context_parameter = inspect.Parameter(
            context_name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=context_type
        )
        tool.__name__ = tool.__qualname__ = self.name
        tool.__doc__ = self.doc
        tool.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [context_parameter, *self.parameters], return_annotation=returns
        )
        tool.__annotations__ = {
            context_name: context_type,
            **{parameter.name: parameter.annotation for parameter in self.parameters},
            "return": returns,
        }
        return tool


TOOL_DECLARATIONS: tuple[ToolDeclaration, ...] = tuple(ToolDeclaration.of(name) for name in TOOL_NAMES)


def _sdk_tool(declaration: ToolDeclaration) -> FunctionTool:
    async def run(ctx: RunContextWrapper[ToolContext], **arguments: Any) -> str:
        context = ctx.context
        operations = TaskOperations(context.task_scope())
        result = await operations.call(declaration.name, arguments)
        if result.get("changed_ids"):
            context.record_changed(result["changed_ids"])
        if result.get("ok"):
            context.record_named(result)
        return encode_result(result)

    function = declaration.adapter("ctx", RunContextWrapper[ToolContext], run, str)
    arguments_model = function_schema(function).params_pydantic_model

    def failure(ctx: RunContextWrapper[Any], error: Exception) -> str:
        """Arguments outside the schema (41 tags, a 100 KB tag) as a failure the model can read and
        fix, naming the argument, like a broken rule. The SDK keeps the validation error to itself
        (it would carry the arguments), so they are validated again here, only after a failure."""
        raw = getattr(ctx, "tool_arguments", None)
        if isinstance(error, ModelBehaviorError) and isinstance(raw, str):
            try:
                arguments_model.model_validate_json(raw or "{}")
            except ValidationError as invalid:
                first = invalid.errors(include_url=False)[0]
                name = str((first.get("loc") or ("arguments",))[0])
                return encode_result(
                    {"ok": False, "error": f"{name}: {first.get('msg', 'is invalid')}.", "field": name}
                )
        return default_tool_error_function(ctx, error)

    tool = function_tool(function, failure_error_function=failure)
    # OpenAI's strict mode accepts only a subset of JSON Schema, and `maxLength` is not in it (an
    # "Invalid schema" 400 for every turn); `maxItems` is. The SDK still validates the arguments
    # with the full bounds (its pydantic model), and the description states the tag length.
    tool.params_json_schema = _without_keyword(tool.params_json_schema, "maxLength")
    return tool


def _without_keyword(schema: Any, keyword: str) -> Any:
    if isinstance(schema, dict):
        return {key: _without_keyword(value, keyword) for key, value in schema.items() if key != keyword}
    if isinstance(schema, list):
        return [_without_keyword(value, keyword) for value in schema]
    return schema


TASK_TOOLS: tuple[FunctionTool, ...] = tuple(_sdk_tool(declaration) for declaration in TOOL_DECLARATIONS)
"""The task tools for the OpenAI Agents SDK (strict JSON schemas)."""


# ---- composer tools: what the page's composer offers (`inference_options.tool_choice`) -------------


@dataclass(frozen=True, slots=True)
class ComposerTool:
    """A tool the composer offers. Choosing it forces the turn's first model call to be `tool`;
    `arguments` are fixed on that call, whatever the model put there ("Due today" lists what is due
    today even when the model left the dates out)."""

    id: str  # what the page sends as `inference_options.tool_choice.id`
    tool: str  # the task tool it forces (one of TOOL_NAMES)
    label: str
    icon: ComposerToolIcon  # a ChatKit icon name (the spec lists the ones allowed)
    placeholder: str  # the composer's placeholder while it is chosen
    command: str  # the composer's "/" command that chooses it (`/add`)
    arguments: Mapping[str, str] = field(default_factory=dict)

    def option(self) -> ComposerToolOption:
        return ComposerToolOption(
            id=self.id, label=self.label, icon=self.icon, placeholder=self.placeholder, command=self.command
        )


COMPOSER_TOOLS: tuple[ComposerTool, ...] = (
    ComposerTool("add_task", "add_task", "Add task", "plus", "What needs doing? e.g. Buy milk tomorrow", "add"),
    ComposerTool("list_tasks", "list_tasks", "Find tasks", "search", "Which tasks? e.g. groceries, or overdue", "find"),
    ComposerTool(
        "today",
        "list_tasks",
        "Due today",
        "calendar",
        "Send for what is due today, or add words to narrow it",
        "today",
        # "today" is the user's date (the Time-Zone header, else DEFAULT_TIME_ZONE), as the tool reads it.
        {"status": "open", "due_after": "today", "due_before": "today"},
    ),
    ComposerTool("summary", "task_summary", "Summary", "chart", "Send to get a summary of your tasks", "summary"),
)
COMPOSER_TOOL_BY_ID: dict[str, ComposerTool] = {tool.id: tool for tool in COMPOSER_TOOLS}


def with_fixed_arguments(tool: FunctionTool, arguments: Mapping[str, str]) -> FunctionTool:
    """A copy of `tool` (for one run) whose first call runs with `arguments` over the model's own:
    the filter of the composer tool that forced it. Later calls of the run are the model's alone,
    as the forced choice itself is (the SDK lets the model choose freely once a tool ran)."""
    if not arguments:
        return tool
    invoke = tool.on_invoke_tool
    first = [True]

    async def invoke_first_with_fixed(context: Any, input_json: str) -> Any:
        if first:
            first.clear()
            try:
                given = json.loads(input_json or "{}")
            except ValueError:
                given = {}  # the SDK's own validation reports a malformed call; here the filter decides
            input_json = json.dumps({**(given if isinstance(given, dict) else {}), **arguments})
        return await invoke(context, input_json)

    fixed = copy.copy(tool)
    fixed.on_invoke_tool = invoke_first_with_fixed
    return fixed


def composer_tool_options() -> list[ComposerToolOption]:
    """The composer tools as `GET /api/chatkit/health` reports them to the page."""
    return [tool.option() for tool in COMPOSER_TOOLS]
