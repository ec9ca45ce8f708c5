"""Tasks as ChatKit entities: the composer's @-tags going in, entity annotations coming out.

A task entity (what the page's `entities.onTagSearch` offers, and what comes back as a user
message's `input_tag`) carries the task's id as its `id`. Nothing else of a tag is trusted: its
`text` and `data` are the client's. Every time the conversation is converted for the model, each
tag's id is looked up among the signed-in user's own tasks (`TaskService.find`), so a tag naming
another user's task, or a task deleted since, reaches the model as "no task of this user" and
nothing of that task is read, shown or changed.

The model reads a tag as one line, written and read here (`format_tag`, `parse_tags`):

    [task tag] @Buy milk = task #3 “Buy milk” (id 0193..., open)
    [task tag] @Buy milk = no task of this user (...)

so a real model can pass the id to the task tools and the offline model acts on exactly that task,
even when two tasks share the title.

Going out, an assistant message that names a task the turn knows (a tagged one, or one a tool
returned) gets an `Annotation` with an `EntitySource` for it, so the front end can link it.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from chatkit.types import (
    Annotation,
    AssistantMessageContent,
    AssistantMessageItem,
    EntitySource,
    ThreadItem,
    UserMessageItem,
    UserMessageTagContent,
)

from app.agents.tools import TaskScope, compact_task
from app.core.errors import ProtocolError
from app.services.tasks import TaskService

TASK_TAG_PREFIX = "[task tag]"
TASK_ENTITY = "task"  # `data.type` of the entities the page offers and of the sources the server adds
# What one message's tags may carry. The page sends a task's id (36 characters) and a `data` of a
# few dozen; a tag is stored with its message and read again every turn, and neither its id nor its
# data counts towards the message length limit (MAX_MESSAGE_CHARS counts text).
MAX_TAGS_PER_MESSAGE = 50
MAX_TAG_ID_CHARS = 200
MAX_TAG_DATA_CHARS = 2_000  # `data` as compact JSON
_RESOLVED_END = ". This is exactly the task the user means: pass its id to the task tools."
_UNRESOLVED_END = (
    " = no task of this user (unknown or deleted): do not act on any task for this tag; say it names none "
    "of their tasks and ask which task they mean."
)
# Read from the end of the line: the tag's text (the client's, written first) may spell anything,
# even what follows it in a line of the other kind; the server's words close every line.
_RESOLVED = re.compile(
    r"^\[task tag\] @(?P<text>.*?) = task #(?P<number>\d+) “(?P<title>.*)” "
    r"\(id (?P<id>[0-9a-fA-F-]{36}), (?P<state>open|completed)\)" + re.escape(_RESOLVED_END) + "$"
)
_UNRESOLVED = re.compile(r"^\[task tag\] @(?P<text>.*)" + re.escape(_UNRESOLVED_END) + "$")


class ResolvedTag(UserMessageTagContent):
    """A tag after the server looked it up: `task` is the user's task it names (the compact form the
    task tools return), or None when it names none of theirs."""

    task: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class TagNote:
    """A tag as the model reads it back: its text, and the user's task it names (None: none)."""

    text: str
    task_id: str | None = None
    number: int | None = None
    title: str | None = None
    completed: bool = False


def check_tags(content: Iterable[object], field: str = "params.input.content") -> None:
    """A `ProtocolError` naming the first tag of a message's `content` beyond what a tag may carry
    (checked before a stream opens, so nothing of the message is stored)."""
    tags = [(index, part) for index, part in enumerate(content) if isinstance(part, UserMessageTagContent)]
    if len(tags) > MAX_TAGS_PER_MESSAGE:
        raise ProtocolError(
            f"{field} has {len(tags)} tags; a message may tag at most {MAX_TAGS_PER_MESSAGE} tasks: "
            "split it into several messages.",
            field=field,
        )
    for index, tag in tags:
        if len(tag.id) > MAX_TAG_ID_CHARS:
            where = f"{field}.{index}.id"
            raise ProtocolError(
                f"{where} is {len(tag.id)} characters long; a tag's id (the task's id) may have at most "
                f"{MAX_TAG_ID_CHARS}.",
                field=where,
            )
        size = len(json.dumps(tag.data, separators=(",", ":"), ensure_ascii=False))
        if size > MAX_TAG_DATA_CHARS:
            where = f"{field}.{index}.data"
            raise ProtocolError(
                f"{where} is {size} characters of JSON; a tag's data may have at most {MAX_TAG_DATA_CHARS} "
                "(the task's entity data: type, task_id, number).",
                field=where,
            )


def tag_task_id(tag: UserMessageTagContent) -> uuid.UUID | None:
    """The task id a tag claims to name: its `id` (the page's entities), else `data.task_id`."""
    for candidate in (tag.id, tag.data.get("task_id") if isinstance(tag.data, dict) else None):
        if isinstance(candidate, str):
            try:
                return uuid.UUID(candidate.strip())
            except ValueError:
                continue
    return None


def tag_ids(items: Iterable[ThreadItem]) -> list[uuid.UUID]:
    """The task ids the tags of these user messages claim, in order, once each."""
    ids: dict[uuid.UUID, None] = {}
    for item in items:
        if isinstance(item, UserMessageItem):
            for part in item.content:
                if isinstance(part, UserMessageTagContent):
                    task_id = tag_task_id(part)
                    if task_id is not None:
                        ids[task_id] = None
    return list(ids)


