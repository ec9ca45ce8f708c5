"""Signed attachment links: HMAC tokens that let a browser upload or read one attachment.

A browser's upload (ChatKit's two-phase flow) and an `<img>` preview carry no bearer token, so
the URL carries a short-lived token bound to the purpose, the attachment and the user.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from chatkit.types import (
    Attachment,
    ImageAttachment,
)

from app.core.context import UserContext
from app.core.errors import AuthError
from app.settings import Settings

if TYPE_CHECKING:
    pass


ATTACHMENTS_PATH = "/api/chatkit/attachments"


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

    @classmethod
    def from_settings(cls, settings: Settings) -> AttachmentLinks | None:
        """Links signed with the configured key; None when no shared secret is configured."""
        key = signing_key(settings)
        if key is None:
            return None
        return cls(UrlSigner(key, settings.attachment_url_ttl_seconds), settings.public_base_url)

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
