"""The task service: the one place task rules live. REST, the assistant's tools and MCP all call it.

A `TaskService` validates every input (titles, tags, priorities, filters, cursors) and owns one
`app.store.tasks.TaskRepository` confined to its user, so another user's task is simply "not
found". Build one from a session (inside a Litestar request) or from a session maker (agents
and MCP run outside the request, e.g. inside a streaming response, and open their own sessions):

    TaskService(db_session, context.user_id)
    async with TaskService.begin(session_maker, user_id) as tasks:  # commits on success
        ...
    await TaskService.create_in(session_maker, user_id, data, max_tasks=...)  # one create, its own commit

`create_in` is the assistant's `add_task` (a chat turn's hot path): on PostgreSQL over asyncpg it
creates the task on the Store's asyncpg lane without a session (`app.store.tasks.insert_numbered_on_lane`),
with the same validation, quota and numbering as `create`; elsewhere it is `begin` + `create`.

"Today" (overdue, due today) is the UTC date unless a `clock` is given.

Why one long module: it is the one place task rules live (see above); splitting it would split them.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final, cast

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from app.contracts import (
    TASK_LIMITS,
    SortOrder,
    Task,
    TaskCreate,
    TaskList,
    TaskPriority,
    TaskPriorityCounts,
    TaskSort,
    TaskStatus,
    TaskSummary,
    TaskUpdate,
)
from app.core.clock import utc_today, utcnow
from app.core.errors import DomainError, NotFound
from app.core.text import is_storable, require_storable
from app.services.quotas import UserLimits
from app.store.db import SessionMaker
from app.store.driver import DriverLane
from app.store.models import TaskRow
from app.store.tasks import TaskFilter, TaskRepository, insert_numbered_on_lane, sort_value, to_task

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 200
# The length limits, by the names the rules below use (the table is `app.contracts.TASK_LIMITS`).
MAX_TITLE: Final = TASK_LIMITS.title
MAX_DESCRIPTION: Final = TASK_LIMITS.description
MAX_TAGS: Final = TASK_LIMITS.tags
MAX_TAG_LENGTH: Final = TASK_LIMITS.tag
MAX_SEARCH: Final = TASK_LIMITS.search
MAX_FIND: Final = 100  # ids looked up by one statement (the tags of a conversation)
# Past every task a user may keep (QUOTA_TASKS_PER_USER tops out far below), and far inside BIGINT.
MAX_OFFSET: Final = 10_000_000
PRIORITIES: Final[tuple[TaskPriority, ...]] = ("low", "medium", "high")
STATUSES: Final[tuple[TaskStatus, ...]] = ("open", "completed", "all")
SORTS: Final[tuple[TaskSort, ...]] = ("created_at", "updated_at", "due_date", "priority", "number", "title")
# The order a sort means when none is given: oldest first, most recently changed first,
# soonest due first (undated last), most important first.
NATURAL_ORDER: Final[dict[TaskSort, SortOrder]] = {
    "created_at": "asc",
    "updated_at": "desc",
    "due_date": "asc",
    "priority": "desc",
    "number": "asc",
    "title": "asc",
}
_MAX_NUMBER: Final = 2**31 - 1  # the column is a 32-bit integer

TaskRef = uuid.UUID | int | str
"""A task's id (UUID or its text), or its per-user number (3, "3" or "#3")."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskQuery:
    """Filters, sort and page of a task listing. Date bounds are inclusive; `None` means no filter."""

    status: TaskStatus = "all"
    priority: TaskPriority | None = None
    due_before: dt.date | None = None
    due_after: dt.date | None = None
    overdue: bool | None = None
    tag: str | None = None
    search: str | None = None
    sort: TaskSort = "created_at"
    order: SortOrder | None = None
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None
    offset: int | None = None
    search_field: str = "search"
    """What the caller calls `search`, for the error that names it (`q` in the REST API)."""


