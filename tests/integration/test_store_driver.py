"""The Store's asyncpg lane (app.store.driver) on real PostgreSQL: what the session path guaranteed
still holds when the hot statements skip SQLAlchemy — errors, lost connections, cancellation."""

from __future__ import annotations

import asyncio
import datetime as dt

import asyncpg
import pytest
from chatkit.store import NotFoundError
from chatkit.types import AssistantMessageContent, AssistantMessageItem, ThreadMetadata
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from testkit import postgres

from app.core.context import RequestContext
from app.ops import metrics
from app.store.chatkit_store import ChatKitStore
from app.store.connections import ReconnectingSession
from app.store.models import HostedSession

pytestmark = pytest.mark.postgres

ALICE = RequestContext(user_id="alice")


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """PostgreSQL only (conftest's `engine` builds the schema on it): SQLite has no lane."""
    return postgres_url


def _thread(thread_id: str = "thr_1") -> ThreadMetadata:
    return ThreadMetadata(id=thread_id, created_at=dt.datetime.now(dt.UTC), title="Groceries")


def _reply(n: int, thread_id: str = "thr_1") -> AssistantMessageItem:
    return AssistantMessageItem(
        id=f"msg_{n}",
        thread_id=thread_id,
        created_at=dt.datetime.now(dt.UTC),
        content=[AssistantMessageContent(text=f"reply {n}")],
    )


def _store(engine: AsyncEngine) -> ChatKitStore[RequestContext]:
    store: ChatKitStore[RequestContext] = ChatKitStore(async_sessionmaker(engine))
    assert store._lane is not None, "PostgreSQL over asyncpg must use the driver lane"
    return store


async def test_the_lane_is_only_for_postgres_over_asyncpg(engine: AsyncEngine, tmp_path: object) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    sqlite = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/x.db")
    try:
        assert ChatKitStore(async_sessionmaker(sqlite))._lane is None
    finally:
        await sqlite.dispose()
    assert _store(engine)._lane is not None


async def test_a_database_error_on_the_lane_is_sqlalchemys_dbapi_error_without_the_values(
    engine: AsyncEngine,
) -> None:
    store = _store(engine)
    too_long = "thr_" + "x" * 200  # the id column holds 64 characters
    with pytest.raises(DBAPIError) as raised:
        await store.save_thread(_thread(too_long), ALICE)
    assert "too long" in str(raised.value.orig)
    assert too_long not in str(raised.value), "bound values must not reach error messages (or logs)"
    # Nothing was left checked out, and the next call works.
    assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    await store.save_thread(_thread(), ALICE)
    assert (await store.load_thread("thr_1", ALICE)).title == "Groceries"


async def test_lost_connections_are_retried_and_the_rest_of_the_pool_is_replaced(
    engine: AsyncEngine, postgres_url: str
) -> None:
    store = _store(engine)
    await store.save_thread(_thread(), ALICE)
    # Three pooled connections, all checked in.
    await asyncio.gather(*(store.load_thread_items("thr_1", None, 20, "asc", ALICE) for _ in range(3)))
    assert await postgres.terminate_other_connections(postgres_url) >= 3
    retries = metrics.STORE_RETRIES.labels(reason="connection_lost")
    before = retries._value.get()
    await store.add_thread_item("thr_1", _reply(1), ALICE)
    # One retry for the first dead connection; the pool's others were invalidated with it.
    assert retries._value.get() - before == 1
    await asyncio.gather(*(store.add_thread_item("thr_1", _reply(n), ALICE) for n in range(2, 5)))
    assert retries._value.get() - before == 1
    page = await store.load_thread_items("thr_1", None, 20, "asc", ALICE)
    assert [item.id for item in page.data] == ["msg_1", "msg_2", "msg_3", "msg_4"]


async def test_a_call_cancelled_mid_statement_does_not_return_a_busy_connection(
    engine: AsyncEngine, postgres_url: str
) -> None:
    store = _store(engine)
    await store.save_thread(_thread(), ALICE)
    blocker = await asyncpg.connect(postgres.asyncpg_dsn(postgres_url))
    try:
        transaction = blocker.transaction()
        await transaction.start()
        # Hold the thread's row lock: add_thread_item's statement waits for it.
        await blocker.execute("SELECT 1 FROM chat_threads WHERE user_id = 'alice' AND id = 'thr_1' FOR UPDATE")
        adding = asyncio.create_task(store.add_thread_item("thr_1", _reply(1), ALICE))
        for _ in range(100):
            waiting = await blocker.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if waiting:
                break
            await asyncio.sleep(0.02)
        assert waiting, "the write never waited on the lock"
        adding.cancel()
        with pytest.raises(asyncio.CancelledError):
            await adding
        await transaction.rollback()
    finally:
        await blocker.close()
    pool = engine.sync_engine.pool
    assert pool.checkedout() == 0  # type: ignore[attr-defined]
    # Every pooled connection is usable: none was handed back mid-statement.
    for n in range(2, 8):
        await store.add_thread_item("thr_1", _reply(n), ALICE)
    ids = [item.id for item in (await store.load_thread_items("thr_1", None, 20, "asc", ALICE)).data]
    assert ids[-6:] == [f"msg_{n}" for n in range(2, 8)]


async def test_isolation_holds_on_the_lane(engine: AsyncEngine) -> None:
    store = _store(engine)
    await store.save_thread(_thread(), ALICE)
    await store.add_thread_item("thr_1", _reply(1), ALICE)
    bob = RequestContext(user_id="bob")
    with pytest.raises(NotFoundError):
        await store.load_thread("thr_1", bob)
    with pytest.raises(NotFoundError):
        await store.load_thread_items("thr_1", None, 20, "asc", bob)
    with pytest.raises(NotFoundError):
        await store.add_thread_item("thr_1", _reply(2), bob)
    with pytest.raises(NotFoundError):
        await store.load_item("thr_1", "msg_1", bob)
    assert (await store.load_threads(20, None, "desc", bob)).data == []
    assert [item.id for item in (await store.load_thread_items("thr_1", None, 20, "asc", ALICE)).data] == ["msg_1"]


