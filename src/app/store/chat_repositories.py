"""Advanced Alchemy repositories for the ChatKit tables: every statement the Store runs.

Every method takes the `user_id` and puts it in the WHERE clause (or the inserted row), so
isolation is a property of the repository, not of each caller remembering. The statements
themselves are in `app.store.chat_sql`.

Why one long module: one repository per ChatKit table (threads, items, attachments, feedback),
which the Store and the retention job use together (a purge deletes across all four).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import (
    ColumnElement,
    Table,
    bindparam,
    delete,
    func,
    literal,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.store.chat_sql import (
    ATTACHMENT_UPSERT,
    ATTACHMENTS,
    CLAIM_TURN,
    COUNT_ITEMS,
    COUNT_THREADS,
    DELETE_ATTACHMENT,
    DELETE_ITEM,
    FEEDBACK,
    GET_ATTACHMENT,
    GET_ITEM,
    GET_THREAD,
    ITEM_ADD_POSTGRESQL,
    ITEM_UPSERT,
    ITEMS,
    RELEASE_TURN,
    RENEW_TURN,
    SUPPORTED_DIALECTS,
    THREAD_EXISTS,
    THREAD_RESERVE,
    THREAD_UPSERT,
    THREADS,
    TOUCH_THREAD,
    Order,
    StatementRunner,
    dialect_insert,
    item_page_statement,
    rowcount,
    thread_page_statement,
)
from app.store.distribution import scan_hint
from app.store.models import ChatAttachment, ChatFeedback, ChatItem, ChatThread, next_seq

ModelT = TypeVar("ModelT", ChatThread, ChatItem, ChatAttachment, ChatFeedback)
ExpiredKey = tuple[dt.datetime, str, str]
"""`(timestamp, user_id, id)`: a maintenance scan's row and its keyset cursor."""


class _ChatRepository(SQLAlchemyAsyncRepository[ModelT]):
    """Dialect helpers shared by the chat repositories (PostgreSQL and SQLite only)."""

    @property
    def dialect_name(self) -> str:
        name = self._dialect.name
        if name not in SUPPORTED_DIALECTS:
            raise RuntimeError(f"the ChatKit store supports PostgreSQL and SQLite, not {name!r}")
        return name

    def _insert(self, table: Table) -> Any:
        """An INSERT that supports ON CONFLICT on this dialect."""
        return dialect_insert(table, self.dialect_name)


# ---- statements ------------------------------------------------------------------------------
# The hot statements are built once: building a SELECT with an aliased subquery costs more
# CPU than the query itself, and a reused statement also reuses its memoized cache key (so
# SQLAlchemy's compiled cache and asyncpg's prepared statements are hit straight away).


class ChatThreadRepository(_ChatRepository[ChatThread]):
    model_type = ChatThread

    async def touch(self, *, user_id: str, thread_id: str, now: dt.datetime) -> bool:
        """Bump `updated_at`; False when the user has no such thread.

        Writers call this first: it both proves ownership and takes the thread's row lock, so
        every write to a thread's items is serialised in one order (thread, then items).
        """
        result = await self.session.execute(
            TOUCH_THREAD, {"b_user_id": user_id, "b_thread_id": thread_id, "b_now": now}
        )
        return rowcount(result) > 0

    async def delete_threads(self, *, user_id: str, thread_ids: Sequence[str]) -> int:
        result = await self.session.execute(
            delete(THREADS).where(THREADS.c.user_id == user_id, THREADS.c.id.in_(list(thread_ids)))
        )
        return rowcount(result)

    async def scan_expired(self, *, cutoff: dt.datetime, after: ExpiredKey | None, limit: int) -> list[ExpiredKey]:
        """`(updated_at, user_id, id)` of up to `limit` threads last updated before `cutoff`, oldest
        first, strictly after the keyset `after`.

        The one statement of retention that reads across users (by the `updated_at` index; on
        Citus a fan-out to every shard): it only finds candidates, without locking. Each user's
        candidates are then locked and re-checked by `lock_expired`, a statement routed to that
        user's shard. The keyset makes a run finish even when candidates are skipped.
        """
        return await _keyset_scan(
            self.session, "retention.expired_threads", THREADS, THREADS.c.updated_at, (), cutoff, after, limit
        )

    async def lock_expired(self, *, user_id: str, thread_ids: Sequence[str], cutoff: dt.datetime) -> list[str]:
        """The user's threads among `thread_ids` still last updated before `cutoff`, locked.

        On PostgreSQL the rows stay locked until the transaction ends (`FOR UPDATE SKIP LOCKED`):
        a thread being written right now is skipped, and one written after this select waits and
        then finds it gone, so retention never deletes a message that was just added.
        """
        result = await self.session.execute(
            select(THREADS.c.id)
            .where(
                THREADS.c.user_id == user_id,
                THREADS.c.id.in_(list(thread_ids)),
                THREADS.c.updated_at < bindparam("cutoff", type_=DateTimeUTC()),
            )
            .with_for_update(skip_locked=True),
            {"cutoff": cutoff},
        )
        return [row[0] for row in result]


