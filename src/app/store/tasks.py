"""The task service: the one place task rules live. REST, the assistant's tools and MCP all call it.

Isolation is a property of the data layer: a `TaskRepository` is bound to one user at
construction; its base statement filters by that user, every statement it executes carries a
`with_loader_criteria` on the same condition (so even a statement a caller builds cannot reach
another user's rows), and rows it inserts are stamped with that user. A `TaskService` owns one
such repository, so another user's task is simply "not found".

Build a service from a session (inside a Litestar request) or from a session maker (agents and
MCP run outside the request, e.g. inside a streaming response, and open their own sessions):

    TaskService(db_session, context.user_id)
    async with TaskService.begin(session_maker, user_id) as tasks:  # commits on success
        ...

"Today" (overdue, due today) is the UTC date unless a `clock` is given.
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
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import (
    Boolean,
    ColumnElement,
    Date,
    Result,
    Select,
    and_,
    case,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import with_loader_criteria

from app.contracts import (
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
from app.errors import Conflict, DomainError, NotFound
from app.ids import uuid7
from app.store.models import TaskRow, utcnow

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 200
MAX_TITLE: Final = 200
MAX_DESCRIPTION: Final = 5000
MAX_TAGS: Final = 20
MAX_TAG_LENGTH: Final = 40
MAX_SEARCH: Final = 200
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
# Concurrent creates for one user race for the same next number and the losers retry. Every
# round has a winner (under READ COMMITTED a retry sees the winner's commit), so n simultaneous
# creates by one user need at most n attempts; this bound is far above any real contention.
MAX_NUMBER_ATTEMPTS: Final = 100
_MAX_NUMBER: Final = 2**31 - 1  # the column is a 32-bit integer
_PRIORITY_RANK: Final = {"low": 1, "medium": 2, "high": 3}
# Undated tasks sort after dated ones in both directions.
_UNDATED_ASC: Final = dt.date(9999, 12, 31)
_UNDATED_DESC: Final = dt.date(1, 1, 1)

TaskRef = uuid.UUID | int | str
"""A task's id (UUID or its text), or its per-user number (3, "3" or "#3")."""

SessionMaker = Callable[[], AsyncSession]


def utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


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


class TaskRepository(SQLAlchemyAsyncRepository[TaskRow]):
    """Advanced Alchemy repository over `tasks`, confined to one user's rows."""

    model_type = TaskRow

    def __init__(self, *, session: AsyncSession, user_id: str, **kwargs: Any) -> None:
        if not user_id:
            raise ValueError("a TaskRepository needs the user id it is confined to")
        self.user_id = user_id
        super().__init__(session=session, statement=select(TaskRow).where(TaskRow.user_id == user_id), **kwargs)

    @property
    def owned(self) -> ColumnElement[bool]:
        return TaskRow.user_id == self.user_id

    async def _execute(self, statement: Select[Any], uniquify: bool = False) -> Result[Any]:
        # Every read the repository runs sees only this user's rows, including statements
        # a caller passed in with `statement=`.
        confined = statement.options(with_loader_criteria(TaskRow, self.owned, include_aliases=True))
        return await super()._execute(confined, uniquify)

    async def add(self, data: TaskRow, **kwargs: Any) -> TaskRow:
        self._claim(data)
        return await super().add(data, **kwargs)

    async def add_many(self, data: list[TaskRow], **kwargs: Any) -> Sequence[TaskRow]:
        for row in data:
            self._claim(row)
        return await super().add_many(data, **kwargs)

    def _claim(self, row: TaskRow) -> None:
        if not row.user_id:
            row.user_id = self.user_id
        elif row.user_id != self.user_id:
            raise ValueError("a TaskRepository writes only its own user's rows")

    async def get_by_id(self, task_id: uuid.UUID) -> TaskRow | None:
        return await self.get_one_or_none(id=task_id)

    async def get_by_number(self, number: int) -> TaskRow | None:
        return await self.get_one_or_none(number=number)

    async def aggregate(self, *columns: ColumnElement[Any]) -> Sequence[Any]:
        """One row of aggregates over this user's tasks."""
        statement = select(*columns).select_from(TaskRow).where(self.owned)
        return tuple((await self._execute(statement)).one())

    async def insert_numbered(self, values: dict[str, Any]) -> TaskRow:
        """Insert a task numbered max+1 for its user, inside the caller's transaction.

        The number is computed by the INSERT itself, and a concurrent insert that took the same
        number makes `ON CONFLICT DO NOTHING` return no row instead of raising, so the
        transaction stays usable and the insert is retried with the next number.
        """
        dialect = self.session.get_bind().dialect.name
        if dialect == "postgresql":
            insert: Any = postgresql.insert
        elif dialect == "sqlite":
            insert = sqlite.insert
        else:  # pragma: no cover - settings accept only these two
            raise NotImplementedError(f"tasks support SQLite and PostgreSQL, not {dialect}")
        next_number = select(func.coalesce(func.max(TaskRow.number), 0) + 1).where(self.owned).scalar_subquery()
        for _ in range(MAX_NUMBER_ATTEMPTS):
            now = utcnow()
            task_id = uuid7()
            statement = (
                insert(TaskRow)
                .values(
                    user_id=self.user_id,
                    id=task_id,
                    number=next_number,
                    created_at=now,
                    updated_at=now,
                    **values,
                )
                .on_conflict_do_nothing(index_elements=[TaskRow.user_id, TaskRow.number])
                .returning(TaskRow.id)
            )
            inserted = (await self.session.execute(statement)).scalar_one_or_none()
            if inserted is not None:
                row = await self.get_by_id(task_id)
                if row is None:  # pragma: no cover - just inserted in this transaction
                    raise RuntimeError("an inserted task could not be read back")
                return row
        raise Conflict("Too many tasks were created at the same moment; retry the request.")


