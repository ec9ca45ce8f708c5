"""Bearer-token verification: a verified JWT's `sub` becomes `RequestContext.user_id`.

Three sources of keys, chosen by settings:
- `AUTH_JWKS_URL`: asymmetric keys (EdDSA/Ed25519, ES256, RS256) from a JWKS endpoint such as
  Better Auth's `<base>/api/auth/jwks`; cached by `kid` and re-fetched on an unknown `kid`
  (a Better Auth restart may mint a new key), at most once per `JWKS_MIN_REFRESH_SECONDS` so
  unknown-`kid` floods cannot hammer it.
- `AUTH_JWT_SECRET`: a shared HS256 secret.
- `AUTH_MODE=dev`: HS256 with the development secret; `taskpilot token --user NAME` prints one.

The algorithm is never taken from the token alone: it must be one this key source allows and
must match the key's type, which closes `alg: none` and HS256-with-a-public-key confusion.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeVar

import httpx
import jwt
from jwt import PyJWK
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler
from litestar.types import Guard

from app.core.context import RequestContext
from app.core.errors import AuthError
from app.core.limits import RateLimiter, enforce
from app.core.text import is_storable
from app.ops import metrics
from app.settings import Settings

ASYMMETRIC_ALGORITHMS = ("EdDSA", "ES256", "RS256")
SYMMETRIC_ALGORITHMS = ("HS256",)
DEV_ISSUER = "taskpilot-dev"
JWKS_MIN_REFRESH_SECONDS = 5.0
JWKS_CACHE_SECONDS = 3600.0
_KTY_FOR_ALG = {"EdDSA": "OKP", "ES256": "EC", "RS256": "RSA"}
T = TypeVar("T")


class JwksCache:
    """Keys from a JWKS endpoint, looked up by `kid`, re-fetched (rate-limited) on a miss."""

    def __init__(
        self, url: str, *, timeout: float = 5.0, min_refresh_seconds: float = JWKS_MIN_REFRESH_SECONDS
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.min_refresh_seconds = min_refresh_seconds
        self._keys: dict[str, PyJWK] = {}
        self._anonymous: list[PyJWK] = []
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def get(self, kid: str | None) -> list[PyJWK]:
        fresh = time.monotonic() - self._fetched_at < JWKS_CACHE_SECONDS
        found = self._lookup(kid)
        if found and fresh:
            return found
        async with self._lock:
            found = self._lookup(kid)
            stale = time.monotonic() - self._fetched_at >= JWKS_CACHE_SECONDS
            may_refresh = time.monotonic() - self._fetched_at >= self.min_refresh_seconds
            if (not found and may_refresh) or stale:
                await self._refresh()
                found = self._lookup(kid)
        return found

    def _lookup(self, kid: str | None) -> list[PyJWK]:
        if kid is not None:
            key = self._keys.get(kid)
            return [key] if key else []
        return list(self._keys.values()) + self._anonymous

    async def _refresh(self) -> None:
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.get(self.url, headers={"Accept": "application/json"})
                response.raise_for_status()
                document = response.json()
        except (httpx.HTTPError, json.JSONDecodeError, ValueError) as exc:
            # Keep serving cached keys; a fresh fetch is allowed again after the refresh interval.
            self._fetched_at = time.monotonic() - JWKS_CACHE_SECONDS + self.min_refresh_seconds
            if not self._keys and not self._anonymous:
                raise AuthError("the signing keys could not be fetched; try again shortly") from exc
            return
        keys: dict[str, PyJWK] = {}
        anonymous: list[PyJWK] = []
        for entry in document.get("keys", []) if isinstance(document, dict) else []:
            try:
                key = PyJWK(entry)
            except (jwt.PyJWKError, jwt.InvalidKeyError, KeyError, ValueError, TypeError):
                continue  # a key type we do not support must not hide the others
            if entry.get("kid"):
                keys[str(entry["kid"])] = key
            else:
                anonymous.append(key)
        self._keys, self._anonymous = keys, anonymous
        self._fetched_at = time.monotonic()


class TokenVerifier:
    """Verifies bearer tokens according to the settings' auth mode."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.jwks = JwksCache(settings.auth_jwks_url) if settings.auth_jwks_url else None

    async def verify(self, token: str, *, request_id: str = "") -> RequestContext:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError("the bearer token is not a well-formed JWT") from exc
        alg = header.get("alg")
        if not isinstance(alg, str) or alg.lower() == "none":
            raise AuthError("the token's algorithm is not accepted")

        s = self.settings
        issuer = s.auth_issuer
        audience = s.auth_audience
        if s.auth_mode == "dev":
            candidates: list[tuple[Any, tuple[str, ...]]] = [(s.auth_dev_secret.get(), SYMMETRIC_ALGORITHMS)]
            issuer, audience = DEV_ISSUER, None
        else:
            candidates = []
            if alg in ASYMMETRIC_ALGORITHMS and self.jwks is not None:
                kid = header.get("kid")
                for key in await self.jwks.get(kid if isinstance(kid, str) else None):
                    if key.key_type != _KTY_FOR_ALG[alg]:
                        continue
                    key_alg = key._jwk_data.get("alg")
                    if key_alg and key_alg != alg:
                        continue
                    candidates.append((key.key, (alg,)))
                if not candidates:
                    raise AuthError("no signing key matches the token's key id")
            elif alg in SYMMETRIC_ALGORITHMS and s.auth_jwt_secret is not None:
                candidates.append((s.auth_jwt_secret.get(), SYMMETRIC_ALGORITHMS))
            else:
                raise AuthError("the token's algorithm is not accepted")

        last_error: AuthError | None = None
        for key, algorithms in candidates:
            if alg not in algorithms:
                continue
            try:
                claims = jwt.decode(
                    token,
                    key=key,
                    algorithms=list(algorithms),
                    issuer=issuer,
                    audience=audience,
                    leeway=s.auth_leeway_seconds,
                    options={
                        "require": ["sub", "exp"],
                        "verify_aud": audience is not None,
                        "verify_iss": issuer is not None,
                    },
                )
            except jwt.ExpiredSignatureError as exc:
                raise AuthError("the token has expired; sign in again") from exc
            except jwt.ImmatureSignatureError as exc:
                raise AuthError("the token is not valid yet") from exc
            except jwt.InvalidIssuerError as exc:
                raise AuthError("the token was issued by an issuer this server does not trust") from exc
            except jwt.InvalidAudienceError as exc:
                raise AuthError("the token is meant for a different audience") from exc
            except jwt.MissingRequiredClaimError as exc:
                raise AuthError(f"the token has no '{exc.claim}' claim") from exc
            except jwt.InvalidSignatureError:
                last_error = AuthError("the token's signature is invalid")
                continue
            except jwt.PyJWTError as exc:
                raise AuthError("the token could not be verified") from exc
            subject = claims.get("sub")
            if not isinstance(subject, str) or not subject or len(subject) > 128:
                raise AuthError("the token's 'sub' claim must be a user id of 1 to 128 characters")
            if not is_storable(subject):
                # Every row is keyed by this id: it must be text the database can store.
                raise AuthError("the token's 'sub' claim contains a NUL character or an unpaired surrogate")
            return RequestContext(user_id=subject, request_id=request_id, claims=claims)
        raise last_error or AuthError("the token's algorithm is not accepted")


