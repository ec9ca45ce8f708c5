"""What task widgets' actions do: their payloads (validated, and the OpenAPI document's schema of
`params.action`), the edit form's values, and `TaskActions`, which applies an action through the
task service and draws the widget that follows it (`app.agents.chatkit.widgets`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from chatkit.actions import Action
from chatkit.errors import CustomStreamError
from chatkit.types import WidgetItem
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from app.agents.chatkit.widgets import (
    asks_to_delete,
    choice_widget,
    confirm_delete_card,
    deleted_card,
    edit_card,
    task_list_widget,
    widget_back,
)
from app.agents.messages import Language, say
from app.agents.tools import compact_task, parse_due_date
from app.contracts import TASK_LIMITS, TaskUpdate
from app.core.clock import Now, utcnow, zone_clock
from app.core.errors import DomainError, NotFound
from app.services.tasks import TaskService
from app.store.db import SessionMaker

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

    async def apply(
        self, action: Action[str, Any], sender: WidgetItem | None, context: Any, lang: Language = "en"
    ) -> ActionOutcome:
        """Apply `action`; the widget that follows is drawn in `lang`, the conversation's language."""
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
            error = say("edit.not_saved", lang, detail=exc.detail)
            if sender is None:
                raise CustomStreamError(error) from None
            step = _Step(show="edit", error=error)
        if sender is None:
            return ActionOutcome(changed_ids=step.changed)
        async with TaskService.begin(self.session_maker, user_id, clock=clock) as service:
            replacement = await self._draw(service, sender, task_id, step, payload, lang)
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
        self,
        service: TaskService,
        sender: WidgetItem,
        task_id: uuid.UUID,
        step: _Step,
        payload: dict[str, Any],
        lang: Language = "en",
    ) -> WidgetItem:
        today = service.clock()
        back = widget_back(sender.widget)
        if step.show == "edit" and step.task is None:
            try:
                step.task = compact_task(await service.get(task_id), today)
            except NotFound:
                step.show = "back"
        if step.show == "confirm" and step.task is not None:
            widget, copy_text = confirm_delete_card(step.task, back, lang)
        elif step.show == "edit" and step.task is not None:
            values = payload if step.error else None
            widget, copy_text = edit_card(step.task, back, values=values, error=step.error, lang=lang)
        elif step.show == "deleted" and step.task is not None and back.kind == "choice":
            widget, copy_text = deleted_card(step.task, lang)
        else:
            tasks = []
            for listed in back.ids:
                try:
                    tasks.append(compact_task(await service.get(uuid.UUID(listed)), today))
                except (NotFound, ValueError):
                    continue
            if back.kind == "choice":
                widget, copy_text = choice_widget(tasks, back.title, lang)
            else:
                widget, copy_text = task_list_widget(back.title, tasks, today, lang)
        return sender.model_copy(update={"widget": widget, "copy_text": copy_text})


__all__ = [
    "ACTION_TYPES",
    "TASK_WIDGET_ACTION",
    "ActionOutcome",
    "TaskAction",
    "TaskActions",
    "TaskEditForm",
    "TaskEditSaveAction",
    "TaskRef",
    "TaskWidgetAction",
    "form_update",
]
