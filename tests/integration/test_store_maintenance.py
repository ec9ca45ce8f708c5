"""`taskpilot cleanup`: chat retention and abandoned uploads, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import pytest
from chatkit.types import (
    AttachmentUploadDescriptor,
    FileAttachment,
    InferenceOptions,
    ThreadMetadata,
    UserMessageItem,
    UserMessageTextContent,
)
from pydantic import AnyUrl
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from app.core.context import RequestContext
from app.services.maintenance import cleanup_chats, run_cleanup
from app.settings import Settings, SettingsError
from app.store.chatkit_store import ChatKitStore
from app.store.models import ChatAttachment, ChatFeedback, ChatItem, ChatThread
from tests.support.servers import run_cli

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
ALICE = RequestContext(user_id="alice")
BOB = RequestContext(user_id="bob")
DESCRIPTOR = AttachmentUploadDescriptor(url=AnyUrl("https://upload.example/put"), method="PUT")


async def _seed_thread(
    store: ChatKitStore[RequestContext], context: RequestContext, thread_id: str, *, with_blob: bool = True
) -> None:
    await store.save_thread(ThreadMetadata(id=thread_id, created_at=NOW - dt.timedelta(days=90)), context)
    items = [
        UserMessageItem(
            id=f"{thread_id}_msg{n}",
            thread_id=thread_id,
            created_at=NOW - dt.timedelta(days=90),
            content=[UserMessageTextContent(text="hello")],
            inference_options=InferenceOptions(),
        )
        for n in range(3)
    ]
    await store.add_thread_items(thread_id, items, context)
    await store.save_feedback(thread_id, [items[0].id], "positive", context)
    attachment_id = f"atc_{thread_id}"
    await store.save_attachment(
        FileAttachment(id=attachment_id, name="a.txt", mime_type="text/plain", thread_id=thread_id), context
    )
    if with_blob:
        await store.mark_attachment_uploaded(attachment_id, context, storage_key=f"blobs/{thread_id}")


async def _age_threads(session_maker: async_sessionmaker[Any], ids: Sequence[str], updated_at: dt.datetime) -> None:
    async with session_maker() as session, session.begin():
        await session.execute(update(ChatThread).where(ChatThread.id.in_(ids)).values(updated_at=updated_at))


async def _age_attachment(session_maker: async_sessionmaker[Any], attachment_id: str, created_at: dt.datetime) -> None:
    async with session_maker() as session, session.begin():
        await session.execute(
            update(ChatAttachment).where(ChatAttachment.id == attachment_id).values(created_at=created_at)
        )


async def _ids(session_maker: async_sessionmaker[Any], model: Any) -> set[tuple[str, str]]:
    key = model.item_id if model is ChatFeedback else model.id
    async with session_maker() as session:
        return {(row[0], row[1]) for row in await session.execute(select(model.user_id, key))}


async def _seed(store: ChatKitStore[RequestContext], session_maker: async_sessionmaker[Any]) -> None:
    for thread_id in ("thr_old1", "thr_old2", "thr_old3"):
        await _seed_thread(store, ALICE, thread_id, with_blob=thread_id != "thr_old3")
    await _seed_thread(store, BOB, "thr_old1")  # same id, another user, recent: kept
    await _seed_thread(store, ALICE, "thr_recent")
    await _age_threads(session_maker, ["thr_old1", "thr_old2", "thr_old3"], NOW - dt.timedelta(days=31))
    await _age_threads(session_maker, ["thr_recent"], NOW - dt.timedelta(days=29))
    async with session_maker() as session, session.begin():
        await session.execute(
            update(ChatThread).where(ChatThread.user_id == "bob").values(updated_at=NOW - dt.timedelta(days=1))
        )
    # uploads: one abandoned (pending, 25 h old, its key reserved at creation), one pending
    # but young, one uploaded long ago and never sent
    for attachment_id in ("atc_abandoned", "atc_young", "atc_done"):
        await store.save_attachment(
            FileAttachment(id=attachment_id, name="x", mime_type="text/plain", upload_descriptor=DESCRIPTOR),
            ALICE,
        )
    await store.mark_attachment_uploaded("atc_done", ALICE, storage_key="blobs/done")
    async with session_maker() as session, session.begin():
        await session.execute(
            update(ChatAttachment).where(ChatAttachment.id == "atc_abandoned").values(storage_key="blobs/abandoned")
        )
    await _age_attachment(session_maker, "atc_abandoned", NOW - dt.timedelta(hours=25))
    await _age_attachment(session_maker, "atc_young", NOW - dt.timedelta(hours=23))
    await _age_attachment(session_maker, "atc_done", NOW - dt.timedelta(days=300))


async def test_cleanup_deletes_expired_threads_and_abandoned_uploads_in_batches(
    session_maker: async_sessionmaker[Any],
) -> None:
    store: ChatKitStore[RequestContext] = ChatKitStore(session_maker)
    await _seed(store, session_maker)
    released: list[list[str]] = []

    async def delete_blobs(keys: Sequence[str]) -> None:
        released.append(list(keys))

    report = await cleanup_chats(
        session_maker,
        retention_days=30,
        attachment_pending_ttl_hours=24,
        now=NOW,
        batch_size=2,
        delete_blobs=delete_blobs,
    )
    assert report.threads_deleted == 3
    assert report.items_deleted == 9
    assert report.thread_attachments_deleted == 3
    assert report.pending_attachments_deleted == 1
    assert sorted(report.storage_keys) == ["blobs/abandoned", "blobs/thr_old1", "blobs/thr_old2"]
    # one call per committed batch that freed blobs: threads (2, then 1 without a blob: no
    # call), then the pending upload
    assert [sorted(batch) for batch in released] == [
        ["blobs/thr_old1", "blobs/thr_old2"],
        ["blobs/abandoned"],
    ]

    assert await _ids(session_maker, ChatThread) == {("alice", "thr_recent"), ("bob", "thr_old1")}
    assert {thread for _user, thread in await _ids(session_maker, ChatAttachment)} == {
        "atc_thr_recent",
        "atc_thr_old1",  # bob's
        "atc_young",
        "atc_done",
    }
    async with session_maker() as session:
        items = (await session.execute(select(ChatItem.user_id, func.count()).group_by(ChatItem.user_id))).all()
        assert dict((row[0], row[1]) for row in items) == {"alice": 3, "bob": 3}
        feedback = (await session.execute(select(func.count()).select_from(ChatFeedback))).scalar_one()
        assert feedback == 2
    assert (await store.load_thread("thr_old1", BOB)).id == "thr_old1"

    again = await cleanup_chats(session_maker, retention_days=30, attachment_pending_ttl_hours=24, now=NOW)
    assert (again.threads_deleted, again.pending_attachments_deleted, again.storage_keys) == (0, 0, [])


async def test_cleanup_without_retention_keeps_threads(session_maker: async_sessionmaker[Any]) -> None:
    store: ChatKitStore[RequestContext] = ChatKitStore(session_maker)
    await _seed(store, session_maker)
    report = await cleanup_chats(session_maker, retention_days=None, attachment_pending_ttl_hours=24, now=NOW)
    assert report.threads_deleted == 0
    assert report.pending_attachments_deleted == 1
    assert len(await _ids(session_maker, ChatThread)) == 5
    # a shorter TTL catches the young upload too
    report = await cleanup_chats(session_maker, retention_days=None, attachment_pending_ttl_hours=1, now=NOW)
    assert report.pending_attachments_deleted == 1
    assert {a for _u, a in await _ids(session_maker, ChatAttachment)} >= {"atc_done"}
    assert "atc_young" not in {a for _u, a in await _ids(session_maker, ChatAttachment)}


async def test_run_cleanup_reads_the_settings(engine: AsyncEngine, database_url: str) -> None:
    session_maker = async_sessionmaker(engine, expire_on_commit=False)
    store: ChatKitStore[RequestContext] = ChatKitStore(session_maker)
    await _seed(store, session_maker)
    settings = Settings.from_env({"DATABASE_URL": database_url, "CHAT_RETENTION_DAYS": "30"})
    report = await run_cleanup(settings, now=NOW)
    assert report["retention_days"] == 30
    assert report["attachment_pending_ttl_hours"] == 24
    assert report["threads_deleted"] == 3
    assert report["pending_attachments_deleted"] == 1
    assert sorted(report["storage_keys"]) == ["blobs/abandoned", "blobs/thr_old1", "blobs/thr_old2"]
    json.dumps(report)


async def test_taskpilot_cleanup_command(engine: AsyncEngine, database_url: str) -> None:
    session_maker = async_sessionmaker(engine, expire_on_commit=False)
    store: ChatKitStore[RequestContext] = ChatKitStore(session_maker)
    await store.save_thread(ThreadMetadata(id="thr_ancient", created_at=NOW), ALICE)
    await _age_threads(session_maker, ["thr_ancient"], dt.datetime.now(dt.UTC) - dt.timedelta(days=8))
    await store.save_thread(ThreadMetadata(id="thr_fresh", created_at=NOW), ALICE)
    result = run_cli(["cleanup"], {"DATABASE_URL": database_url, "CHAT_RETENTION_DAYS": "7"})
    report = json.loads(result.stdout)
    assert report["threads_deleted"] == 1
    assert await _ids(session_maker, ChatThread) == {("alice", "thr_fresh")}


def test_attachment_pending_ttl_setting() -> None:
    assert Settings.from_env({}).attachment_pending_ttl_hours == 24
    assert Settings.from_env({"ATTACHMENT_PENDING_TTL_HOURS": "48"}).attachment_pending_ttl_hours == 48
    with pytest.raises(SettingsError, match="ATTACHMENT_PENDING_TTL_HOURS"):
        Settings.from_env({"ATTACHMENT_PENDING_TTL_HOURS": "0"})
