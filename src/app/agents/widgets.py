"""What tasks look like in ChatKit: the task-list widget, the cards it turns into, and their actions.

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
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from chatkit.actions import Action
from chatkit.errors import CustomStreamError
from chatkit.types import WidgetItem
from chatkit.widgets import DynamicWidgetRoot
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from app.agents.tools import compact_task, parse_due_date
from app.contracts import TASK_LIMITS, TaskUpdate
from app.core.clock import Now, utcnow, zone_clock
from app.core.errors import DomainError, NotFound
from app.services.tasks import PRIORITIES, TaskService
from app.store.db import SessionMaker

ROW_KEY_PREFIX = "task:"
LIST_KEY = "tasks"
CHOICE_KEY = "choice:delete"
CHOICE_TITLE = "Which task should I delete?"
ACTION_TYPES = (
    "task.complete",
    "task.reopen",
    "task.delete",  # only asks: the widget becomes a confirmation card
    "task.delete.confirm",
    "task.delete.cancel",
    "task.edit",  # opens the edit form
    "task.edit.save",
    "task.edit.cancel",
)
FORM_FIELDS = ("title", "due_date", "priority")
_PRIORITY_COLOR = {"high": "danger", "medium": "warning", "low": "secondary"}
MAX_ROWS = 20
ListKind = Literal["tasks", "choice"]


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


class TaskRef(BaseModel):
    """The payload of every task widget action: the task it acts on. A card's actions also carry
    `back` (the list the card returns to), which the server reads from the stored widget instead."""

    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID = Field(description="The task's id")
    back: dict[str, Any] | None = Field(
        default=None, description="The list a card returns to; ignored here (read from the stored widget)"
    )


class TaskEditForm(TaskRef):
    """The payload of `task.edit.save`: the edit form's values, which the client merges into the
    form's action payload, keyed by field name. A field the form did not send stays as it is."""

    model_config = ConfigDict(extra="ignore")

    # Optional but never null: a title the form sends must be text.
    title: str = Field(default=None, description=f"The new title (1 to {TASK_LIMITS.title} characters)")  # type: ignore[assignment]
    due_date: str | None = Field(
        default=None,
        description="An ISO date, a date picker's timestamp (its day where the user is), a relative date "
        "(tomorrow), or empty or null to clear it",
    )
    priority: str | None = Field(default=None, description="low, medium or high; empty or null keeps it")


class TaskAction(BaseModel):
    """A task widget's action other than saving the edit form (`params.action` of threads.custom_action)."""

    type: Literal[
        "task.complete",
        "task.reopen",
        "task.delete",
        "task.delete.confirm",
        "task.delete.cancel",
        "task.edit",
        "task.edit.cancel",
    ]
    payload: TaskRef


class TaskEditSaveAction(BaseModel):
    """The edit form's submit action (`params.action` of threads.custom_action)."""

    type: Literal["task.edit.save"]
    payload: TaskEditForm


# The actions TaskPilot's widgets send as `params.action` of threads.custom_action. The server
# validates their payloads with TaskRef and TaskEditForm; the OpenAPI document's schema of these
# actions is generated from this union.
TaskWidgetAction = Annotated[TaskAction | TaskEditSaveAction, Field(discriminator="type")]
TASK_WIDGET_ACTION: TypeAdapter[TaskAction | TaskEditSaveAction] = TypeAdapter(TaskWidgetAction)


def _caption(task: dict[str, Any]) -> str:
    parts = []
    if task.get("due_date"):
        due = task["due_date"]
        parts.append(f"Overdue · due {due}" if task.get("overdue") else f"Due {due}")
    if task.get("tags"):
        parts.append(" ".join(f"#{t}" for t in task["tags"]))
    if task.get("completed"):
        parts.append("Done")
    return " · ".join(parts) or "No due date"


def _name(task: dict[str, Any]) -> str:
    return f"#{task['number']} {task['title']}"


def _summary(task: dict[str, Any], *, strike: bool = False) -> dict[str, Any]:
    return {
        "type": "Col",
        "flex": 1,
        "gap": 0,
        "children": [
            {"type": "Text", "value": _name(task), "weight": "medium", "lineThrough": strike, "truncate": True},
            {"type": "Caption", "value": _caption(task), "color": "danger" if task.get("overdue") else None},
        ],
    }


