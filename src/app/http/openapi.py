"""OpenAPI: the document's configuration and the one way a route documents a problem response."""

from __future__ import annotations

from html import escape
from typing import Any

from litestar import Request
from litestar.openapi import OpenAPIConfig
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.openapi.spec import SecurityScheme, Tag

from app import __version__
from app.contracts import Problem
from app.http.openapi_chatkit import ChatKitComponents
from app.http.problems import PROBLEM_MEDIA_TYPE


def problem_spec(description: str) -> ResponseSpec:
    """An `application/problem+json` response (RFC 9457) with what it means for this route."""
    return ResponseSpec(
        data_container=Problem, description=description, media_type=PROBLEM_MEDIA_TYPE, generate_examples=False
    )


BEARER_SECURITY: list[dict[str, list[str]]] = [{"BearerAuth": []}]

# Where the reference UI's files are served from (`app.controllers.pages`): Swagger UI's own
# files from the swagger-ui-py package; its starter script is app/static/schema.js.
SCHEMA_ASSETS_PATH = "/schema-ui"
# The reference UI's policy: its own scripts and styles only (Swagger UI sets inline styles).
SCHEMA_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


class LocalSwaggerRenderPlugin(OpenAPIRenderPlugin):
    """Swagger UI at `/schema`, every file served by this server (works offline, no CDN), with no
    inline script, so a strict Content-Security-Policy lets it run."""

    def __init__(self) -> None:
        super().__init__(path="/")

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        spec_url = escape(self.get_openapi_json_route(request), quote=True)
        title = escape(str(openapi_schema.get("info", {}).get("title", "API")))
        assets = SCHEMA_ASSETS_PATH
        return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="icon" href="{assets}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{spec_url}"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="/static/schema.js"></script>
</body>
</html>
""".encode()


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="TaskPilot",
        version=__version__,
        description=(
            "Backend of an AI task assistant spoken to through OpenAI ChatKit: hosted ChatKit "
            "sessions, a self-hosted ChatKit server at POST /chatkit, and a REST API for tasks. "
            "Errors are RFC 9457 application/problem+json."
        ),
        path="/schema",
        render_plugins=[LocalSwaggerRenderPlugin()],
        components=ChatKitComponents(
            security_schemes={
                "BearerAuth": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    bearer_format="JWT",
                    description="A JWT whose `sub` is the user id (Better Auth JWT plugin, or "
                    "`taskpilot token --user NAME` in development).",
                )
            }
        ),
        tags=[
            Tag(name="Health", description="Liveness, readiness, configuration status"),
            Tag(name="Tasks", description="The signed-in user's tasks"),
            Tag(name="ChatKit", description="Self-hosted ChatKit protocol and attachments"),
            Tag(name="Hosted sessions", description="Short-lived sessions for an Agent Builder workflow"),
            Tag(name="Development", description="Development-only helpers (AUTH_MODE=dev); absent in production"),
        ],
        use_handler_docstrings=False,
        create_examples=False,
    )