async def resolve_tags(
    items: list[ThreadItem], scope: Callable[[], TaskScope]
) -> tuple[list[ThreadItem], dict[str, dict[str, Any]]]:
    """The items with their tags looked up among the user's tasks (one query, only when there are
    tags; `scope` says whose), and the tasks found by id (compact, as the task tools return them)."""
    ids = tag_ids(items)
    if not ids:
        return items, {}
    whose = scope()
    async with TaskService.begin(whose.session_maker, whose.user_id, clock=whose.clock) as tasks:
        found = await tasks.find(ids)
    today = whose.clock()
    compact = {str(task_id): compact_task(task, today) for task_id, task in found.items()}
    return [with_resolved_tags(item, compact) for item in items], compact


def with_resolved_tags(item: ThreadItem, found: Mapping[str, dict[str, Any]]) -> ThreadItem:
    """The item with each tag replaced by a `ResolvedTag` naming the user's task in `found` (by id)
    or none. Items without tags come back as they are."""
    if not isinstance(item, UserMessageItem) or not any(
        isinstance(part, UserMessageTagContent) for part in item.content
    ):
        return item
    content: list[Any] = []
    for part in item.content:
        if isinstance(part, UserMessageTagContent):
            task_id = tag_task_id(part)
            task = found.get(str(task_id)) if task_id is not None else None
            part = ResolvedTag(**part.model_dump(exclude={"task"}), task=task)
        content.append(part)
    return item.model_copy(update={"content": content})


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def format_tag(tag: UserMessageTagContent) -> str:
    """The line the model reads for a tag. Only a `ResolvedTag` with a task names one: a tag the
    server did not look up is treated as naming none."""
    text = _one_line(tag.text)
    task = tag.task if isinstance(tag, ResolvedTag) else None
    if not task:
        return f"{TASK_TAG_PREFIX} @{text}{_UNRESOLVED_END}"
    state = "completed" if task.get("completed") else "open"
    return (
        f"{TASK_TAG_PREFIX} @{text} = task #{task['number']} “{_one_line(task['title'])}” "
        f"(id {task['id']}, {state}){_RESOLVED_END}"
    )


def parse_tags(text: str) -> list[TagNote]:
    """The tags in a converted context message (one `[task tag]` line each)."""
    notes: list[TagNote] = []
    for line in text.splitlines():
        line = line.strip()
        resolved = _RESOLVED.match(line)
        if resolved:
            notes.append(
                TagNote(
                    text=resolved.group("text"),
                    task_id=resolved.group("id"),
                    number=int(resolved.group("number")),
                    title=resolved.group("title"),
                    completed=resolved.group("state") == "completed",
                )
            )
            continue
        unresolved = _UNRESOLVED.match(line)
        if unresolved:
            notes.append(TagNote(text=unresolved.group("text")))
    return notes


# ---- going out: entity annotations on replies that name tasks --------------------------------


def task_source(task: Mapping[str, Any]) -> EntitySource:
    """The entity source of one of the user's tasks (`interactive`: the page's `entities.onClick`
    focuses it in the task panel)."""
    number = task.get("number")
    title = str(task.get("title", ""))
    return EntitySource(
        id=str(task["id"]),
        title=f"#{number} {title}" if number is not None else title,
        description="Completed task" if task.get("completed") else "Open task",
        icon="check-circle-filled" if task.get("completed") else "check-circle",
        label="Task",
        inline_label=f"#{number}" if number is not None else None,
        interactive=True,
        data={"type": TASK_ENTITY, "task_id": str(task["id"]), "number": str(number)},
    )


def _mention_end(text: str, task: Mapping[str, Any], unique_title: bool) -> int | None:
    """Where the first mention of `task` in `text` ends: its number (#3, then a following “title”
    when there is one), else its title when no other known task shares it."""
    number = task.get("number")
    if number is not None:
        match = re.search(rf"#{int(number)}(?!\d)", text)
        if match:
            end = match.end()
            quoted = re.match(r"\s*“[^”]*”", text[end:])
            return end + quoted.end() if quoted else end
    title = str(task.get("title", "")).strip()
    if unique_title and len(title) >= 3:
        index = text.casefold().find(title.casefold())
        if index >= 0:
            return index + len(title)
    return None


def annotate(item: AssistantMessageItem, tasks: Mapping[str, Mapping[str, Any]]) -> AssistantMessageItem:
    """The message with an entity annotation for each known task its text names (`tasks`: the
    user's tasks by id: tagged this turn or returned by its tools). Annotations already there stay."""
    if not tasks:
        return item
    titles: dict[str, int] = {}
    for task in tasks.values():
        key = str(task.get("title", "")).strip().casefold()
        titles[key] = titles.get(key, 0) + 1
    content: list[AssistantMessageContent] = []
    changed = False
    for part in item.content:
        found: list[tuple[int, Mapping[str, Any]]] = []
        have = {a.source.id for a in part.annotations if isinstance(a.source, EntitySource)}
        for task in tasks.values():
            if str(task["id"]) in have:
                continue
            unique = titles.get(str(task.get("title", "")).strip().casefold(), 0) == 1
            end = _mention_end(part.text, task, unique)
            if end is not None:
                found.append((end, task))
        if found:
            changed = True
            added = [Annotation(source=task_source(task), index=end) for end, task in sorted(found, key=lambda f: f[0])]
            part = part.model_copy(update={"annotations": [*part.annotations, *added]})
        content.append(part)
    return item.model_copy(update={"content": content}) if changed else item
