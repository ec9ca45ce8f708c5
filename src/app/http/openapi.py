"""OpenAPI: the document's configuration and the one way a route documents a problem response."""

from __future__ import annotations

from litestar.openapi import OpenAPIConfig
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme, Tag

from app import __version__
from app.contracts import Problem
from app.http.problems import PROBLEM_MEDIA_TYPE


def problem_spec(description: str) -> ResponseSpec:
    """An `application/problem+json` response (RFC 9457) with what it means for this route."""
    return ResponseSpec(
        data_container=Problem, description=description, media_type=PROBLEM_MEDIA_TYPE, generate_examples=False
    )


BEARER_SECURITY: list[dict[str, list[str]]] = [{"BearerAuth": []}]


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
        render_plugins=[ScalarRenderPlugin()],
        components=Components(
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