@dataclass(frozen=True, slots=True)
class ItemRow:
    """One thread item as bound into the upsert."""

    id: str
    type: str
    created_at: dt.datetime
    data: str


class ChatItemRepository(_ChatRepository[ChatItem]):
    model_type = ChatItem

    async def upsert_items(self, *, user_id: str, thread_id: str, rows: Sequence[ItemRow]) -> int:
        """Insert or update items in `rows` order; returns how many rows were written.

        A single row reports its own count; a batch is verified by counting afterwards.
        """
        params = [
            {
                "user_id": user_id,
                "id": row.id,
                "thread_id": thread_id,
                "type": row.type,
                "seq": next_seq(),
                "created_at": row.created_at,
                "data": row.data,
            }
            for row in rows
        ]
        if len(params) == 1:
            return rowcount(await ITEM_UPSERT.execute(self.session, params[0]))
        await ITEM_UPSERT.execute(self.session, params)
        ids = [row.id for row in rows]
        result = await self.session.execute(
            select(func.count())
            .select_from(ITEMS)
            .where(ITEMS.c.user_id == user_id, ITEMS.c.thread_id == thread_id, ITEMS.c.id.in_(ids))
        )
        return int(result.scalar_one())

    async def delete_item(self, *, user_id: str, thread_id: str, item_id: str) -> bool:
        result = await self.session.execute(
            DELETE_ITEM, {"user_id": user_id, "thread_id": thread_id, "item_id": item_id}
        )
        return rowcount(result) > 0

    async def delete_for_threads(self, *, user_id: str, thread_ids: Sequence[str]) -> int:
        result = await self.session.execute(
            delete(ITEMS).where(ITEMS.c.user_id == user_id, ITEMS.c.thread_id.in_(list(thread_ids)))
        )
        return rowcount(result)


