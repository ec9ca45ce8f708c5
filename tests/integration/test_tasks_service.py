"""Task rules in `app.store.tasks`, on SQLite and on PostgreSQL, against a hand-computed set of tasks."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import msgspec
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.contracts import Task, TaskCreate, TaskUpdate
from app.core.errors import DomainError, NotFound
from app.services.tasks import TaskQuery, TaskService
from app.store.models import TaskRow
from app.store.tasks import TaskRepository

TODAY = dt.date(2025, 3, 10)


def clock() -> dt.date:
    return TODAY


# number: (title, priority, due, tags, description, completed). Today is 2025-03-10.
FIXTURE: dict[int, tuple[str, str, dt.date | None, list[str], str | None, bool]] = {
    1: ("Write report", "high", dt.date(2025, 3, 5), ["work"], None, False),  # overdue
    2: ("Buy milk", "low", dt.date(2025, 3, 10), ["Home", "errands"], None, False),  # due today
    3: ("Plan trip", "medium", dt.date(2025, 3, 20), ["home"], "Book flights to Lisbon", False),
    4: ("File taxes", "high", dt.date(2025, 3, 1), ["home"], None, True),  # past due but done
    5: ("Read book", "medium", None, [], None, False),
    6: (
        "Call plumber",
        "medium",
        dt.date(2025, 3, 9),
        ["home"],
        "kitchen sink 100% broken_",
        False,
    ),  # overdue
}


async def seed(session_maker: async_sessionmaker[Any], user: str = "alice") -> dict[int, Task]:
    tasks: dict[int, Task] = {}
    async with TaskService.begin(session_maker, user, clock=clock) as service:
        for number, (title, priority, due, tags, description, completed) in FIXTURE.items():
            task = await service.create(
                TaskCreate(title=title, priority=priority, due_date=due, tags=tags, description=description)  # type: ignore[arg-type]
            )
            assert task.number == number
            if completed:
                task = await service.complete(number)
            tasks[number] = task
    return tasks


async def numbers(session_maker: async_sessionmaker[Any], user: str = "alice", **query: Any) -> list[int]:
    async with TaskService.begin(session_maker, user, clock=clock) as service:
        page = await service.list(TaskQuery(**query))
    return [task.number for task in page.items]


async def test_create_assigns_numbers_and_normalizes(session_maker) -> None:
    tasks = await seed(session_maker)
    milk = tasks[2]
    assert milk.title == "Buy milk"
    assert milk.tags == ["home", "errands"]
    assert milk.priority == "low"
    assert milk.due_date == dt.date(2025, 3, 10)
    assert milk.completed is False
    assert milk.completed_at is None
    assert milk.created_at.tzinfo is not None
    assert tasks[4].completed is True
    assert tasks[4].completed_at is not None

    async with TaskService.begin(session_maker, "alice", clock=clock) as service:
        padded = await service.create(
            TaskCreate(title="  Tidy desk  ", description="   ", tags=[" Work ", "work", "WORK", "desk"])
        )
    assert padded.title == "Tidy desk"
    assert padded.description is None
    assert padded.tags == ["work", "desk"]
    assert padded.number == 7
    assert padded.priority == "medium"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"title": "   "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": "ok", "description": "d" * 5001}, "description"),
        ({"title": "ok", "tags": [f"t{i}" for i in range(21)]}, "tags"),
        ({"title": "ok", "tags": ["x" * 41]}, "tags"),
        ({"title": "ok", "tags": ["  "]}, "tags"),
        ({"title": "ok", "priority": "urgent"}, "priority"),
    ],
)
async def test_create_rejects_bad_input_naming_the_field(session_maker, data: dict[str, Any], field: str) -> None:
    with pytest.raises(DomainError) as caught:
        async with TaskService.begin(session_maker, "alice") as service:
            await service.create(TaskCreate(**data))
    assert caught.value.field == field
    assert await numbers(session_maker) == []


async def test_get_by_number_or_id_in_every_spelling(session_maker) -> None:
    tasks = await seed(session_maker)
    plan = tasks[3]
    async with TaskService.begin(session_maker, "alice", clock=clock) as service:
        for ref in (3, "3", "#3", " #3 ", plan.id, str(plan.id), plan.id.hex):
            assert (await service.get(ref)).id == plan.id
        with pytest.raises(DomainError) as caught:
            await service.get("the trip")
        assert caught.value.field == "task"
        for missing in (0, 99, 10**12, uuid.uuid4()):
            with pytest.raises(NotFound):
                await service.get(missing)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, [1, 2, 3, 4, 5, 6]),
        ({"status": "open"}, [1, 2, 3, 5, 6]),
        ({"status": "completed"}, [4]),
        ({"priority": "high"}, [1, 4]),
        ({"priority": "medium", "status": "open"}, [3, 5, 6]),
        ({"due_before": dt.date(2025, 3, 9)}, [1, 4, 6]),
        ({"due_after": dt.date(2025, 3, 10)}, [2, 3]),
        ({"due_after": dt.date(2025, 3, 5), "due_before": dt.date(2025, 3, 10)}, [1, 2, 6]),
        ({"overdue": True}, [1, 6]),
        ({"overdue": False}, [2, 3, 4, 5]),
        ({"tag": "home"}, [2, 3, 4, 6]),
        ({"tag": " HOME "}, [2, 3, 4, 6]),
        ({"tag": "errands"}, [2]),
        ({"tag": "hom"}, []),
        ({"search": "plumb"}, [6]),
        ({"search": "LISBON"}, [3]),
        ({"search": "100%"}, [6]),
        ({"search": "%"}, [6]),
        ({"search": "_"}, [6]),
        ({"search": "e"}, [1, 4, 5, 6]),
        ({"status": "open", "tag": "home", "sort": "due_date"}, [6, 2, 3]),
    ],
)
async def test_list_filters(session_maker, query: dict[str, Any], expected: list[int]) -> None:
    await seed(session_maker)
    await seed(session_maker, "bob")  # the same tasks for someone else never leak in
    assert await numbers(session_maker, **query) == expected


@pytest.mark.parametrize(
    ("sort", "order", "expected"),
    [
        ("created_at", None, [1, 2, 3, 4, 5, 6]),
        ("created_at", "desc", [6, 5, 4, 3, 2, 1]),
        ("number", "desc", [6, 5, 4, 3, 2, 1]),
        ("due_date", None, [4, 1, 6, 2, 3, 5]),
        ("due_date", "desc", [3, 2, 6, 1, 4, 5]),
        ("priority", None, [1, 4, 3, 5, 6, 2]),
        ("priority", "asc", [2, 3, 5, 6, 1, 4]),
        ("title", None, [2, 6, 4, 3, 5, 1]),
    ],
)
async def test_list_sorts(session_maker, sort: str, order: str | None, expected: list[int]) -> None:
    await seed(session_maker)
    assert await numbers(session_maker, sort=sort, order=order) == expected


async def test_recently_updated_first(session_maker) -> None:
    await seed(session_maker)
    async with TaskService.begin(session_maker, "alice", clock=clock) as service:
        await service.update(2, TaskUpdate(title="Buy oat milk"))
    # 4 changed (completed) after 3 was created; 5 and 6 were created after that.
    assert await numbers(session_maker, sort="updated_at") == [2, 6, 5, 4, 3, 1]


@pytest.mark.parametrize(
    ("sort", "order"),
    [("created_at", None), ("due_date", None), ("due_date", "desc"), ("priority", None), ("title", "desc")],
)
async def test_cursor_pages_walk_the_whole_order(session_maker, sort: str, order: str | None) -> None:
    await seed(session_maker)
    everything = await numbers(session_maker, sort=sort, order=order)
    walked: list[int] = []
    cursor: str | None = None
    async with TaskService.begin(session_maker, "alice", clock=clock) as service:
        for _ in range(10):
            page = await service.list(TaskQuery(sort=sort, order=order, limit=4, cursor=cursor))  # type: ignore[arg-type]
            assert page.total == 6
            walked += [task.number for task in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
    assert walked == everything
    assert len(walked) == 6


async def test_cursor_is_stable_when_rows_change_and_checked(session_maker) -> None:
    await seed(session_maker)
    async with TaskService.begin(session_maker, "alice", clock=clock) as service:
        first = await service.list(TaskQuery(limit=2))
        assert [t.number for t in first.items] == [1, 2]
        assert first.next_cursor
        await service.delete(1)  # an offset would now skip task 3
        second = await service.list(TaskQuery(limit=2, cursor=first.next_cursor))
        assert [t.number for t in second.items] == [3, 4]
        assert second.total == 5

        offset_page = await service.list(TaskQuery(limit=2, offset=2))
        assert [t.number for t in offset_page.items] == [4, 5]

        for bad in (
            TaskQuery(cursor="not-a-cursor"),
            TaskQuery(cursor=first.next_cursor, sort="title"),
            TaskQuery(cursor=first.next_cursor, order="desc"),
        ):
            with pytest.raises(DomainError) as caught:
                await service.list(bad)
            assert caught.value.field == "cursor"
        with pytest.raises(DomainError) as caught:
            await service.list(TaskQuery(cursor=first.next_cursor, offset=1))
        assert caught.value.field == "offset"
        for limit in (0, 201):
            with pytest.raises(DomainError) as caught:
                await service.list(TaskQuery(limit=limit))
            assert caught.value.field == "limit"


async def test_partial_update(session_maker) -> None:
    tasks = await seed(session_maker)
    before = tasks[3]
    async with TaskService.begin(session_maker, "alice", clock=clock) as service:
        renamed = await service.update(3, TaskUpdate(title=" Plan Lisbon trip "))
        assert renamed.title == "Plan Lisbon trip"
        # Untouched fields keep their values.
        assert (renamed.description, renamed.priority, renamed.due_date, renamed.tags) == (
            before.description,
            before.priority,
            before.due_date,
            before.tags,
        )
        assert renamed.updated_at > before.updated_at
        assert renamed.created_at == before.created_at

        cleared = await service.update(3, TaskUpdate(description=None, due_date=None, tags=["Travel", "travel"]))
        assert cleared.description is None
        assert cleared.due_date is None
        assert cleared.tags == ["travel"]
        assert cleared.title == "Plan Lisbon trip"

        unchanged = await service.update(3, TaskUpdate())
        assert unchanged.updated_at == cleared.updated_at

        done = await service.update(3, TaskUpdate(completed=True, priority="high"))
        assert done.completed is True
        assert done.completed_at is not None
        assert done.priority == "high"

        with pytest.raises(DomainError) as caught:
            await service.update(3, TaskUpdate(title=" "))
        assert caught.value.field == "title"
        with pytest.raises(NotFound):
            await service.update(99, TaskUpdate(title="x"))

    async with TaskService.begin(session_maker, "alice", clock=clock) as service:
        stored = await service.get(3)
    assert stored.title == "Plan Lisbon trip"
    assert stored.completed is True
    assert msgspec.to_builtins(stored) == msgspec.to_builtins(done)


async def test_complete_and_reopen(session_maker) -> None:
    await seed(session_maker)
    async with TaskService.begin(session_maker, "alice", clock=clock) as service:
        done = await service.complete(5)
        assert done.completed is True
        assert done.completed_at is not None
        again = await service.complete("#5")
        assert again.completed_at == done.completed_at  # idempotent
        reopened = await service.reopen(5)
        assert reopened.completed is False
        assert reopened.completed_at is None
        assert (await service.reopen(5)).completed is False
        with pytest.raises(NotFound):
            await service.complete(42)


async def test_delete(session_maker) -> None:
    tasks = await seed(session_maker)
    async with TaskService.begin(session_maker, "alice", clock=clock) as service:
        deleted = await service.delete(tasks[2].id)
        assert deleted.title == "Buy milk"
        with pytest.raises(NotFound):
            await service.get(2)
        with pytest.raises(NotFound):
            await service.delete(2)
        # Numbers are never reused while a higher one exists.
        assert (await service.create(TaskCreate(title="Next"))).number == 7
    assert await numbers(session_maker) == [1, 3, 4, 5, 6, 7]


async def test_summary_counts(session_maker) -> None:
    await seed(session_maker)
    async with TaskService.begin(session_maker, "bob", clock=clock) as service:
        await service.create(TaskCreate(title="Bob's overdue", due_date=dt.date(2025, 1, 1), priority="high"))
    async with TaskService.begin(session_maker, "alice", clock=clock) as service:
        summary = await service.summary()
    assert msgspec.to_builtins(summary) == {
        "today": "2025-03-10",
        "total": 6,
        "open": 5,
        "completed": 1,
        "overdue": 2,
        "due_today": 1,
        "by_priority": {"low": 1, "medium": 3, "high": 1},
    }
    async with TaskService.begin(session_maker, "carol", clock=clock) as service:
        empty = await service.summary()
    assert (empty.total, empty.open, empty.overdue, empty.by_priority.high) == (0, 0, 0, 0)


async def test_another_users_task_is_not_found(session_maker) -> None:
    alice = await seed(session_maker)
    target = alice[1]
    async with TaskService.begin(session_maker, "bob", clock=clock) as bob:
        assert (await bob.list()).items == []
        assert (await bob.summary()).total == 0
        for attempt in (
            bob.get(target.id),
            bob.get(1),
            bob.update(target.id, TaskUpdate(title="hijacked")),
            bob.complete(target.id),
            bob.reopen(target.id),
            bob.delete(target.id),
        ):
            with pytest.raises(NotFound):
                await attempt
        mine = await bob.create(TaskCreate(title="Bob's own"))
        assert mine.number == 1  # numbers are per user
    async with TaskService.begin(session_maker, "alice", clock=clock) as service:
        assert (await service.get(target.id)).title == "Write report"
        assert (await service.list()).total == 6


async def test_repository_confines_even_hand_built_statements(session_maker) -> None:
    await seed(session_maker)
    await seed(session_maker, "bob")
    async with TaskService.begin(session_maker, "bob", clock=clock) as service:
        await service.delete(6)
    async with session_maker() as session:
        # The same statement shape for two users: a cached criterion must not leak between them.
        for user, expected in (("alice", 6), ("bob", 5), ("alice", 6), ("carol", 0)):
            repository = TaskRepository(session=session, user_id=user)
            rows = await repository.get_many(statement=select(TaskRow))
            assert {row.user_id for row in rows} <= {user}
            assert len(rows) == expected
            assert await repository.count(statement=select(TaskRow)) == expected
        repository = TaskRepository(session=session, user_id="bob")
        with pytest.raises(ValueError, match="own user"):
            await repository.add(TaskRow(user_id="alice", number=99, title="forged"))
        stamped = await repository.add(TaskRow(number=99, title="stamped", priority="low", tags=[]))
        assert stamped.user_id == "bob"
        await session.rollback()
    with pytest.raises(ValueError, match="user id"):
        TaskRepository(session=session, user_id="")


async def test_concurrent_creates_never_fail(session_maker) -> None:
    async def create(i: int) -> int:
        async with TaskService.begin(session_maker, "alice") as service:
            return (await service.create(TaskCreate(title=f"task {i}"))).number

    created = await asyncio.gather(*(create(i) for i in range(25)))
    assert sorted(created) == list(range(1, 26))
    assert await numbers(session_maker, limit=100, sort="number") == list(range(1, 26))


async def test_concurrent_creates_never_pass_the_task_quota(session_maker) -> None:
    """Count and insert are atomic per user (`app.store.quota_locks`): 12 creates at once against a
    quota of 4 keep 4, the rest are refused, and another user's creates are not held back."""
    from app.core.errors import QuotaExceeded

    async def create(user: str, i: int) -> int | None:
        try:
            async with TaskService.begin(session_maker, user, max_tasks=4) as service:
                return (await service.create(TaskCreate(title=f"task {i}"))).number
        except QuotaExceeded:
            return None

    created = await asyncio.gather(*(create(user, i) for i in range(12) for user in ("alice", "bob")))
    assert sorted(number for number in created if number is not None) == [1, 1, 2, 2, 3, 3, 4, 4]
    assert await numbers(session_maker, limit=100, sort="number") == [1, 2, 3, 4]


