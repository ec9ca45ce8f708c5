"""REST CRUD for the signed-in user's tasks. The rules live in `app.store.tasks`."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody, Parameter, QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from app.contracts import (
    SortOrder,
    Task,
    TaskCreate,
    TaskList,
    TaskPriority,
    TaskSort,
    TaskStatus,
    TaskSummary,
    TaskUpdate,
)
from app.core.clock import zone_clock
from app.core.context import RequestContext
from app.http.openapi import problem_spec
from app.services.tasks import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    MAX_OFFSET,
    MAX_SEARCH,
    MAX_TAG_LENGTH,
    TaskQuery,
    TaskService,
)
from app.settings import Settings
from app.store.db import commit_before_response


async def provide_task_service(
    db_session: NamedDependency[AsyncSession],
    context: NamedDependency[RequestContext],
    settings: NamedDependency[Settings],
    time_zone: NamedDependency[str | None],
) -> AsyncIterator[TaskService]:
    # "Today" (overdue, due today, the summary) is the date in the caller's `Time-Zone`, else
    # in DEFAULT_TIME_ZONE.
    yield TaskService(
        db_session,
        context.user_id,
        clock=zone_clock(time_zone or settings.default_time_zone),
        max_tasks=settings.quota_tasks_per_user,
    )
    await commit_before_response(db_session)  # not after the 2xx is sent (see there)


BAD_INPUT = {
    400: problem_spec("Invalid input (or a Time-Zone header that is not an IANA zone); `errors` names each field"),
    401: problem_spec("No valid bearer token"),
    # Answered by the auth dependency and the central error mapping (app.http.problems), not the
    # handlers; the task quota only by creating a task (listed once for every route of the resource).
    429: problem_spec("Too many failed sign-ins from this address (see Retry-After), or QUOTA_TASKS_PER_USER reached"),
    503: problem_spec("The database is unavailable; retry after Retry-After"),
}
ONE_TASK = {**BAD_INPUT, 404: problem_spec("The user has no task with this id")}
TaskId = Annotated[uuid.UUID, Parameter(description="The task's id")]


class TaskController(Controller):
    path = "/api/tasks"
    tags = ["Tasks"]
    dependencies = {"tasks": Provide(provide_task_service)}

    @get(
        "/",
        operation_id="ListTasks",
        summary="List tasks, filtered, sorted and paged",
        description="Pages by keyset: pass a response's `next_cursor` back as `cursor` (with the same "
        "filters, sort and order) for the next page; it is absent on the last page. `offset` pages by "
        "position instead. `total` counts every task matching the filters.",
        responses=BAD_INPUT,
    )
    async def list_tasks(
        self,
        tasks: NamedDependency[TaskService],
        status: Annotated[TaskStatus, Parameter(description="open, completed or all")] = "all",
        priority: Annotated[TaskPriority | None, QueryParameter()] = None,
        due_before: Annotated[dt.date | None, Parameter(description="Due on or before this date")] = None,
        due_after: Annotated[dt.date | None, Parameter(description="Due on or after this date")] = None,
        overdue: Annotated[
            bool | None,
            Parameter(
                description="true: open tasks due before today (in the Time-Zone header's zone, else "
                "DEFAULT_TIME_ZONE); false: all others"
            ),
        ] = None,
        tag: Annotated[str | None, Parameter(min_length=1, max_length=MAX_TAG_LENGTH)] = None,
        q: Annotated[
            str | None,
            Parameter(min_length=1, max_length=MAX_SEARCH, description="Text in the title or description"),
        ] = None,
        sort: Annotated[TaskSort, QueryParameter()] = "created_at",
        order: Annotated[
            SortOrder | None,
            Parameter(
                description="Defaults to the sort's natural order: created_at, due_date (undated last), "
                "number and title ascending; updated_at and priority (high first) descending"
            ),
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
        cursor: Annotated[str | None, Parameter(max_length=512, description="A previous `next_cursor`")] = None,
        offset: Annotated[
            int | None, Parameter(ge=0, le=MAX_OFFSET, description="Rows to skip; not with `cursor`")
        ] = None,
    ) -> TaskList:
        query = TaskQuery(
            status=status,
            priority=priority,
            due_before=due_before,
            due_after=due_after,
            overdue=overdue,
            tag=tag,
            search=q,
            search_field="q",
            sort=sort,
            order=order,
            limit=limit,
            cursor=cursor,
            offset=offset,
        )
        return await tasks.list(query)

    @post("/", operation_id="CreateTask", summary="Create a task", responses=BAD_INPUT)
    async def create_task(self, tasks: NamedDependency[TaskService], data: JSONBody[TaskCreate]) -> Task:
        return await tasks.create(data)

    @get(
        "/summary",
        operation_id="GetTaskSummary",
        summary="Count tasks: open, completed, overdue, due today, open by priority",
        responses=BAD_INPUT,
    )
    async def summary(self, tasks: NamedDependency[TaskService]) -> TaskSummary:
        return await tasks.summary()

    @get("/{task_id:uuid}", operation_id="GetTask", summary="Get a task", responses=ONE_TASK)
    async def get_task(self, tasks: NamedDependency[TaskService], task_id: TaskId) -> Task:
        return await tasks.get(task_id)

    @patch(
        "/{task_id:uuid}",
        operation_id="UpdateTask",
        summary="Change some of a task's fields",
        description="Absent fields stay as they are; `null` clears `description` or `due_date`; "
        "`completed` marks the task done or reopens it.",
        responses=ONE_TASK,
    )
    async def update_task(
        self, tasks: NamedDependency[TaskService], task_id: TaskId, data: JSONBody[TaskUpdate]
    ) -> Task:
        return await tasks.update(task_id, data)

    @delete("/{task_id:uuid}", operation_id="DeleteTask", summary="Delete a task", responses=ONE_TASK)
    async def delete_task(self, tasks: NamedDependency[TaskService], task_id: TaskId) -> None:
        await tasks.delete(task_id)

    @post(
        "/{task_id:uuid}/complete",
        operation_id="CompleteTask",
        summary="Mark a task done",
        description="Idempotent: completing a completed task keeps its `completed_at`.",
        status_code=200,
        responses=ONE_TASK,
    )
    async def complete_task(self, tasks: NamedDependency[TaskService], task_id: TaskId) -> Task:
        return await tasks.complete(task_id)

    @post(
        "/{task_id:uuid}/reopen",
        operation_id="ReopenTask",
        summary="Mark a task not done",
        status_code=200,
        responses=ONE_TASK,
    )
    async def reopen_task(self, tasks: NamedDependency[TaskService], task_id: TaskId) -> Task:
        return await tasks.reopen(task_id)
