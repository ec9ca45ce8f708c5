"""Attachments: ChatKit's two-phase upload, with the bytes in object storage.

The flow, as a ChatKit front end drives it:

1. `attachments.create` (through `POST /chatkit`): `AttachmentService.create_attachment` checks
   the declared type and size and returns a `FileAttachment` or `ImageAttachment` whose
   `upload_descriptor` is `PUT <base>/api/chatkit/attachments/{id}/upload?token=...`; the
   library saves it (status `pending`).
2. The browser PUTs the bytes there. Its fetch carries no bearer token, so the URL carries a
   short-lived HMAC token bound to the user, the attachment and the purpose; a bearer token is
   accepted too. The body is streamed to storage while it is counted (413 past the limit) and
   sniffed (magic bytes for images and PDF, UTF-8 for text: 415 when the content is not what
   was declared or allowed); a refused or broken upload leaves no blob behind.
3. The user message names the attachment; the assistant's converter reads the bytes back
   (`read_attachment`): images as data URLs, text as text.
4. `GET /api/chatkit/attachments/{id}` serves the bytes to the owner (bearer token) or to a
   signed URL (an `<img>` tag's `preview_url`). Signed read URLs expire, so every attachment
   the store loads gets a fresh one.
5. `attachments.delete`, thread deletion, retention and the cleanup of abandoned uploads
   delete the blobs along with the rows.

Storage is obstore: a local directory by default (`ATTACHMENT_STORAGE_URL=./var/attachments`),
any S3-compatible bucket with `s3://bucket/prefix`. Keys are `<sha256(user)[:32]>/<attachment id>`,
so no user-supplied text ever becomes part of a path.

After a successful upload the attachment's `metadata` (never sent to clients) holds
`{"size": <bytes>, "storage_key": <key>}`: that is how the converter finds the bytes of an
attachment it only knows from a stored thread item.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
from chatkit.store import AttachmentStore, NotFoundError
from chatkit.types import (
    Attachment,
    AttachmentCreateParams,
    AttachmentUploadDescriptor,
    FileAttachment,
    ImageAttachment,
)

from app.core.context import RequestContext
from app.core.errors import Conflict, DomainError, ServiceUnavailable
from app.core.ids import prefixed_id
from app.services.attachments.blobs import BlobStorage, storage_key
from app.services.attachments.chat_store import BlobAwareChatKitStore
from app.services.attachments.content import IMAGE_TYPES, AttachmentPolicy, ContentCheck, clean_name
from app.services.attachments.forms import MULTIPART_OVERHEAD, form_boundary, form_file
from app.services.attachments.signing import AttachmentLinks, Purpose
from app.services.quotas import UserLimits
from app.settings import Settings
from app.store.chatkit_store import ID_PREFIXES
from app.store.db import SessionMaker

if TYPE_CHECKING:
    from advanced_alchemy.config.asyncio import SQLAlchemyAsyncConfig


log = logging.getLogger("app.attachments")
DECLARED_SIZE = "declared_size"


@dataclass(frozen=True, slots=True)
class Download:
    attachment: Attachment
    size: int
    etag: str | None
    chunks: AsyncIterator[bytes]


class AttachmentService(AttachmentStore[RequestContext]):
    """ChatKit's `AttachmentStore` for two-phase uploads, and the rules of the upload and
    download endpoints. Every method is scoped to `context.user_id`: another user's
    attachment is `NotFoundError` (404), whatever the operation."""

    def __init__(
        self,
        store: BlobAwareChatKitStore,
        blobs: BlobStorage,
        policy: AttachmentPolicy,
        links: AttachmentLinks | None,
        limits: UserLimits | None = None,
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.policy = policy
        self.links = links
        self.limits = limits or UserLimits()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        database: SQLAlchemyAsyncConfig | SessionMaker,
        *,
        limits: UserLimits | None = None,
    ) -> AttachmentService:
        """The service over its own ChatKit Store (blobs deleted with threads, fresh links);
        `limits` the app's per-user limits (read from `settings` when not given)."""
        blobs = BlobStorage.from_settings(settings)
        links = AttachmentLinks.from_settings(settings)
        store = BlobAwareChatKitStore(database, blobs=blobs, links=links)
        policy = AttachmentPolicy.from_settings(settings)
        return cls(store, blobs, policy, links, limits or UserLimits.from_settings(settings))

    def _links(self) -> AttachmentLinks:
        if self.links is None:
            raise ServiceUnavailable(
                "Attachments are not configured on this server: set ATTACHMENT_SIGNING_SECRET "
                "(32+ characters, the same on every instance)."
            )
        return self.links

    def generate_attachment_id(self, mime_type: str, context: RequestContext) -> str:
        return prefixed_id(ID_PREFIXES["attachment"])

    # ---- ChatKit's AttachmentStore ---------------------------------------------------------

    async def create_attachment(self, input: AttachmentCreateParams, context: RequestContext) -> Attachment:
        links = self._links()
        name = clean_name(input.name)
        mime = self.policy.declared_type(input.mime_type, name)
        if input.size < 0:
            raise DomainError("params.size must be the file's size in bytes (0 or more).", field="size")
        self.policy.check_size(input.size)
        await self.limits.check_attachment_bytes(self.store, input.size, context)
        base = links.base(context)
        if base is None:
            raise ServiceUnavailable("The server does not know its public address: set PUBLIC_BASE_URL.")
        attachment_id = self.generate_attachment_id(mime, context)
        # The upload must bring exactly this many bytes (`metadata` never reaches clients).
        metadata = {DECLARED_SIZE: input.size}
        descriptor = AttachmentUploadDescriptor(
            url=links.upload_url(base, attachment_id, context.user_id),  # type: ignore[arg-type]
            method="PUT",
            headers={},
        )
        if mime in IMAGE_TYPES:
            return ImageAttachment(
                id=attachment_id,
                name=name,
                mime_type=mime,
                upload_descriptor=descriptor,
                preview_url=links.download_url(base, attachment_id, context.user_id),  # type: ignore[arg-type]
                metadata=metadata,
            )
        return FileAttachment(
            id=attachment_id, name=name, mime_type=mime, upload_descriptor=descriptor, metadata=metadata
        )

    async def delete_attachment(self, attachment_id: str, context: RequestContext) -> None:
        """Delete the bytes (the ChatKit server then deletes the row through the Store)."""
        record = await self.store.load_attachment_record(attachment_id, context)
        if record.storage_key:
            await self.blobs.delete([record.storage_key])

    # ---- the upload and download endpoints -------------------------------------------------

    def verify_token(self, token: str, purpose: Purpose, attachment_id: str) -> str:
        """The user a signed URL was issued to (`AuthError` when it is not valid)."""
        return self._links().signer.verify(token, purpose, attachment_id)

    async def upload(
        self,
        attachment_id: str,
        context: RequestContext,
        body: AsyncIterable[bytes],
        *,
        content_type: str | None,
        content_length: int | None,
    ) -> Attachment:
        """Store the bytes of a pending attachment: the raw body, or the `file` field of a
        multipart form. Returns the uploaded attachment (metadata has size and storage key)."""
        record = await self.store.load_attachment_record(attachment_id, context)
        if record.status == "uploaded":
            raise Conflict("The bytes of this attachment were already uploaded; attach the file again to replace it.")
        boundary = form_boundary(content_type)
        allowance = MULTIPART_OVERHEAD if boundary is not None else 0
        if content_length is not None and content_length > self.policy.max_bytes + allowance:
            self.policy.check_size(content_length)
        key = storage_key(context.user_id, attachment_id)
        if not await self.store.claim_upload(attachment_id, key, context):
            raise Conflict("An upload of this attachment is already in progress; wait for it to finish.")
        declared = (record.attachment.metadata or {}).get(DECLARED_SIZE)
        check = ContentCheck(
            record.attachment.mime_type, self.policy, declared_size=declared if isinstance(declared, int) else None
        )
        try:
            payload = body if boundary is None else form_file(body, boundary)
            await self.blobs.put(key, check.checked(payload))
            uploaded = record.attachment.model_copy(
                update={
                    "upload_descriptor": None,
                    "mime_type": check.mime_type,
                    "metadata": {
                        **(record.attachment.metadata or {}),
                        "size": check.size,
                        "storage_key": key,
                        "sha256": check.sha256,
                    },
                }
            )
            # Counted once the bytes are known, atomically with marking them stored (attachments.create
            # checked the declared size already, but uploads of files created together race here).
            admit = (
                functools.partial(self.limits.check_stored_bytes, adding=check.size)
                if self.limits.attachment_bytes_per_user
                else None
            )
            if not await self.store.complete_upload(uploaded, key, check.size, context, admit=admit):
                await self.blobs.delete([key])
                raise NotFoundError(f"Attachment {attachment_id} not found")
        except BaseException:
            with anyio.CancelScope(shield=True):
                with contextlib.suppress(ServiceUnavailable):  # logged; the original error is what counts
                    await self.blobs.delete([key])
                await self.store.release_upload(attachment_id, key, context)
            raise
        log.info(
            "attachment uploaded",
            extra={"fields": {"attachment_id": attachment_id, "size": check.size, "mime_type": check.mime_type}},
        )
        return uploaded

    async def download(self, attachment_id: str, context: RequestContext) -> Download:
        record = await self.store.load_attachment_record(attachment_id, context)
        if record.status != "uploaded" or not record.storage_key:
            raise Conflict("This attachment's bytes have not been uploaded yet.")
        try:
            blob = await self.blobs.open(record.storage_key)
        except FileNotFoundError:
            raise NotFoundError(f"Attachment {attachment_id} has no stored bytes") from None
        return Download(attachment=record.attachment, size=blob.size, etag=blob.etag, chunks=blob.chunks)

    def download_url(self, attachment: Attachment, context: RequestContext) -> str | None:
        links = self.links
        base = links.base(context) if links is not None else None
        if links is None or base is None:
            return None
        return links.download_url(base, attachment.id, context.user_id)

    # ---- for the assistant ---------------------------------------------------------------------

    async def read_attachment(self, attachment: Attachment, limit: int) -> bytes | None:
        """Up to `limit` bytes of an uploaded attachment's content; None when it has none stored.

        The attachment comes from a thread item the store wrote (its `metadata` names the blob),
        and every thread item was loaded for the user who owns it.
        """
        metadata = attachment.metadata or {}
        key = metadata.get("storage_key")
        size = metadata.get("size")
        if not isinstance(key, str) or not isinstance(size, int):
            return None
        try:
            return await self.blobs.read(key, min(limit, size))
        except (FileNotFoundError, ServiceUnavailable):  # the model is told the content is unavailable
            return None
