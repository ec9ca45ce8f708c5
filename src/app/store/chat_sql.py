"""The SQL of the ChatKit tables, built (and compiled) once: keyset pages, upserts, lookups.

Hot reads select `CAST(data AS TEXT)` instead of hydrating ORM objects: the JSON text goes
straight into pydantic's Rust parser (`validate_json`), skipping `json.loads` and the ORM
identity map. Writes bind the JSON text the same way (pydantic's `model_dump_json`).

Pagination is a keyset query with a single round trip: the cursor row's `(created_at, seq)`
is resolved by a row-value subquery, `WHERE (created_at, seq) > (SELECT created_at, seq ...)`,
which PostgreSQL runs as an InitPlan feeding one index range scan (and SQLite as a row-value
comparison on the same index). A cursor id that does not exist (deleted, or not this user's /
this thread's) makes the subquery NULL, so the page is empty.

Every statement here names `user_id` in its WHERE clause or its inserted row.

Why one long module: every statement on the four ChatKit tables, beside the compile-once machinery
they share; split, the `user_id` rule above would have to be checked in several places.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    CursorResult,
    Executable,
    Select,
    String,
    Table,
    Text,
    and_,
    bindparam,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session

from app.store.models import ChatAttachment, ChatFeedback, ChatItem, ChatThread

Order = Literal["asc", "desc"]
ThreadKey = tuple[str, str]
"""`(user_id, thread_id)`."""
SUPPORTED_DIALECTS = ("postgresql", "sqlite")

THREADS = cast("Table", ChatThread.__table__)
ITEMS = cast("Table", ChatItem.__table__)
ATTACHMENTS = cast("Table", ChatAttachment.__table__)
FEEDBACK = cast("Table", ChatFeedback.__table__)


def rowcount(result: Any) -> int:
    return int(cast("CursorResult[Any]", result).rowcount)


def dialect_insert(table: Table, dialect_name: str) -> Any:
    return postgresql.insert(table) if dialect_name == "postgresql" else sqlite.insert(table)


def _json_param(name: str, dialect_name: str) -> ColumnElement[Any]:
    """A bind parameter that takes JSON text and stores it in the JSON/JSONB column."""
    param = bindparam(name, type_=Text)
    return sql_cast(param, JSONB) if dialect_name == "postgresql" else param


def _keyset(
    table: Table, scope: Sequence[str], with_cursor: bool, order: Order
) -> tuple[list[ColumnElement[bool]], tuple[Any, Any]]:
    """WHERE + ORDER BY for a page strictly after the cursor row, in `(created_at, seq)` order.

    `scope` names the columns (each bound as a parameter of the same name) that select the
    rows being paged, e.g. `("user_id", "thread_id")`; the cursor row must match them too.

    The cursor row is looked up by its primary key `(user_id, id)` only; the other scope
    columns are checked in the SELECT list (a mismatch yields NULL, so the page is empty).
    Were they in its WHERE, PostgreSQL's generic plan for the prepared statement (used from
    the sixth execution on) may pick the `(user_id, thread_id, ...)` index for the lookup
    and filter the whole thread by id: 1.5 ms instead of 0.1 ms on a 10,000-item thread.
    """
    where: list[ColumnElement[bool]] = [table.c[name] == bindparam(name) for name in scope]
    if with_cursor:
        cursor_row = table.alias("cursor_row")
        others = [cursor_row.c[name] == bindparam(name) for name in scope if name != "user_id"]
        created_at: ColumnElement[Any] = cursor_row.c.created_at
        seq: ColumnElement[Any] = cursor_row.c.seq
        if others:
            created_at = case((and_(*others), created_at))
            seq = case((and_(*others), seq))
        cursor = (
            select(created_at, seq)
            .where(cursor_row.c.user_id == bindparam("user_id"), cursor_row.c.id == bindparam("after"))
            .scalar_subquery()
        )
        key = tuple_(table.c.created_at, table.c.seq)
        where.append(key > cursor if order == "asc" else key < cursor)
    if order == "asc":
        return where, (table.c.created_at.asc(), table.c.seq.asc())
    return where, (table.c.created_at.desc(), table.c.seq.desc())


@functools.cache
def thread_page_statement(order: Order, with_cursor: bool) -> Select[Any]:
    where, order_by = _keyset(THREADS, ("user_id",), with_cursor, order)
    return (
        select(THREADS.c.id, THREADS.c.created_at, sql_cast(THREADS.c.data, Text))
        .where(*where)
        .order_by(*order_by)
        .limit(bindparam("limit"))
    )


@functools.cache
def item_page_statement(order: Order, with_cursor: bool) -> Select[Any]:
    where, order_by = _keyset(ITEMS, ("user_id", "thread_id"), with_cursor, order)
    return select(sql_cast(ITEMS.c.data, Text)).where(*where).order_by(*order_by).limit(bindparam("limit"))


_THREAD_KEY = (THREADS.c.user_id == bindparam("user_id"), THREADS.c.id == bindparam("thread_id"))
GET_THREAD = select(THREADS.c.created_at, sql_cast(THREADS.c.data, Text)).where(*_THREAD_KEY)
THREAD_EXISTS = select(literal(1)).where(*_THREAD_KEY)
# (an UPDATE reserves bind names equal to column names, hence `b_`)
TOUCH_THREAD = (
    update(THREADS)
    .where(THREADS.c.user_id == bindparam("b_user_id"), THREADS.c.id == bindparam("b_thread_id"))
    .values(updated_at=bindparam("b_now", type_=DateTimeUTC()))
)
# A thread's turn lease (`ChatKitStore.claim_turn`). Claimed when free, expired, or already ours
# (a claim retried after its connection died must not wait on itself); renewed and released only
# by its holder. Each also sets `updated_at`, which a Core UPDATE would otherwise leave to the
# model's Python `onupdate`, a value the driver lane's precompiled SQL never computes.
_THREAD_KEY_B = (THREADS.c.user_id == bindparam("b_user_id"), THREADS.c.id == bindparam("b_thread_id"))
_HELD_BY = THREADS.c.turn_lease == bindparam("b_lease")
CLAIM_TURN = (
    update(THREADS)
    .where(
        *_THREAD_KEY_B,
        or_(
            THREADS.c.turn_lease.is_(None),
            THREADS.c.turn_lease_expires_at < bindparam("b_now", type_=DateTimeUTC()),
            _HELD_BY,
        ),
    )
    .values(
        turn_lease=bindparam("b_lease"),
        turn_lease_expires_at=bindparam("b_expires", type_=DateTimeUTC()),
        updated_at=bindparam("b_now", type_=DateTimeUTC()),
    )
)
RENEW_TURN = (
    update(THREADS)
    .where(*_THREAD_KEY_B, _HELD_BY)
    .values(
        turn_lease_expires_at=bindparam("b_expires", type_=DateTimeUTC()),
        updated_at=bindparam("b_now", type_=DateTimeUTC()),
    )
)
RELEASE_TURN = (
    update(THREADS)
    .where(*_THREAD_KEY_B, _HELD_BY)
    .values(turn_lease=None, turn_lease_expires_at=None, updated_at=bindparam("b_now", type_=DateTimeUTC()))
)
_ITEM_KEY = (
    ITEMS.c.user_id == bindparam("user_id"),
    ITEMS.c.id == bindparam("item_id"),
    ITEMS.c.thread_id == bindparam("thread_id"),
)
GET_ITEM = select(sql_cast(ITEMS.c.data, Text)).where(*_ITEM_KEY)
DELETE_ITEM = delete(ITEMS).where(*_ITEM_KEY)
# The thread quota's count, under its lock (`ChatKitStore.reserve_thread`).
COUNT_THREADS = select(func.count()).select_from(THREADS).where(THREADS.c.user_id == bindparam("user_id"))
# The items-per-thread quota's count, asked before every turn.
COUNT_ITEMS = (
    select(func.count())
    .select_from(ITEMS)
    .where(ITEMS.c.user_id == bindparam("user_id"), ITEMS.c.thread_id == bindparam("thread_id"))
)
_ATTACHMENT_KEY = (ATTACHMENTS.c.user_id == bindparam("user_id"), ATTACHMENTS.c.id == bindparam("id"))
GET_ATTACHMENT = select(
    sql_cast(ATTACHMENTS.c.data, Text),
    ATTACHMENTS.c.status,
    ATTACHMENTS.c.storage_key,
    ATTACHMENTS.c.size,
).where(*_ATTACHMENT_KEY)
DELETE_ATTACHMENT = delete(ATTACHMENTS).where(*_ATTACHMENT_KEY)


_REQUIRED = object()


@dataclass(frozen=True, slots=True)
class _Prepared:
    sql: str
    names: tuple[str, ...]
    defaults: tuple[Any, ...]
    processors: tuple[Any, ...]

    def arguments(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """Positional driver arguments, in the order of the SQL's placeholders."""
        arguments = []
        for name, default, processor in zip(self.names, self.defaults, self.processors, strict=True):
            value = values.get(name, default)
            if value is _REQUIRED:
                raise KeyError(f"a value is required for bind parameter {name!r}")
            arguments.append(value if processor is None else processor(value))
        return tuple(arguments)