def to_task(row: TaskRow) -> Task:
    return Task(
        id=row.id,
        number=row.number,
        title=row.title,
        description=row.description,
        priority=cast("TaskPriority", row.priority),
        due_date=row.due_date,
        tags=list(row.tags or []),
        completed=row.completed,
        completed_at=row.completed_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class TaskService:
    """Create, read, list, update, complete, reopen and delete one user's tasks, and count them."""

    def __init__(self, session: AsyncSession, user_id: str, *, clock: Callable[[], dt.date] = utc_today) -> None:
        self.repository = TaskRepository(session=session, user_id=user_id)
        self.clock = clock

    @classmethod
    @asynccontextmanager
    async def begin(
        cls, session_maker: SessionMaker, user_id: str, *, clock: Callable[[], dt.date] = utc_today
    ) -> AsyncIterator[TaskService]:
        """A service on a fresh session that commits when the block succeeds and rolls back otherwise."""
        async with session_maker() as session:
            try:
                yield cls(session, user_id, clock=clock)
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

    async def create(self, data: TaskCreate) -> Task:
        row = await self.repository.insert_numbered(
            {
                "title": _title(data.title),
                "description": _description(data.description),
                "priority": _priority(data.priority),
                "due_date": data.due_date,
                "tags": normalize_tags(data.tags),
                "completed": False,
                "completed_at": None,
            }
        )
        return to_task(row)

    async def get(self, ref: TaskRef) -> Task:
        return to_task(await self._row(ref))

    async def list(self, query: TaskQuery | None = None) -> TaskList:
        query = query or TaskQuery()
        limit = _limit(query.limit)
        if query.cursor is not None and query.offset is not None:
            raise DomainError("Send either cursor or offset, not both.", field="offset")
        if query.offset is not None and query.offset < 0:
            raise DomainError("offset must be 0 or more.", field="offset")
        order: SortOrder = query.order or NATURAL_ORDER.get(query.sort, "asc")
        filters = self._filters(query)
        total = await self.repository.count(*filters)

        statement = self.repository.statement
        if query.cursor is not None:
            value, number = _decode_cursor(query.cursor, query.sort, order)
            statement = statement.where(_after(query.sort, order, value, number))
        statement = statement.order_by(*_order_by(query.sort, order)).limit(limit + 1).offset(query.offset or 0)
        rows = list(await self.repository.get_many(*filters, statement=statement))
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = _encode_cursor(query.sort, order, rows[-1]) if more else None
        return TaskList(items=[to_task(row) for row in rows], total=total, next_cursor=next_cursor)

    async def update(self, ref: TaskRef, changes: TaskUpdate) -> Task:
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
        is_open = TaskRow.completed == false()

        def count_where(condition: ColumnElement[bool]) -> ColumnElement[int]:
            return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

        total, open_count, overdue, due_today, low, medium, high = await self.repository.aggregate(
            func.count(),
            count_where(is_open),
            count_where(and_(is_open, TaskRow.due_date < today)),
            count_where(and_(is_open, TaskRow.due_date == today)),
            count_where(and_(is_open, TaskRow.priority == "low")),
            count_where(and_(is_open, TaskRow.priority == "medium")),
            count_where(and_(is_open, TaskRow.priority == "high")),
        )
        return TaskSummary(
            today=today,
            total=int(total),
            open=int(open_count),
            completed=int(total) - int(open_count),
            overdue=int(overdue),
            due_today=int(due_today),
            by_priority=TaskPriorityCounts(low=int(low), medium=int(medium), high=int(high)),
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

    def _filters(self, query: TaskQuery) -> Sequence[ColumnElement[bool]]:
        filters: list[ColumnElement[bool]] = []
        if query.status not in STATUSES:
            raise DomainError(f"status must be one of {', '.join(STATUSES)}.", field="status")
        if query.status == "open":
            filters.append(TaskRow.completed == false())
        elif query.status == "completed":
            filters.append(TaskRow.completed == true())
        if query.priority is not None:
            filters.append(TaskRow.priority == _priority(query.priority))
        if query.due_before is not None:
            filters.append(TaskRow.due_date <= query.due_before)
        if query.due_after is not None:
            filters.append(TaskRow.due_date >= query.due_after)
        if query.overdue is not None:
            # `due_date IS NOT NULL` keeps NOT(...) true for undated tasks (NULL < today is NULL).
            overdue = and_(TaskRow.completed == false(), TaskRow.due_date.is_not(None), TaskRow.due_date < self.clock())
            filters.append(overdue if query.overdue else ~overdue)
        if query.tag is not None:
            tag = _tag(query.tag)
            filters.append(self._has_tag(tag))
        if query.search is not None:
            text = query.search.strip()
            if not text or len(text) > MAX_SEARCH:
                raise DomainError(f"search must be 1 to {MAX_SEARCH} characters.", field="search")
            pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            filters.append(
                or_(TaskRow.title.ilike(pattern, escape="\\"), TaskRow.description.ilike(pattern, escape="\\"))
            )
        if query.sort not in SORTS:
            raise DomainError(f"sort must be one of {', '.join(SORTS)}.", field="sort")
        return filters

    def _has_tag(self, tag: str) -> ColumnElement[bool]:
        dialect = self.session.get_bind().dialect.name
        if dialect == "postgresql":
            # jsonb containment; a GIN index on tags can serve it.
            return TaskRow.tags.op("@>", return_type=Boolean)(func.jsonb_build_array(tag))
        elements = func.json_each(TaskRow.tags).table_valued("value")
        return exists(select(literal(1)).select_from(elements).where(elements.c.value == tag))


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
    """Tags trimmed, lower-cased and de-duplicated in order; a `DomainError` on `tags` when invalid."""
    result: list[str] = []
    for raw in tags:
        tag = _tag(raw)
        if tag not in result:
            result.append(tag)
    if len(result) > MAX_TAGS:
        raise DomainError(f"A task has at most {MAX_TAGS} tags.", field="tags")
    return result


def _tag(raw: str) -> str:
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


# --- keyset pagination -----------------------------------------------------------------------
# A cursor names the last row of a page by its sort key and number; the next page is the rows
# strictly after it, so inserts and deletes never shift a page. Ties on the sort key go by
# `number` ascending (creation order), which is unique per user, in either direction.


def _sort_key(sort: TaskSort, order: SortOrder) -> ColumnElement[Any]:
    if sort == "due_date":
        undated = _UNDATED_ASC if order == "asc" else _UNDATED_DESC
        return func.coalesce(TaskRow.due_date, literal(undated, Date))
    if sort == "priority":
        return case(_PRIORITY_RANK, value=TaskRow.priority, else_=0)
    return cast("ColumnElement[Any]", getattr(TaskRow, sort))


def _order_by(sort: TaskSort, order: SortOrder) -> list[ColumnElement[Any]]:
    key = _sort_key(sort, order)
    return [key.asc() if order == "asc" else key.desc(), TaskRow.number.asc()]


def _key_value(row: TaskRow, sort: TaskSort, order: SortOrder) -> Any:
    if sort == "due_date":
        return row.due_date or (_UNDATED_ASC if order == "asc" else _UNDATED_DESC)
    if sort == "priority":
        return _PRIORITY_RANK.get(row.priority, 0)
    return getattr(row, sort)


def _after(sort: TaskSort, order: SortOrder, value: Any, number: int) -> ColumnElement[bool]:
    key = _sort_key(sort, order)
    beyond = key > value if order == "asc" else key < value
    return or_(beyond, and_(key == value, TaskRow.number > number))


def _encode_cursor(sort: TaskSort, order: SortOrder, row: TaskRow) -> str:
    value = _key_value(row, sort, order)
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
    if value is None:
        raise invalid
    return value, number


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) <= _MAX_NUMBER
