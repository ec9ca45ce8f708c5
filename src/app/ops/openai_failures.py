"""What an OpenAI SDK failure was: the one ladder every caller of OpenAI reads.

`describe_openai_failure(exc)` sorts an exception of the `openai` package into a `kind` (the
order of the `isinstance` checks matters: a timeout is also a connection error, a quota refusal
is also a 429), with what a log line and a metric may say of it. Callers keep only their words:
hosted sessions, dictation and the assistant each say what the failure means for their user
(`OpenAIFailure.upstream_error` builds a service's `UpstreamError` from such words).

Never OpenAI's message: it may quote a masked key, the workflow id or the user's own text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import openai

from app.core.errors import UpstreamError, UpstreamFailure
from app.core.limits import retry_after_seconds

OpenAIFailureKind = Literal[
    "timeout",
    "unreachable",
    "auth",
    "quota",
    "rate_limit",
    "not_found",
    "bad_request",
    "server_error",
    "refused",  # any other HTTP status
    "unreadable",  # no status: an answer the SDK could not read
]

# The metric label of each kind (`taskpilot_*_errors_total{kind=...}`); dashboards read these.
METRIC_LABELS: Final[dict[OpenAIFailureKind, str]] = {
    "timeout": "timeout",
    "unreachable": "unreachable",
    "auth": "auth",
    "quota": "rate_limit",
    "rate_limit": "rate_limit",
    "not_found": "not_found",
    "bad_request": "bad_request",
    "server_error": "server_error",
    "refused": "other",
    "unreadable": "other",
}
# The words a caller gives for a kind it has no words of its own for.
FALLBACK: Final[dict[OpenAIFailureKind, OpenAIFailureKind]] = {
    "quota": "rate_limit",
    "bad_request": "refused",
    "server_error": "refused",
}
# What a service's error means for the HTTP answer (`app.http.problems.UPSTREAM_STATUS`).
UPSTREAM_FAILURE: Final[dict[OpenAIFailureKind, UpstreamFailure]] = {
    "timeout": "timeout",
    "unreachable": "unavailable",
    "quota": "unavailable",
    "rate_limit": "unavailable",
}

DEFAULT_RETRY_AFTER_SECONDS = 10
MAX_RETRY_AFTER_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class OpenAIFailure:
    kind: OpenAIFailureKind
    status: int | None = None  # OpenAI's HTTP status, when it answered
    retry_after: int | None = None  # seconds OpenAI asked to wait (429 only)
    log_fields: Mapping[str, Any] | None = None

    @property
    def metric_label(self) -> str:
        return METRIC_LABELS[self.kind]

    def words(self, words: Mapping[OpenAIFailureKind, str]) -> str:
        """The caller's text for this kind; `{status}` and `{retry_after}` are filled in."""
        text = words.get(self.kind) or words[FALLBACK.get(self.kind, "refused")]
        return text.format(status=self.status, retry_after=self.retry_after)

    def upstream_error(self, words: Mapping[OpenAIFailureKind, str], *, sent: bool = False) -> UpstreamError:
        """A service's `UpstreamError` with the caller's words. `sent`: the call carried work OpenAI
        may have done (an upload), so an `unavailable` failure must not be answered 503."""
        return UpstreamError(
            self.words(words),
            failure=UPSTREAM_FAILURE.get(self.kind, "rejected"),
            retry_after=self.retry_after if self.kind == "rate_limit" else None,
            sent=sent,
        )


def describe_openai_failure(exc: BaseException) -> OpenAIFailure | None:
    """The kind of an `openai` failure, or None when `exc` is not one."""
    if not isinstance(exc, openai.OpenAIError):
        return None
    fields: dict[str, Any] = {"error": type(exc).__name__}
    if isinstance(exc, openai.APIError):
        fields.update(upstream_type=exc.type, upstream_code=exc.code)
    status = exc.status_code if isinstance(exc, openai.APIStatusError) else None
    if isinstance(exc, openai.APIStatusError):
        fields.update(upstream_status=exc.status_code, upstream_request_id=exc.request_id)
    kind: OpenAIFailureKind
    retry_after = None
    if isinstance(exc, openai.APITimeoutError):
        kind = "timeout"
    elif isinstance(exc, openai.APIConnectionError):
        kind = "unreachable"
    elif isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        kind = "auth"
    elif isinstance(exc, openai.RateLimitError):
        if exc.code == "insufficient_quota":
            kind = "quota"
        else:
            kind = "rate_limit"
            retry_after = retry_after_from_headers(exc.response.headers)
    elif isinstance(exc, openai.NotFoundError):
        kind = "not_found"
    elif isinstance(exc, openai.BadRequestError):
        kind = "bad_request"
    elif isinstance(exc, openai.InternalServerError):
        kind = "server_error"
    elif isinstance(exc, openai.APIStatusError):
        kind = "refused"
    else:
        kind = "unreadable"
    return OpenAIFailure(kind=kind, status=status, retry_after=retry_after, log_fields=fields)


def retry_after_from_headers(headers: Mapping[str, str]) -> int:
    """Seconds from `retry-after-ms` or `retry-after` (delta form), clamped; a default otherwise."""
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            continue
        if math.isfinite(seconds) and seconds >= 0:
            return min(MAX_RETRY_AFTER_SECONDS, retry_after_seconds(seconds))
    return DEFAULT_RETRY_AFTER_SECONDS
