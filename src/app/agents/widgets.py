"""What tasks look like in ChatKit: the task-list widget and the actions its buttons send.

The widget is a plain widget tree validated as ChatKit's `DynamicWidgetRoot` (the shape `.widget`
templates produce). Each row's `key` is `task:<id>`, which is how an action re-renders the same
rows after completing, reopening or deleting one of them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from chatkit.actions import Action
from chatkit.errors import CustomStreamError
from chatkit.types import WidgetItem
from chatkit.widgets import DynamicWidgetRoot

from app.agents.tools import compact_task
from app.core.clock import Now, utc_today, utcnow, zone_clock
from app.core.errors import DomainError, NotFound
from app.services.tasks import TaskService
from app.store.db import SessionMaker

ROW_KEY_PREFIX = "task:"
# A Delete button only asks; the row then offers Confirm (`task.delete.confirm`) or Cancel.
ACTION_TYPES = ("task.complete", "task.reopen", "task.delete", "task.delete.confirm", "task.delete.cancel")
_PRIORITY_COLOR = {"high": "danger", "medium": "warning", "low": "secondary"}
MAX_ROWS = 20


def _caption(task: dict[str, Any], today: date) -> str:
    parts = []
    if task.get("due_date"):
        due = task["due_date"]
        parts.append(f"Overdue · due {due}" if task.get("overdue") else f"Due {due}")
    if task.get("tags"):
        parts.append(" ".join(f"#{t}" for t in task["tags"]))
    if task.get("completed"):
        parts.append("Done")
    return " · ".join(parts) or "No due date"


def _confirm_row(task: dict[str, Any]) -> dict[str, Any]:
    task_id = str(task["id"])
    return {
        "type": "Row",
        "key": ROW_KEY_PREFIX + task_id,
        "gap": 2,
        "align": "center",
        "children": [
            {
                "type": "Text",
                "value": f"Delete #{task['number']} {task['title']}? This cannot be undone.",
                "weight": "medium",
                "truncate": True,
            },
            {"type": "Spacer"},
            {
                "type": "Button",
                "label": "Delete",
                "size": "sm",
                "color": "danger",
                "variant": "solid",
                "onClickAction": {"type": "task.delete.confirm", "payload": {"id": task_id}},
            },
            {
                "type": "Button",
                "label": "Cancel",
                "size": "sm",
                "variant": "outline",
                "onClickAction": {"type": "task.delete.cancel", "payload": {"id": task_id}},
            },
        ],
    }


def _row(task: dict[str, Any], today: date, *, confirming: bool = False) -> dict[str, Any]:
    if confirming:
        return _confirm_row(task)
    task_id = str(task["id"])
    completed = bool(task.get("completed"))
    toggle = "task.reopen" if completed else "task.complete"
    return {
        "type": "Row",
        "key": ROW_KEY_PREFIX + task_id,
        "gap": 2,
        "align": "center",
        "children": [
            {
                "type": "Col",
                "flex": 1,
                "gap": 0,
                "children": [
                    {
                        "type": "Text",
                        "value": f"#{task['number']} {task['title']}",
                        "weight": "medium",
                        "lineThrough": completed,
                        "truncate": True,
                    },
                    {
                        "type": "Caption",
                        "value": _caption(task, today),
                        "color": "danger" if task.get("overdue") else None,
                    },
                ],
            },
            {
                "type": "Badge",
                "label": str(task.get("priority", "medium")),
                "color": _PRIORITY_COLOR.get(task.get("priority", ""), "secondary"),
                "variant": "soft",
            },
            {
                "type": "Button",
                "label": "Reopen" if completed else "Done",
                "size": "sm",
                "variant": "outline" if completed else "solid",
                "onClickAction": {"type": toggle, "payload": {"id": task_id}},
            },
            {
                "type": "Button",
                "label": "Delete",
                "size": "sm",
                "color": "danger",
                "variant": "ghost",
                "onClickAction": {"type": "task.delete", "payload": {"id": task_id}},
            },
        ],
    }


def _prune(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _prune(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def task_list_widget(
    title: str, tasks: list[dict[str, Any]], today: date | None = None, *, confirming: str | None = None
) -> tuple[DynamicWidgetRoot, str]:
    """The widget for `tasks` (compact task dicts) and its plain-text copy for the model and clipboard.

    `confirming` is the id of a task whose row asks to confirm its deletion.
    """
    today = today or utc_today()
    shown = tasks[:MAX_ROWS]
    children: list[dict[str, Any]] = [
        {
            "type": "Row",
            "children": [
                {"type": "Title", "value": title, "size": "sm"},
                {"type": "Spacer"},
                {"type": "Badge", "label": str(len(tasks)), "pill": True},
            ],
        },
        {"type": "Divider"},
    ]
    if shown:
        children.extend(_row(task, today, confirming=str(task["id"]) == confirming) for task in shown)
    else:
        children.append({"type": "Text", "value": "Nothing here.", "color": "secondary"})
    widget = DynamicWidgetRoot.model_validate(_prune({"type": "Card", "size": "md", "children": children}))
    lines = [f"{title}:"] + [
        f"- #{t['number']} {t['title']}"
        + (f" (due {t['due_date']})" if t.get("due_date") else "")
        + (f" [{t.get('priority')}]" if t.get("priority") and t.get("priority") != "medium" else "")
        + (" [done]" if t.get("completed") else "")
        for t in shown
    ]
    if not shown:
        lines.append("(none)")
    return widget, "\n".join(lines)


def widget_title(widget: Any) -> str:
    for child in _children(widget):
        if _get(child, "type") == "Row":
            for grandchild in _children(child):
                if _get(grandchild, "type") == "Title":
                    return str(_get(grandchild, "value"))
    return "Tasks"


def widget_task_ids(widget: Any) -> list[str]:
    """The task ids of a task-list widget's rows, in display order."""
    ids = []
    for child in _children(widget):
        key = _get(child, "key")
        if isinstance(key, str) and key.startswith(ROW_KEY_PREFIX):
            ids.append(key[len(ROW_KEY_PREFIX) :])
    return ids


