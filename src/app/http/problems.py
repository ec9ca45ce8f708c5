"""Central mapping of exceptions to RFC 9457 `application/problem+json` responses.

Handlers never echo exception text they did not write: a 500 says only that something failed
and which request id to quote, and the traceback goes to the log.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import msgspec
from advanced_alchemy.exceptions import NotFoundError as RepositoryNotFoundError
from advanced_alchemy.exceptions import RepositoryError
from chatkit.store import NotFoundError as ChatKitNotFoundError
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, ValidationException
from litestar.types import ExceptionHandlersMap
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError

from app.contracts import Problem
from app.core.errors import (
    AuthError,
    Conflict,
    DomainError,
    NotFound,
    PayloadTooLarge,
    QuotaExceeded,
    RequestTimeout,
    ServiceUnavailable,
    TooManyRequests,
    Unsupported,
    UnsupportedMediaType,
    UpstreamError,
    UpstreamFailure,
)
from app.store.connections import (
    STATEMENT_CACHE_HINT,
    database_cause,
    database_unavailable,
    statement_cache_unsupported,
)

log = logging.getLogger("app.errors")

PROBLEM_MEDIA_TYPE = "application/problem+json"
# Answered before the body was read to its end: the connection is closed after them.
CLOSES_CONNECTION = frozenset({408, 413})


# The HTTP status of each domain error; the most specific class listed wins.
STATUS_OF: dict[type[DomainError], int] = {
    AuthError: 401,
    NotFound: 404,
    Conflict: 409,
    PayloadTooLarge: 413,
    RequestTimeout: 408,
    UnsupportedMediaType: 415,
    TooManyRequests: 429,
    QuotaExceeded: 429,
    Unsupported: 501,
    ServiceUnavailable: 503,
}
UPSTREAM_STATUS: dict[UpstreamFailure, int] = {"rejected": 502, "unavailable": 503, "timeout": 504}


def status_of(exc: DomainError) -> int:
    if isinstance(exc, UpstreamError):
        if exc.sent and exc.failure == "unavailable":
            # 503 promises "nothing was done, send it anywhere again" (deploy/haproxy.cfg retries it).
            return 502
        return UPSTREAM_STATUS[exc.failure]
    for cls in type(exc).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return 400


def request_id_of(request: Request[Any, Any, Any]) -> str | None:
    value = request.scope.get("state", {}).get("request_id")
    if isinstance(value, str):
        return value
    # Unmatched routes never reach the route middleware; honour the caller's id if it is sane.
    incoming = request.headers.get("x-request-id", "")
    return incoming if 0 < len(incoming) <= 128 and incoming.isprintable() else None


def problem_response(
    request: Request[Any, Any, Any],
    status: int,
    detail: str,
    *,
    title: str | None = None,
    errors: list[dict[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response[bytes]:
    problem = Problem(
        type="about:blank",
        title=title or HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=request.url.path,
        request_id=request_id_of(request),
        errors=errors,
    )
    response_headers = dict(headers or {})
    if status in CLOSES_CONNECTION:
        # Refused before the body was read to its end: close the connection, so a client does not
        # reuse it for its next request while the rest of this body is still on the way.
        response_headers.setdefault("Connection", "close")
    return Response(
        content=msgspec.json.encode(problem),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=response_headers,
    )


def _validation_errors(exc: ValidationException) -> list[dict[str, str]]:
    errors: list[dict[str, str]] = []
    extra = exc.extra if isinstance(exc.extra, list) else []
    for entry in extra:
        if isinstance(entry, dict):
            message = str(entry.get("message") or "is invalid")
            # msgspec names an unknown or missing field only in its message; the key is the body.
            unknown = _UNKNOWN_FIELD.search(message) or _UNSTORABLE_FIELD.match(message)
            source = entry.get("source") or "body"
            errors.append(
                {
                    "field": unknown.group(1) if unknown else str(entry.get("key") or "body"),
                    "message": message,
                    "source": str(getattr(source, "value", source)),  # ParamType.QUERY -> "query"
                }
            )
    return errors


_UNKNOWN_FIELD = re.compile(r"(?:unknown|missing required) field `([^`]+)`")
# `app.core.text.unstorable_detail`, raised by a contract's `__post_init__`: msgspec gives no path.
_UNSTORABLE_FIELD = re.compile(r"(\S+) contains a NUL character")


def handle_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[bytes]:
    errors = _validation_errors(exc)
    if any(e["field"] == "data" and e["message"] in {"data", "'data'"} for e in errors):
        # Litestar's way of saying there was no body at all.
        return problem_response(request, 400, "The request has no body: send a JSON object.", errors=None)
    if errors:
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) + ". Fix these fields and retry."
    else:
        detail = f"{exc.detail}. Fix the request and retry."
    return problem_response(request, 400, detail, errors=errors or None)


def handle_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    headers = dict(exc.headers or {})
    if status == 404 and exc.detail in {"Not Found", HTTPStatus.NOT_FOUND.phrase}:
        detail = f"No route matches {request.method} {request.url.path}. See /schema for the API."
    elif status == 405:
        detail = f"{request.method} is not allowed on {request.url.path}."
    elif status == 413:
        detail = "The request body is too large; send a smaller body."
    elif status >= 500:
        detail = "The server could not complete the request; retry, and quote the request id if it persists."
    else:
        detail = str(exc.detail)
    if isinstance(exc, NotAuthorizedException):
        headers.setdefault("WWW-Authenticate", 'Bearer realm="taskpilot"')
    return problem_response(request, status, detail, headers=headers)


# The challenge of a 401 for a bearer token that failed (RFC 6750), on every path that answers one.
INVALID_TOKEN_CHALLENGE = 'Bearer realm="taskpilot", error="invalid_token"'


@dataclass(frozen=True, slots=True)
class DomainProblem:
    """The problem document a domain error answers with, whoever sends it: Litestar's handlers
    below, or a mount Litestar's handlers do not see (`app.controllers.mcp`)."""

    status: int
    title: str
    detail: str
    errors: list[dict[str, str]] | None
    headers: dict[str, str]