def _button(label: str, action: str, task_id: str, **style: Any) -> dict[str, Any]:
    return {
        "type": "Button",
        "label": label,
        "size": "sm",
        **style,
        "onClickAction": {"type": action, "payload": {"id": task_id}},
    }


def _item(task: dict[str, Any]) -> dict[str, Any]:
    task_id = str(task["id"])
    completed = bool(task.get("completed"))
    return {
        "type": "ListViewItem",
        "key": ROW_KEY_PREFIX + task_id,
        "gap": 2,
        "align": "center",
        "children": [
            _summary(task, strike=completed),
            {
                "type": "Badge",
                "label": str(task.get("priority", "medium")),
                "color": _PRIORITY_COLOR.get(task.get("priority", ""), "secondary"),
                "variant": "soft",
            },
            _button(
                "Reopen" if completed else "Done",
                "task.reopen" if completed else "task.complete",
                task_id,
                variant="outline" if completed else "solid",
            ),
            _button("Edit", "task.edit", task_id, variant="outline"),
            _button("Delete", "task.delete", task_id, color="danger", variant="ghost"),
        ],
    }


def _choice_item(task: dict[str, Any]) -> dict[str, Any]:
    task_id = str(task["id"])
    return {
        "type": "ListViewItem",
        "key": ROW_KEY_PREFIX + task_id,
        "gap": 2,
        "align": "center",
        "onClickAction": {"type": "task.delete", "payload": {"id": task_id}},
        "children": [_summary(task), {"type": "Icon", "name": "chevron-right"}],
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
    title: str, tasks: list[dict[str, Any]], today: dt.date | None = None
) -> tuple[DynamicWidgetRoot, str]:
    """The task-list widget for `tasks` (compact task dicts) and its plain-text copy for the model and clipboard."""
    shown = tasks[:MAX_ROWS]
    items = [_item(task) for task in shown] or [
        {"type": "ListViewItem", "children": [{"type": "Text", "value": "Nothing here.", "color": "secondary"}]}
    ]
    status = {"text": f"{title} · {len(tasks)}", "icon": "check-circle"}
    widget = _root({"type": "ListView", "key": LIST_KEY, "status": status, "children": items})
    return widget, _lines(title, shown)


def choice_widget(tasks: list[dict[str, Any]], title: str = CHOICE_TITLE) -> tuple[DynamicWidgetRoot, str]:
    """The choice of the tasks a delete request matched: picking one asks to confirm its deletion."""
    shown = tasks[:MAX_ROWS]
    status = {"text": title, "icon": "circle-question"}
    widget = _root(
        {"type": "ListView", "key": CHOICE_KEY, "status": status, "children": [_choice_item(t) for t in shown]}
    )
    return widget, _lines(f"{title} (the user picks one)", shown)


def confirm_delete_card(task: dict[str, Any], back: Back) -> tuple[DynamicWidgetRoot, str]:
    """The confirmation a Delete button leads to: only its confirm action deletes."""
    task_id = str(task["id"])
    payload = {"id": task_id, "back": back.payload()}
    widget = _root(
        {
            "type": "Card",
            "key": ROW_KEY_PREFIX + task_id,
            "size": "md",
            "children": [
                {"type": "Title", "value": "Delete this task?", "size": "sm"},
                _summary(task),
                {"type": "Text", "value": f"Delete {_name(task)}? This cannot be undone.", "color": "danger"},
            ],
            "confirm": {"label": "Delete", "action": {"type": "task.delete.confirm", "payload": payload}},
            "cancel": {"label": "Cancel", "action": {"type": "task.delete.cancel", "payload": payload}},
        }
    )
    return widget, f"Asked to confirm deleting {_name(task)} (not deleted yet)."


