"""The Store's hot statements sent straight to asyncpg, on connections of the engine's own pool.

A Store read through an `AsyncSession` costs ~0.5 ms of CPU in SQLAlchemy (session, greenlet
hops, ORM-enabled execution, result wrapping) around a ~0.15 ms round trip: 3-4x the same
prepared statement sent through asyncpg (bench.store). The hot calls of a turn (load a thread,
a page of items, add an item, save the thread) therefore run here: the same statements of
`app.store.chat_sql`, compiled once per dialect, sent with asyncpg's `fetch`/`execute` (which
prepares each SQL text once per connection), on a connection checked out of the SQLAlchemy pool
the rest of the app uses: one pool, one connection budget, the same `connect` events.

Semantics kept from the session path:
- each statement runs in autocommit (asyncpg starts no transaction; SQLAlchemy's adapter never
  saw one, so the pool's reset-on-return has nothing to roll back);
- driver errors become the `DBAPIError` SQLAlchemy would raise (so `app.http.problems` maps them
  and the Store's retry recognises a lost connection); a lost connection is invalidated, and so
  is the rest of the pool, as SQLAlchemy does on a disconnect;
- a call cancelled mid-statement closes its connection instead of returning it busy.

Anything else (transactions, SQLite, other drivers) stays on sessions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from app.ops import tracing
from app.store.chat_sql import Runnable, prepared_for

StatementListener = Callable[[str, Sequence[Any]], None]
statement_listeners: list[StatementListener] = []
"""Called with (sql, arguments) before each statement, like SQLAlchemy's `before_cursor_execute`
(which never sees these): the user_id audit in tests/integration/test_statement_audit.py listens here too."""


def _affected(status: str) -> int:
    """Rows an asyncpg command status reports: 'UPDATE 1' -> 1, 'INSERT 0 1' -> 1."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class DriverConnection:
    """One checked-out connection; what `app.store.chat_sql.SessionRunner` does over a session."""

    def __init__(self, driver: Any, dialect: Any) -> None:
        self._driver = driver
        self._dialect = dialect

    def _arguments(self, statement: Runnable, params: Mapping[str, Any]) -> tuple[str, tuple[Any, ...]]:
        prepared = prepared_for(statement, self._dialect)
        arguments = prepared.arguments(params)
        for listener in statement_listeners:
            listener(prepared.sql, arguments)
        return prepared.sql, arguments

    async def fetch(self, statement: Runnable, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        sql, arguments = self._arguments(statement, params)
        with tracing.statement(sql, self._dialect.name):
            rows: Sequence[Sequence[Any]] = await self._driver.fetch(sql, *arguments)
        return rows

    async def execute(self, statement: Runnable, params: Mapping[str, Any]) -> int:
        sql, arguments = self._arguments(statement, params)
        with tracing.statement(sql, self._dialect.name):
            return _affected(await self._driver.execute(sql, *arguments))


class DriverLane:
    """Checks connections out of `engine`'s pool and hands out their asyncpg connection."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._pool = engine.sync_engine.pool
        self._dialect = engine.dialect

    @classmethod
    def for_engine(cls, engine: AsyncEngine | None) -> DriverLane | None:
        """A lane for PostgreSQL over asyncpg; None for anything else (the session path serves it)."""
        if engine is None or engine.dialect.name != "postgresql" or engine.dialect.driver != "asyncpg":
            return None
        return cls(engine)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[DriverConnection]:
        try:
            fairy = await greenlet_spawn(self._pool.connect)
        except self._dialect.loaded_dbapi.Error as exc:  # could not connect: wrapped as Engine.connect does
            raise self._wrapped(exc, disconnect=self._dialect.is_disconnect(exc, None, None)) from exc
        adapted = fairy.dbapi_connection
        try:
            yield DriverConnection(fairy.driver_connection, self._dialect)
        except BaseException as exc:
            if not isinstance(exc, Exception):
                # Cancelled (or interrupted) mid-statement: the connection may still be busy.
                fairy.invalidate(exc)
                raise
            raise self._translated(exc, fairy, adapted) from exc
        finally:
            await greenlet_spawn(fairy.close)

    def _wrapped(self, dbapi_error: Exception, *, disconnect: bool) -> Exception:
        return DBAPIError.instance(
            None,
            None,
            dbapi_error,
            self._dialect.loaded_dbapi.Error,
            hide_parameters=True,
            connection_invalidated=disconnect,
            dialect=self._dialect,
        )

    def _translated(self, exc: Exception, fairy: Any, adapted: Any) -> Exception:
        """The `DBAPIError` SQLAlchemy raises for `exc`; a disconnect invalidates the pool."""
        if isinstance(exc, DBAPIError) or adapted is None:
            return exc
        try:
            adapted._handle_exception(exc)  # the adapter's own asyncpg -> DB-API translation
        except Exception as translated:
            dbapi_error = translated
        else:  # pragma: no cover - the adapter always raises
            return exc
        if not isinstance(dbapi_error, self._dialect.loaded_dbapi.Error):
            return dbapi_error  # not a database error (a bug of ours): raise it as it is
        disconnect = self._dialect.is_disconnect(dbapi_error, adapted, None)
        if disconnect:
            # What SQLAlchemy's Connection does: this connection is gone, and every pooled
            # connection older than now is replaced on its next checkout.
            self._pool._invalidate(fairy, dbapi_error)
        return self._wrapped(dbapi_error, disconnect=disconnect)
