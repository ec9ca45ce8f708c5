"""One writer at a time per (user, quota): a quota's count and the write it admits are atomic.

A quota counts what the user keeps, compares it with the limit, then writes. Two requests of one
user that count at the same moment both pass (40 tasks were kept against a quota of 30). Taking
`lock_quota` first, inside the transaction that counts and writes, makes the second request
count only after the first one's transaction has ended, on any worker or instance.

- PostgreSQL: a transaction-scoped advisory lock keyed by (user id, quota). It is released by
  COMMIT or ROLLBACK; other users and other quotas never wait for it; it touches no table, so a
  distributed (Citus) deployment routes nothing differently.
- SQLite: the database's write lock, taken up front (`BEGIN IMMEDIATE`). SQLite has one writer at
  a time anyway; the driver would otherwise open the transaction only at the INSERT, after the
  count, and a second connection could count between them.

Hold it only around the count and the write: never across a model call or an upstream request.
It needs a real transaction: an `AsyncSession` (the request's, `TaskService.begin`, or the Store's
`_writing`), or on the Store's asyncpg lane (`app.store.driver`) a `DriverConnection.transaction()`
with `LOCK_QUOTA` (`lock_quota_on_lane`); never a statement in autocommit, where a
transaction-scoped lock would end with its own statement. Behind PgBouncer in
`pool_mode = transaction` it holds: the lock lives exactly as long as the transaction.
"""

from __future__ import annotations

import hashlib
from typing import Final, Literal

from sqlalchemy import BigInteger, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session

from app.store.driver import DriverConnection

QuotaKind = Literal["tasks", "threads", "attachment_bytes"]
_SIGNED_64: Final = 1 << 63
LOCK_QUOTA: Final = select(func.pg_advisory_xact_lock(bindparam("key", type_=BigInteger)))


def quota_lock_key(user_id: str, kind: QuotaKind) -> int:
    """A stable signed 64-bit key for PostgreSQL's advisory locks (the same in every process)."""
    digest = hashlib.blake2b(f"taskpilot-quota\x00{kind}\x00{user_id}".encode(), digest_size=8).digest()
    unsigned = int.from_bytes(digest, "big")
    return unsigned - (1 << 64) if unsigned >= _SIGNED_64 else unsigned


async def lock_quota(session: AsyncSession | async_scoped_session[AsyncSession], user_id: str, kind: QuotaKind) -> None:
    """Serialise `kind` writes of `user_id` until `session`'s transaction ends."""
    dialect = session.get_bind().dialect.name  # without a connection: the lock's statement opens it
    if dialect == "postgresql":
        # Through the session, not its connection: the lock is usually a transaction's first
        # statement, which a `ReconnectingSession` runs again on a fresh connection when the pooled
        # one is dead (nothing ran before it, so nothing is repeated).
        await session.execute(select(func.pg_advisory_xact_lock(quota_lock_key(user_id, kind))))
    elif dialect == "sqlite":
        connection = await session.connection()
        driver = (await connection.get_raw_connection()).driver_connection
        # Already in a transaction means a write opened it (the driver begins one only for a
        # write), and that write already holds the lock.
        if driver is None or not driver.in_transaction:
            await connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:  # pragma: no cover - settings accept only these two
        raise NotImplementedError(f"quotas support SQLite and PostgreSQL, not {dialect}")


async def lock_quota_on_lane(connection: DriverConnection, user_id: str, kind: QuotaKind) -> None:
    """`lock_quota` inside a `DriverConnection.transaction()` (PostgreSQL's asyncpg lane)."""
    await connection.fetch(LOCK_QUOTA, {"key": quota_lock_key(user_id, kind)})
