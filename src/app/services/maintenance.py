"""Maintenance jobs run by `taskpilot cleanup` (e.g. from cron): chat retention and abandoned uploads.

- With `CHAT_RETENTION_DAYS=N`, threads whose `updated_at` is older than N days are deleted
  with their items, attachment rows and feedback. `updated_at` moves whenever the thread is
  saved or an item is added, saved or deleted, so "untouched for N days" means no activity.
- Attachment rows still 'pending' (a two-phase upload whose bytes never arrived) are deleted
  after `ATTACHMENT_PENDING_TTL_HOURS` (default 24).

Work is done in batches, each its own short transaction, so a large backlog never holds
locks for long. Deleted attachments' storage keys are collected and handed, per committed
batch, to a `delete_blobs` callback (`run_cleanup` passes the attachment storage's).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.core.clock import utcnow
from app.settings import Settings
from app.store.chat_repositories import ChatAttachmentRepository, ChatThreadRepository, purge_threads
from app.store.db import SessionMaker

DEFAULT_BATCH_SIZE = 500

BlobDeleter = Callable[[Sequence[str]], Awaitable[None]]


@dataclass(slots=True)
class CleanupReport:
    retention_days: int | None
    attachment_pending_ttl_hours: int
    threads_deleted: int = 0
    items_deleted: int = 0
    thread_attachments_deleted: int = 0
    pending_attachments_deleted: int = 0
    storage_keys: list[str] = field(default_factory=list)
    """Storage keys of every deleted attachment row that had one (their blobs are now orphans)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "retention_days": self.retention_days,
            "threads_deleted": self.threads_deleted,
            "items_deleted": self.items_deleted,
            "thread_attachments_deleted": self.thread_attachments_deleted,
            "attachment_pending_ttl_hours": self.attachment_pending_ttl_hours,
            "pending_attachments_deleted": self.pending_attachments_deleted,
            "storage_keys": list(self.storage_keys),
        }


async def cleanup_chats(
    session_maker: SessionMaker,
    *,
    retention_days: int | None,
    attachment_pending_ttl_hours: int,
    now: dt.datetime | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    delete_blobs: BlobDeleter | None = None,
) -> CleanupReport:
    """Delete expired threads (when `retention_days` is set) and stale pending attachments."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    now = now or utcnow()
    report = CleanupReport(retention_days=retention_days, attachment_pending_ttl_hours=attachment_pending_ttl_hours)

    if retention_days:
        cutoff = now - dt.timedelta(days=retention_days)
        while True:
            async with session_maker() as session, session.begin():
                keys = await ChatThreadRepository(session=session).expired_threads(cutoff=cutoff, limit=batch_size)
                result = await purge_threads(session, keys)
            report.threads_deleted += result.threads
            report.items_deleted += result.items
            report.thread_attachments_deleted += result.attachments
            await _released(report, result.storage_keys, delete_blobs)
            if len(keys) < batch_size:
                break

    pending_cutoff = now - dt.timedelta(hours=attachment_pending_ttl_hours)
    while True:
        async with session_maker() as session, session.begin():
            deleted = await ChatAttachmentRepository(session=session).delete_pending_before(
                cutoff=pending_cutoff, limit=batch_size
            )
        report.pending_attachments_deleted += len(deleted)
        await _released(report, [key for key in deleted if key], delete_blobs)
        if len(deleted) < batch_size:
            break
    return report


async def _released(report: CleanupReport, storage_keys: Sequence[str], delete_blobs: BlobDeleter | None) -> None:
    if not storage_keys:
        return
    report.storage_keys.extend(storage_keys)
    if delete_blobs is not None:
        await delete_blobs(storage_keys)


async def run_cleanup(
    settings: Settings, *, now: dt.datetime | None = None, delete_blobs: BlobDeleter | None = None
) -> dict[str, Any]:
    """`taskpilot cleanup`: apply the retention settings once; returns what was deleted.

    The deleted attachments' blobs go too: from the configured attachment storage unless
    `delete_blobs` says otherwise.
    """
    from app.services.attachments.blobs import BlobStorage
    from app.store.db import build_db_config

    if delete_blobs is None:
        delete_blobs = BlobStorage.from_settings(settings).delete
    config = build_db_config(settings)
    try:
        report = await cleanup_chats(
            config.create_session_maker(),
            retention_days=settings.chat_retention_days,
            attachment_pending_ttl_hours=settings.attachment_pending_ttl_hours,
            now=now,
            delete_blobs=delete_blobs,
        )
    finally:
        await config.get_engine().dispose()
    return report.as_dict()