def _prepare(statement: Any, dialect: Any) -> _Prepared | None:
    """`statement` compiled for `dialect` as positional driver SQL, or None (named paramstyle)."""
    compiled = statement.compile(dialect=dialect)
    if not compiled.positional or compiled.positiontup is None:
        return None
    binds = [compiled.binds[name] for name in compiled.positiontup]
    return _Prepared(
        sql=compiled.string,
        names=tuple(compiled.positiontup),
        # literals in the statement (e.g. 'pending') are binds that carry a value
        defaults=tuple(_REQUIRED if bind.required else bind.effective_value for bind in binds),
        processors=tuple(bind.type.dialect_impl(dialect).bind_processor(dialect) for bind in binds),
    )


class CompiledOnce:
    """An `INSERT ... ON CONFLICT` statement compiled once per dialect, then sent as SQL text.

    SQLAlchemy 2.0 never caches its PostgreSQL and SQLite INSERT constructs (they set
    `inherit_cache = False`), so every execution compiled the upsert afresh: about 0.5 ms of
    CPU per call, more than the database round trip. This compiles the statement once per
    dialect and sends it with `exec_driver_sql`, applying the same bind processors
    SQLAlchemy would (e.g. SQLite's datetime-to-text). Drivers with a named paramstyle fall
    back to the ordinary (compiling) path.
    """

    def __init__(self, build: Callable[[str], Any]) -> None:
        self.build = build
        self._compiled: dict[tuple[type, str], _Prepared | None] = {}

    def statement(self, dialect_name: str) -> Any:
        return self.build(dialect_name)

    def prepared(self, dialect: Any) -> _Prepared | None:
        key = (type(dialect), str(dialect.paramstyle))
        if key not in self._compiled:
            self._compiled[key] = _prepare(self.build(dialect.name), dialect)
        return self._compiled[key]

    async def execute(
        self,
        session: AsyncSession | async_scoped_session[AsyncSession],
        params: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    ) -> CursorResult[Any]:
        dialect = session.get_bind().dialect
        prepared = self.prepared(dialect)
        if prepared is None:
            return cast("CursorResult[Any]", await session.execute(self.build(dialect.name), params))
        connection = await session.connection()
        if isinstance(params, Mapping):
            return await connection.exec_driver_sql(prepared.sql, prepared.arguments(params))
        return await connection.exec_driver_sql(prepared.sql, [prepared.arguments(values) for values in params])