class TaskService:
    """Create, read, list, update, complete, reopen and delete one user's tasks, and count them."""

    def __init__(
        self,
        session: AsyncSession,
        user_id: str,
        *,
        clock: Callable[[], dt.date] = utc_today,
        max_tasks: int = 0,
    ) -> None:
        self.repository = TaskRepository(session=session, user_id=user_id)
        self.clock = clock
        self.limits = UserLimits(tasks_per_user=max_tasks)

    @classmethod
    @asynccontextmanager
    async def begin(
        cls,
        session_maker: SessionMaker,
        user_id: str,
        *,
        clock: Callable[[], dt.date] = utc_today,
        max_tasks: int = 0,
    ) -> AsyncIterator[TaskService]:
        """A service on a fresh session that commits when the block succeeds and rolls back otherwise."""
        async with session_maker() as session:
            try:
                yield cls(session, user_id, clock=clock, max_tasks=max_tasks)
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    @property
    def user_id(self) -> str:
        return self.repository.user_id

    @property
    def session(self) -> AsyncSession:
        return cast("AsyncSession", self.repository.session)

    @classmethod
    async def create_in(
        cls,
        session_maker: SessionMaker,
        user_id: str,
        data: TaskCreate,
        *,
        clock: Callable[[], dt.date] = utc_today,
        max_tasks: int = 0,
    ) -> Task:
        """`create` in a transaction of its own (module notes): committed when it returns."""
        lane = DriverLane.for_session_maker(session_maker)
        if lane is None:
            async with cls.begin(session_maker, user_id, clock=clock, max_tasks=max_tasks) as tasks:
                return await tasks.create(data)
        limits = UserLimits(tasks_per_user=max_tasks)
        values = _new_task_values(data)
        return await insert_numbered_on_lane(
            lane, user_id, values, admit=limits.check_task_count if limits.tasks_per_user else None
        )

    async def create(self, data: TaskCreate) -> Task:
        values = _new_task_values(data)
        if self.limits.tasks_per_user:
            # Held until this transaction ends, so a concurrent create of the same user counts
            # after this one's row is committed (or rolled back).
            await self.repository.lock_quota()
            self.limits.check_task_count(await self.repository.count_owned())
        row = await self.repository.insert_numbered(values)
        return to_task(row)

    async def get(self, ref: TaskRef) -> Task:
        return to_task(await self._row(ref))

    async def find(self, task_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Task]:
        """The user's tasks among `task_ids`, by id; an id that is not one of theirs is simply absent
        (another user's task id names nothing here, as everywhere)."""
        distinct = list(dict.fromkeys(task_ids))
        found: dict[uuid.UUID, Task] = {}
        # Every id is looked up (one left out would read as "not one of theirs"), in statements of
        # at most MAX_FIND ids; the caller bounds how many (the tags of one page of a conversation).
        for start in range(0, len(distinct), MAX_FIND):
            for row in await self.repository.get_many_by_ids(distinct[start : start + MAX_FIND]):
                found[row.id] = to_task(row)
        return found

    async def list(self, query: TaskQuery | None = None) -> TaskList:
        query = query or TaskQuery()
        limit = _limit(query.limit)
        if query.cursor is not None and query.offset is not None:
            raise DomainError("Send either cursor or offset, not both.", field="offset")
        if query.offset is not None and not 0 <= query.offset <= MAX_OFFSET:
            raise DomainError(f"offset must be 0 to {MAX_OFFSET}.", field="offset")
        order: SortOrder = query.order or NATURAL_ORDER.get(query.sort, "asc")
        where = self._filter(query)
        total = await self.repository.count_matching(where)
        after = _decode_cursor(query.cursor, query.sort, order) if query.cursor is not None else None
        rows = await self.repository.page(
            where, sort=query.sort, order=order, after=after, limit=limit + 1, offset=query.offset or 0
        )
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = _encode_cursor(query.sort, order, rows[-1]) if more else None
        return TaskList(items=[to_task(row) for row in rows], total=total, next_cursor=next_cursor)

    async def update(self, ref: TaskRef, changes: TaskUpdate) -> Task:
        require_storable(msgspec.to_builtins(changes), "")
        row = await self._row(ref)
        changed = False
        if changes.title is not msgspec.UNSET:
            changed |= _assign(row, "title", _title(changes.title))
        if changes.description is not msgspec.UNSET:
            changed |= _assign(row, "description", _description(changes.description))
        if changes.priority is not msgspec.UNSET:
            changed |= _assign(row, "priority", _priority(changes.priority))
        if changes.due_date is not msgspec.UNSET:
            changed |= _assign(row, "due_date", changes.due_date)
        if changes.tags is not msgspec.UNSET:
            changed |= _assign(row, "tags", normalize_tags(changes.tags))
        if changes.completed is not msgspec.UNSET:
            changed |= _set_completed(row, changes.completed)
        if changed:
            row = await self.repository.update(row)
        return to_task(row)

    async def complete(self, ref: TaskRef) -> Task:
        row = await self._row(ref)
        if _set_completed(row, True):
            row = await self.repository.update(row)
        return to_task(row)

    async def reopen(self, ref: TaskRef) -> Task:
        row = await self._row(ref)
        if _set_completed(row, False):
            row = await self.repository.update(row)
        return to_task(row)

    async def delete(self, ref: TaskRef) -> Task:
        """Delete a task and return it as it was."""
        row = await self._row(ref)
        task = to_task(row)
        await self.repository.delete((self.user_id, row.id))
        return task

    async def summary(self) -> TaskSummary:
        today = self.clock()
        total, open_count, overdue, due_today, low, medium, high = await self.repository.counts(today)
        return TaskSummary(
            today=today,
            total=total,
            open=open_count,
            completed=total - open_count,
            overdue=overdue,
            due_today=due_today,
            by_priority=TaskPriorityCounts(low=low, medium=medium, high=high),
        )

    async def _row(self, ref: TaskRef) -> TaskRow:
        key = parse_ref(ref)
        if isinstance(key, int):
            row = await self.repository.get_by_number(key) if 0 < key <= _MAX_NUMBER else None
            label = f"#{key}"
        else:
            row = await self.repository.get_by_id(key)
            label = str(key)
        if row is None:
            raise NotFound(f"You have no task {label}. List your tasks to see their numbers and ids.")
        return row

    def _filter(self, query: TaskQuery) -> TaskFilter:
        if query.status not in STATUSES:
            raise DomainError(f"status must be one of {', '.join(STATUSES)}.", field="status")
        if query.sort not in SORTS:
            raise DomainError(f"sort must be one of {', '.join(SORTS)}.", field="sort")
        require_storable(query.tag, "tag")
        require_storable(query.search, query.search_field)
        search = None
        if query.search is not None:
            search = query.search.strip()
            if not search or len(search) > MAX_SEARCH:
                raise DomainError(
                    f"{query.search_field} must be 1 to {MAX_SEARCH} characters.", field=query.search_field
                )
        return TaskFilter(
            status=query.status,
            priority=_priority(query.priority) if query.priority is not None else None,
            due_before=query.due_before,
            due_after=query.due_after,
            overdue=query.overdue,
            today=self.clock() if query.overdue is not None else None,
            tag=_tag(query.tag) if query.tag is not None else None,
            search=search,
        )