async def test_today_defaults_to_the_utc_date(session_maker) -> None:
    utc_today = dt.datetime.now(dt.UTC).date()
    async with TaskService.begin(session_maker, "alice") as service:
        await service.create(TaskCreate(title="yesterday", due_date=utc_today - dt.timedelta(days=1)))
        await service.create(TaskCreate(title="today", due_date=utc_today))
        summary = await service.summary()
    assert summary.today == utc_today
    assert (summary.overdue, summary.due_today) == (1, 1)


# ---- `create_in`: the add_task tool's create (the asyncpg lane on PostgreSQL) ------------------------


def _task_statements(session_maker: Any) -> tuple[list[str], list[str], Any]:
    """Lists of the `tasks` statements sent through SQLAlchemy and through the driver lane."""
    from sqlalchemy import event

    from app.store import driver

    through_sqlalchemy: list[str] = []
    through_driver: list[str] = []
    engine = session_maker.kw["bind"].sync_engine

    def on_sqlalchemy(conn: Any, cursor: Any, sql: str, *_: Any) -> None:
        if " tasks" in sql:
            through_sqlalchemy.append(sql.split(None, 1)[0])

    def on_driver(sql: str, arguments: Any) -> None:
        if " tasks" in sql or sql in ("BEGIN", "COMMIT", "ROLLBACK"):
            through_driver.append(sql.split(None, 1)[0])

    event.listen(engine, "before_cursor_execute", on_sqlalchemy)
    driver.statement_listeners.append(on_driver)

    def stop() -> None:
        event.remove(engine, "before_cursor_execute", on_sqlalchemy)
        driver.statement_listeners.remove(on_driver)

    return through_sqlalchemy, through_driver, stop