Runnable = Executable | CompiledOnce
"""A statement of this module: a prebuilt Core statement or an upsert compiled once."""

_PREPARED: dict[tuple[Executable, type], _Prepared] = {}


def prepared_for(statement: Runnable, dialect: Any) -> _Prepared:
    """`statement` as positional SQL for a driver of `dialect`, compiled once.

    For this module's statements, which live as long as the process (the cache holds each
    one, so it is as small as the module's set of statements).
    """
    if isinstance(statement, CompiledOnce):
        prepared = statement.prepared(dialect)
    else:
        key = (statement, type(dialect))
        prepared = _PREPARED.get(key)
        if prepared is None:
            prepared = _prepare(statement, dialect)
            if prepared is not None:
                _PREPARED[key] = prepared
    if prepared is None:
        raise ValueError(f"{dialect.name} with a named paramstyle has no positional driver SQL")
    return prepared


class SessionRunner:
    """Runs this module's statements on a session (SQLite, transactions, other drivers);
    `app.store.driver.DriverConnection` runs the same ones on a bare asyncpg connection."""

    def __init__(self, session: AsyncSession | async_scoped_session[AsyncSession]) -> None:
        self.session = session

    async def _result(self, statement: Runnable, params: Mapping[str, Any]) -> Any:
        if isinstance(statement, CompiledOnce):
            return await statement.execute(self.session, params)
        return await self.session.execute(statement, params)

    async def fetch(self, statement: Runnable, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        return cast("Sequence[Sequence[Any]]", (await self._result(statement, params)).all())

    async def execute(self, statement: Runnable, params: Mapping[str, Any]) -> int:
        return rowcount(await self._result(statement, params))


class StatementRunner(Protocol):
    """Where the Store's hot statements run: `SessionRunner` or a `DriverConnection`."""

    async def fetch(self, statement: Runnable, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]: ...

    async def execute(self, statement: Runnable, params: Mapping[str, Any]) -> int: ...


def _thread_write(dialect_name: str, *, with_lease: bool) -> Any:
    """Insert or update a thread; an update keeps `created_at` and `seq` and bumps `updated_at`.

    `with_lease` also writes the row's turn lease (NULL for none): the thread a `threads.create`
    reserves, whose turn then claims nothing more (`ChatKitStore.reserve_thread`); a conflict there
    is the same reservation run again after its connection died, so the row is this reservation's.
    Without it an update leaves the lease alone: the library saves the thread mid-turn."""
    columns: dict[str, Any] = {
        "user_id": bindparam("user_id"),
        "id": bindparam("id"),
        "seq": bindparam("seq"),
        "title": bindparam("title"),
        "created_at": bindparam("created_at", type_=DateTimeUTC()),
        "updated_at": bindparam("updated_at", type_=DateTimeUTC()),
        "data": _json_param("data", dialect_name),
    }
    updated = ["title", "data", "updated_at"]
    if with_lease:
        columns["turn_lease"] = bindparam("turn_lease", type_=String)
        columns["turn_lease_expires_at"] = bindparam("turn_lease_expires_at", type_=DateTimeUTC())
        updated += ["turn_lease", "turn_lease_expires_at"]
    statement = dialect_insert(THREADS, dialect_name).values(**columns)
    return statement.on_conflict_do_update(
        index_elements=[THREADS.c.user_id, THREADS.c.id],
        set_={name: statement.excluded[name] for name in updated},
    )


def _on_item_conflict(statement: Any) -> Any:
    """An item written again keeps its `seq` and its thread: only its content is replaced, and a
    row of the same id in another thread is left alone (the statement then writes 0 rows)."""
    return statement.on_conflict_do_update(
        index_elements=[ITEMS.c.user_id, ITEMS.c.id],
        set_={
            "type": statement.excluded.type,
            "created_at": statement.excluded.created_at,
            "data": statement.excluded.data,
        },
        where=ITEMS.c.thread_id == statement.excluded.thread_id,
    )


def _item_upsert(dialect_name: str) -> Any:
    """Insert or update an item. An update keeps the item's `seq` (its place among equal
    timestamps), and an id never moves between threads: a conflicting row that belongs to
    another thread is left alone (and the statement reports 0 rows)."""
    statement = dialect_insert(ITEMS, dialect_name).values(
        user_id=bindparam("user_id"),
        id=bindparam("id"),
        thread_id=bindparam("thread_id"),
        type=bindparam("type"),
        seq=bindparam("seq"),
        created_at=bindparam("created_at", type_=DateTimeUTC()),
        data=_json_param("data", dialect_name),
    )
    return _on_item_conflict(statement)


def _item_add_postgresql(dialect_name: str) -> Any:
    """PostgreSQL: bump the thread's `updated_at` and upsert one item in a single statement.

    The CTE's UPDATE proves the thread is the user's (no row, nothing inserted) and takes the
    thread's row lock before the item's, the same order as every other writer; one statement
    is atomic on its own, so it runs without BEGIN/COMMIT round trips. It returns one row
    when the item was written.
    """
    touched = (
        update(THREADS)
        .where(THREADS.c.user_id == bindparam("b_user_id"), THREADS.c.id == bindparam("b_thread_id"))
        .values(updated_at=bindparam("b_now", type_=DateTimeUTC()))
        .returning(THREADS.c.user_id, THREADS.c.id)
        .cte("touched")
    )
    source = select(
        touched.c.user_id,
        bindparam("p_id", type_=String),
        touched.c.id,
        bindparam("p_type", type_=String),
        bindparam("p_seq", type_=BigInteger),
        bindparam("p_created_at", type_=DateTimeUTC()),
        _json_param("p_data", "postgresql"),
    )
    statement = (
        postgresql.insert(ITEMS)
        .from_select(["user_id", "id", "thread_id", "type", "seq", "created_at", "data"], source)
        .add_cte(touched, nest_here=True)
    )
    return _on_item_conflict(statement).returning(ITEMS.c.seq)


def _attachment_upsert(dialect_name: str) -> Any:
    """Insert or update attachment metadata. The status only moves forward: 'uploaded' is kept."""
    statement = dialect_insert(ATTACHMENTS, dialect_name).values(
        user_id=bindparam("user_id"),
        id=bindparam("id"),
        thread_id=bindparam("thread_id"),
        name=bindparam("name"),
        mime_type=bindparam("mime_type"),
        status=bindparam("status"),
        created_at=bindparam("created_at", type_=DateTimeUTC()),
        data=_json_param("data", dialect_name),
    )
    return statement.on_conflict_do_update(
        index_elements=[ATTACHMENTS.c.user_id, ATTACHMENTS.c.id],
        set_={
            "thread_id": statement.excluded.thread_id,
            "name": statement.excluded.name,
            "mime_type": statement.excluded.mime_type,
            "data": statement.excluded.data,
            "status": func.coalesce(func.nullif(statement.excluded.status, "pending"), ATTACHMENTS.c.status),
        },
    )


THREAD_UPSERT = CompiledOnce(functools.partial(_thread_write, with_lease=False))
THREAD_RESERVE = CompiledOnce(functools.partial(_thread_write, with_lease=True))
ITEM_UPSERT = CompiledOnce(_item_upsert)
ITEM_ADD_POSTGRESQL = CompiledOnce(_item_add_postgresql)
ATTACHMENT_UPSERT = CompiledOnce(_attachment_upsert)
