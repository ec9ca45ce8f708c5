"""Attachment bytes: the upload target of ChatKit's two-phase upload, and downloads/previews.

`attachments.create` and `attachments.delete` are ChatKit requests (`POST /chatkit`); these two
routes carry the bytes. Both accept a bearer token or the signed `token` that the URLs handed
out by `attachments.create` carry: a browser's upload fetch and an `<img>` tag send no
Authorization header. The rules live in `app.services.attachments.service.AttachmentService`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import quote

from chatkit.types import Attachment, ImageAttachment
from litestar import Controller, Request, get, put
from litestar.di import NamedDependency, Provide
from litestar.params import Parameter
from litestar.response import Stream

from app.contracts import AttachmentInfo
from app.core.context import RequestContext
from app.core.limits import enforce
from app.core.text import require_storable
from app.http.auth import Authenticator, client_address
from app.http.openapi import problem_spec
from app.ops import metrics
from app.ops.ratelimit import Limits
from app.services.attachments.content import IMAGE_TYPES
from app.services.attachments.service import AttachmentService
from app.services.attachments.signing import ATTACHMENTS_PATH, Purpose

AttachmentId = Annotated[str, Parameter(description="The attachment's id (from `attachments.create`)", max_length=64)]
SignedToken = Annotated[
    str | None,
    Parameter(
        description="The signed token from the attachment's upload or preview URL; not needed with a bearer token",
        max_length=1024,
    ),
]


COMMON = {
    400: problem_spec("Invalid input (an over-long id or token, a malformed form); `errors` names the field"),
    401: problem_spec("Neither a valid bearer token nor a valid signed token"),
    404: problem_spec("The user has no attachment with this id"),
    429: problem_spec("Too many failed sign-ins from this address (or uploads by this user); see Retry-After"),
}


async def provide_attachment_caller(
    request: Request[Any, Any, Any],
    attachment_id: AttachmentId,
    attachment_service: NamedDependency[AttachmentService],
    authenticate: NamedDependency[Callable[[Request[Any, Any, Any]], Awaitable[RequestContext]]],
    authenticator: NamedDependency[Authenticator],
    token: SignedToken = None,
) -> RequestContext:
    """The bearer token's user when one is sent; else the user the signed URL was issued to.

    A forged or expired signed token is a failed sign-in like a bad bearer token (429 past the limit).
    """
    require_storable(attachment_id, "attachment_id")  # before it reaches a query (a NUL is a 500 there)
    if request.headers.get("authorization") or token is None:
        return await authenticate(request)
    purpose: Purpose = "upload" if request.method == "PUT" else "read"
    user_id = await authenticator.signed(
        client_address(request), lambda: attachment_service.verify_token(token, purpose, attachment_id)
    )
    state = request.scope.setdefault("state", {})
    state["user_id"] = user_id
    return RequestContext(
        user_id=user_id,
        request_id=str(state.get("request_id", "")),
        base_url=str(request.base_url).rstrip("/"),
    )


def attachment_info(attachment: Attachment, service: AttachmentService, context: RequestContext) -> AttachmentInfo:
    metadata = attachment.metadata or {}
    url = service.download_url(attachment, context) or f"{ATTACHMENTS_PATH}/{attachment.id}"
    return AttachmentInfo(
        id=attachment.id,
        type="image" if isinstance(attachment, ImageAttachment) else "file",
        name=attachment.name,
        mime_type=attachment.mime_type,
        size=int(metadata.get("size", 0)),
        status="uploaded" if attachment.upload_descriptor is None else "pending",
        url=url,
        preview_url=url if isinstance(attachment, ImageAttachment) else None,
        thread_id=attachment.thread_id,
    )


def content_disposition(name: str, *, inline: bool) -> str:
    """RFC 6266: an ASCII fallback plus the UTF-8 name."""
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\' else "_" for ch in name) or "attachment"
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


class AttachmentController(Controller):
    path = ATTACHMENTS_PATH
    tags = ["ChatKit"]
    # A signed token may stand in for the bearer token, so the bearer token is optional here.
    security = [{}]
    dependencies = {"caller": Provide(provide_attachment_caller)}

    @put(
        "/{attachment_id:str}/upload",
        operation_id="UploadAttachment",
        status_code=200,
        request_max_body_size=None,  # the attachment limit is enforced while the body streams
        summary="Upload an attachment's bytes (ChatKit two-phase upload)",
        description=(
            "The `upload_descriptor.url` of an attachment from `attachments.create`. Send the file as the raw "
            "body (any Content-Type) or as the `file` field of a multipart form. The content is checked, not "
            "the header: images and PDF by their magic bytes, text as UTF-8. Answers 413 past "
            "ATTACHMENT_MAX_BYTES, 415 when the content is not what was declared or allowed, 409 when the "
            "bytes were already uploaded."
        ),
        responses={
            **COMMON,
            409: problem_spec("Already uploaded, or an upload is in progress"),
            413: problem_spec("The file exceeds the attachment size limit"),
            415: problem_spec("The content is not the declared type, or the type is not allowed"),
        },
    )
    async def upload(
        self,
        request: Request[Any, Any, Any],
        attachment_id: AttachmentId,
        caller: NamedDependency[RequestContext],
        attachment_service: NamedDependency[AttachmentService],
        limits: NamedDependency[Limits],
    ) -> AttachmentInfo:
        await enforce(
            limits.uploads,
            caller.user_id,
            "Too many uploads; wait before attaching another file.",
            on_refusal=metrics.RATE_LIMITED.labels(limit="uploads").inc,
        )
        attachment = await attachment_service.upload(
            attachment_id,
            caller,
            request.stream(),
            content_type=request.headers.get("content-type"),
            content_length=request.content_length,
        )
        return attachment_info(attachment, attachment_service, caller)

    @get(
        "/{attachment_id:str}",
        operation_id="DownloadAttachment",
        summary="Download an attachment (also an image attachment's preview URL)",
        description=(
            "The owner's attachment bytes with their verified content type. Images are served inline (for "
            "`preview_url`), other files as downloads. Signed `token`s expire after ATTACHMENT_URL_TTL_SECONDS "
            "(at least); ChatKit requests hand out fresh ones."
        ),
        responses={**COMMON, 409: problem_spec("The bytes have not been uploaded yet")},
        response_description="The attachment's bytes",
    )
    async def download(
        self,
        attachment_id: AttachmentId,
        caller: NamedDependency[RequestContext],
        attachment_service: NamedDependency[AttachmentService],
    ) -> Stream:
        download = await attachment_service.download(attachment_id, caller)
        attachment = download.attachment
        media_type = attachment.mime_type  # Litestar adds `charset=utf-8` to text/* (and text is verified UTF-8)
        headers = {
            "Content-Length": str(download.size),
            "Content-Disposition": content_disposition(attachment.name, inline=attachment.mime_type in IMAGE_TYPES),
            "Cache-Control": "private, max-age=3600",
            # Served bytes can never run as a page, and an allowed front end on another site may show images.
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cross-Origin-Resource-Policy": "cross-origin",
        }
        if download.etag:
            headers["ETag"] = download.etag
        return Stream(download.chunks, media_type=media_type, headers=headers)


__all__ = ["AttachmentController", "attachment_info", "content_disposition", "provide_attachment_caller"]