def domain_problem(exc: DomainError) -> DomainProblem:
    if exc.errors:
        errors: list[dict[str, str]] | None = exc.errors
    elif exc.field:
        errors = [{"field": exc.field, "message": exc.detail, "source": "body"}]
    else:
        errors = None
    headers: dict[str, str] = {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    detail = exc.detail
    if isinstance(exc, AuthError):
        detail = f"Authentication failed: {exc.reason}."
        headers["WWW-Authenticate"] = INVALID_TOKEN_CHALLENGE
    status = status_of(exc)
    if status in CLOSES_CONNECTION:
        headers["Connection"] = "close"
    # RFC 9110's name for 413; Python 3.11's HTTPStatus still says "Request Entity Too Large".
    title = "Content Too Large" if status == 413 else HTTPStatus(status).phrase
    return DomainProblem(status=status, title=title, detail=detail, errors=errors, headers=headers)


def handle_domain(request: Request[Any, Any, Any], exc: DomainError) -> Response[bytes]:
    """Every domain error, `AuthError` included (401 with its challenge)."""
    problem = domain_problem(exc)
    return problem_response(
        request, problem.status, problem.detail, title=problem.title, errors=problem.errors, headers=problem.headers
    )


def handle_not_found(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    return problem_response(request, 404, "The resource does not exist or belongs to another user.")


def handle_database(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """The database is unreachable or the pool is exhausted: 503, retry; a bug stays a 500."""
    if statement_cache_unsupported(exc):
        # A configuration error, not a bug in the request: the log line names the setting.
        log.error("database misconfigured on %s %s: %s", request.method, request.url.path, STATEMENT_CACHE_HINT)
        return problem_response(
            request,
            503,
            "The service is misconfigured for its database pooler; retry later.",
            headers={"Retry-After": "30"},
        )
    if not database_unavailable(exc):
        return handle_unexpected(request, exc)
    # The driver's error, not Advanced Alchemy's wrapper (a closed connection comes as IntegrityError).
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, database_cause(exc))
    return problem_response(
        request,
        503,
        "The database is unavailable right now; retry in a few seconds.",
        headers={"Retry-After": "5"},
    )


def handle_recursion(request: Request[Any, Any, Any], exc: RecursionError) -> Response[bytes]:
    """A body nested deeper than the JSON decoder recurses is the caller's error (400), not a 500.

    Litestar decodes every JSON body with msgspec before any typed validation, and msgspec
    answers a few thousand levels of `[[[...]]]` with a RecursionError "while deserializing";
    any other RecursionError is still a bug (500).
    """
    if "deserializing" not in str(exc) and "decoding" not in str(exc):
        return handle_unexpected(request, exc)
    return problem_response(request, 400, "The JSON body is nested too deeply; send a flatter document.")


def handle_undecodable(request: Request[Any, Any, Any], exc: UnicodeDecodeError) -> Response[bytes]:
    """A body that is not UTF-8 is the caller's error (400), not a 500.

    Litestar hands JSON bodies to msgspec, which raises `UnicodeDecodeError` (not its own
    DecodeError) on bytes that are not UTF-8; nothing else in a request decodes bytes unchecked.
    """
    return problem_response(request, 400, "The request body is not valid UTF-8: send UTF-8 encoded JSON.")


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(
        request,
        500,
        "The server could not complete the request; retry, and quote the request id if it persists.",
    )


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ValidationException: handle_validation,
    HTTPException: handle_http,
    AuthError: handle_domain,
    DomainError: handle_domain,
    RepositoryNotFoundError: handle_not_found,
    ChatKitNotFoundError: handle_not_found,
    DBAPIError: handle_database,
    RepositoryError: handle_database,  # a wrapped DBAPIError; anything else stays a 500
    SQLAlchemyTimeoutError: handle_database,
    OSError: handle_database,
    RecursionError: handle_recursion,
    UnicodeDecodeError: handle_undecodable,
    Exception: handle_unexpected,
}