def bearer_token(authorization: str | None) -> str:
    """The token from an `Authorization: Bearer <token>` header, or an `AuthError`."""
    if not authorization:
        raise AuthError("send an 'Authorization: Bearer <token>' header")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("the Authorization header must be 'Bearer <token>'")
    return token.strip()


def mint_dev_token(settings: Settings, user_id: str, *, ttl_seconds: int = 24 * 3600) -> str:
    """A development token for `user_id`, accepted only while `AUTH_MODE=dev`."""
    if settings.auth_mode != "dev":
        raise AuthError("development tokens exist only with AUTH_MODE=dev")
    now = int(time.time())
    claims = {"sub": user_id, "iss": DEV_ISSUER, "iat": now, "exp": now + ttl_seconds}
    return jwt.encode(claims, settings.auth_dev_secret.get(), algorithm="HS256")


def mint_token(settings: Settings, user_id: str, *, ttl_seconds: int) -> str:
    """A bearer token this server accepts, for scripts and smoke tests: a development token with
    `AUTH_MODE=dev`; with `AUTH_MODE=jwt`, an HS256 token signed with `AUTH_JWT_SECRET` carrying the
    claims `verify` requires (`sub`, `exp`; `iss` and `aud` when AUTH_ISSUER / AUTH_AUDIENCE are set).
    Keys behind `AUTH_JWKS_URL` are the identity provider's: it mints those tokens, not TaskPilot."""
    if settings.auth_mode == "dev":
        return mint_dev_token(settings, user_id, ttl_seconds=ttl_seconds)
    if settings.auth_jwt_secret is None:
        raise AuthError(
            "AUTH_JWT_SECRET is not set: with AUTH_MODE=jwt tokens are minted from the shared secret; "
            "tokens for AUTH_JWKS_URL's keys come from your identity provider"
        )
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user_id, "iat": now, "exp": now + ttl_seconds}
    if settings.auth_issuer:
        claims["iss"] = settings.auth_issuer
    if settings.auth_audience:
        claims["aud"] = settings.auth_audience
    return jwt.encode(claims, settings.auth_jwt_secret.get(), algorithm="HS256")