def _new_task_values(data: TaskCreate) -> dict[str, Any]:
    """The columns of a new task, validated (a `DomainError` naming the field otherwise)."""
    require_storable(msgspec.to_builtins(data), "")  # contracts built in code skip decoding
    return {
        "title": _title(data.title),
        "description": _description(data.description),
        "priority": _priority(data.priority),
        "due_date": data.due_date,
        "tags": normalize_tags(data.tags),
        "completed": False,
        "completed_at": None,
    }


def parse_ref(ref: TaskRef) -> uuid.UUID | int:
    """A task reference as an id or a number; a `DomainError` on `task` when it is neither."""
    if isinstance(ref, uuid.UUID):
        return ref
    if isinstance(ref, bool):
        raise DomainError("task must be a task number such as 3, or a task id.", field="task")
    if isinstance(ref, int):
        return ref
    text = str(ref).strip().removeprefix("#").strip()
    if text.isdigit() and len(text) <= 12:
        return int(text)
    try:
        return uuid.UUID(text)
    except ValueError:
        raise DomainError("task must be a task number such as 3, or a task id.", field="task") from None


def normalize_tags(tags: Sequence[str]) -> list[str]:
    """Tags trimmed, lower-cased and de-duplicated in order; a `DomainError` on `tags` when invalid.

    The count is checked before any tag is read (the REST contract bounds the list as sent, and so
    does this): a list of 60,000 tags once held a worker for 22 s here. Linear in the tags."""
    if len(tags) > MAX_TAGS:
        raise DomainError(f"A task has at most {MAX_TAGS} tags; send {MAX_TAGS} or fewer.", field="tags")
    result: dict[str, None] = {}
    for raw in tags:
        result.setdefault(_tag(raw))
    return list(result)


