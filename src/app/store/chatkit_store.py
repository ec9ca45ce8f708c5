"""The ChatKit `Store`: threads, items, attachments and feedback in PostgreSQL (or SQLite).

Why one long module: it is one class implementing the library's whole `Store` interface, and
the semantics below hold across its methods.

`ChatKitStore` works with any ChatKit server, not only TaskPilot's: build it from an Advanced
Alchemy `SQLAlchemyAsyncConfig` or from an async session maker, and pass contexts that have a
`user_id` attribute. Every call opens its own short session, because the ChatKit server calls
the store from inside a streaming response, after the request's own session is closed.

Semantics (each one is pinned by tests/integration/test_chatkit_store.py, on SQLite and PostgreSQL):

- Everything is scoped to `context.user_id`. Another user's thread, item or attachment is
  `NotFoundError` on read and on write, and is never returned or modified.
- Threads and items are ordered by `(created_at, seq)`: `seq` breaks timestamp ties in
  insertion order. Pages hold `limit` rows; `has_more` says whether more follow and then
  `after` is the id of the page's last row, which the caller passes back as the exclusive
  cursor. A `limit` below 1 is read as 1.
- A cursor id that does not exist (deleted meanwhile, or not in this user's thread) returns
  an empty page with `has_more=False`: restarting from the beginning would duplicate what
  the client already shows, and an error would break a history view over a race.
- `load_thread_items` of a thread the user does not have is `NotFoundError` (not an empty
  page), so a foreign thread id is a 404 everywhere.
- `add_thread_item` and `save_item` are the same idempotent upsert (the library adds the
  same item twice, e.g. an open workflow); an update keeps the item's place (`seq`). Adding
  to a thread that is not the user's is `NotFoundError`; an id already used by an item of
  another thread is `ItemIdConflictError` (ids never move between threads).
- `save_thread` upserts: a second save keeps `created_at` and bumps `updated_at`; adding,
  saving or deleting an item bumps the thread's `updated_at` too (retention reads it).
- `delete_thread` deletes the thread's items, attachment rows and feedback; an unknown thread
  is `NotFoundError`. `delete_thread_item` of an item that is not there is a no-op (the
  library removes streamed items that were never saved), but the thread must be the user's.
  `delete_attachment` of an unknown attachment is `NotFoundError`.
- Timestamps: the library's `datetime.now()` is naive. A naive datetime is read as the
  server's local time (which is what `datetime.now()` means) and converted to UTC; aware
  ones are converted to UTC. Both the column and the stored JSON hold that UTC instant, so
  a loaded object equals what was saved and saving it again changes nothing.
- A call whose connection dies (the server restarted, `pg_terminate_backend`, a network cut)
  is retried on a fresh connection, up to `CONNECTION_ATTEMPTS` times with a short backoff:
  the retried writes are idempotent upserts (or deletes of what may already be gone), so running
  them again is safe (deleting a thread or an attachment is not retried: a second try would report
  "not found"), and a reply the client has seen is not lost to its last write. A call that got
  no connection from the pool in `pool_timeout` (every connection busy) is retried the same way,
  after a longer pause: no statement ran, and an admitted stream must not fail for want of a
  connection (admission control bounds how many streams compete for the pool). Other errors
  are raised at once.
- Objects are stored whole as JSON (`model_dump_json`, the same output as
  `model_dump(mode="json")`; attachments keep their `metadata`) and read back with pydantic
  adapters built once at import.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Concatenate, Literal, ParamSpec, cast

from advanced_alchemy.config.asyncio import SQLAlchemyAsyncConfig
from chatkit.store import NotFoundError, Store, StoreItemType
from chatkit.types import Attachment, FeedbackKind, Page, ThreadItem, ThreadMetadata
from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from typing_extensions import TypeVar

from app.core.clock import to_utc, utcnow
from app.core.context import RequestContext, UserContext
from app.core.ids import prefixed_id
from app.ops import metrics
from app.store.chat_repositories import (
    ChatAttachmentRepository,
    ChatFeedbackRepository,
    ChatItemRepository,
    ChatRows,
    ChatThreadRepository,
    ItemRow,
    PurgeResult,
    purge_threads,
)
from app.store.chat_sql import Order, SessionRunner
from app.store.connections import connection_died, database_cause, pool_exhausted
from app.store.db import SessionMaker
from app.store.driver import DriverLane
from app.store.quota_locks import lock_quota, lock_quota_on_lane

__all__ = [
    "AttachmentRecord",
    "ChatKitStore",
    "ItemIdConflictError",
]


ContextT = TypeVar("ContextT", bound=UserContext, default=RequestContext)
P = ParamSpec("P")
R = TypeVar("R")
StoreT = TypeVar("StoreT")

log = logging.getLogger("app.store")

# Five attempts over about two seconds: when the database drops every connection at once (a
# failover, `pg_terminate_backend` of all sessions), the first fresh connections can die too,
# and a reply the user has already read is worth waiting a moment for (three attempts over
# 0.3 s lost one in tests/load/test_faults_connections.py about one run in three).
CONNECTION_ATTEMPTS = 5
RETRY_BACKOFF_SECONDS = (0.05, 0.25, 0.5, 1.0)


def _retry_when_no_connection(
    method: Callable[Concatenate[StoreT, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[StoreT, P], Coroutine[Any, Any, R]]:
    """Run a store call again when its connection died or the pool had none to give (module notes).

    SQLAlchemy invalidates the pool on a disconnect, so the next attempt does not meet the other
    dead pooled connections either.
    """

    async def retrying(self: StoreT, /, *args: P.args, **kwargs: P.kwargs) -> R:
        for attempt in range(CONNECTION_ATTEMPTS):
            try:
                return await method(self, *args, **kwargs)
            except Exception as exc:
                died = connection_died(exc)
                exhausted = not died and pool_exhausted(exc)
                if attempt + 1 >= CONNECTION_ATTEMPTS or not (died or exhausted):
                    raise
                log.warning(
                    "no database connection from the pool; retrying"
                    if exhausted
                    else "database connection lost; retrying",
                    extra={"fields": {"call": method.__name__, "attempt": attempt + 1, "error": database_cause(exc)}},
                )
                metrics.STORE_RETRIES.labels(reason="pool_exhausted" if exhausted else "connection_lost").inc()
                await asyncio.sleep(RETRY_BACKOFF_SECONDS[min(attempt, len(RETRY_BACKOFF_SECONDS) - 1)])
        raise AssertionError("unreachable")  # the loop returns or raises

    functools.update_wrapper(retrying, method)
    return retrying


# ChatKit's own prefixes (chatkit.store._ID_PREFIXES), with UUIDv7 bodies: 74 random bits
# instead of the library's 32, and ids that sort by creation time.
ID_PREFIXES: dict[StoreItemType, str] = {
    "thread": "thr",
    "message": "msg",
    "tool_call": "tc",
    "workflow": "wf",
    "task": "tsk",
    "attachment": "atc",
    "sdk_hidden_context": "shcx",
}

# Building an adapter for these unions costs milliseconds; build each once.
ITEM_ADAPTER: TypeAdapter[ThreadItem] = TypeAdapter(ThreadItem)
ATTACHMENT_ADAPTER: TypeAdapter[Attachment] = TypeAdapter(Attachment)
_THREAD_FIELDS = frozenset(ThreadMetadata.model_fields)


class ItemIdConflictError(ValueError):
    """The item id is already used by an item in another of the user's threads."""