class ChatRows:
    """The Store's hot statements, run where `runner` runs them: a session (`SessionRunner`)
    or a pooled asyncpg connection (`app.store.driver`). Like the repositories, every method
    takes the `user_id` and every statement pins it."""

    def __init__(self, runner: StatementRunner) -> None:
        self.runner = runner

    async def get_thread(self, *, user_id: str, thread_id: str) -> tuple[dt.datetime, str] | None:
        """`(created_at, data as JSON text)` of one thread."""
        rows = await self.runner.fetch(GET_THREAD, {"user_id": user_id, "thread_id": thread_id})
        return (rows[0][0], rows[0][1]) if rows else None

    async def thread_exists(self, *, user_id: str, thread_id: str) -> bool:
        return bool(await self.runner.fetch(THREAD_EXISTS, {"user_id": user_id, "thread_id": thread_id}))

    async def count_threads(self, *, user_id: str) -> int:
        """How many threads the user has (the thread quota counts them)."""
        ((count,),) = await self.runner.fetch(COUNT_THREADS, {"user_id": user_id})
        return int(count)

    async def count_items(self, *, user_id: str, thread_id: str) -> int:
        """How many items the thread holds (the items-per-thread quota counts them)."""
        ((count,),) = await self.runner.fetch(COUNT_ITEMS, {"user_id": user_id, "thread_id": thread_id})
        return int(count)

    async def claim_turn(
        self, *, user_id: str, thread_id: str, lease: str, now: dt.datetime, expires: dt.datetime
    ) -> bool:
        """Take the thread's turn lease when it is free, expired or already `lease`."""
        params = {"b_user_id": user_id, "b_thread_id": thread_id, "b_lease": lease, "b_now": now, "b_expires": expires}
        return await self.runner.execute(CLAIM_TURN, params) == 1

    async def renew_turn(
        self, *, user_id: str, thread_id: str, lease: str, now: dt.datetime, expires: dt.datetime
    ) -> bool:
        """Push the lease's expiry to `expires`; False when `lease` no longer holds the thread."""
        params = {"b_user_id": user_id, "b_thread_id": thread_id, "b_lease": lease, "b_now": now, "b_expires": expires}
        return await self.runner.execute(RENEW_TURN, params) == 1

    async def release_turn(self, *, user_id: str, thread_id: str, lease: str, now: dt.datetime) -> None:
        """Free the thread, if `lease` still holds it."""
        params = {"b_user_id": user_id, "b_thread_id": thread_id, "b_lease": lease, "b_now": now}
        await self.runner.execute(RELEASE_TURN, params)

    async def page_threads(
        self, *, user_id: str, after: str | None, limit: int, order: Order
    ) -> Sequence[Sequence[Any]]:
        """Up to `limit` rows of `(id, created_at, data as JSON text)` after the cursor id."""
        params: dict[str, Any] = {"user_id": user_id, "limit": limit}
        if after is not None:
            params["after"] = after
        return await self.runner.fetch(thread_page_statement(order, after is not None), params)

    async def upsert_thread(
        self,
        *,
        user_id: str,
        thread_id: str,
        title: str | None,
        created_at: dt.datetime,
        data: str,
        now: dt.datetime,
    ) -> None:
        """Insert or update; an update keeps `created_at` and `seq` and bumps `updated_at`."""
        await self.runner.execute(THREAD_UPSERT, _thread_row(user_id, thread_id, title, created_at, data, now))

    async def reserve_thread(
        self,
        *,
        user_id: str,
        thread_id: str,
        title: str | None,
        created_at: dt.datetime,
        data: str,
        now: dt.datetime,
        lease: str | None,
        lease_expires: dt.datetime | None,
    ) -> None:
        """Insert a new thread holding the turn lease `lease` until `lease_expires` (or none)."""
        row = _thread_row(user_id, thread_id, title, created_at, data, now)
        await self.runner.execute(THREAD_RESERVE, {**row, "turn_lease": lease, "turn_lease_expires_at": lease_expires})

    async def get_item(self, *, user_id: str, thread_id: str, item_id: str) -> str | None:
        """The item's JSON text, or None."""
        rows = await self.runner.fetch(GET_ITEM, {"user_id": user_id, "thread_id": thread_id, "item_id": item_id})
        return cast("str", rows[0][0]) if rows else None

    async def page_items(
        self, *, user_id: str, thread_id: str, after: str | None, limit: int, order: Order
    ) -> list[str]:
        """Up to `limit` items' JSON text after the cursor id, in `(created_at, seq)` order."""
        params: dict[str, Any] = {"user_id": user_id, "thread_id": thread_id, "limit": limit}
        if after is not None:
            params["after"] = after
        return [row[0] for row in await self.runner.fetch(item_page_statement(order, after is not None), params)]

    async def add_item_touching_thread(self, *, user_id: str, thread_id: str, row: ItemRow, now: dt.datetime) -> bool:
        """PostgreSQL only: `ChatThreadRepository.touch` + `ChatItemRepository.upsert_items` in
        one statement.

        False when nothing was written: the thread is not the user's, or the id belongs to an
        item of another thread (the caller tells these apart with `thread_exists`).
        """
        rows = await self.runner.fetch(
            ITEM_ADD_POSTGRESQL,
            {
                "b_user_id": user_id,
                "b_thread_id": thread_id,
                "b_now": now,
                "p_id": row.id,
                "p_type": row.type,
                "p_seq": next_seq(),
                "p_created_at": row.created_at,
                "p_data": row.data,
            },
        )
        return bool(rows)


