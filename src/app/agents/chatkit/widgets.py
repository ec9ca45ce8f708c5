"""What tasks look like in ChatKit: the task-list widget, the cards it turns into, and what a stored
widget says (its rows, the list a card returns to); what their actions do is `app.agents.chatkit.actions`.

Widgets are plain widget trees validated as ChatKit's `DynamicWidgetRoot` (the shape `.widget`
templates produce). Four shapes, each the root of one widget item, replaced in place by actions:

- a task list: a `ListView` (key `tasks`) whose `ListViewItem`s are keyed `task:<id>`, with
  Done/Reopen, Edit and Delete buttons;
- a choice: a `ListView` (key `choice:delete`) of the tasks a delete request matched, each item
  carrying its task id in its click action (the model's "delete the milk task" when two match);
- a confirmation: a `Card` whose `confirm` action (`task.delete.confirm`) is the only way a widget
  deletes a task, and whose `cancel` (`task.delete.cancel`) goes back to the list unchanged;
- an edit form: a `Card` holding a `Form` (title, due date, priority) submitted as
  `task.edit.save`; the values are checked by the task service, the same rules as the REST API.

A card remembers the list it came from (`back`: kind, title, task ids) in its own action payloads,
and the server reads it from the stored widget item, never from what the client sends; every id is
looked up again as the signed-in user, so another user's task id finds nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from chatkit.widgets import DynamicWidgetRoot
from pydantic import BaseModel

from app.agents.messages import Language, date_text, priority_name, say
from app.services.tasks import PRIORITIES

ROW_KEY_PREFIX = "task:"
LIST_KEY = "tasks"
CHOICE_KEY = "choice:delete"
_PRIORITY_COLOR = {"high": "danger", "medium": "warning", "low": "secondary"}
MAX_ROWS = 20
ListKind = Literal["tasks", "choice"]
# Actions that only change one task and redraw their own widget: they carry `streaming: false`, so
# ChatKit's component sends them as `threads.sync_custom_action` (answered with the redrawn widget, no
# stream), which it does even while a reply streams on the thread (it holds streamed actions back then).
# The others stream (`threads.custom_action`): a deletion's `tasks.changed` client effect needs a stream.
SYNC_ACTIONS = frozenset({"task.complete", "task.reopen", "task.edit", "task.edit.save", "task.edit.cancel"})


@dataclass(frozen=True, slots=True)
class Back:
    """The list a card came from and returns to."""

    kind: ListKind
    title: str
    ids: tuple[str, ...]

    def payload(self) -> dict[str, Any]:
        return {"kind": self.kind, "title": self.title, "ids": list(self.ids)}

    @classmethod
    def of(cls, value: Any) -> Back | None:
        if not isinstance(value, dict) or not isinstance(value.get("ids"), list):
            return None
        kind: ListKind = "choice" if value.get("kind") == "choice" else "tasks"
        title = value["title"] if isinstance(value.get("title"), str) else "Tasks"
        return cls(kind=kind, title=title, ids=tuple(str(i) for i in value["ids"][:MAX_ROWS]))


def _caption(task: dict[str, Any], lang: Language = "en") -> str:
    parts = []
    if task.get("due_date"):
        due = date_text(task["due_date"], lang)
        parts.append(say("caption.overdue" if task.get("overdue") else "caption.due", lang, date=due))
    if task.get("tags"):
        parts.append(" ".join(f"#{t}" for t in task["tags"]))
    if task.get("completed"):
        parts.append(say("caption.done", lang))
    return " · ".join(parts) or say("caption.no_due", lang)


def _name(task: dict[str, Any]) -> str:
    return f"#{task['number']} {task['title']}"


def _summary(task: dict[str, Any], *, strike: bool = False, lang: Language = "en") -> dict[str, Any]:
    return {
        "type": "Col",
        "flex": 1,
        "gap": 0,
        "children": [
            {"type": "Text", "value": _name(task), "weight": "medium", "lineThrough": strike, "truncate": True},
            {"type": "Caption", "value": _caption(task, lang), "color": "danger" if task.get("overdue") else None},
        ],
    }


def _action(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A widget's action config: synchronous for `SYNC_ACTIONS`, streamed otherwise."""
    return {"type": kind, "payload": payload, **({"streaming": False} if kind in SYNC_ACTIONS else {})}


def _button(label: str, action: str, task_id: str, **style: Any) -> dict[str, Any]:
    return {
        "type": "Button",
        "label": label,
        "size": "sm",
        **style,
        "onClickAction": _action(action, {"id": task_id}),
    }


def _item(task: dict[str, Any], lang: Language = "en") -> dict[str, Any]:
    task_id = str(task["id"])
    completed = bool(task.get("completed"))
    return {
        "type": "ListViewItem",
        "key": ROW_KEY_PREFIX + task_id,
        "gap": 2,
        "align": "center",
        "children": [
            _summary(task, strike=completed, lang=lang),
            {
                "type": "Badge",
                "label": priority_name(str(task.get("priority", "medium")), lang),
                "color": _PRIORITY_COLOR.get(task.get("priority", ""), "secondary"),
                "variant": "soft",
            },
            _button(
                say("button.reopen" if completed else "button.done", lang),
                "task.reopen" if completed else "task.complete",
                task_id,
                variant="outline" if completed else "solid",
            ),
            _button(say("button.edit", lang), "task.edit", task_id, variant="outline"),
            _button(say("button.delete", lang), "task.delete", task_id, color="danger", variant="ghost"),
        ],
    }


