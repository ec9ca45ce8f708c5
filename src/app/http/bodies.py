"""How much of a `/chatkit` body is read: every request type is held to MAX_REQUEST_BYTES, and only
a dictation request (when dictation is on) may carry more, up to the room its audio needs."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request
from litestar.utils.scope.state import ScopeState

from app.core.errors import PayloadTooLarge
from app.settings import Settings

# What only a dictation request carries: its type, or its audio field. Looked for in the first
# MAX_REQUEST_BYTES of a larger body, whichever order the client put its keys in. A look-alike
# (the text inside metadata) only buys reading on to the dictation limit as that user: the
# decoded type is checked again before anything else is done with the body.
_DICTATION_MARK = re.compile(rb'"(?:type"\s*:\s*"input\.transcribe"|audio_base64"\s*:)')


def body_over_request_limit(settings: Settings) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The body is larger than MAX_REQUEST_BYTES ({settings.max_request_bytes} bytes); "
        "only input.transcribe may carry more (its audio, up to TRANSCRIPTION_MAX_BYTES).",
        field="body",
    )


def body_reader(settings: Settings) -> Callable[[Request[Any, Any, Any]], Awaitable[None]]:
    """The `before_request` hook of /chatkit: its body, read no further than its type allows.

    It runs after the guards, so the caller is already known (an anonymous body is never read).
    Every type is held to MAX_REQUEST_BYTES, and only the first MAX_REQUEST_BYTES of a larger
    body are read before the decision: beyond them only a dictation request (when dictation is
    on) may go on, up to the room its audio needs. Nothing is JSON-decoded until the whole body
    is within its limit (a body that only looks like dictation is decoded, then refused by its
    type in the handler). The body is left where Litestar reads `data` and `request.body()` from.
    """
    limit = settings.max_request_bytes
    dictation_limit = settings.chatkit_max_body_bytes  # equal to `limit` while dictation is off

    def over_dictation_limit() -> PayloadTooLarge:
        # A new error each time: one raised again and again would keep every request's frames
        # (and the chunks they hold) alive in its growing traceback.
        if dictation_limit <= limit:  # dictation is off: the one limit is MAX_REQUEST_BYTES
            return body_over_request_limit(settings)
        return PayloadTooLarge(
            f"The body is larger than the largest input.transcribe request ({dictation_limit} bytes, "
            "room for TRANSCRIPTION_MAX_BYTES of audio as base64): send shorter audio.",
            field="body",
        )

    async def read_body(request: Request[Any, Any, Any]) -> None:
        declared = request.content_length
        if declared is not None and declared > dictation_limit:
            raise over_dictation_limit()
        chunks: list[bytes] = []
        size = 0
        allowed = limit
        async for chunk in request.stream():
            size += len(chunk)
            chunks.append(chunk)
            if size <= allowed:
                continue
            if allowed == dictation_limit:
                raise over_dictation_limit()
            head = b"".join(chunks)
            chunks = [head]
            if not _DICTATION_MARK.search(head, 0, limit):
                raise body_over_request_limit(settings)
            allowed = dictation_limit
            if size > allowed:
                raise over_dictation_limit()
        ScopeState.from_scope(request.scope).body = b"".join(chunks)

    return read_body