class ChatAttachmentRepository(_ChatRepository[ChatAttachment]):
    model_type = ChatAttachment

    async def upsert_attachment(
        self,
        *,
        user_id: str,
        attachment_id: str,
        thread_id: str | None,
        name: str,
        mime_type: str,
        status: str,
        data: str,
        now: dt.datetime,
    ) -> None:
        """Insert or update metadata. The status only moves forward: 'uploaded' is never undone."""
        await ATTACHMENT_UPSERT.execute(
            self.session,
            {
                "user_id": user_id,
                "id": attachment_id,
                "thread_id": thread_id,
                "name": name,
                "mime_type": mime_type,
                "status": status,
                "created_at": now,
                "data": data,
            },
        )

    async def stored_bytes(self, *, user_id: str) -> int:
        """The size of every attachment of the user's whose bytes are stored (or being stored)."""
        result = await self.session.execute(
            select(func.coalesce(func.sum(ATTACHMENTS.c.size), 0)).where(
                ATTACHMENTS.c.user_id == user_id, ATTACHMENTS.c.size.is_not(None)
            )
        )
        return int(result.scalar_one())

    async def get_attachment(
        self, *, user_id: str, attachment_id: str
    ) -> tuple[str, str, str | None, int | None] | None:
        """`(data as JSON text, status, storage_key, size)` of one attachment."""
        result = await self.session.execute(GET_ATTACHMENT, {"user_id": user_id, "id": attachment_id})
        row = result.first()
        return None if row is None else (row[0], row[1], row[2], row[3])

    async def mark_uploaded(
        self, *, user_id: str, attachment_id: str, storage_key: str | None, size: int | None
    ) -> bool:
        values: dict[str, Any] = {"status": "uploaded"}
        if storage_key is not None:
            values["storage_key"] = storage_key
        if size is not None:
            values["size"] = size
        result = await self.session.execute(
            update(ATTACHMENTS)
            .where(ATTACHMENTS.c.user_id == user_id, ATTACHMENTS.c.id == attachment_id)
            .values(**values)
        )
        return rowcount(result) > 0

    # The upload's state changes are single conditional statements, so two uploads of one
    # attachment, or an upload racing a delete, cannot both win.

    async def claim_upload(self, *, user_id: str, attachment_id: str, storage_key: str) -> bool:
        result = await self.session.execute(
            update(ATTACHMENTS)
            .where(*_pending_upload(user_id, attachment_id, ATTACHMENTS.c.storage_key.is_(None)))
            .values(storage_key=storage_key)
        )
        return rowcount(result) == 1

    async def release_upload(self, *, user_id: str, attachment_id: str, storage_key: str) -> None:
        await self.session.execute(
            update(ATTACHMENTS)
            .where(*_pending_upload(user_id, attachment_id, ATTACHMENTS.c.storage_key == storage_key))
            .values(storage_key=None)
        )

    async def complete_upload(
        self, *, user_id: str, attachment_id: str, storage_key: str, size: int, mime_type: str, data: Any
    ) -> bool:
        result = await self.session.execute(
            update(ATTACHMENTS)
            .where(*_pending_upload(user_id, attachment_id, ATTACHMENTS.c.storage_key == storage_key))
            .values(status="uploaded", size=size, mime_type=mime_type, data=data)
        )
        return rowcount(result) == 1

    async def delete_attachment_row(self, *, user_id: str, attachment_id: str) -> bool:
        result = await self.session.execute(DELETE_ATTACHMENT, {"user_id": user_id, "id": attachment_id})
        return rowcount(result) > 0

    async def delete_for_threads(self, *, user_id: str, thread_ids: Sequence[str]) -> list[str | None]:
        """Delete the threads' attachment rows; returns each deleted row's storage key (or None)."""
        result = await self.session.execute(
            delete(ATTACHMENTS)
            .where(ATTACHMENTS.c.user_id == user_id, ATTACHMENTS.c.thread_id.in_(list(thread_ids)))
            .returning(ATTACHMENTS.c.storage_key)
        )
        return list(result.scalars().all())

    async def scan_pending(self, *, cutoff: dt.datetime, after: ExpiredKey | None, limit: int) -> list[ExpiredKey]:
        """`(created_at, user_id, id)` of up to `limit` 'pending' rows created before `cutoff`,
        oldest first, strictly after the keyset `after`.

        Like `ChatThreadRepository.scan_expired`, the one cross-user read of this job (by the
        `(status, created_at)` index): it finds candidates; `delete_pending` deletes per user.
        """
        return await _keyset_scan(
            self.session,
            "uploads.abandoned",
            ATTACHMENTS,
            ATTACHMENTS.c.created_at,
            (ATTACHMENTS.c.status == "pending",),
            cutoff,
            after,
            limit,
        )

    async def delete_pending(
        self, *, user_id: str, attachment_ids: Sequence[str], cutoff: dt.datetime
    ) -> list[str | None]:
        """Delete the user's rows among `attachment_ids` that are still 'pending' and older than
        `cutoff` (an upload that completed since the scan is kept); returns their storage keys."""
        result = await self.session.execute(
            delete(ATTACHMENTS)
            .where(
                ATTACHMENTS.c.user_id == user_id,
                ATTACHMENTS.c.id.in_(list(attachment_ids)),
                ATTACHMENTS.c.status == "pending",
                ATTACHMENTS.c.created_at < bindparam("cutoff", type_=DateTimeUTC()),
            )
            .returning(ATTACHMENTS.c.storage_key),
            {"cutoff": cutoff},
        )
        return list(result.scalars().all())


