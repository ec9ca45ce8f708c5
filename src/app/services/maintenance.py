"""Maintenance jobs run by `taskpilot cleanup` (e.g. from cron): chat retention and abandoned uploads.

- With `CHAT_RETENTION_DAYS=N`, threads whose `updated_at` is older than N days are deleted
  with their items, attachment rows and feedback. `updated_at` moves whenever the thread is
  saved or an item is added, saved or deleted, so "untouched for N days" means no activity.
- Attachment rows still 'pending' (a two-phase upload whose bytes never arrived) are deleted
  after `ATTACHMENT_PENDING_TTL_HOURS` (default 24).

Work is done in batches: one read finds up to `batch_size` candidates across users (the only
cross-user statements, marked with `scan_hint` and allowlisted by the statement audit), then
each user's candidates are re-checked and deleted in that user's own short transaction, by
statements that pin `user_id` (routed to one shard on Citus). A large backlog never holds locks
for long. Deleted attachments' storage keys are collected and handed, per committed
batch, to a `delete_blobs` callback (`run_cleanup` passes the attachment storage's).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.core.clock import utcnow
from app.settings import Settings
from app.store.chat_repositories import ChatAttachmentRepository, ChatThreadRepository, ExpiredKey, purge_threads
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
        after: ExpiredKey | None = None
        while True:
            async with session_maker() as session:
                found = await ChatThreadRepository(session=session).scan_expired(
                    cutoff=cutoff, after=after, limit=batch_size
                )
            for user_id, thread_ids in _by_user(found).items():
                # One short transaction per user: every statement is routed to that user's shard.
                async with session_maker() as session, session.begin():
                    locked = await ChatThreadRepository(session=session).lock_expired(
                        user_id=user_id, thread_ids=thread_ids, cutoff=cutoff
                    )
                    result = await purge_threads(session, user_id, locked)
                report.threads_deleted += result.threads
                report.items_deleted += result.items
                report.thread_attachments_deleted += result.attachments
                await _released(report, result.storage_keys, delete_blobs)
            if len(found) < batch_size:
                break
            after = found[-1]

    pending_cutoff = now - dt.timedelta(hours=attachment_pending_ttl_hours)
    after = None
    while True:
        async with session_maker() as session:
            found = await ChatAttachmentRepository(session=session).scan_pending(
                cutoff=pending_cutoff, after=after, limit=batch_size
            )
        for user_id, attachment_ids in _by_user(found).items():
            async with session_maker() as session, session.begin():
                deleted = await ChatAttachmentRepository(session=session).delete_pending(
                    user_id=user_id, attachment_ids=attachment_ids, cutoff=pending_cutoff
                )
            report.pending_attachments_deleted += len(deleted)
            await _released(report, [key for key in deleted if key], delete_blobs)
        if len(found) < batch_size:
            break
        after = found[-1]
    return report


def _by_user(found: Sequence[ExpiredKey]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for _, user_id, row_id in found:
        grouped.setdefault(user_id, []).append(row_id)
    return grouped


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