@dataclass(frozen=True, slots=True)
class AttachmentRecord:
    """An attachment with what only the server knows about it (for upload/download endpoints)."""

    attachment: Attachment
    status: Literal["pending", "uploaded"]
    storage_key: str | None
    size: int | None


MAX_PAGE_SIZE = 100
"""The most threads or items one page holds, whatever `limit` a client asks for."""


def page_size(limit: int) -> int:
    """`limit` clamped to 1..MAX_PAGE_SIZE: a client's `limit` of 10**9 (or 2**63, past BIGINT)
    gets a full page and `has_more`, never the whole table or a database error."""
    return max(1, min(limit, MAX_PAGE_SIZE))


def _order(order: str) -> Order:
    if order == "asc":
        return "asc"
    if order == "desc":
        return "desc"
    raise ValueError(f"order must be 'asc' or 'desc', not {order!r}")


def _thread_json(thread: ThreadMetadata) -> tuple[dt.datetime, str]:
    created_at = to_utc(thread.created_at)
    # A `Thread` carries a page of items; only the metadata is the thread's to store.
    data = thread.model_copy(update={"created_at": created_at}).model_dump_json(include=set(_THREAD_FIELDS))
    return created_at, data


def _item_row(item: ThreadItem) -> ItemRow:
    created_at = to_utc(item.created_at)
    data = item.model_copy(update={"created_at": created_at}).model_dump_json()
    return ItemRow(id=item.id, type=item.type, created_at=created_at, data=data)


