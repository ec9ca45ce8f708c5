"""Per-user quotas and length limits: what one user may keep, whatever the rate limits let through.

Each rule is here once; the counts it compares are store queries filtered by the user's id. A
quota of 0 is no quota. Count quotas answer 429 (`QuotaExceeded`), the storage quota 413, a text
over its length limit 400 naming the field; ChatKit requests are checked before a stream opens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from chatkit.types import ThreadMetadata

from app.core.clock import utcnow
from app.core.errors import DomainError, QuotaExceeded, StorageQuotaExceeded
from app.core.limits import NEAR_LIMIT_FRACTION
from app.settings import Settings


class CountingStore(Protocol):
    """The counts the quotas compare, each filtered by the context's user (`app.store.chatkit_store`).

    The writes a quota admits take a check (`admit`) that the store runs on the count inside the
    same transaction as the write, under the user's lock for that quota: concurrent requests of
    one user, on any worker, cannot all pass the same count."""

    async def count_items(self, thread_id: str, context: Any) -> int: ...
    async def stored_attachment_bytes(self, context: Any) -> int: ...
    def generate_thread_id(self, context: Any) -> str: ...
    async def reserve_thread(
        self,
        thread: ThreadMetadata,
        context: Any,
        *,
        admit: Callable[[int], None] | None,
        turn: tuple[str, float] | None = None,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class UserLimits:
    threads_per_user: int = 0
    items_per_thread: int = 0
    tasks_per_user: int = 0
    attachment_bytes_per_user: int = 0
    max_thread_title_chars: int = 200
    max_message_chars: int = 32_000

    @classmethod
    def from_settings(cls, settings: Settings) -> UserLimits:
        return cls(
            threads_per_user=settings.quota_threads_per_user,
            items_per_thread=settings.quota_items_per_thread,
            tasks_per_user=settings.quota_tasks_per_user,
            attachment_bytes_per_user=settings.quota_attachment_bytes_per_user,
            max_thread_title_chars=settings.max_thread_title_chars,
            max_message_chars=settings.max_message_chars,
        )

    async def reserve_new_thread(
        self,
        store: CountingStore,
        context: Any,
        *,
        thread_id: str | None = None,
        turn: tuple[str, float] | None = None,
    ) -> str:
        """Save the thread a `threads.create` will fill (`thread_id`, or a new id), within the
        thread quota; its id.

        Counted and saved atomically before the stream opens, so a refusal is a 429 and never a
        broken stream, and no lock is held while the model answers. Saved without a quota too:
        the new turn holds the thread's lease before its id is streamed (`app.agents.chatkit.server`),
        saved with it when `turn` (`(lease, seconds)`) is given."""
        thread = ThreadMetadata(id=thread_id or store.generate_thread_id(context), created_at=utcnow())
        admit = self.check_thread_count if self.threads_per_user else None
        await store.reserve_thread(thread, context, admit=admit, turn=turn)
        return thread.id

    def check_thread_count(self, count: int) -> None:
        if self.threads_per_user and count >= self.threads_per_user:
            raise QuotaExceeded(
                f"You have reached the limit of {self.threads_per_user} conversations: delete some to start a new one.",
                quota="QUOTA_THREADS_PER_USER",
            )

    async def check_thread_items(self, store: CountingStore, thread_id: str, context: Any) -> None:
        reason = await self.full_thread(store, thread_id, context)
        if reason is not None:
            raise QuotaExceeded(reason, quota="QUOTA_ITEMS_PER_THREAD")

    async def full_thread(self, store: CountingStore, thread_id: str, context: Any) -> str | None:
        """Why the thread takes no new turn (it holds QUOTA_ITEMS_PER_THREAD items), or None."""
        if self.items_per_thread and await store.count_items(thread_id, context) >= self.items_per_thread:
            return f"This conversation has reached the limit of {self.items_per_thread} items: start a new one."
        return None

    def check_task_count(self, count: int) -> None:
        if self.tasks_per_user and count >= self.tasks_per_user:
            raise QuotaExceeded(
                f"You have reached the limit of {self.tasks_per_user} tasks: delete some to add new ones.",
                quota="QUOTA_TASKS_PER_USER",
            )

    async def check_attachment_bytes(self, store: CountingStore, adding: int, context: Any) -> None:
        if not self.attachment_bytes_per_user:
            return
        self.check_stored_bytes(await store.stored_attachment_bytes(context), adding=adding)

    def check_stored_bytes(self, stored: int, *, adding: int) -> None:
        if self.attachment_bytes_per_user and stored + adding > self.attachment_bytes_per_user:
            raise StorageQuotaExceeded(
                f"This file would take your attachments past the {self.attachment_bytes_per_user}-byte storage limit "
                f"({stored} bytes stored): delete attachments or conversations first.",
                quota="QUOTA_ATTACHMENT_BYTES_PER_USER",
            )

    async def attachment_bytes_near_quota(self, store: CountingStore, context: Any) -> int | None:
        """The bytes of attachments the user stores when they are near the storage quota, else None."""
        if not self.attachment_bytes_per_user:
            return None
        stored = await store.stored_attachment_bytes(context)
        return stored if stored >= NEAR_LIMIT_FRACTION * self.attachment_bytes_per_user else None

    def check_title(self, title: str | None, field: str) -> None:
        if title is not None and len(title) > self.max_thread_title_chars:
            raise DomainError(f"{field} must be at most {self.max_thread_title_chars} characters.", field=field)

    def cut_title(self, title: str | None) -> str | None:
        """A generated title, cut to the limit (the model is not the caller: nothing to refuse)."""
        if title is None or len(title) <= self.max_thread_title_chars:
            return title
        return title[: self.max_thread_title_chars - 1].rstrip() + "…"

    def check_message(self, text_length: int, field: str) -> None:
        if text_length > self.max_message_chars:
            raise DomainError(
                f"{field} is {text_length} characters long; a message may have at most {self.max_message_chars}.",
                field=field,
            )