async def test_a_session_retry_on_a_dead_connection_keeps_the_objects_it_held(
    engine: AsyncEngine, postgres_url: str
) -> None:
    """`ReconnectingSession` rolls the dead transaction back before its retry; the objects loaded by
    earlier transactions stay loaded and tracked (an expired one read later is MissingGreenlet)."""
    make_session = async_sessionmaker(engine, class_=ReconnectingSession, expire_on_commit=False)
    async with make_session() as session:
        session.add(HostedSession(user_id="alice", session_id="cksess_1", status="active"))
        await session.commit()
        row = await session.get_one(HostedSession, ("alice", "cksess_1"))
        await session.commit()  # the connection goes back to the pool, where it dies
        await postgres.terminate_other_connections(postgres_url)
        assert await session.scalar(select(func.count()).select_from(HostedSession)) == 1  # retried
        assert row.status == "active"  # still loaded: no lazy load outside an await
        row.status = "refreshed"  # still tracked: the change is flushed
        await session.commit()
    async with make_session() as session:
        assert (await session.get_one(HostedSession, ("alice", "cksess_1"))).status == "refreshed"


# ---- transactions on the lane: the quotas' lock, count and write ----------------------------------


async def test_a_lane_transaction_rolls_back_when_its_block_raises(engine: AsyncEngine) -> None:
    from app.store.chat_repositories import ChatRows
    from app.store.driver import DriverLane, statement_listeners

    lane = DriverLane.for_engine(engine)
    assert lane is not None

    async def write_then_refuse() -> None:
        async with lane.connection() as connection, connection.transaction():
            await ChatRows(connection).upsert_thread(
                user_id="alice",
                thread_id="thr_1",
                title=None,
                created_at=dt.datetime.now(dt.UTC),
                data=_thread().model_dump_json(),
                now=dt.datetime.now(dt.UTC),
            )
            raise LookupError("refused after the write")

    sent: list[str] = []
    statement_listeners.append(lambda sql, arguments: sent.append(sql.split(None, 1)[0]))
    try:
        with pytest.raises(LookupError):
            await write_then_refuse()
    finally:
        statement_listeners.pop()
    assert sent == ["BEGIN", "INSERT", "ROLLBACK"]
    with pytest.raises(NotFoundError):
        await _store(engine).load_thread("thr_1", ALICE)
    assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_reserve_thread_counts_and_saves_in_one_lane_transaction(engine: AsyncEngine) -> None:
    from app.core.errors import QuotaExceeded
    from app.services.quotas import UserLimits
    from app.store.driver import statement_listeners

    store = _store(engine)
    limits = UserLimits(threads_per_user=1)
    sent: list[str] = []
    statement_listeners.append(lambda sql, arguments: sent.append(sql.split(None, 1)[0]))
    try:
        await store.reserve_thread(_thread("thr_1"), ALICE, admit=limits.check_thread_count)
        with pytest.raises(QuotaExceeded):
            await store.reserve_thread(_thread("thr_2"), ALICE, admit=limits.check_thread_count)
    finally:
        statement_listeners.pop()
    # lock, count, upsert; then lock, count, refused
    assert sent == ["BEGIN", "SELECT", "SELECT", "INSERT", "COMMIT", "BEGIN", "SELECT", "SELECT", "ROLLBACK"]
    assert (await store.load_threads(10, None, "asc", ALICE)).data[0].id == "thr_1"


@pytest.mark.parametrize("max_tasks", [0, 10])
async def test_a_task_create_on_the_lane_replaces_a_dead_pooled_connection_once(
    engine: AsyncEngine, postgres_url: str, max_tasks: int
) -> None:
    from app.contracts import TaskCreate
    from app.services.tasks import TaskService

    session_maker = async_sessionmaker(engine)
    first = await TaskService.create_in(session_maker, "alice", TaskCreate(title="one"), max_tasks=max_tasks)
    assert await postgres.terminate_other_connections(postgres_url) >= 1
    second = await TaskService.create_in(session_maker, "alice", TaskCreate(title="two"), max_tasks=max_tasks)
    assert (first.number, second.number) == (1, 2)
    async with TaskService.begin(session_maker, "alice") as service:
        assert [task.title for task in (await service.list()).items] == ["one", "two"]


async def test_a_task_create_without_a_quota_is_not_sent_again_after_its_insert(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a quota each statement commits on its own: a connection lost once the insert was sent
    may have added the task, and running the create again would add it twice."""
    from app.contracts import TaskCreate
    from app.services.tasks import TaskService
    from app.store import tasks as task_rows
    from app.store.driver import DriverConnection

    sent = DriverConnection.fetch
    inserts = 0

    async def lost_after_the_insert(self: DriverConnection, statement: object, params: dict[str, object]) -> object:
        nonlocal inserts
        rows = await sent(self, statement, params)  # type: ignore[arg-type]
        if statement is task_rows._INSERT_NUMBERED:
            inserts += 1
            raise asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation")
        return rows

    monkeypatch.setattr(DriverConnection, "fetch", lost_after_the_insert)
    session_maker = async_sessionmaker(engine)
    with pytest.raises(DBAPIError):
        await TaskService.create_in(session_maker, "alice", TaskCreate(title="once"), max_tasks=0)
    monkeypatch.undo()
    assert inserts == 1
    async with TaskService.begin(session_maker, "alice") as service:
        assert [task.title for task in (await service.list()).items] == ["once"]