def deleted_card(task: dict[str, Any]) -> tuple[DynamicWidgetRoot, str]:
    text = f"Deleted {_name(task)}."
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
    task: dict[str, Any], back: Back, *, values: dict[str, Any] | None = None, error: str | None = None
) -> tuple[DynamicWidgetRoot, str]:
    """The in-place edit form of a task; `values` (what was submitted) and `error` after a refusal."""
    task_id = str(task["id"])
    shown = {"title": task["title"], "due_date": task.get("due_date") or "", "priority": task.get("priority", "medium")}
    for name, value in (values or {}).items():
        if name in shown and isinstance(value, str):
            shown[name] = value
    payload = {"id": task_id, "back": back.payload()}
    fields: list[dict[str, Any]] = [
        {"type": "Label", "value": "Title", "fieldName": "title"},
        {"type": "Input", "name": "title", "defaultValue": shown["title"], "required": True},
        {"type": "Label", "value": "Due date", "fieldName": "due_date"},
        {"type": "DatePicker", "name": "due_date", "defaultValue": shown["due_date"] or None, "clearable": True},
        {"type": "Label", "value": "Priority", "fieldName": "priority"},
        {
            "type": "Select",
            "name": "priority",
            "defaultValue": shown["priority"],
            "options": [{"value": p, "label": p.capitalize()} for p in PRIORITIES],
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
                    "label": "Cancel",
                    "variant": "outline",
                    "onClickAction": {"type": "task.edit.cancel", "payload": payload},
                },
                {"type": "Button", "label": "Save", "submit": True},
            ],
        }
    )
    widget = _root(
        {
            "type": "Card",
            "key": ROW_KEY_PREFIX + task_id,
            "size": "md",
            "children": [
                {"type": "Title", "value": f"Edit {_name(task)}", "size": "sm"},
                {
                    "type": "Form",
                    "direction": "col",
                    "gap": 2,
                    "onSubmitAction": {"type": "task.edit.save", "payload": payload},
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


# ---- the edit form's values ----------------------------------------------------------------------


def form_update(payload: Any, today: dt.date, time_zone: str | None) -> TaskUpdate:
    """The change a submitted edit form asks for; the task service checks the values (its rules are
    the REST API's). An empty due date clears it; a field the form did not send stays as it is."""
    try:
        form = TaskEditForm.model_validate(payload)
    except ValidationError as exc:
        loc = exc.errors(include_url=False)[0].get("loc") or ("payload",)
        name = str(loc[0])
        if name in FORM_FIELDS:
            raise DomainError(f"{name} must be text.", field=name) from None
        raise DomainError(f"{name} is invalid.", field=name) from None
    sent = form.model_fields_set
    changes: dict[str, Any] = {}
    if "title" in sent:
        changes["title"] = form.title
    if form.priority not in (None, ""):
        changes["priority"] = form.priority.strip().lower()
    if "due_date" in sent:
        changes["due_date"] = _form_date(form.due_date, today, time_zone)
    return TaskUpdate(**changes)


def _form_date(value: str | None, today: dt.date, time_zone: str | None) -> dt.date | None:
    if value is None or not value.strip():
        return None
    text = value.strip()
    if "T" in text:
        # A date picker may send the chosen day as a timestamp: read it as a date where the user is.
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            if moment.tzinfo is not None and time_zone:
                try:
                    moment = moment.astimezone(ZoneInfo(time_zone))
                except OverflowError:  # the last hours of 9999 somewhere are year 10000 here
                    raise DomainError(
                        f"due_date {text!r} is past the last date a task can have (9999-12-31).", field="due_date"
                    ) from None
            return moment.date()
    return parse_due_date(text, today)


# ---- the actions -------------------------------------------------------------------------------------


@dataclass
class ActionOutcome:
    replacement: WidgetItem | None = None
    changed_ids: set[str] = field(default_factory=set)


@dataclass
class _Step:
    """What an action did, for drawing the widget that follows it."""

    show: Literal["back", "confirm", "edit", "deleted"] = "back"
    task: dict[str, Any] | None = None
    error: str | None = None
    changed: set[str] = field(default_factory=set)


@dataclass
class TaskActions:
    """Applies a task widget's actions through the task service, then draws the widget that follows."""

    session_maker: SessionMaker
    now: Now = utcnow
    default_time_zone: str = "UTC"  # DEFAULT_TIME_ZONE: a request without a Time-Zone header

    async def apply(self, action: Action[str, Any], sender: WidgetItem | None, context: Any) -> ActionOutcome:
        if action.type not in ACTION_TYPES:
            raise CustomStreamError(f"This server does not handle the action {action.type!r}.")
        payload = action.payload if isinstance(action.payload, dict) else {}
        try:
            task_id = TaskRef.model_validate(payload).id
        except ValidationError:
            raise CustomStreamError("The action names no valid task id.") from None
        user_id: str = context.user_id
        time_zone: str = getattr(context, "time_zone", None) or self.default_time_zone
        # The widget's "overdue" and the form's "today" are the dates where the user is.
        clock = zone_clock(time_zone, self.now)
        if action.type == "task.delete.confirm" and (sender is None or not asks_to_delete(sender.widget, str(task_id))):
            # A deletion is confirmed on the card that asked for it, never by an action alone.
            raise CustomStreamError("Nothing was deleted: confirm the deletion on the card that asks for it.")
        try:
            # Its own transaction: a refused change rolls back whole before anything is drawn.
            async with TaskService.begin(self.session_maker, user_id, clock=clock) as service:
                step = await self._act(service, action.type, task_id, payload, time_zone)
        except NotFound:
            step = _Step()  # gone, or never this user's: the list is drawn again without it
        except DomainError as exc:
            if action.type != "task.edit.save":
                raise CustomStreamError(exc.detail) from None
            error = f"Not saved: {exc.detail}"
            if sender is None:
                raise CustomStreamError(error) from None
            step = _Step(show="edit", error=error)
        if sender is None:
            return ActionOutcome(changed_ids=step.changed)
        async with TaskService.begin(self.session_maker, user_id, clock=clock) as service:
            replacement = await self._draw(service, sender, task_id, step, payload)
        return ActionOutcome(replacement=replacement, changed_ids=step.changed)

    async def _act(
        self, service: TaskService, kind: str, task_id: uuid.UUID, payload: dict[str, Any], time_zone: str | None
    ) -> _Step:
        today = service.clock()
        if kind == "task.complete":
            return _Step(changed={str((await service.complete(task_id)).id)})
        if kind == "task.reopen":
            return _Step(changed={str((await service.reopen(task_id)).id)})
        if kind == "task.delete":
            return _Step(show="confirm", task=compact_task(await service.get(task_id), today))
        if kind == "task.delete.confirm":
            deleted = await service.delete(task_id)
            return _Step(show="deleted", task=compact_task(deleted, today), changed={str(deleted.id)})
        if kind == "task.edit":
            return _Step(show="edit", task=compact_task(await service.get(task_id), today))
        if kind == "task.edit.save":
            updated = await service.update(task_id, form_update(payload, today, time_zone))
            return _Step(changed={str(updated.id)})
        return _Step()  # task.delete.cancel, task.edit.cancel: nothing changes

    async def _draw(
        self, service: TaskService, sender: WidgetItem, task_id: uuid.UUID, step: _Step, payload: dict[str, Any]
    ) -> WidgetItem:
        today = service.clock()
        back = widget_back(sender.widget)
        if step.show == "edit" and step.task is None:
            try:
                step.task = compact_task(await service.get(task_id), today)
            except NotFound:
                step.show = "back"
        if step.show == "confirm" and step.task is not None:
            widget, copy_text = confirm_delete_card(step.task, back)
        elif step.show == "edit" and step.task is not None:
            values = payload if step.error else None
            widget, copy_text = edit_card(step.task, back, values=values, error=step.error)
        elif step.show == "deleted" and step.task is not None and back.kind == "choice":
            widget, copy_text = deleted_card(step.task)
        else:
            tasks = []
            for listed in back.ids:
                try:
                    tasks.append(compact_task(await service.get(uuid.UUID(listed)), today))
                except (NotFound, ValueError):
                    continue
            if back.kind == "choice":
                widget, copy_text = choice_widget(tasks, back.title)
            else:
                widget, copy_text = task_list_widget(back.title, tasks, today)
        return sender.model_copy(update={"widget": widget, "copy_text": copy_text})


__all__ = [
    "ACTION_TYPES",
    "TASK_WIDGET_ACTION",
    "ActionOutcome",
    "Back",
    "TaskAction",
    "TaskActions",
    "TaskEditForm",
    "TaskEditSaveAction",
    "TaskRef",
    "TaskWidgetAction",
    "choice_widget",
    "confirm_delete_card",
    "edit_card",
    "task_list_widget",
]
