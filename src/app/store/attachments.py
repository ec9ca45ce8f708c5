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

import base64
import binascii
import codecs
import contextlib
import datetime as dt
import hashlib
import hmac
import logging
import mimetypes
import time
import unicodedata
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import urlsplit

import anyio
import multipart
import obstore
import obstore.exceptions
from chatkit.store import AttachmentStore, NotFoundError
from chatkit.types import (
    Attachment,
    AttachmentCreateParams,
    AttachmentUploadDescriptor,
    FileAttachment,
    ImageAttachment,
    Page,
    ThreadItem,
    UserMessageItem,
)
from sqlalchemy import update

from app.auth import AuthError, RequestContext
from app.errors import Conflict, DomainError, PayloadTooLarge, ServiceUnavailable, UnsupportedMediaType
from app.ids import prefixed_id
from app.settings import Settings
from app.store.chatkit_store import ID_PREFIXES, ChatKitStore, SessionMaker, UserContext
from app.store.models import ChatAttachment

if TYPE_CHECKING:
    from advanced_alchemy.config.asyncio import SQLAlchemyAsyncConfig
    from obstore.store import ClientConfig, ObjectStore, RetryConfig, S3Config
    from sqlalchemy import Table

log = logging.getLogger("app.attachments")

ATTACHMENTS_PATH = "/api/chatkit/attachments"
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
TEXT_TYPES = frozenset({"text/plain", "text/markdown", "text/csv", "application/json"})
SNIFF_BYTES = 1024  # a PDF header may follow up to 1 KiB of junk
MULTIPART_OVERHEAD = 16 * 1024  # boundaries and part headers around the file in a form upload
NAME_MAX = 255

_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
    "application/x-pdf": "application/pdf",
    "text/x-markdown": "text/markdown",
    "text/comma-separated-values": "text/csv",
    "application/csv": "text/csv",
    "text/json": "application/json",
}
_EXTENSIONS = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".pdf": "application/pdf",
    ".txt": "text/plain",
    ".text": "text/plain",
    ".log": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".csv": "text/csv",
    ".json": "application/json",
}
_LABELS = {
    "image/png": "a PNG image",
    "image/jpeg": "a JPEG image",
    "image/gif": "a GIF image",
    "image/webp": "a WebP image",
    "application/pdf": "a PDF document",
}


# ---- content types -------------------------------------------------------------------------------


def normalize_mime(value: str | None, name: str = "") -> str:
    """A bare, lower-case MIME type; a missing or generic one is guessed from the file name."""
    mime = (value or "").split(";", 1)[0].strip().lower()
    mime = _ALIASES.get(mime, mime)
    if mime in {"", "application/octet-stream", "binary/octet-stream"}:
        suffix = PurePosixPath(name.lower()).suffix
        guessed = _EXTENSIONS.get(suffix) or mimetypes.guess_type(f"x{suffix}")[0] or mime
        mime = _ALIASES.get(guessed, guessed)
    return mime


def sniff(head: bytes) -> str | None:
    """The binary type the content's magic bytes announce, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if b"%PDF-" in head[:SNIFF_BYTES]:
        return "application/pdf"
    return None


def clean_name(name: str) -> str:
    """A display name: the last path component, no control characters, at most 255 characters."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C").strip()
    return base[:NAME_MAX] or "attachment"


def storage_key(user_id: str, attachment_id: str) -> str:
    """Where an attachment's bytes live: a hash of the user, then the (server-made) id."""
    return f"{hashlib.sha256(user_id.encode()).hexdigest()[:32]}/{attachment_id}"


@dataclass(frozen=True, slots=True)
class AttachmentPolicy:
    """What may be uploaded: a size limit and the allowed (verifiable) types."""

    max_bytes: int
    allowed_types: frozenset[str]

    @classmethod
    def from_settings(cls, settings: Settings) -> AttachmentPolicy:
        return cls(max_bytes=settings.attachment_max_bytes, allowed_types=frozenset(settings.attachment_allowed_types))

    def declared_type(self, mime_type: str, name: str) -> str:
        mime = normalize_mime(mime_type, name)
        if mime not in self.allowed_types:
            raise UnsupportedMediaType(
                f"Files of type {mime or 'unknown'!r} cannot be attached; allowed types: "
                f"{', '.join(sorted(self.allowed_types))}.",
                field="mime_type",
            )
        return mime

    def check_size(self, size: int) -> None:
        if size > self.max_bytes:
            raise PayloadTooLarge(
                f"The file is larger than the {_human(self.max_bytes)} attachment limit; attach a smaller file."
            )