FAILED_SIGN_INS_DETAIL = "Too many failed sign-in attempts from this address; wait {retry_after} s before retrying."


class Authenticator:
    """Every credential check of the service, and the one rule for the ones that fail.

    Bearer tokens (REST, ChatKit, `/mcp`, the `/metrics` scrape token) and the signed `?token=`
    of attachment URLs all come through here, so a failed attempt counts against the caller's address whichever door it
    knocked on; past `RATE_LIMIT_ANONYMOUS_PER_MINUTE` the answer is 429 (`TooManyRequests`,
    with the wait) instead of 401. Valid credentials are never counted nor refused.
    """

    def __init__(self, verifier: TokenVerifier, failed_sign_ins: RateLimiter) -> None:
        self.verifier = verifier
        self.failed_sign_ins = failed_sign_ins

    async def attempt(self, client: str | None, check: Callable[[], Awaitable[T]]) -> T:
        """`check()`'s result; when it raises `AuthError`, count the failure first (429 past the limit)."""
        try:
            return await check()
        except AuthError:
            await enforce(
                self.failed_sign_ins,
                f"ip:{client or 'unknown'}",
                FAILED_SIGN_INS_DETAIL,
                on_refusal=metrics.RATE_LIMITED.labels(limit="failed_sign_ins").inc,
            )
            raise

    async def bearer(self, authorization: str | None, *, client: str | None, request_id: str = "") -> RequestContext:
        """The caller of an `Authorization: Bearer <token>` header."""

        async def check() -> RequestContext:
            return await self.verifier.verify(bearer_token(authorization), request_id=request_id)

        return await self.attempt(client, check)

    async def signed(self, client: str | None, verify: Callable[[], str]) -> str:
        """The user a signed URL token was issued to (`verify` checks it and raises `AuthError`)."""

        async def check() -> str:
            return verify()

        return await self.attempt(client, check)


def client_address(request: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    return request.client.host if request.client else None


# Where the verified caller of a request is kept once known, so it is verified once per request.
CONTEXT_STATE_KEY = "request_context"


def request_context_provider(
    authenticator: Authenticator,
) -> Callable[[Request[Any, Any, Any]], Awaitable[RequestContext]]:
    """The Litestar dependency `context`: the verified caller, or a 401 (429) problem via `AuthError`."""

    async def provide_request_context(request: Request[Any, Any, Any]) -> RequestContext:
        state = request.scope.setdefault("state", {})
        known = state.get(CONTEXT_STATE_KEY)
        if isinstance(known, RequestContext):
            return known
        context = await authenticator.bearer(
            request.headers.get("authorization"),
            client=client_address(request),
            request_id=str(state.get("request_id", "")),
        )
        state["user_id"] = context.user_id
        context = replace(context, base_url=str(request.base_url).rstrip("/"))
        state[CONTEXT_STATE_KEY] = context
        return context

    return provide_request_context


def needs_caller(handler: BaseRouteHandler) -> bool:
    """Whether `handler` takes the `context` dependency, itself or through the dependencies it takes."""
    dependencies = handler.resolve_dependencies()
    pending = list(handler.parsed_fn_signature.parameters)
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name == "context":
            return True
        if name in seen or name not in dependencies:
            continue
        seen.add(name)
        pending.extend(dependencies[name].parsed_fn_signature.parameters)
    return False


def caller_before_body(authenticator: Authenticator) -> Guard:
    """A guard that verifies the caller of every route needing one before anything reads its body.

    Litestar reads and decodes a handler's `data` before it resolves dependencies, so without this
    an anonymous caller's body (up to the route's size limit, tens of megabytes on /chatkit with
    dictation on) was read and decoded only to be answered 401. Guards run first: the answer now
    comes from the headers alone, and the unread body is never touched.
    """
    provide = request_context_provider(authenticator)
    decided: dict[BaseRouteHandler, bool] = {}

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        needed = decided.get(handler)
        if needed is None:
            needed = decided[handler] = needs_caller(handler)
        if needed and isinstance(connection, Request):
            await provide(connection)

    return guard
