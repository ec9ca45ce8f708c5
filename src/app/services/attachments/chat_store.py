"""The ChatKit Store as attachments need it: blobs deleted with threads, fresh signed links."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from chatkit.types import (
    Attachment,
    Page,
    ThreadItem,
    UserMessageItem,
)

from app.core.context import RequestContext
from app.core.errors import ServiceUnavailable
from app.services.attachments.blobs import BlobStorage
from app.services.attachments.signing import AttachmentLinks
from app.store.chatkit_store import ChatKitStore
from app.store.db import SessionMaker

if TYPE_CHECKING:
    from advanced_alchemy.config.asyncio import SQLAlchemyAsyncConfig


class BlobAwareChatKitStore(ChatKitStore[RequestContext]):
    """`ChatKitStore` plus what attachments with stored bytes need.

    - `delete_thread` also deletes the blobs of the thread's attachments;
    - every attachment it loads (alone or inside a user message) carries a fresh signed
      `preview_url`, since the one stored with it expires.
    """

    def __init__(
        self,
        database: SQLAlchemyAsyncConfig | SessionMaker,
        *,
        blobs: BlobStorage,
        links: AttachmentLinks | None = None,
    ) -> None:
        super().__init__(database)
        self.blobs = blobs
        self.links = links

    async def delete_thread(self, thread_id: str, context: RequestContext) -> None:
        result = await self.purge_thread(thread_id, context)
        if result.storage_keys:
            # The thread is gone either way; blobs storage could not delete are in the error log.
            with contextlib.suppress(ServiceUnavailable):
                await self.blobs.delete(result.storage_keys)

    async def load_attachment(self, attachment_id: str, context: RequestContext) -> Attachment:
        return self._fresh(await super().load_attachment(attachment_id, context), context)

    async def load_item(self, thread_id: str, item_id: str, context: RequestContext) -> ThreadItem:
        return self._fresh_item(await super().load_item(thread_id, item_id, context), context)

    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: RequestContext
    ) -> Page[ThreadItem]:
        page = await super().load_thread_items(thread_id, after, limit, order, context)
        page.data = [self._fresh_item(item, context) for item in page.data]
        return page

    def _fresh(self, attachment: Attachment, context: RequestContext) -> Attachment:
        return self.links.refreshed(attachment, context) if self.links is not None else attachment

    def _fresh_item(self, item: ThreadItem, context: RequestContext) -> ThreadItem:
        if not isinstance(item, UserMessageItem) or not item.attachments or self.links is None:
            return item
        return item.model_copy(update={"attachments": [self._fresh(a, context) for a in item.attachments]})
