"""Attachment bytes in object storage (obstore): a local directory, or any S3-compatible bucket.

Keys are `<sha256(user)[:32]>/<attachment id>`, so no user-supplied text ever becomes part of a path.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import obstore
import obstore.exceptions

from app.core.errors import ServiceUnavailable
from app.settings import Settings

if TYPE_CHECKING:
    from obstore.store import ClientConfig, ObjectStore, RetryConfig, S3Config


log = logging.getLogger("app.attachments")


def storage_key(user_id: str, attachment_id: str) -> str:
    """Where an attachment's bytes live: a hash of the user, then the (server-made) id."""
    return f"{hashlib.sha256(user_id.encode()).hexdigest()[:32]}/{attachment_id}"


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
