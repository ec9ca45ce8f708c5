"""A ChatKit request body, parsed once, and the words for what is wrong with it.

`parse_request` is the one parse of a `/chatkit` body: openai-chatkit's own pydantic request union,
validated from the JSON bytes by an adapter built once (building one costs milliseconds per call).
The controller routes on its result and the server handles that same object; nothing decodes the
body again, except to name the field of an unstorable string once one is known to be there.
"""

from __future__ import annotations

import re

import msgspec
from chatkit.types import ChatKitReq
from pydantic import TypeAdapter, ValidationError

from app.core.errors import ProtocolError, Unsupported
from app.core.text import first_unstorable, unstorable_detail

REQUEST_ADAPTER: TypeAdapter[ChatKitReq] = TypeAdapter(ChatKitReq)
# A JSON string can hold U+0000 or a lone surrogate only as a `\u` escape (a raw control byte is
# invalid JSON, a raw surrogate invalid UTF-8): a body without one of these escapes holds none.
_MAYBE_UNSTORABLE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")


def parse_request(body: str | bytes | bytearray) -> ChatKitReq:
    """The request `body` holds, or a `ProtocolError` (400) saying what to fix."""
    try:
        request = REQUEST_ADAPTER.validate_json(body)
    except ValidationError as exc:
        raise describe_validation_error(exc, body) from None
    refuse_unstorable(body)
    return request


def dictation_not_configured() -> Unsupported:
    return Unsupported(
        "Dictation is not configured on this server: set TRANSCRIPTION_MODEL (and OPENAI_API_KEY) "
        "to enable input.transcribe.",
    )


def describe_validation_error(exc: ValidationError, body: str | bytes | bytearray = b"") -> ProtocolError:
    errors: list[dict[str, str]] = []
    for error in exc.errors(include_url=False)[:10]:
        loc = list(error.get("loc", ()))
        if loc and isinstance(loc[0], str) and "." in loc[0]:
            loc = loc[1:]  # the discriminator tag (the request type) says nothing about the field
        location = ".".join(str(part) for part in loc)
        errors.append({"field": location or "body", "message": str(error.get("msg", "is invalid"))})
    first = exc.errors(include_url=False)[0]
    if first.get("type") == "json_invalid":
        reason = str((first.get("ctx") or {}).get("error", ""))
        if reason.startswith("recursion limit exceeded"):
            # Valid JSON, nested deeper than the parser follows (a tag's `data`, an action's payload):
            # the answer the HTTP layer gives a body too deep for its own parser (app.http.problems).
            detail = f"The JSON body is nested too deeply ({reason}); send a flatter document."
            return ProtocolError(detail, field="body")
        if not body.strip():
            return ProtocolError("The request has no body: send a JSON object.")
        if isinstance(body, bytes | bytearray) and not _is_utf8(body):
            return ProtocolError("The request body is not valid UTF-8: send UTF-8 encoded JSON.")
        return ProtocolError("The body is not valid JSON: send a ChatKit request object.")
    if first.get("type") == "union_tag_not_found":
        return ProtocolError("The body has no `type`: send a ChatKit request object with its type.", field="type")
    tag_error = next((e for e in exc.errors(include_url=False) if e.get("type") == "union_tag_invalid"), None)
    if tag_error is not None:
        ctx = tag_error.get("ctx") or {}
        return ProtocolError(
            f"Unknown ChatKit request type {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}.",
            errors=errors,
        )
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return ProtocolError(f"Invalid ChatKit request: {summary}. Fix these fields and retry.", errors=errors)


def _is_utf8(body: bytes | bytearray) -> bool:
    try:
        body.decode()
    except UnicodeDecodeError:
        return False
    return True


def refuse_unstorable(request: str | bytes | bytearray) -> None:
    """A `ProtocolError` naming the first field whose text the database cannot store (NUL, a lone
    surrogate), in any string of any request type: ids, cursors, message text, titles, metadata,
    action payloads, and fields the request union ignores.

    Decoded (msgspec, microseconds) only when the bytes hold an escape that may be one, to name the
    field: a body without such an escape holds no such string.
    """
    if not isinstance(request, str) and _MAYBE_UNSTORABLE.search(request) is None:
        return  # (a str, which no HTTP request is, may hold a lone surrogate unescaped)
    try:
        decoded = msgspec.json.decode(request)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):  # pragma: no cover - pydantic parsed it
        return
    field = first_unstorable(decoded)
    if field is not None:
        raise ProtocolError(unstorable_detail(field), field=field)