@pytest.mark.parametrize("max_tasks", [0, 5])
async def test_create_in_stores_what_create_stores(session_maker, max_tasks: int) -> None:
    """Same validation, rows and numbering as `create`; on PostgreSQL over asyncpg every statement
    goes to the driver lane (seen by its listeners), on SQLite through the session."""
    async with TaskService.begin(session_maker, "alice", max_tasks=max_tasks) as service:
        first = await service.create(TaskCreate(title="first"))
    through_sqlalchemy, through_driver, stop = _task_statements(session_maker)
    try:
        before = dt.datetime.now(dt.UTC)
        created = await TaskService.create_in(
            session_maker,
            "alice",
            TaskCreate(
                title="  Buy milk ",
                description=" two litres ",
                priority="high",
                due_date=dt.date(2025, 3, 11),
                tags=["Home", "home", " errands "],
            ),
            max_tasks=max_tasks,
        )
    finally:
        stop()
    assert isinstance(created.id, uuid.UUID) and created.id != first.id
    assert (created.number, created.title, created.description, created.priority) == (
        2,
        "Buy milk",
        "two litres",
        "high",
    )
    assert (created.due_date, created.tags, created.completed, created.completed_at) == (
        dt.date(2025, 3, 11),
        ["home", "errands"],
        False,
        None,
    )
    assert created.created_at == created.updated_at and created.created_at >= before
    assert created.created_at.utcoffset() == dt.timedelta(0)
    async with TaskService.begin(session_maker, "alice") as service:
        assert await service.get(created.id) == created  # what it returned is what is stored
    postgres = session_maker.kw["bind"].dialect.name == "postgresql"
    if postgres:
        assert through_sqlalchemy == []
        # (the quota's advisory lock names no table) the next number (and count), the insert
        expected = ["SELECT", "INSERT"]
        assert through_driver == (["BEGIN", *expected, "COMMIT"] if max_tasks else expected)
    else:
        assert through_driver == [] and "INSERT" in through_sqlalchemy


