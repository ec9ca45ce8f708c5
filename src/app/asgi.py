"""The application factory: wiring only (plugins, routes, dependencies, errors, OpenAPI)."""

from __future__ import annotations

from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin
from litestar import Litestar, Router
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme, Tag

from app import __version__
from app.auth import TokenVerifier, provide_request_context
from app.controllers.health import HealthController
from app.errors import EXCEPTION_HANDLERS
from app.observability import configure_logging, request_id_middleware
from app.settings import Settings
from app.store.db import build_db_config

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
        ],
        use_handler_docstrings=False,
        create_examples=False,
    )


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    configure_logging(settings)
    db_config = build_db_config(settings)

    def provide_settings() -> Settings:
        return settings

    api = Router(
        path="/",
        route_handlers=[],
        security=BEARER_SECURITY,
        dependencies={"context": Provide(provide_request_context)},
    )
    cors = (
        CORSConfig(
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
            allow_credentials=True,
            max_age=600,
        )
        if settings.cors_origins
        else None
    )
    return Litestar(
        route_handlers=[HealthController, api],
        plugins=[SQLAlchemyPlugin(config=db_config)],
        dependencies={
            "settings": Provide(provide_settings, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[request_id_middleware],
        cors_config=cors,
        openapi_config=openapi_config(),
        request_max_body_size=settings.max_request_bytes,
        state=State({"settings": settings, "verifier": TokenVerifier(settings), "db_config": db_config}),
        logging_config=None,
        debug=False,
    )
