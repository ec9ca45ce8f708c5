"""The domain error tree: one root, no HTTP.

Every rule a caller can break raises a `DomainError` subclass whose `detail` is safe to show and
says what to do next. How an error reaches a client (status code, problem+json, a ChatKit
`error` event, an MCP tool error) is decided by the adapter that catches it — `app.http.problems`
maps each class here to its HTTP status — so services, stores and agents never speak HTTP.
"""

from __future__ import annotations

from typing import Literal

UpstreamFailure = Literal["rejected", "unavailable", "timeout"]


class DomainError(Exception):
    """A rule the caller broke (bad input, by default). `detail` is safe to show; `field` names the input."""

    def __init__(self, detail: str, *, field: str | None = None, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        # Several field-level problems at once ({"field", "message", "source"}), when there are.
        self.errors = errors or []

    retry_after: int | None = None  # seconds the caller should wait before retrying, when known


class NotFound(DomainError):
    """The named thing does not exist, or belongs to another user (the two are indistinguishable)."""


class Conflict(DomainError):
    """The request contradicts the current state (a duplicate, a step out of order)."""


class PayloadTooLarge(DomainError):
    """The content is bigger than a configured limit."""


class RequestTimeout(DomainError):
    """The client stopped sending its request (a body stalled) for longer than the server waits."""


class UnsupportedMediaType(DomainError):
    """The content is not of a type this server accepts, or not what it was declared to be."""


class Unsupported(DomainError):
    """A feature this deployment does not offer (not configured, or not implemented)."""


class ProtocolError(DomainError):
    """A ChatKit request refused before any stream opens: malformed, or naming items it may not."""


class AuthError(DomainError):
    """A credential was missing or failed verification. `reason` is safe to show the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TooManyRequests(DomainError):
    """The caller exceeded a rate limit; `retry_after` says when to try again."""

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class ServiceUnavailable(DomainError):
    """The service cannot take this request now (draining, a dependency down); retry later."""

    def __init__(self, detail: str, *, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class UpstreamError(DomainError):
    """A service we depend on (OpenAI) failed: it `rejected` the call, was `unavailable`, or timed out.

    `sent`: the request may have reached the service, which may have done (and billed) the work. Such
    a failure is never answered 503: a load balancer re-sends a 503 elsewhere (deploy/haproxy.cfg's
    `retry-on 503`), which must mean that nothing was done.
    """

    def __init__(
        self,
        detail: str,
        *,
        failure: UpstreamFailure = "rejected",
        retry_after: int | None = None,
        sent: bool = False,
    ) -> None:
        super().__init__(detail)
        self.failure: UpstreamFailure = failure
        self.retry_after = retry_after
        self.sent = sent


class QuotaExceeded(DomainError):
    """The user already keeps as much of something as a per-user quota allows (429, no Retry-After:
    waiting does not help, deleting does). `quota` names the setting."""

    def __init__(self, detail: str, *, quota: str) -> None:
        super().__init__(detail, errors=[{"field": quota, "message": detail, "source": "quota"}])
        self.quota = quota


class BudgetExceeded(QuotaExceeded):
    """The user spent a per-period allowance (429): unlike a count quota, waiting helps, so it says
    when the allowance is back (`retry_after` seconds)."""

    def __init__(self, detail: str, *, quota: str, retry_after: int) -> None:
        super().__init__(detail, quota=quota)
        self.retry_after = retry_after


class StorageQuotaExceeded(PayloadTooLarge):
    """Storing this content would take the user past their storage quota (413)."""

    def __init__(self, detail: str, *, quota: str) -> None:
        super().__init__(detail, errors=[{"field": quota, "message": detail, "source": "quota"}])
        self.quota = quota