class ContentCheck:
    """Counts and sniffs an upload as it streams, raising 413/415 as soon as it knows.

    `mime_type` is what the content turned out to be (within the declared kind: an image
    declared as PNG that is a JPEG is recorded as JPEG).
    """

    def __init__(self, declared: str, policy: AttachmentPolicy) -> None:
        self.declared = declared
        self.policy = policy
        self.mime_type = declared
        self.size = 0
        self._head = b""
        self._decided = False
        self._text = declared in TEXT_TYPES
        self._utf8 = codecs.getincrementaldecoder("utf-8")() if self._text else None
        self._sha256 = hashlib.sha256()

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

    async def checked(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            if not chunk:
                continue
            self.size += len(chunk)
            self.policy.check_size(self.size)
            self._sha256.update(chunk)
            if self._decided:
                self._check_text(chunk, final=False)
                yield chunk
                continue
            self._head += chunk
            if len(self._head) >= SNIFF_BYTES:
                yield self._first()
        if not self._decided:
            head = self._first()
            if head:
                yield head
        self._check_text(b"", final=True)

    def _first(self) -> bytes:
        """Decide on the first bytes (magic bytes before UTF-8, for the clearer message)."""
        self._decide()
        head, self._head = self._head, b""
        self._check_text(head, final=False)
        return head

    def _decide(self) -> None:
        self._decided = True
        found = sniff(self._head)
        if self._text:
            if found is not None:
                raise UnsupportedMediaType(
                    f"The file was declared as {self.declared} but its content is {_LABELS[found]}; "
                    "attach it again so its type is detected."
                )
            return
        if found is None:
            raise UnsupportedMediaType(
                f"The file's content is not {_LABELS.get(self.declared, self.declared)} as declared "
                "(its first bytes match no allowed format)."
            )
        same_kind = (found in IMAGE_TYPES) == (self.declared in IMAGE_TYPES)
        if not same_kind or found not in self.policy.allowed_types:
            raise UnsupportedMediaType(
                f"The file was declared as {self.declared} but its content is {_LABELS[found]}, "
                "which cannot be attached as such."
            )
        self.mime_type = found

    def _check_text(self, chunk: bytes, *, final: bool) -> None:
        if self._utf8 is None:
            return
        try:
            text = self._utf8.decode(chunk, final=final)
        except UnicodeDecodeError:
            text = "\x00"
        if "\x00" in text:
            raise UnsupportedMediaType(
                f"The file was declared as {self.declared} but is not UTF-8 text; convert it to UTF-8 or attach "
                "an allowed binary format."
            )


# ---- signed URLs ---------------------------------------------------------------------------------

Purpose = Literal["upload", "read"]


def signing_key(settings: Settings) -> bytes | None:
    """The key for signed attachment URLs, or None when no shared secret is configured."""
    if settings.attachment_signing_secret is not None:
        material = settings.attachment_signing_secret.get()
    elif settings.auth_mode == "dev":
        material = settings.auth_dev_secret.get()
    elif settings.auth_jwt_secret is not None:
        material = settings.auth_jwt_secret.get()
    else:
        return None
    # Derived, so a signed URL can never double as a token signed with the secret itself.
    return hmac.new(material.encode(), b"taskpilot/attachment-urls/v1", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class UrlSigner:
    """HMAC-SHA256 tokens bound to (purpose, attachment id, user id, expiry).

    Upload tokens live `ttl` seconds. Read tokens expire at the end of the next `ttl` window,
    so the same URL is handed out for a whole window (browsers can cache the image) and every
    URL stays valid for at least `ttl` seconds.
    """

    def __init__(self, key: bytes, ttl_seconds: int, *, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self.ttl = ttl_seconds
        self.clock = clock

    def _mac(self, purpose: Purpose, attachment_id: str, user_id: str, expires: int) -> bytes:
        message = "\x00".join(("taskpilot-attachment", purpose, attachment_id, user_id, str(expires)))
        return hmac.new(self._key, message.encode(), hashlib.sha256).digest()

    def sign(self, purpose: Purpose, attachment_id: str, user_id: str, *, expires: int) -> str:
        payload = _b64(f"{expires}:{user_id}".encode())
        return f"{payload}.{_b64(self._mac(purpose, attachment_id, user_id, expires))}"

    def upload_token(self, attachment_id: str, user_id: str) -> str:
        return self.sign("upload", attachment_id, user_id, expires=int(self.clock()) + self.ttl)

    def read_token(self, attachment_id: str, user_id: str) -> str:
        expires = (int(self.clock()) // self.ttl + 2) * self.ttl
        return self.sign("read", attachment_id, user_id, expires=expires)

    def verify(self, token: str, purpose: Purpose, attachment_id: str) -> str:
        """The user the token was issued to; `AuthError` when it is invalid or expired."""
        try:
            payload, mac = token.split(".", 1)
            expires_text, user_id = _unb64(payload).decode().split(":", 1)
            expires = int(expires_text)
            given = _unb64(mac)
        except (ValueError, UnicodeDecodeError, binascii.Error):
            raise AuthError("the signed URL is malformed") from None
        if not hmac.compare_digest(given, self._mac(purpose, attachment_id, user_id, expires)):
            raise AuthError("the signed URL is not valid for this attachment")
        if expires < self.clock():
            raise AuthError("the signed URL has expired; reload the conversation for a fresh one")
        return user_id


class AttachmentLinks:
    """Absolute, signed URLs for an attachment, built on `PUBLIC_BASE_URL` or the request's base URL."""

    def __init__(self, signer: UrlSigner, public_base_url: str | None = None) -> None:
        self.signer = signer
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None

    def base(self, context: UserContext) -> str | None:
        return self.public_base_url or str(getattr(context, "base_url", "") or "").rstrip("/") or None

    def upload_url(self, base: str, attachment_id: str, user_id: str) -> str:
        token = self.signer.upload_token(attachment_id, user_id)
        return f"{base}{ATTACHMENTS_PATH}/{attachment_id}/upload?token={token}"

    def download_url(self, base: str, attachment_id: str, user_id: str) -> str:
        token = self.signer.read_token(attachment_id, user_id)
        return f"{base}{ATTACHMENTS_PATH}/{attachment_id}?token={token}"

    def refreshed(self, attachment: Attachment, context: UserContext) -> Attachment:
        """The attachment with a current signed preview URL (images); others unchanged."""
        if not isinstance(attachment, ImageAttachment):
            return attachment
        base = self.base(context)
        if base is None:
            return attachment
        url = self.download_url(base, attachment.id, context.user_id)
        if str(attachment.preview_url) == url:
            return attachment
        return attachment.model_copy(update={"preview_url": url})


# ---- blob storage --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Blob:
    size: int
    etag: str | None
    chunks: AsyncIterator[bytes]


class BlobStorage:
    """Attachment bytes in an obstore `ObjectStore` (a local directory or an S3 bucket).

    The store is built on first use, so an app that never sees an attachment never creates
    the directory.
    """

    def __init__(self, factory: Callable[[], ObjectStore], *, description: str = "") -> None:
        self._factory = factory
        self._store: ObjectStore | None = None
        self.description = description

    @classmethod
    def from_settings(cls, settings: Settings) -> BlobStorage:
        url = settings.attachment_storage_url
        parts = urlsplit(url)
        if parts.scheme == "s3":
            config: S3Config = {}
            client_options: ClientConfig = {}
            if settings.attachment_s3_endpoint_url:
                config["endpoint"] = settings.attachment_s3_endpoint_url
                client_options["allow_http"] = settings.attachment_s3_endpoint_url.startswith("http://")
            if settings.attachment_s3_region:
                config["region"] = settings.attachment_s3_region
            if settings.attachment_s3_access_key_id and settings.attachment_s3_secret_access_key:
                config["access_key_id"] = settings.attachment_s3_access_key_id.get()
                config["secret_access_key"] = settings.attachment_s3_secret_access_key.get()
            # A few quick retries: an upload or a turn should fail in seconds, not minutes.
            retry: RetryConfig = {"max_retries": 3, "retry_timeout": dt.timedelta(seconds=10)}
            bucket, prefix = parts.netloc, parts.path.strip("/") or None

            def s3() -> ObjectStore:
                from obstore.store import S3Store

                return S3Store(bucket, prefix=prefix, config=config, client_options=client_options, retry_config=retry)

            return cls(s3, description=f"s3://{bucket}/{prefix or ''}")
        directory = Path(parts.path if parts.scheme == "file" else url).expanduser().resolve()

        def local() -> ObjectStore:
            from obstore.store import LocalStore

            return LocalStore(directory, mkdir=True, automatic_cleanup=True)

        return cls(local, description=str(directory))

    @property
    def store(self) -> ObjectStore:
        if self._store is None:
            self._store = self._factory()
        return self._store

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> None:
        """Write atomically: a failed or interrupted write leaves no object at `key`.

        What `chunks` raises (a 413 or 415 while the upload streams) comes out unchanged.
        """
        with _storage_errors():
            await obstore.put_async(self.store, key, chunks)

    async def open(self, key: str) -> Blob:
        """The object's size and a stream of its bytes; `FileNotFoundError` when it is missing."""
        with _storage_errors():
            result = await obstore.get_async(self.store, key)
        meta = result.meta
        return Blob(size=int(meta["size"]), etag=meta.get("e_tag"), chunks=_chunks(result))

    async def read(self, key: str, length: int) -> bytes:
        """The first `length` bytes; `length` must not exceed the object's size."""
        if length <= 0:
            return b""
        with _storage_errors():
            return bytes(await obstore.get_range_async(self.store, key, start=0, length=length))

    async def delete(self, keys: Sequence[str]) -> None:
        """Delete each key; keys already gone are fine. Runs to completion even if cancelled.

        Keys that could not be deleted are logged (they are orphans now), then 503.
        """
        failed: list[str] = []
        with anyio.CancelScope(shield=True):
            for key in keys:
                try:
                    await obstore.delete_async(self.store, key)
                except FileNotFoundError:
                    pass
                except (obstore.exceptions.BaseError, OSError) as exc:
                    failed.append(key)
                    error = type(exc).__name__
        if failed:
            log.error("attachment blobs not deleted", extra={"fields": {"storage_keys": failed, "error": error}})
            raise ServiceUnavailable("Attachment storage is unavailable right now; retry in a moment.", retry_after=5)


@contextlib.contextmanager
def _storage_errors() -> Iterator[None]:
    """Storage failures (unreachable, refused credentials) as a 503; a missing object stays
    `FileNotFoundError`; anything else (the upload's own 413/415) passes through."""
    try:
        yield
    except FileNotFoundError:
        raise
    except (obstore.exceptions.BaseError, OSError) as exc:
        log.warning("attachment storage failed", extra={"fields": {"error": type(exc).__name__}})
        raise ServiceUnavailable(
            "Attachment storage is unavailable right now; retry in a moment.", retry_after=5
        ) from exc


async def _chunks(result: Any) -> AsyncIterator[bytes]:
    async for chunk in result.stream(min_chunk_size=64 * 1024):
        yield bytes(chunk)


# ---- the ChatKit Store, aware of blobs and signed URLs ---------------------------------------------


_attachments = cast("Table", ChatAttachment.__table__)


class BlobAwareChatKitStore(ChatKitStore[RequestContext]):
    """`ChatKitStore` plus what attachments with stored bytes need.

    - `delete_thread` also deletes the blobs of the thread's attachments;
    - every attachment it loads (alone or inside a user message) carries a fresh signed
      `preview_url`, since the one stored with it expires;
    - the upload's state changes (claim, release, complete) are single conditional statements,
      so two uploads of one attachment, or an upload racing a delete, cannot both win.
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

    # ---- the upload's state ----------------------------------------------------------------

    async def claim_upload(self, attachment_id: str, key: str, context: RequestContext) -> bool:
        """Record where the bytes are about to go (so cleanup can find them if this process dies
        mid-upload). False when the attachment is not pending or another upload holds it."""
        async with self._autocommit() as session:
            result = await session.execute(
                update(_attachments)
                .where(
                    _attachments.c.user_id == context.user_id,
                    _attachments.c.id == attachment_id,
                    _attachments.c.status == "pending",
                    _attachments.c.storage_key.is_(None),
                )
                .values(storage_key=key)
            )
        return _rowcount(result) == 1

    async def release_upload(self, attachment_id: str, key: str, context: RequestContext) -> None:
        """Undo `claim_upload` after a failed upload, so the client may try again."""
        async with self._autocommit() as session:
            await session.execute(
                update(_attachments)
                .where(
                    _attachments.c.user_id == context.user_id,
                    _attachments.c.id == attachment_id,
                    _attachments.c.status == "pending",
                    _attachments.c.storage_key == key,
                )
                .values(storage_key=None)
            )

    async def complete_upload(self, attachment: Attachment, key: str, size: int, context: RequestContext) -> bool:
        """Mark the claimed upload done, with the verified type and the descriptor-free JSON.
        False when the attachment was deleted (or its claim lost) meanwhile."""
        async with self._autocommit() as session:
            result = await session.execute(
                update(_attachments)
                .where(
                    _attachments.c.user_id == context.user_id,
                    _attachments.c.id == attachment.id,
                    _attachments.c.status == "pending",
                    _attachments.c.storage_key == key,
                )
                .values(
                    status="uploaded",
                    size=size,
                    mime_type=attachment.mime_type,
                    data=attachment.model_dump(mode="json"),
                )
            )
        return _rowcount(result) == 1


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


# ---- the service and ChatKit AttachmentStore -------------------------------------------------------


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
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.policy = policy
        self.links = links

    @classmethod
    def from_settings(cls, settings: Settings, database: SQLAlchemyAsyncConfig | SessionMaker) -> AttachmentService:
        blobs = BlobStorage.from_settings(settings)
        key = signing_key(settings)
        links = (
            AttachmentLinks(UrlSigner(key, settings.attachment_url_ttl_seconds), settings.public_base_url)
            if key is not None
            else None
        )
        store = BlobAwareChatKitStore(database, blobs=blobs, links=links)
        return cls(store, blobs, AttachmentPolicy.from_settings(settings), links)

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
        base = links.base(context)
        if base is None:
            raise ServiceUnavailable("The server does not know its public address: set PUBLIC_BASE_URL.")
        attachment_id = self.generate_attachment_id(mime, context)
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
            )
        return FileAttachment(id=attachment_id, name=name, mime_type=mime, upload_descriptor=descriptor)

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
        form_boundary = _form_boundary(content_type)
        allowance = MULTIPART_OVERHEAD if form_boundary is not None else 0
        if content_length is not None and content_length > self.policy.max_bytes + allowance:
            self.policy.check_size(content_length)
        key = storage_key(context.user_id, attachment_id)
        if not await self.store.claim_upload(attachment_id, key, context):
            raise Conflict("An upload of this attachment is already in progress; wait for it to finish.")
        check = ContentCheck(record.attachment.mime_type, self.policy)
        try:
            payload = body if form_boundary is None else _form_file(body, form_boundary)
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
            if not await self.store.complete_upload(uploaded, key, check.size, context):
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


# ---- multipart uploads ----------------------------------------------------------------------------


def _form_boundary(content_type: str | None) -> str | None:
    if not content_type:
        return None
    mime, options = multipart.parse_options_header(content_type)
    if mime.lower() != "multipart/form-data":
        return None
    boundary = options.get("boundary")
    if not boundary:
        raise DomainError("The multipart body has no boundary; send the file as the raw request body instead.")
    return str(boundary)


async def _form_file(body: AsyncIterable[bytes], boundary: str) -> AsyncIterator[bytes]:
    """The bytes of the form's `file` field (or its first file), parsed as they stream in.

    Other fields are skipped, up to a small allowance; the file itself is counted by the caller.
    """
    parser = multipart.PushMultipartParser(boundary, max_segment_count=8)
    current: Literal["file", "other"] | None = None
    found = False
    skipped = 0
    try:
        async for chunk in body:
            if not chunk:
                continue
            for event in parser.parse(chunk):
                if isinstance(event, multipart.MultipartSegment):
                    if not found and (event.name == "file" or event.filename is not None):
                        current, found = "file", True
                    else:
                        current = "other"
                elif event is None:
                    current = None
                elif current == "file":
                    yield bytes(event)
                else:
                    skipped += len(event)
                    if skipped > MULTIPART_OVERHEAD:
                        raise PayloadTooLarge("The form carries too much besides the file; send only the file.")
        parser.close()
    except multipart.MultipartError as exc:
        raise DomainError(
            "The multipart body is malformed; send the file as the raw request body or as the form field 'file'."
        ) from exc
    if not found:
        raise DomainError("The form has no 'file' field; send the file as the raw request body or in 'file'.")


def _human(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB".replace(".0 MB", " MB")
    if size >= 1024:
        return f"{size / 1024:.1f} KB".replace(".0 KB", " KB")
    return f"{size} bytes"


__all__ = [
    "ATTACHMENTS_PATH",
    "AttachmentLinks",
    "AttachmentPolicy",
    "AttachmentService",
    "Blob",
    "BlobAwareChatKitStore",
    "BlobStorage",
    "ContentCheck",
    "Download",
    "UrlSigner",
    "clean_name",
    "normalize_mime",
    "signing_key",
    "sniff",
    "storage_key",
]