async def test_create_in_refuses_bad_input_and_a_full_quota_and_stores_nothing(session_maker) -> None:
    from app.core.errors import QuotaExceeded

    with pytest.raises(DomainError) as bad:
        await TaskService.create_in(session_maker, "alice", TaskCreate(title="   "), max_tasks=2)
    assert bad.value.field == "title"
    for title in ("one", "two"):
        await TaskService.create_in(session_maker, "alice", TaskCreate(title=title), max_tasks=2)
    with pytest.raises(QuotaExceeded) as refused:
        await TaskService.create_in(session_maker, "alice", TaskCreate(title="three"), max_tasks=2)
    assert refused.value.quota == "QUOTA_TASKS_PER_USER"
    assert await numbers(session_maker, limit=100, sort="number") == [1, 2]
    # The refused transaction was rolled back: its connection serves the next create, which
    # numbers after the highest number kept.
    async with TaskService.begin(session_maker, "alice") as service:
        await service.delete(1)
    third = await TaskService.create_in(session_maker, "alice", TaskCreate(title="three"), max_tasks=2)
    assert third.number == 3
    assert await numbers(session_maker, limit=100, sort="number") == [2, 3]


@pytest.mark.parametrize("max_tasks", [0, 4])
async def test_concurrent_create_in_never_passes_the_quota_nor_repeats_a_number(session_maker, max_tasks: int) -> None:
    from app.core.errors import QuotaExceeded

    async def create(user: str, i: int) -> int | None:
        try:
            return (
                await TaskService.create_in(session_maker, user, TaskCreate(title=f"t{i}"), max_tasks=max_tasks)
            ).number
        except QuotaExceeded:
            return None

    created = await asyncio.gather(*(create(user, i) for i in range(8) for user in ("alice", "bob")))
    kept = max_tasks or 8
    assert sorted(number for number in created if number is not None) == sorted(list(range(1, kept + 1)) * 2)
    assert await numbers(session_maker, limit=100, sort="number") == list(range(1, kept + 1))
