"""Persistence of tasks: one repository, confined to one user's rows.

Isolation is a property of this repository: a `TaskRepository` is bound to one user at
construction; its base statement filters by that user, every statement it executes carries a
`with_loader_criteria` on the same condition (so even a statement a caller builds cannot reach
another user's rows), and rows it inserts are stamped with that user.

The repository turns an already validated `TaskFilter` into SQL; what a valid filter, title or
cursor is, is decided by `app.services.tasks`.

Creating a task is the one task write on a chat turn's hot path (the `add_task` tool). On PostgreSQL
over asyncpg it skips the session and the ORM unit of work: `insert_numbered_on_lane` sends the same
SQL (the quota's lock, the count and next number, the insert) straight to asyncpg on a pooled
connection (`app.store.driver`), and reads the row back from the insert's RETURNING. Everything else,
and SQLite, goes through the repository.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import (
    Boolean,
    ColumnElement,
    Date,
    Result,
    Select,
    Table,
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
from sqlalchemy import bindparam as param
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import with_loader_criteria

from app.contracts import SortOrder, Task, TaskPriority, TaskSort
from app.core.clock import utcnow
from app.core.errors import Conflict
from app.core.ids import uuid7
from app.store.chat_sql import CompiledOnce
from app.store.connections import connection_died
from app.store.driver import DriverConnection, DriverLane
from app.store.models import TaskRow
from app.store.quota_locks import lock_quota, lock_quota_on_lane

# Concurrent creates for one user race for the same next number and the losers retry. Every
# round has a winner (under READ COMMITTED a retry sees the winner's commit), so n simultaneous
# creates by one user need at most n attempts; this bound is far above any real contention.
MAX_NUMBER_ATTEMPTS: Final = 100
_PRIORITY_RANK: Final = {"low": 1, "medium": 2, "high": 3}
# Undated tasks sort after dated ones in both directions.
_UNDATED_ASC: Final = dt.date(9999, 12, 31)
_UNDATED_DESC: Final = dt.date(1, 1, 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskFilter:
    """Validated filters of a listing; `None` means no filter. Date bounds are inclusive."""

    status: Literal["open", "completed", "all"] = "all"
    priority: str | None = None
    due_before: dt.date | None = None
    due_after: dt.date | None = None
    overdue: bool | None = None
    today: dt.date | None = None  # what "overdue" is measured against
    tag: str | None = None
    search: str | None = None  # a substring of title or description, matched case-insensitively


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

    async def get_many_by_ids(self, task_ids: Sequence[uuid.UUID]) -> Sequence[TaskRow]:
        """This user's rows among `task_ids` (an id of another user's task matches nothing)."""
        if not task_ids:
            return ()
        return await self.list(TaskRow.id.in_(list(task_ids)))

    async def aggregate(self, *columns: ColumnElement[Any]) -> Sequence[Any]:
        """One row of aggregates over this user's tasks."""
        statement = select(*columns).select_from(TaskRow).where(self.owned)
        return tuple((await self._execute(statement)).one())

    def conditions(self, where: TaskFilter) -> list[ColumnElement[bool]]:
        """The SQL conditions of a filter (the user's own rows are always added by `_execute`)."""
        filters: list[ColumnElement[bool]] = []
        if where.status == "open":
            filters.append(TaskRow.completed == false())
        elif where.status == "completed":
            filters.append(TaskRow.completed == true())
        if where.priority is not None:
            filters.append(TaskRow.priority == where.priority)
        if where.due_before is not None:
            filters.append(TaskRow.due_date <= where.due_before)
        if where.due_after is not None:
            filters.append(TaskRow.due_date >= where.due_after)
        if where.overdue is not None:
            today = where.today or dt.datetime.now(dt.UTC).date()
            # `due_date IS NOT NULL` keeps NOT(...) true for undated tasks (NULL < today is NULL).
            overdue = and_(TaskRow.completed == false(), TaskRow.due_date.is_not(None), TaskRow.due_date < today)
            filters.append(overdue if where.overdue else ~overdue)
        if where.tag is not None:
            filters.append(self._has_tag(where.tag))
        if where.search is not None:
            text = where.search
            pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            filters.append(
                or_(TaskRow.title.ilike(pattern, escape="\\"), TaskRow.description.ilike(pattern, escape="\\"))
            )
        return filters

    async def lock_quota(self) -> None:
        """Serialise this user's task creates until the transaction ends (`app.store.quota_locks`)."""
        await lock_quota(self.session, self.user_id, "tasks")

    async def count_owned(self) -> int:
        """How many tasks this user has (the task quota counts them)."""
        (total,) = await self.aggregate(func.count())
        return int(total)

    async def count_matching(self, where: TaskFilter) -> int:
        return await self.count(*self.conditions(where))

    async def page(
        self,
        where: TaskFilter,
        *,
        sort: TaskSort,
        order: SortOrder,
        after: tuple[Any, int] | None,
        limit: int,
        offset: int,
    ) -> list[TaskRow]:
        """Up to `limit` rows in `sort` order, strictly after the keyset `after` (sort value, number)."""
        statement = self.statement
        if after is not None:
            statement = statement.where(_after(sort, order, *after))
        statement = statement.order_by(*_order_by(sort, order)).limit(limit).offset(offset)
        return list(await self.get_many(*self.conditions(where), statement=statement))

    async def counts(self, today: dt.date) -> tuple[int, int, int, int, int, int, int]:
        """total, open, overdue, due today, and open low/medium/high, in one aggregate query."""
        is_open = TaskRow.completed == false()

        def count_where(condition: ColumnElement[bool]) -> ColumnElement[int]:
            return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

        row = await self.aggregate(
            func.count(),
            count_where(is_open),
            count_where(and_(is_open, TaskRow.due_date < today)),
            count_where(and_(is_open, TaskRow.due_date == today)),
            count_where(and_(is_open, TaskRow.priority == "low")),
            count_where(and_(is_open, TaskRow.priority == "medium")),
            count_where(and_(is_open, TaskRow.priority == "high")),
        )
        total, open_count, overdue, due_today, low, medium, high = (int(value) for value in row)
        return total, open_count, overdue, due_today, low, medium, high

    def _has_tag(self, tag: str) -> ColumnElement[bool]:
        dialect = self.session.get_bind().dialect.name
        if dialect == "postgresql":
            # jsonb containment; a GIN index on tags can serve it.
            return TaskRow.tags.op("@>", return_type=Boolean)(func.jsonb_build_array(tag))
        elements = func.json_each(TaskRow.tags).table_valued("value")
        return exists(select(literal(1)).select_from(elements).where(elements.c.value == tag))

    async def insert_numbered(self, values: dict[str, Any]) -> TaskRow:
        """Insert a task numbered max+1 for its user, inside the caller's transaction.

        A concurrent insert that took the same number makes `ON CONFLICT DO NOTHING` return no
        row instead of raising, so the transaction stays usable and the insert is retried with
        the number read again (under READ COMMITTED it then sees the winner's row).
        """
        dialect = self.session.get_bind().dialect.name
        if dialect == "postgresql":
            insert: Any = postgresql.insert
        elif dialect == "sqlite":
            insert = sqlite.insert
        else:  # pragma: no cover - settings accept only these two
            raise NotImplementedError(f"tasks support SQLite and PostgreSQL, not {dialect}")
        # The next number is read first, not computed by a subquery inside VALUES: Citus cannot
        # route an INSERT whose VALUES hold a subquery, and both statements pin this user.
        next_number = select(func.coalesce(func.max(TaskRow.number), 0) + 1).where(self.owned)
        for _ in range(MAX_NUMBER_ATTEMPTS):
            number = int((await self.session.execute(next_number)).scalar_one())
            now = utcnow()
            task_id = uuid7()
            statement = (
                insert(TaskRow)
                .values(
                    user_id=self.user_id,
                    id=task_id,
                    number=number,
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


# ---- the asyncpg lane (PostgreSQL): creating a task without the ORM ------------------------------

_TASKS = cast("Table", TaskRow.__table__)
_INSERTED_COLUMNS: Final = (
    "title",
    "description",
    "priority",
    "due_date",
    "tags",
    "completed",
    "completed_at",
)
# The same statements `TaskRepository.count_owned` and `insert_numbered` send.
_NEXT_NUMBER = select(func.coalesce(func.max(TaskRow.number), 0) + 1).where(TaskRow.user_id == param("user_id"))
_COUNT_AND_NEXT_NUMBER = select(func.count(), func.coalesce(func.max(TaskRow.number), 0) + 1).where(
    TaskRow.user_id == param("user_id")
)
_INSERT_NUMBERED = CompiledOnce(
    lambda _dialect: (
        postgresql.insert(TaskRow)
        .values(
            user_id=param("user_id"),
            id=param("id"),
            number=param("number"),
            created_at=param("created_at"),
            updated_at=param("updated_at"),
            **{name: param(name) for name in _INSERTED_COLUMNS},
        )
        .on_conflict_do_nothing(index_elements=[TaskRow.user_id, TaskRow.number])
        .returning(*(column for column in _TASKS.columns if column.name != "user_id"))
    )
)


async def insert_numbered_on_lane(
    lane: DriverLane, user_id: str, values: dict[str, Any], *, admit: Callable[[int], None] | None
) -> Task:
    """`TaskRepository.insert_numbered` (after `lock_quota` and `admit(count_owned())` when `admit`
    is given) on the asyncpg lane: same rows, same numbering race rule, same errors.

    With `admit` it is one transaction under the user's task-quota lock (`app.store.quota_locks`);
    without, each statement runs on its own (the insert's ON CONFLICT keeps numbers unique).
    A connection found dead before anything was written is replaced once, as `ReconnectingSession`
    does for the first statement of a transaction; a death after the insert was sent is raised
    (the task may exist: running it again could add it twice).
    """
    if not user_id:
        raise ValueError("a task is created for a user id")
    sent_insert = False

    def sending_insert() -> None:
        nonlocal sent_insert
        sent_insert = True  # from here on, a lost connection may have committed

    for attempt in range(2):
        try:
            async with lane.connection() as connection:
                if admit is None:
                    # Each statement commits on its own: the insert's, once sent, may have.
                    return await _numbered_insert(connection, user_id, values, counted=None, sending=sending_insert)
                async with connection.transaction():
                    await lock_quota_on_lane(connection, user_id, "tasks")
                    sending_insert()
                    return await _numbered_insert(connection, user_id, values, counted=admit)
        except Exception as exc:
            if attempt or sent_insert or not connection_died(exc):
                raise
    raise AssertionError("unreachable")  # the loop returns or raises


async def _numbered_insert(
    connection: DriverConnection,
    user_id: str,
    values: dict[str, Any],
    *,
    counted: Callable[[int], None] | None,
    sending: Callable[[], None] | None = None,
) -> Task:
    """`sending`: called before the insert is sent."""
    for _ in range(MAX_NUMBER_ATTEMPTS):
        if counted is None:
            ((number,),) = await connection.fetch(_NEXT_NUMBER, {"user_id": user_id})
        else:
            ((count, number),) = await connection.fetch(_COUNT_AND_NEXT_NUMBER, {"user_id": user_id})
            counted(int(count))
            counted = None  # the lock is held: the count cannot change before this insert ends
        now = utcnow()
        if sending is not None:
            sending()
        rows = await connection.fetch(
            _INSERT_NUMBERED,
            {"user_id": user_id, "id": uuid7(), "number": int(number), "created_at": now, "updated_at": now, **values},
        )
        if rows:
            return _task_of(rows[0])
    raise Conflict("Too many tasks were created at the same moment; retry the request.")


def _task_of(record: Any) -> Task:
    """A task from the insert's RETURNING row (asyncpg: its UUID type, aware timestamps, decoded JSON)."""
    task_id = record["id"]
    return Task(
        id=task_id if type(task_id) is uuid.UUID else uuid.UUID(str(task_id)),
        number=record["number"],
        title=record["title"],
        description=record["description"],
        priority=cast("TaskPriority", record["priority"]),
        due_date=record["due_date"],
        tags=list(record["tags"] or []),
        completed=record["completed"],
        completed_at=record["completed_at"],
        created_at=record["created_at"],
        updated_at=record["updated_at"],
    )


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


def sort_value(row: TaskRow, sort: TaskSort, order: SortOrder) -> Any:
    if sort == "due_date":
        return row.due_date or (_UNDATED_ASC if order == "asc" else _UNDATED_DESC)
    if sort == "priority":
        return _PRIORITY_RANK.get(row.priority, 0)
    return getattr(row, sort)


def _after(sort: TaskSort, order: SortOrder, value: Any, number: int) -> ColumnElement[bool]:
    key = _sort_key(sort, order)
    beyond = key > value if order == "asc" else key < value
    return or_(beyond, and_(key == value, TaskRow.number > number))
