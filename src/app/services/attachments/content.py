"""What an attachment may be: declared types, names, sizes, and the check of its actual bytes.

Images and PDF are recognised by their magic bytes, text must be UTF-8; the `Content-Type` a
browser sends is never trusted. `ContentCheck` runs while the upload streams, so a file that is
too large or not what it claims is refused before it is stored.
"""

from __future__ import annotations

import codecs
import hashlib
import mimetypes
import unicodedata
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from app.core.errors import DomainError, PayloadTooLarge, UnsupportedMediaType
from app.settings import ATTACHMENT_EXTENSIONS, Settings

if TYPE_CHECKING:
    pass


IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
TEXT_TYPES = frozenset({"text/plain", "text/markdown", "text/csv", "application/json"})
SNIFF_BYTES = 1024  # a PDF header may follow up to 1 KiB of junk
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
_EXTENSIONS = {extension: mime for mime, extensions in ATTACHMENT_EXTENSIONS.items() for extension in extensions}
_LABELS = {
    "image/png": "a PNG image",
    "image/jpeg": "a JPEG image",
    "image/gif": "a GIF image",
    "image/webp": "a WebP image",
    "application/pdf": "a PDF document",
}


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
                f"The file is larger than the {human_size(self.max_bytes)} attachment limit; attach a smaller file."
            )


class ContentCheck:
    """Counts and sniffs an upload as it streams, raising 413/415 as soon as it knows.

    `mime_type` is what the content turned out to be (within the declared kind: an image
    declared as PNG that is a JPEG is recorded as JPEG).
    """

    def __init__(self, declared: str, policy: AttachmentPolicy, *, declared_size: int | None = None) -> None:
        self.declared = declared
        self.policy = policy
        # What attachments.create said the size is: the quota was checked against it.
        self.declared_size = declared_size
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
            if self.declared_size is not None and self.size > self.declared_size:
                raise PayloadTooLarge(
                    f"The upload is larger than the {self.declared_size} bytes declared as `size` in "
                    "attachments.create; attach the file again with its real size.",
                    field="size",
                )
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
        if self.declared_size is not None and self.size != self.declared_size:
            raise DomainError(
                f"The upload has {self.size} bytes but attachments.create declared `size` {self.declared_size}; "
                "attach the file again with its real size.",
                field="size",
            )

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


def human_size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB".replace(".0 MB", " MB")
    if size >= 1024:
        return f"{size / 1024:.1f} KB".replace(".0 KB", " KB")
    return f"{size} bytes"