def _choice_item(task: dict[str, Any], lang: Language = "en") -> dict[str, Any]:
    task_id = str(task["id"])
    return {
        "type": "ListViewItem",
        "key": ROW_KEY_PREFIX + task_id,
        "gap": 2,
        "align": "center",
        "onClickAction": {"type": "task.delete", "payload": {"id": task_id}},
        "children": [_summary(task, lang=lang), {"type": "Icon", "name": "chevron-right"}],
    }


def _prune(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _prune(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def _root(tree: dict[str, Any]) -> DynamicWidgetRoot:
    return DynamicWidgetRoot.model_validate(_prune(tree))


def _lines(title: str, tasks: list[dict[str, Any]]) -> str:
    lines = [f"{title}:"] + [
        f"- #{t['number']} {t['title']}"
        + (f" (due {t['due_date']})" if t.get("due_date") else "")
        + (f" [{t.get('priority')}]" if t.get("priority") and t.get("priority") != "medium" else "")
        + (" [done]" if t.get("completed") else "")
        for t in tasks
    ]
    if not tasks:
        lines.append("(none)")
    return "\n".join(lines)


def task_list_widget(
    title: str, tasks: list[dict[str, Any]], today: dt.date | None = None, lang: Language = "en"
) -> tuple[DynamicWidgetRoot, str]:
    """The task-list widget for `tasks` (compact task dicts) and its plain-text copy for the model and clipboard."""
    shown = tasks[:MAX_ROWS]
    items = [_item(task, lang) for task in shown] or [
        {"type": "ListViewItem", "children": [{"type": "Text", "value": say("list.empty", lang), "color": "secondary"}]}
    ]
    status = {"text": f"{title} · {len(tasks)}", "icon": "check-circle"}
    widget = _root({"type": "ListView", "key": LIST_KEY, "status": status, "children": items})
    return widget, _lines(title, shown)


def choice_widget(
    tasks: list[dict[str, Any]], title: str | None = None, lang: Language = "en"
) -> tuple[DynamicWidgetRoot, str]:
    """The choice of the tasks a delete request matched: picking one asks to confirm its deletion."""
    shown = tasks[:MAX_ROWS]
    title = title or say("choice.title", lang)
    status = {"text": title, "icon": "circle-question"}
    widget = _root(
        {"type": "ListView", "key": CHOICE_KEY, "status": status, "children": [_choice_item(t, lang) for t in shown]}
    )
    return widget, _lines(f"{title} (the user picks one)", shown)


def confirm_delete_card(task: dict[str, Any], back: Back, lang: Language = "en") -> tuple[DynamicWidgetRoot, str]:
    """The confirmation a Delete button leads to: only its confirm action deletes."""
    task_id = str(task["id"])
    payload = {"id": task_id, "back": back.payload()}
    widget = _root(
        {
            "type": "Card",
            "key": ROW_KEY_PREFIX + task_id,
            "size": "md",
            "children": [
                {"type": "Title", "value": say("confirm.title", lang), "size": "sm"},
                _summary(task, lang=lang),
                {"type": "Text", "value": say("confirm.text", lang, name=_name(task)), "color": "danger"},
            ],
            "confirm": {
                "label": say("button.delete", lang),
                "action": {"type": "task.delete.confirm", "payload": payload},
            },
            "cancel": {
                "label": say("button.cancel", lang),
                "action": {"type": "task.delete.cancel", "payload": payload},
            },
        }
    )
    return widget, f"Asked to confirm deleting {_name(task)} (not deleted yet)."


def deleted_card(task: dict[str, Any], lang: Language = "en") -> tuple[DynamicWidgetRoot, str]:
    text = say("deleted.text", lang, name=_name(task))
    widget = _root(
        {
            "type": "Card",
            "key": "deleted",
            "size": "md",
            "children": [{"type": "Text", "value": text, "color": "secondary"}],
        }
    )
    return widget, text


def edit_card(
    task: dict[str, Any],
    back: Back,
    *,
    values: dict[str, Any] | None = None,
    error: str | None = None,
    lang: Language = "en",
) -> tuple[DynamicWidgetRoot, str]:
    """The in-place edit form of a task; `values` (what was submitted) and `error` after a refusal."""
    task_id = str(task["id"])
    shown = {"title": task["title"], "due_date": task.get("due_date") or "", "priority": task.get("priority", "medium")}
    for name, value in (values or {}).items():
        if name in shown and isinstance(value, str):
            shown[name] = value
    payload = {"id": task_id, "back": back.payload()}
    fields: list[dict[str, Any]] = [
        {"type": "Label", "value": say("edit.field.title", lang), "fieldName": "title"},
        {"type": "Input", "name": "title", "defaultValue": shown["title"], "required": True},
        {"type": "Label", "value": say("edit.field.due_date", lang), "fieldName": "due_date"},
        {"type": "DatePicker", "name": "due_date", "defaultValue": shown["due_date"] or None, "clearable": True},
        {"type": "Label", "value": say("edit.field.priority", lang), "fieldName": "priority"},
        {
            "type": "Select",
            "name": "priority",
            "defaultValue": shown["priority"],
            "options": [{"value": p, "label": priority_name(p, lang).capitalize()} for p in PRIORITIES],
        },
    ]
    if error:
        fields.append({"type": "Text", "value": error, "color": "danger"})
    fields.append(
        {
            "type": "Row",
            "gap": 2,
            "children": [
                {"type": "Spacer"},
                {
                    "type": "Button",
                    "label": say("button.cancel", lang),
                    "variant": "outline",
                    "onClickAction": _action("task.edit.cancel", payload),
                },
                {"type": "Button", "label": say("button.save", lang), "submit": True},
            ],
        }
    )
    widget = _root(
        {
            "type": "Card",
            "key": ROW_KEY_PREFIX + task_id,
            "size": "md",
            "children": [
                {"type": "Title", "value": say("edit.title", lang, name=_name(task)), "size": "sm"},
                {
                    "type": "Form",
                    "direction": "col",
                    "gap": 2,
                    "onSubmitAction": _action("task.edit.save", payload),
                    "children": fields,
                },
            ],
        }
    )
    copy = f"Editing {_name(task)}." + (f" The last change was refused: {error}" if error else "")
    return widget, copy


# ---- reading a stored widget back --------------------------------------------------------------


def _plain(widget: Any) -> Any:
    """A widget as plain JSON data: loaded from the store it may be ChatKit's strict models
    (a `Card`'s confirm action is then an `ActionConfig`), streamed it is a dynamic tree."""
    if isinstance(widget, BaseModel):
        return widget.model_dump(mode="json", by_alias=True, exclude_none=True)
    return widget


def _get(node: Any, name: str) -> Any:
    return node.get(name) if isinstance(node, dict) else None


def _children(node: Any) -> list[Any]:
    children = _get(node, "children")
    if children is None:
        return []
    return children if isinstance(children, list) else [children]


def _actions(node: Any) -> Iterable[dict[str, Any]]:
    """Every action config in a widget tree (buttons, list items, forms, a card's confirm/cancel)."""
    for name in ("onClickAction", "onSubmitAction"):
        action = _get(node, name)
        if isinstance(action, dict):
            yield action
    for name in ("confirm", "cancel"):
        spec = _get(node, name)
        if isinstance(spec, dict) and isinstance(spec.get("action"), dict):
            yield spec["action"]
    for child in _children(node):
        yield from _actions(child)


def widget_task_ids(widget: Any) -> list[str]:
    """The task ids of a list widget's items (or an older Card's rows), in display order."""
    widget = _plain(widget)
    ids = []
    for child in _children(widget):
        key = _get(child, "key")
        if isinstance(key, str) and key.startswith(ROW_KEY_PREFIX):
            ids.append(key[len(ROW_KEY_PREFIX) :])
    return ids


def widget_back(widget: Any) -> Back:
    """The list a stored widget shows, or the one the card it is came from."""
    widget = _plain(widget)
    if _get(widget, "type") == "ListView":
        status = _get(widget, "status") or {}
        text = str(status.get("text", "Tasks")) if isinstance(status, dict) else "Tasks"
        kind: ListKind = "choice" if _get(widget, "key") == CHOICE_KEY else "tasks"
        title = text if kind == "choice" else text.rsplit(" · ", 1)[0]
        return Back(kind=kind, title=title, ids=tuple(widget_task_ids(widget)))
    for action in _actions(widget):
        payload = action.get("payload")
        back = Back.of(payload.get("back")) if isinstance(payload, dict) else None
        if back is not None:
            return back
    # A Card of Rows, as task lists were drawn before they were ListViews.
    title = next(
        (
            str(_get(grandchild, "value"))
            for child in _children(widget)
            if _get(child, "type") == "Row"
            for grandchild in _children(child)
            if _get(grandchild, "type") == "Title"
        ),
        "Tasks",
    )
    return Back(kind="tasks", title=title, ids=tuple(widget_task_ids(widget)))


def asks_to_delete(widget: Any, task_id: str) -> bool:
    """Whether a stored widget is the confirmation card for deleting `task_id`."""
    widget = _plain(widget)
    confirm = _get(widget, "confirm")
    if _get(widget, "type") != "Card" or not isinstance(confirm, dict):
        return False
    action = confirm.get("action") or {}
    payload = action.get("payload") or {}
    return action.get("type") == "task.delete.confirm" and payload.get("id") == task_id


__all__ = [
    "Back",
    "choice_widget",
    "confirm_delete_card",
    "deleted_card",
    "edit_card",
    "task_list_widget",
    "widget_back",
    "widget_task_ids",
]