def _tag(raw: str) -> str:
    if len(raw) > MAX_TAG_LENGTH:  # before strip(): bounded work on any length sent
        raise DomainError(f"Each tag must be 1 to {MAX_TAG_LENGTH} characters.", field="tags")
    tag = raw.strip().lower()
    if not tag or len(tag) > MAX_TAG_LENGTH:
        raise DomainError(f"Each tag must be 1 to {MAX_TAG_LENGTH} characters.", field="tags")
    return tag


def _title(raw: str) -> str:
    title = raw.strip()
    if not title or len(title) > MAX_TITLE:
        raise DomainError(f"title must be 1 to {MAX_TITLE} characters (not just spaces).", field="title")
    return title


def _description(raw: str | None) -> str | None:
    if raw is None:
        return None
    description = raw.strip()
    if len(description) > MAX_DESCRIPTION:
        raise DomainError(f"description must be at most {MAX_DESCRIPTION} characters.", field="description")
    return description or None


def _priority(raw: str) -> TaskPriority:
    if raw not in PRIORITIES:
        raise DomainError(f"priority must be one of {', '.join(PRIORITIES)}.", field="priority")
    return raw


def _limit(raw: int) -> int:
    if not 1 <= raw <= MAX_LIMIT:
        raise DomainError(f"limit must be 1 to {MAX_LIMIT}.", field="limit")
    return raw


def _assign(row: TaskRow, name: str, value: object) -> bool:
    if getattr(row, name) == value:
        return False
    setattr(row, name, value)
    return True


def _set_completed(row: TaskRow, completed: bool) -> bool:
    if row.completed == completed:
        return False
    row.completed = completed
    row.completed_at = utcnow() if completed else None
    return True


def _encode_cursor(sort: TaskSort, order: SortOrder, row: TaskRow) -> str:
    value = sort_value(row, sort, order)
    encoded = value.isoformat() if isinstance(value, dt.date) else value
    payload = json.dumps([sort, order, encoded, row.number], separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: TaskSort, order: SortOrder) -> tuple[Any, int]:
    invalid = DomainError(
        "cursor is not a next_cursor from this listing (same sort and order); drop it to start again.",
        field="cursor",
    )
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        cursor_sort, cursor_order, encoded, number = json.loads(raw)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise invalid from None
    if (cursor_sort, cursor_order) != (sort, order) or not _is_int(number):
        raise invalid
    try:
        if sort in {"created_at", "updated_at"}:
            value: Any = dt.datetime.fromisoformat(encoded)
        elif sort == "due_date":
            value = dt.date.fromisoformat(encoded)
        elif sort in {"priority", "number"}:
            value = encoded if _is_int(encoded) else None
        else:
            value = encoded if isinstance(encoded, str) else None
    except (ValueError, TypeError):
        raise invalid from None
    if value is None or not is_storable(str(value)):
        raise invalid
    return value, number


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) <= _MAX_NUMBER