class ChatKitStore(Store[ContextT]):
    """ChatKit's `Store` on SQLAlchemy (PostgreSQL or SQLite), scoped by `context.user_id`.

    `database` is an Advanced Alchemy `SQLAlchemyAsyncConfig` (its session maker is used) or
    any callable returning an `AsyncSession`, such as `async_sessionmaker(engine)`.
    """

    def __init__(self, database: SQLAlchemyAsyncConfig | SessionMaker) -> None:
        engine: AsyncEngine | None
        if isinstance(database, SQLAlchemyAsyncConfig):
            self._session_maker: SessionMaker = database.create_session_maker()
            engine = database.get_engine()
        else:
            self._session_maker = database
            bind = getattr(database, "kw", {}).get("bind")  # an `async_sessionmaker(engine)`
            engine = bind if isinstance(bind, AsyncEngine) else None
        # The hot reads and single-statement writes skip the session on PostgreSQL + asyncpg.
        self._lane = DriverLane.for_engine(engine)
        self._postgres: bool | None = None

    # ---- sessions ----------------------------------------------------------------------------

    def _is_postgres(self, session: AsyncSession) -> bool:
        if self._postgres is None:
            self._postgres = session.get_bind().dialect.name == "postgresql"
        return self._postgres

    @asynccontextmanager
    async def _autocommit(self) -> AsyncIterator[AsyncSession]:
        """A session for reads and for writes that are a single statement.

        On PostgreSQL it runs in autocommit mode: a single statement is atomic on its own, and
        the BEGIN and COMMIT/ROLLBACK round trips would double the cost of the hot calls.
        On SQLite it is an ordinary transaction (the driver opens none for a SELECT anyway).
        """
        async with self._session_maker() as session:
            if self._is_postgres(session):
                await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
                yield session
            else:
                async with session.begin():
                    yield session

    @asynccontextmanager
    async def _rows(self) -> AsyncIterator[ChatRows]:
        """The hot statements in autocommit: on a pooled asyncpg connection when there is one
        (app.store.driver), else on an `_autocommit` session."""
        if self._lane is not None:
            async with self._lane.connection() as connection:
                yield ChatRows(connection)
        else:
            async with self._autocommit() as session:
                yield ChatRows(SessionRunner(session))

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncSession]:
        """A transaction, for writes of more than one statement."""
        async with self._session_maker() as session, session.begin():
            yield session

    # ---- ids ---------------------------------------------------------------------------------

    def generate_thread_id(self, context: ContextT) -> str:
        reserved = getattr(context, "reserved_thread_id", None)  # see `reserve_thread`
        return reserved if isinstance(reserved, str) else prefixed_id(ID_PREFIXES["thread"])

    def generate_item_id(self, item_type: StoreItemType, thread: ThreadMetadata, context: ContextT) -> str:
        return prefixed_id(ID_PREFIXES[item_type])

    def generate_attachment_id(self, mime_type: str, context: ContextT) -> str:
        """For `AttachmentStore` implementations: ChatKit's `atc_` prefix with a UUIDv7 body."""
        return prefixed_id(ID_PREFIXES["attachment"])

    # ---- threads -----------------------------------------------------------------------------

    @_retry_when_no_connection
    async def load_thread(self, thread_id: str, context: ContextT) -> ThreadMetadata:
        async with self._rows() as rows:
            row = await rows.get_thread(user_id=context.user_id, thread_id=thread_id)
        if row is None:
            raise NotFoundError(f"Thread {thread_id} not found")
        return self._thread(*row)

    @_retry_when_no_connection
    async def save_thread(self, thread: ThreadMetadata, context: ContextT) -> None:
        created_at, data = _thread_json(thread)
        async with self._rows() as rows:
            await rows.upsert_thread(
                user_id=context.user_id,
                thread_id=thread.id,
                title=thread.title,
                created_at=created_at,
                data=data,
                now=utcnow(),
            )

    @_retry_when_no_connection
    async def load_threads(self, limit: int, after: str | None, order: str, context: ContextT) -> Page[ThreadMetadata]:
        limit = page_size(limit)
        async with self._rows() as rows:
            page = await rows.page_threads(user_id=context.user_id, after=after, limit=limit + 1, order=_order(order))
        threads = [self._thread(created_at, data) for _id, created_at, data in page[:limit]]
        return self._page(threads, has_more=len(page) > limit)

    @_retry_when_no_connection  # a failed attempt's transaction rolled back whole: nothing is repeated
    async def reserve_thread(
        self,
        thread: ThreadMetadata,
        context: ContextT,
        *,
        admit: Callable[[int], None] | None,
        turn: tuple[str, float] | None = None,
    ) -> None:
        """Save a new thread if `admit(the number of threads the user has)` does not raise (no
        count, no lock without `admit`: no quota).

        The count and the insert are one transaction under the user's thread-quota lock
        (`app.store.quota_locks`), so concurrent creates on any worker cannot pass the quota
        together. A later `save_thread` of the same id (the library's, once the stream runs)
        updates this row and keeps its `created_at`.

        `turn`, `(lease, seconds)`: the thread is saved holding that turn lease, as `claim_turn`
        would take it, so the turn that creates it needs no claim of its own.
        """
        created_at, data = _thread_json(thread)

        async def save(rows: ChatRows) -> None:
            now = utcnow()
            await rows.reserve_thread(
                user_id=context.user_id,
                thread_id=thread.id,
                title=thread.title,
                created_at=created_at,
                data=data,
                now=now,
                lease=turn[0] if turn is not None else None,
                lease_expires=now + dt.timedelta(seconds=turn[1]) if turn is not None else None,
            )

        if self._lane is not None:  # the same statements and transaction, without a session
            async with self._lane.connection() as connection:
                if admit is None:
                    return await save(ChatRows(connection))
                async with connection.transaction():
                    await lock_quota_on_lane(connection, context.user_id, "threads")
                    rows = ChatRows(connection)
                    admit(await rows.count_threads(user_id=context.user_id))
                    return await save(rows)
        async with self._writing() as session:
            rows = ChatRows(SessionRunner(session))
            if admit is not None:
                await lock_quota(session, context.user_id, "threads")
                admit(await rows.count_threads(user_id=context.user_id))
            await save(rows)

    @_retry_when_no_connection
    async def count_items(self, thread_id: str, context: ContextT) -> int:
        async with self._rows() as rows:
            return await rows.count_items(user_id=context.user_id, thread_id=thread_id)

    @_retry_when_no_connection
    async def stored_attachment_bytes(self, context: ContextT) -> int:
        async with self._autocommit() as session:
            return await ChatAttachmentRepository(session=session).stored_bytes(user_id=context.user_id)

    async def delete_thread(self, thread_id: str, context: ContextT) -> None:
        await self.purge_thread(thread_id, context)

    async def purge_thread(self, thread_id: str, context: ContextT) -> PurgeResult:
        """`delete_thread` that also says what it deleted, including the attachments' storage keys."""
        async with self._writing() as session:
            # Lock the thread first, as every item writer does, so deletes and writes queue.
            if not await ChatThreadRepository(session=session).touch(
                user_id=context.user_id, thread_id=thread_id, now=utcnow()
            ):
                raise NotFoundError(f"Thread {thread_id} not found")
            return await purge_threads(session, context.user_id, [thread_id])

    # ---- turns -------------------------------------------------------------------------------

    @_retry_when_no_connection
    async def claim_turn(self, thread_id: str, lease: str, seconds: float, context: ContextT) -> bool:
        """Take the thread's turn lease for `seconds` (`app.agents.chatkit.turns`): True when it was free,
        expired, or already `lease`; False while another turn holds it. Not the user's thread:
        `NotFoundError`."""
        now = utcnow()
        expires = now + dt.timedelta(seconds=seconds)
        async with self._rows() as rows:
            key = {"user_id": context.user_id, "thread_id": thread_id}
            if await rows.claim_turn(**key, lease=lease, now=now, expires=expires):
                return True
            if not await rows.thread_exists(**key):
                raise NotFoundError(f"Thread {thread_id} not found")
            return False

    @_retry_when_no_connection
    async def renew_turn(self, thread_id: str, lease: str, seconds: float, context: ContextT) -> bool:
        """Keep the lease for another `seconds`; False when it was lost (expired and taken)."""
        now = utcnow()
        async with self._rows() as rows:
            return await rows.renew_turn(
                user_id=context.user_id,
                thread_id=thread_id,
                lease=lease,
                now=now,
                expires=now + dt.timedelta(seconds=seconds),
            )

    @_retry_when_no_connection
    async def release_turn(self, thread_id: str, lease: str, context: ContextT) -> None:
        """Free the thread if `lease` still holds it (a no-op otherwise, so safe to repeat)."""
        async with self._rows() as rows:
            await rows.release_turn(user_id=context.user_id, thread_id=thread_id, lease=lease, now=utcnow())

    # ---- items -------------------------------------------------------------------------------

    @_retry_when_no_connection
    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: ContextT
    ) -> Page[ThreadItem]:
        limit = page_size(limit)
        async with self._rows() as rows:
            page = await rows.page_items(
                user_id=context.user_id,
                thread_id=thread_id,
                after=after,
                limit=limit + 1,
                order=_order(order),
            )
            # An empty page must still tell "no such thread" apart from "no more items".
            if not page and not await rows.thread_exists(user_id=context.user_id, thread_id=thread_id):
                raise NotFoundError(f"Thread {thread_id} not found")
        items = [ITEM_ADAPTER.validate_json(data) for data in page[:limit]]
        return self._page(items, has_more=len(page) > limit)

    @_retry_when_no_connection
    async def load_item(self, thread_id: str, item_id: str, context: ContextT) -> ThreadItem:
        async with self._rows() as rows:
            data = await rows.get_item(user_id=context.user_id, thread_id=thread_id, item_id=item_id)
        if data is None:
            raise NotFoundError(f"Item {item_id} not found in thread {thread_id}")
        return ITEM_ADAPTER.validate_json(data)

    @_retry_when_no_connection
    async def add_thread_item(self, thread_id: str, item: ThreadItem, context: ContextT) -> None:
        row = _item_row(item)
        if self._lane is not None:
            async with self._lane.connection() as connection:
                return await self._add_touching(ChatRows(connection), thread_id, row, context)
        async with self._autocommit() as session:
            if not self._is_postgres(session):  # SQLite: touch + upsert in one transaction
                return await self._add_rows(session, thread_id, [row], context)
            return await self._add_touching(ChatRows(SessionRunner(session)), thread_id, row, context)

    async def _add_touching(self, rows: ChatRows, thread_id: str, row: ItemRow, context: ContextT) -> None:
        """PostgreSQL: the item and the thread's `updated_at` in one statement (no transaction)."""
        if await rows.add_item_touching_thread(user_id=context.user_id, thread_id=thread_id, row=row, now=utcnow()):
            return
        if not await rows.thread_exists(user_id=context.user_id, thread_id=thread_id):
            raise NotFoundError(f"Thread {thread_id} not found")
        raise ItemIdConflictError(f"item id {row.id} is already used in another thread of this user")

    async def save_item(self, thread_id: str, item: ThreadItem, context: ContextT) -> None:
        await self.add_thread_item(thread_id, item, context)

    @_retry_when_no_connection
    async def add_thread_items(self, thread_id: str, items: Sequence[ThreadItem], context: ContextT) -> None:
        """Upsert several items in one transaction, in list order (ties keep that order)."""
        if not items:
            return
        latest: dict[str, ItemRow] = {}
        for item in items:
            latest.pop(item.id, None)  # a repeated id is written once, at its last position
            latest[item.id] = _item_row(item)
        async with self._writing() as session:
            await self._add_rows(session, thread_id, list(latest.values()), context)

    async def _add_rows(self, session: AsyncSession, thread_id: str, rows: list[ItemRow], context: ContextT) -> None:
        """Touch the thread (ownership + row lock), then upsert; inside the caller's transaction."""
        if not await ChatThreadRepository(session=session).touch(
            user_id=context.user_id, thread_id=thread_id, now=utcnow()
        ):
            raise NotFoundError(f"Thread {thread_id} not found")
        written = await ChatItemRepository(session=session).upsert_items(
            user_id=context.user_id, thread_id=thread_id, rows=rows
        )
        if written != len(rows):
            raise ItemIdConflictError("an item id is already used in another thread of this user")

    @_retry_when_no_connection
    async def delete_thread_item(self, thread_id: str, item_id: str, context: ContextT) -> None:
        async with self._writing() as session:
            if not await ChatThreadRepository(session=session).touch(
                user_id=context.user_id, thread_id=thread_id, now=utcnow()
            ):
                raise NotFoundError(f"Thread {thread_id} not found")
            if await ChatItemRepository(session=session).delete_item(
                user_id=context.user_id, thread_id=thread_id, item_id=item_id
            ):
                await ChatFeedbackRepository(session=session).delete_item_feedback(
                    user_id=context.user_id, item_id=item_id
                )

    # ---- attachments -------------------------------------------------------------------------

    @_retry_when_no_connection
    async def save_attachment(self, attachment: Attachment, context: ContextT) -> None:
        async with self._writing() as session:
            if attachment.thread_id is not None and not await ChatRows(SessionRunner(session)).thread_exists(
                user_id=context.user_id, thread_id=attachment.thread_id
            ):
                raise NotFoundError(f"Thread {attachment.thread_id} not found")
            await ChatAttachmentRepository(session=session).upsert_attachment(
                user_id=context.user_id,
                attachment_id=attachment.id,
                thread_id=attachment.thread_id,
                name=attachment.name,
                mime_type=attachment.mime_type,
                # Two-phase uploads carry an upload descriptor until the bytes have arrived.
                status="pending" if attachment.upload_descriptor is not None else "uploaded",
                data=attachment.model_dump_json(),
                now=utcnow(),
            )

    async def load_attachment(self, attachment_id: str, context: ContextT) -> Attachment:
        return (await self.load_attachment_record(attachment_id, context)).attachment

    @_retry_when_no_connection
    async def load_attachment_record(self, attachment_id: str, context: ContextT) -> AttachmentRecord:
        """The attachment plus its upload status, storage key and size."""
        async with self._autocommit() as session:
            row = await ChatAttachmentRepository(session=session).get_attachment(
                user_id=context.user_id, attachment_id=attachment_id
            )
        if row is None:
            raise NotFoundError(f"Attachment {attachment_id} not found")
        data, status, storage_key, size = row
        return AttachmentRecord(
            attachment=ATTACHMENT_ADAPTER.validate_json(data),
            status="uploaded" if status == "uploaded" else "pending",
            storage_key=storage_key,
            size=size,
        )

    @_retry_when_no_connection
    async def mark_attachment_uploaded(
        self,
        attachment_id: str,
        context: ContextT,
        *,
        storage_key: str | None = None,
        size: int | None = None,
    ) -> None:
        """Record that the bytes arrived (and where): the retention job no longer deletes it."""
        async with self._autocommit() as session:
            if not await ChatAttachmentRepository(session=session).mark_uploaded(
                user_id=context.user_id, attachment_id=attachment_id, storage_key=storage_key, size=size
            ):
                raise NotFoundError(f"Attachment {attachment_id} not found")

    async def claim_upload(self, attachment_id: str, key: str, context: ContextT) -> bool:
        """Record where the bytes are about to go (so cleanup can find them if this process dies
        mid-upload). False when the attachment is not pending or another upload holds it."""
        async with self._autocommit() as session:
            return await ChatAttachmentRepository(session=session).claim_upload(
                user_id=context.user_id, attachment_id=attachment_id, storage_key=key
            )

    async def release_upload(self, attachment_id: str, key: str, context: ContextT) -> None:
        """Undo `claim_upload` after a failed upload, so the client may try again."""
        async with self._autocommit() as session:
            await ChatAttachmentRepository(session=session).release_upload(
                user_id=context.user_id, attachment_id=attachment_id, storage_key=key
            )

    async def complete_upload(
        self,
        attachment: Attachment,
        key: str,
        size: int,
        context: ContextT,
        *,
        admit: Callable[[int], None] | None = None,
    ) -> bool:
        """Mark the claimed upload done, with the verified type and the descriptor-free JSON.
        False when the attachment was deleted (or its claim lost) meanwhile.

        With `admit`, it is first called with the bytes the user's other attachments take, in the
        same transaction and under the user's storage-quota lock (`app.store.quota_locks`), so
        concurrent uploads on any worker cannot pass the storage quota together."""
        async with self._autocommit() if admit is None else self._writing() as session:
            repository = ChatAttachmentRepository(session=session)
            if admit is not None:
                await lock_quota(session, context.user_id, "attachment_bytes")
                admit(await repository.stored_bytes(user_id=context.user_id))
            return await repository.complete_upload(
                user_id=context.user_id,
                attachment_id=attachment.id,
                storage_key=key,
                size=size,
                mime_type=attachment.mime_type,
                data=attachment.model_dump(mode="json"),
            )

    async def delete_attachment(self, attachment_id: str, context: ContextT) -> None:
        async with self._autocommit() as session:
            if not await ChatAttachmentRepository(session=session).delete_attachment_row(
                user_id=context.user_id, attachment_id=attachment_id
            ):
                raise NotFoundError(f"Attachment {attachment_id} not found")

    # ---- feedback ----------------------------------------------------------------------------

    @_retry_when_no_connection
    async def save_feedback(
        self, thread_id: str, item_ids: Sequence[str], kind: FeedbackKind, context: ContextT
    ) -> int:
        """Record `kind` for each named item of the user's thread (one row per user and item,
        replaced on a second call). Ids that are not items of this thread are skipped; returns
        how many items were recorded. A thread that is not the user's is `NotFoundError`."""
        if kind not in ("positive", "negative"):
            raise ValueError(f"feedback kind must be 'positive' or 'negative', not {kind!r}")
        async with self._writing() as session:
            if not await ChatRows(SessionRunner(session)).thread_exists(user_id=context.user_id, thread_id=thread_id):
                raise NotFoundError(f"Thread {thread_id} not found")
            if not item_ids:
                return 0
            return await ChatFeedbackRepository(session=session).upsert_feedback(
                user_id=context.user_id, thread_id=thread_id, item_ids=item_ids, kind=kind, now=utcnow()
            )

    @_retry_when_no_connection
    async def load_feedback(self, thread_id: str, context: ContextT) -> dict[str, FeedbackKind]:
        """`{item_id: kind}` for the user's thread; `NotFoundError` when it is not the user's."""
        async with self._autocommit() as session:
            if not await ChatRows(SessionRunner(session)).thread_exists(user_id=context.user_id, thread_id=thread_id):
                raise NotFoundError(f"Thread {thread_id} not found")
            rows = await ChatFeedbackRepository(session=session).feedback_for_thread(
                user_id=context.user_id, thread_id=thread_id
            )
        return {item_id: cast("FeedbackKind", kind) for item_id, kind in rows.items()}

    # ---- helpers -----------------------------------------------------------------------------

    @staticmethod
    def _thread(created_at: dt.datetime, data: str) -> ThreadMetadata:
        thread = ThreadMetadata.model_validate_json(data)
        thread.created_at = created_at  # the column keeps the first save's value
        return thread

    @staticmethod
    def _page(data: list[Any], *, has_more: bool) -> Page[Any]:
        return Page(data=data, has_more=has_more, after=data[-1].id if has_more and data else None)
