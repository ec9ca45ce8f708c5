"""Security headers on every response.

API responses get a policy that allows nothing to load or frame them; a page that needs more
(the chat page) sets its own `Content-Security-Policy`, which is kept.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from litestar.enums import ScopeType
from litestar.types import Message, Scope

from app.http.openapi import SCHEMA_CSP

API_CSP = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
_COMMON = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-site"),
    (b"permissions-policy", b"camera=(), geolocation=(), payment=()"),
)
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
_SCHEMA_CSP = SCHEMA_CSP.encode()


def _is_schema_page(scope: Scope) -> bool:
    # The reference UI page itself (`/schema`, `/schema/`); the spec's JSON keeps the API policy.
    return str(scope.get("path", "")).rstrip("/") == "/schema"


def security_headers(*, production: bool) -> Callable[[Message, Scope], Awaitable[None]]:
    """A `before_send` hook adding the headers (HSTS only in production, behind TLS).

    A hook rather than a middleware: app middleware never sees the 404/405 answers of
    unmatched routes, which then went out without any of these headers.
    """

    async def before_send(message: Message, scope: Scope) -> None:
        if scope["type"] != ScopeType.HTTP or message["type"] != "http.response.start":
            return
        headers = list(message.get("headers", []))
        present = {name.lower() for name, _ in headers}
        extra = [h for h in _COMMON if h[0] not in present]
        if b"content-security-policy" not in present:
            extra.append((b"content-security-policy", _SCHEMA_CSP if _is_schema_page(scope) else API_CSP))
        if production and HSTS[0] not in present:
            extra.append(HSTS)
        message["headers"] = headers + extra

    return before_send