def _pending_upload(user_id: str, attachment_id: str, claim: ColumnElement[bool]) -> tuple[ColumnElement[bool], ...]:
    """The user's attachment, still pending, whose upload claim is as given."""
    return (
        ATTACHMENTS.c.user_id == user_id,
        ATTACHMENTS.c.id == attachment_id,
        ATTACHMENTS.c.status == "pending",
        claim,
    )


async def _keyset_scan(
    session: Any,
    hint: str,
    table: Table,
    when: ColumnElement[Any],
    conditions: tuple[ColumnElement[bool], ...],
    cutoff: dt.datetime,
    after: ExpiredKey | None,
    limit: int,
) -> list[ExpiredKey]:
    """`(when, user_id, id)` of up to `limit` rows with `when < cutoff`, oldest first, strictly after
    the keyset `after`: a marked cross-user scan (`scan_hint`) that finds candidates without locking."""
    key = (when, table.c.user_id, table.c.id)
    statement = (
        select(*key)
        .prefix_with(scan_hint(hint))
        .where(*conditions, when < bindparam("cutoff", type_=DateTimeUTC()))
        .order_by(*key)
        .limit(bindparam("limit"))
    )
    params: dict[str, Any] = {"cutoff": cutoff, "limit": limit}
    if after is not None:
        statement = statement.where(
            tuple_(*key)
            > tuple_(bindparam("after_at", type_=DateTimeUTC()), bindparam("after_user"), bindparam("after_id"))
        )
        params.update(after_at=after[0], after_user=after[1], after_id=after[2])
    result = await session.execute(statement, params)
    return [(row[0], row[1], row[2]) for row in result]


FeedbackKey = tuple[dt.datetime, str, str]
"""`(updated_at, user_id, item_id)`: a feedback row's place in the export's keyset order."""


@dataclass(frozen=True, slots=True)
class FeedbackRow:
    """One feedback row as the export reads it; `item` is the item's stored JSON when asked for."""

    at: dt.datetime
    user_id: str
    item_id: str
    thread_id: str
    kind: str
    item: dict[str, Any] | None = None

    @property
    def key(self) -> FeedbackKey:
        return (self.at, self.user_id, self.item_id)


