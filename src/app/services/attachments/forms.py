"""Uploads sent as a multipart form: the bytes of its `file` field, parsed as they stream in."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import TYPE_CHECKING, Literal

import multipart

from app.core.errors import DomainError, PayloadTooLarge

if TYPE_CHECKING:
    pass


MULTIPART_OVERHEAD = 16 * 1024  # boundaries and part headers around the file in a form upload


def form_boundary(content_type: str | None) -> str | None:
    if not content_type:
        return None
    mime, options = multipart.parse_options_header(content_type)
    if mime.lower() != "multipart/form-data":
        return None
    boundary = options.get("boundary")
    if not boundary:
        raise DomainError("The multipart body has no boundary; send the file as the raw request body instead.")
    return str(boundary)


async def form_file(body: AsyncIterable[bytes], boundary: str) -> AsyncIterator[bytes]:
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
