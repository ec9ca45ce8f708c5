"""What a lost database connection looks like, and sessions that survive a stale pooled one.

After a PostgreSQL restart, a failover or `pg_terminate_backend`, the pool still holds the dead
connections while the database is up again. The first statement on one fails; SQLAlchemy then
invalidates the whole pool, so the next checkout opens a fresh connection. `ReconnectingSession`
runs that first statement again, once, when nothing had been done in the transaction yet (no
statement on a connection, no pending change): re-running it repeats nothing, and the objects the
session already holds keep what they loaded. Anything later in a transaction fails as before (its
earlier work died with the connection and is not redone here).
The ChatKit Store retries its calls on its own (`app.store.chatkit_store`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger("app.store")

# The driver's errors (asyncpg's, by name) that mean the database cannot be used on this
# connection right now, whatever the statement: retried on a fresh connection by the stores, and
# answered 503 (retry) rather than 500 by `app.http.problems`. One list for both, so they agree.
CONNECTION_LOST_ERRORS = frozenset(
    {
        "ConnectionDoesNotExistError",  # the socket closed mid-operation
        "ConnectionFailureError",  # 08006
        "AdminShutdownError",  # 57P01: terminated by an administrator (pg_terminate_backend, a restart)
        "CrashShutdownError",  # 57P02
        "CannotConnectNowError",  # 57P03: starting up, shutting down, failing over
        "TooManyConnectionsError",  # 53300: no connection slot left on the server
    }
)
# Not `InterfaceError`: asyncpg raises it for misuse too (a second statement on a busy connection,
# a bug that must stay a 500); a closed connection's InterfaceError is flagged by SQLAlchemy
# (`connection_invalidated`) and counted through that.


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then the errors it was raised from: Advanced Alchemy wraps driver errors, the
    original as the cause."""
    for _ in range(5):
        yield exc
        if exc.__cause__ is None:
            return
        exc = exc.__cause__


def connection_died(exc: BaseException) -> bool:
    """True when `exc` means the database connection was lost (or none could be opened), so the
    call may run again on a fresh one."""
    for error in _chain(exc):
        if isinstance(error, DBAPIError):
            if error.connection_invalidated:
                return True
            orig = error.orig
            # SQLAlchemy's asyncpg adapter raises its own generic `Error` for what the server says
            # (57P01-57P03): the driver's error, which names it, is its cause.
            drivers = [e for e in (orig, getattr(orig, "__cause__", None)) if e is not None]
            return any(isinstance(e, ConnectionError) or type(e).__name__ in CONNECTION_LOST_ERRORS for e in drivers)
        if isinstance(error, ConnectionError):
            return True
    return False


def pool_exhausted(exc: BaseException) -> bool:
    """True when `exc` means no pooled connection came free within the pool's timeout."""
    return any(isinstance(error, PoolTimeout) for error in _chain(exc))


def database_unavailable(exc: BaseException) -> bool:
    """True when `exc` means the database is unreachable, lost the connection or had none free in
    time: worth a retry in a few seconds (503), not a bug (500)."""
    if connection_died(exc) or pool_exhausted(exc):
        return True
    for error in _chain(exc):
        if isinstance(error, OSError | TimeoutError):
            return True
        if isinstance(error, DBAPIError):
            return isinstance(error.orig, OSError | TimeoutError)
    return False


def database_cause(exc: BaseException) -> str:
    """The driver's own error behind `exc` by name (`asyncpg.ConnectionDoesNotExistError`), for a log line.

    Advanced Alchemy re-raises driver errors as its own classes (a closed connection even as
    `IntegrityError`), SQLAlchemy wraps them in a `DBAPIError` and its asyncpg adapter in one of
    its own: the innermost cause is the driver's. Names only: a message may quote the statement's
    values.
    """
    for _ in range(8):
        if exc.__cause__ is None:
            break
        exc = exc.__cause__
    package = type(exc).__module__.split(".")[0]
    # asyncpg and SQLAlchemy both have an `InterfaceError`: say whose.
    return type(exc).__name__ if package == "builtins" else f"{package}.{type(exc).__name__}"


class ReconnectingSession(AsyncSession):
    """A session whose first statement of a transaction runs again, once, when its pooled connection
    turns out to be dead (module notes). Costs nothing until a connection dies (no pre-ping).

    `execute` (which `scalars` calls), `scalar`, `get` and `get_one` are the ways a statement
    starts a transaction here; a flush only ever follows one of them or pending changes.
    """

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        return await self._reconnecting(super().execute, args, kwargs)

    async def scalar(self, *args: Any, **kwargs: Any) -> Any:
        return await self._reconnecting(super().scalar, args, kwargs)

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        return await self._reconnecting(super().get, args, kwargs)

    async def get_one(self, *args: Any, **kwargs: Any) -> Any:
        return await self._reconnecting(super().get_one, args, kwargs)

    async def _reconnecting(
        self, call: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        untouched = not self.in_transaction() and not (self.new or self.deleted or self.dirty)
        try:
            return await call(*args, **kwargs)
        except DBAPIError as exc:
            if not untouched or not connection_died(exc):
                raise
            log.warning(
                "database connection lost; retrying",
                extra={"fields": {"call": "session", "attempt": 1, "error": database_cause(exc)}},
            )
            # A rollback expires every object the session holds, and the caller's next plain read
            # of one (`row.status`) would then load it outside an `await`: MissingGreenlet, a 500.
            # They were loaded by transactions that ended (the session was clean and nothing ran
            # in this one), so nothing of theirs is undone: keep them out of the rollback's reach.
            kept = list(self.identity_map.values())
            self.expunge_all()
            # Ends the failed transaction and lets its invalidated connection go.
            await self.rollback()
            self.add_all(kept)
            return await call(*args, **kwargs)


# What asyncpg raises when its prepared statements do not survive between transactions: a pooler
# in transaction mode (PgBouncer before 1.21) lent the session's server connection to another
# client (26000 "does not exist", 42P05 "already exists").
_STATEMENT_NOT_POOLED = frozenset({"InvalidSQLStatementNameError", "DuplicatePreparedStatementError"})

STATEMENT_CACHE_HINT = (
    "the database pooler does not keep prepared statements between transactions (PgBouncer in "
    "pool_mode = transaction): set DATABASE_STATEMENT_CACHE=false"
)


def statement_cache_unsupported(exc: BaseException) -> bool:
    """True when `exc` is a prepared statement a transaction-mode pooler lost or duplicated."""
    for _ in range(8):
        if type(exc).__name__ in _STATEMENT_NOT_POOLED:
            return True
        inner = getattr(exc, "orig", None) if isinstance(exc, DBAPIError) else None
        inner = inner if isinstance(inner, BaseException) else exc.__cause__
        if inner is None or inner is exc:
            return False
        exc = inner
    return False