class ChatFeedbackRepository(_ChatRepository[ChatFeedback]):
    model_type = ChatFeedback

    async def upsert_feedback(
        self, *, user_id: str, thread_id: str, item_ids: Sequence[str], kind: str, now: dt.datetime
    ) -> int:
        """One row per (user, item) for the items of `item_ids` that are in this user's thread.

        Items are selected from `chat_items` in the same statement, so feedback can only ever
        name an existing item of the user's own thread. Returns how many rows were written.
        """
        source = select(
            ITEMS.c.user_id,
            ITEMS.c.id,
            ITEMS.c.thread_id,
            literal(kind, type_=FEEDBACK.c.kind.type),
            literal(now, type_=DateTimeUTC()),
            literal(now, type_=DateTimeUTC()),
        ).where(
            ITEMS.c.user_id == user_id,
            ITEMS.c.thread_id == thread_id,
            ITEMS.c.id.in_(list(item_ids)),
        )
        statement = self._insert(FEEDBACK).from_select(
            ["user_id", "item_id", "thread_id", "kind", "created_at", "updated_at"], source
        )
        statement = statement.on_conflict_do_update(
            index_elements=[FEEDBACK.c.user_id, FEEDBACK.c.item_id],
            set_={
                "kind": statement.excluded.kind,
                "thread_id": statement.excluded.thread_id,
                "updated_at": statement.excluded.updated_at,
            },
        )
        return rowcount(await self.session.execute(statement))

    async def feedback_for_thread(self, *, user_id: str, thread_id: str) -> dict[str, str]:
        result = await self.session.execute(
            select(FEEDBACK.c.item_id, FEEDBACK.c.kind).where(
                FEEDBACK.c.user_id == user_id, FEEDBACK.c.thread_id == thread_id
            )
        )
        return {row[0]: row[1] for row in result}

    async def scan_feedback(
        self, *, after: FeedbackKey | None, limit: int, since: dt.datetime | None = None, with_items: bool = False
    ) -> list[FeedbackRow]:
        """Up to `limit` feedback rows of every user, oldest change first, strictly after the keyset
        `after` (`taskpilot feedback export`): a marked cross-user read that locks nothing.

        `with_items` also reads each row's item (the same user's, by primary key), for its text.
        """
        key = (FEEDBACK.c.updated_at, FEEDBACK.c.user_id, FEEDBACK.c.item_id)
        columns: list[Any] = [*key, FEEDBACK.c.thread_id, FEEDBACK.c.kind]
        source: Any = FEEDBACK
        if with_items:
            columns.append(ITEMS.c.data)
            source = FEEDBACK.outerjoin(
                ITEMS, (ITEMS.c.user_id == FEEDBACK.c.user_id) & (ITEMS.c.id == FEEDBACK.c.item_id)
            )
        statement = (
            select(*columns)
            .select_from(source)
            .prefix_with(scan_hint("feedback.export"))
            .order_by(*key)
            .limit(bindparam("limit"))
        )
        params: dict[str, Any] = {"limit": limit}
        if since is not None:
            statement = statement.where(FEEDBACK.c.updated_at >= bindparam("since", type_=DateTimeUTC()))
            params["since"] = since
        if after is not None:
            statement = statement.where(
                tuple_(*key)
                > tuple_(bindparam("after_at", type_=DateTimeUTC()), bindparam("after_user"), bindparam("after_id"))
            )
            params.update(after_at=after[0], after_user=after[1], after_id=after[2])
        result = await self.session.execute(statement, params)
        return [
            FeedbackRow(
                at=row[0],
                user_id=row[1],
                item_id=row[2],
                thread_id=row[3],
                kind=row[4],
                item=row[5] if with_items else None,
            )
            for row in result
        ]

    async def delete_item_feedback(self, *, user_id: str, item_id: str) -> None:
        await self.session.execute(delete(FEEDBACK).where(FEEDBACK.c.user_id == user_id, FEEDBACK.c.item_id == item_id))

    async def delete_for_threads(self, *, user_id: str, thread_ids: Sequence[str]) -> None:
        await self.session.execute(
            delete(FEEDBACK).where(FEEDBACK.c.user_id == user_id, FEEDBACK.c.thread_id.in_(list(thread_ids)))
        )


@dataclass(frozen=True, slots=True)
class PurgeResult:
    """What `purge_threads` deleted. `storage_keys`: blobs of deleted attachments, for the blob store."""

    threads: int = 0
    items: int = 0
    attachments: int = 0
    storage_keys: tuple[str, ...] = ()


async def purge_threads(session: AsyncSession, user_id: str, thread_ids: Sequence[str]) -> PurgeResult:
    """Delete one user's threads with their items, attachment rows and feedback, in the caller's
    transaction. One user per call: every statement pins `user_id`, so on a distributed database
    it is routed to that user's shard.

    Children are deleted explicitly rather than left to ON DELETE CASCADE, so the result is
    the same on a SQLite connection opened without `PRAGMA foreign_keys=ON`, and the
    attachments' storage keys can be returned.
    """
    if not thread_ids:
        return PurgeResult()
    storage_keys = await ChatAttachmentRepository(session=session).delete_for_threads(
        user_id=user_id, thread_ids=thread_ids
    )
    await ChatFeedbackRepository(session=session).delete_for_threads(user_id=user_id, thread_ids=thread_ids)
    items = await ChatItemRepository(session=session).delete_for_threads(user_id=user_id, thread_ids=thread_ids)
    threads = await ChatThreadRepository(session=session).delete_threads(user_id=user_id, thread_ids=thread_ids)
    return PurgeResult(
        threads=threads,
        items=items,
        attachments=len(storage_keys),
        storage_keys=tuple(key for key in storage_keys if key),
    )


def _thread_row(
    user_id: str, thread_id: str, title: str | None, created_at: dt.datetime, data: str, now: dt.datetime
) -> dict[str, Any]:
    """The parameters every thread write sends (`THREAD_UPSERT`, `THREAD_RESERVE`)."""
    return {
        "user_id": user_id,
        "id": thread_id,
        "seq": next_seq(),
        "title": title,
        "created_at": created_at,
        "updated_at": now,
        "data": data,
    }