def _get(node: Any, name: str) -> Any:
    return node.get(name) if isinstance(node, dict) else getattr(node, name, None)


def _children(node: Any) -> Iterable[Any]:
    children = _get(node, "children")
    if children is None:
        return []
    return children if isinstance(children, list) else [children]


@dataclass
class ActionOutcome:
    replacement: WidgetItem | None = None
    changed_ids: set[str] = field(default_factory=set)


@dataclass
class TaskActions:
    """Applies a task widget's button actions through the task service, then re-renders the widget."""

    session_maker: SessionMaker
    now: Now = utcnow

    async def apply(self, action: Action[str, Any], sender: WidgetItem | None, context: Any) -> ActionOutcome:
        if action.type not in ACTION_TYPES:
            raise CustomStreamError(f"This server does not handle the action {action.type!r}.")
        payload = action.payload if isinstance(action.payload, dict) else {}
        raw_id = payload.get("id")
        try:
            task_id = uuid.UUID(str(raw_id))
        except ValueError:
            raise CustomStreamError("The action names no valid task id.") from None
        user_id: str = context.user_id
        changed: set[str] = set()
        confirming: str | None = None
        # The widget's "overdue" is the date where the user is (the request's Time-Zone).
        clock = zone_clock(getattr(context, "time_zone", None), self.now)
        async with TaskService.begin(self.session_maker, user_id, clock=clock) as service:
            try:
                if action.type == "task.complete":
                    await service.complete(task_id)
                elif action.type == "task.reopen":
                    await service.reopen(task_id)
                elif action.type == "task.delete":
                    await service.get(task_id)  # nothing changes yet: the row asks to confirm
                    confirming = str(task_id)
                elif action.type == "task.delete.confirm":
                    await service.delete(task_id)
                if action.type in {"task.complete", "task.reopen", "task.delete.confirm"}:
                    changed.add(str(task_id))
            except NotFound:
                pass  # already gone (deleted elsewhere): re-rendering below drops the row
            except DomainError as exc:
                raise CustomStreamError(exc.detail) from None
            if sender is None:
                replacement = None
            else:
                replacement = await self._rerender(service, sender, confirming=confirming)
        return ActionOutcome(replacement=replacement, changed_ids=changed)

    async def _rerender(self, service: TaskService, sender: WidgetItem, *, confirming: str | None = None) -> WidgetItem:
        today = service.clock()
        tasks = []
        for task_id in widget_task_ids(sender.widget):
            try:
                tasks.append(compact_task(await service.get(uuid.UUID(task_id)), today))
            except (NotFound, ValueError):
                continue
        widget, copy_text = task_list_widget(widget_title(sender.widget), tasks, today, confirming=confirming)
        return sender.model_copy(update={"widget": widget, "copy_text": copy_text})
