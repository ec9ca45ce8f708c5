"""The page people open at `/`, its static assets, and the development-only token route.

The page is plain HTML, CSS and ES modules under `app/static/` (no build step). It mounts the
official ChatKit web component when its script loads from OpenAI's CDN and falls back to a
built-in console that speaks the same `/chatkit` protocol when it does not.

`POST /api/dev/token` exists only while `AUTH_MODE=dev` (never with `APP_ENV=production`, which
refuses dev auth): it lets the page sign in as a typed user name without a sign-in service.
"""

from __future__ import annotations

import datetime as dt
import html
import importlib.resources
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import jwt
import msgspec
from litestar import Controller, Response, get, head, post
from litestar.datastructures import CacheControlHeader
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

from app.contracts import Input, Struct
from app.http.auth import mint_dev_token
from app.http.openapi import SCHEMA_ASSETS_PATH, problem_spec
from app.settings import Settings

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
SWAGGER_UI_DIR = Path(str(importlib.resources.files("swagger_ui") / "static"))
INDEX_PATH = STATIC_DIR / "index.html"
DEV_TOKEN_TTL_SECONDS = 12 * 3600
# Assets change with every deploy and carry no content hash: browsers revalidate (cheap 304s).
REVALIDATE = CacheControlHeader(no_cache=True)

DevUserId = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$",
        description="1 to 64 characters: letters, digits, and . _ @ - (not first)",
        examples=["alice"],
    ),
]


class DevTokenRequest(Input, kw_only=True):
    """Who to sign in as. Development only: anyone who can reach the server may ask."""

    user_id: DevUserId


class DevToken(Struct, kw_only=True):
    """A development bearer token; send it as `Authorization: Bearer <token>`."""

    token: str
    token_type: Literal["Bearer"]
    user_id: str
    expires_at: dt.datetime


CHATKIT_ORIGIN = "https://cdn.platform.openai.com"


def page_csp(settings: Settings) -> str:
    """The page's Content-Security-Policy: its own files, plus ChatKit's CDN (script, iframe).

    No inline script anywhere. Styles allow 'unsafe-inline' only for ChatKit's web component,
    which may style its own element; the page itself uses none. `AUTH_TOKEN_URL`'s origin is
    added to connect-src so the page can fetch tokens from the sign-in service.
    """
    connect = ["'self'", CHATKIT_ORIGIN]
    if settings.auth_token_url:
        parts = urlsplit(settings.auth_token_url)
        connect.append(f"{parts.scheme}://{parts.netloc}")
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' {CHATKIT_ORIGIN}",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data: blob:",
            "font-src 'self'",
            f"connect-src {' '.join(dict.fromkeys(connect))}",
            f"frame-src {CHATKIT_ORIGIN}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def render_index(settings: Settings) -> bytes:
    """The page with this deployment's settings in its `<meta>` tags (empty when unset)."""
    page = INDEX_PATH.read_text(encoding="utf-8")
    values = {
        "chatkit-domain-key": settings.chatkit_domain_key or "",
        "taskpilot-token-url": settings.auth_token_url or "",
    }
    for name, value in values.items():
        page = page.replace(
            f'<meta name="{name}" content="">', f'<meta name="{name}" content="{html.escape(value, quote=True)}">'
        )
    return page.encode()


class PageController(Controller):
    include_in_schema = False

    @get("/", cache_control=REVALIDATE, sync_to_thread=False)
    def index(self, settings: NamedDependency[Settings]) -> Response[bytes]:
        """The chat page. Read per request so an edited page shows on reload (it is a few KB)."""
        return Response(
            content=render_index(settings),
            media_type="text/html",
            headers={"Content-Security-Policy": page_csp(settings)},
        )

    @head("/", cache_control=REVALIDATE, sync_to_thread=False)
    def index_head(self, settings: NamedDependency[Settings]) -> Response[None]:
        """The page's headers without its body: uptime checks and `curl -I` ask with HEAD."""
        return Response(
            content=None,
            media_type="text/html",
            headers={
                "Content-Security-Policy": page_csp(settings),
                "Content-Length": str(len(render_index(settings))),
            },
        )


class DevTokenController(Controller):
    path = "/api/dev"
    tags = ["Development"]

    @post(
        "/token",
        operation_id="CreateDevelopmentToken",
        summary="Mint a development token for a user name (AUTH_MODE=dev only)",
        description=(
            "Exists only while the server runs with `AUTH_MODE=dev`: with `APP_ENV=production` or "
            "`AUTH_MODE=jwt` the route is absent (404). The page at `/` uses it to sign in as a typed "
            "user name. In production the host application supplies tokens (for example Better Auth's "
            "JWT plugin)."
        ),
        status_code=200,
        responses={400: problem_spec("The user id is missing or has characters outside the accepted set")},
    )
    async def create_token(self, data: JSONBody[DevTokenRequest], settings: NamedDependency[Settings]) -> DevToken:
        token = mint_dev_token(settings, data.user_id, ttl_seconds=DEV_TOKEN_TTL_SECONDS)
        expires = jwt.decode(token, options={"verify_signature": False})["exp"]
        return DevToken(
            token=token,
            token_type="Bearer",
            user_id=data.user_id,
            expires_at=dt.datetime.fromtimestamp(expires, dt.UTC),
        )


def page_route_handlers(settings: Settings) -> list[ControllerRouterHandler]:
    """The page, its assets and, in development only, the token route."""
    handlers: list[ControllerRouterHandler] = [
        PageController,
        create_static_files_router(
            path="/static",
            directories=[STATIC_DIR],
            name="static",
            cache_control=REVALIDATE,
            include_in_schema=False,
        ),
        create_static_files_router(
            path=SCHEMA_ASSETS_PATH,
            # Swagger UI 5's files as the swagger-ui-py package ships them (its starter is /static/schema.js).
            directories=[SWAGGER_UI_DIR],
            name="schema-ui",
            cache_control=REVALIDATE,
            include_in_schema=False,
        ),
    ]
    if settings.auth_mode == "dev" and not settings.is_production:
        handlers.append(DevTokenController)
    return handlers
