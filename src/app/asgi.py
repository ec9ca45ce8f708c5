"""The application factory: wiring only (plugins, routes, dependencies, errors, OpenAPI)."""

from __future__ import annotations

from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig, SQLAlchemyPlugin
from agents.models.interface import ModelProvider
from litestar import Litestar, Router, asgi
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme, Tag
from litestar.types import Receive, Scope, Send

from app import __version__, metrics
from app.agents.assistant import Assistant, TaskPilotConverter
from app.agents.mcp import TaskMCP
from app.agents.providers import ProviderConfig, build_model_provider
from app.agents.server import ProtocolError, TaskPilotChatKitServer
from app.agents.tasks_ui import TaskActions
from app.auth import TokenVerifier, provide_request_context
from app.controllers.attachments import AttachmentController
from app.controllers.chatkit import ChatKitController, handle_protocol_error
from app.controllers.health import HealthController
from app.controllers.pages import page_route_handlers
from app.controllers.sessions import HostedSessionController, close_hosted_chatkit
from app.controllers.tasks import TaskController
from app.errors import EXCEPTION_HANDLERS
from app.lifecycle import Drain
from app.observability import configure_logging, request_id_middleware
from app.ratelimit import build_limits
from app.runtime import tune_garbage_collector_on_startup
from app.security import security_headers
from app.settings import Settings
from app.store.attachments import AttachmentService
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
            Tag(name="Development", description="Development-only helpers (AUTH_MODE=dev); absent in production"),
        ],
        use_handler_docstrings=False,
        create_examples=False,
    )


def build_chatkit_server(
    settings: Settings,
    db_config: SQLAlchemyAsyncConfig,
    model_provider: ModelProvider | None = None,
    *,
    attachments: AttachmentService | None = None,
) -> TaskPilotChatKitServer:
    """The self-hosted ChatKit server: Store, attachments, assistant and model provider from settings.

    `model_provider` replaces the configured one (tests pass a scripted model this way).
    """
    attachments = attachments or AttachmentService.from_settings(settings, db_config)
    session_maker = db_config.create_session_maker()
    if settings.model_provider == "openai":
        api_key = settings.openai_api_key
    else:
        api_key = settings.model_api_key or settings.openai_api_key
    provider, model_name = build_model_provider(
        ProviderConfig(
            provider=settings.model_provider,
            model=settings.model,
            api_key=api_key.get() if api_key else None,
            base_url=settings.openai_base_url,
            timeout_seconds=settings.openai_timeout_seconds,
            offline_delay_ms=settings.offline_model_delay_ms,
        )
    )
    if model_provider is not None:
        provider = model_provider
    assistant = Assistant(
        provider=provider,
        model_name=model_name,
        context_tokens=settings.model_context_tokens,
        title_with_model=settings.model_provider != "offline" and model_provider is None,
        converter=TaskPilotConverter(
            attachments,
            image_bytes=settings.attachment_model_image_bytes,
            text_chars=settings.attachment_model_text_chars,
        ),
    )
    return TaskPilotChatKitServer(
        attachments.store,
        assistant,
        TaskActions(session_maker),
        session_maker,
        attachment_store=attachments,
        keepalive_seconds=settings.stream_keepalive_seconds,
        log_content=settings.log_content,
    )


def create_app(settings: Settings | None = None, *, model_provider: ModelProvider | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    configure_logging(settings)
    db_config = build_db_config(settings)

    def provide_settings() -> Settings:
        return settings

    api = Router(
        path="/",
        route_handlers=[HostedSessionController, TaskController, ChatKitController, AttachmentController],
        security=BEARER_SECURITY,
        dependencies={"context": Provide(provide_request_context)},
    )
    verifier = TokenVerifier(settings)
    attachments = AttachmentService.from_settings(settings, db_config)
    chatkit_server = build_chatkit_server(settings, db_config, model_provider, attachments=attachments)
    limits = build_limits(settings)
    drain = Drain(settings.shutdown_grace_seconds)
    metrics.POOLS.sources.append(lambda: db_config.get_engine().pool)

    async def start_draining_on_sigterm(app: Litestar) -> None:
        drain.install_signal_handlers()

    async def close_limits(app: Litestar) -> None:
        await limits.aclose()

    task_mcp = TaskMCP(
        session_maker=db_config.create_session_maker(),
        verifier=verifier,
        max_request_bytes=settings.max_request_bytes,
    )

    @asgi("/mcp", is_mount=True, copy_scope=True)
    async def mcp_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        """The task tools over MCP (streamable HTTP); authenticates its own bearer tokens."""
        # Litestar's and Starlette's ASGI aliases describe the same protocol in different types.
        await task_mcp(scope, receive, send)  # type: ignore[arg-type]

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
        route_handlers=[HealthController, api, mcp_endpoint, *page_route_handlers(settings)],
        lifespan=[task_mcp.lifespan],
        plugins=[SQLAlchemyPlugin(config=db_config)],
        dependencies={
            "settings": Provide(provide_settings, sync_to_thread=False),
            "chatkit_server": Provide(lambda: chatkit_server, sync_to_thread=False),
            "attachment_service": Provide(lambda: attachments, sync_to_thread=False),
            "limits": Provide(lambda: limits, sync_to_thread=False),
            "drain": Provide(lambda: drain, sync_to_thread=False),
        },
        exception_handlers={**EXCEPTION_HANDLERS, ProtocolError: handle_protocol_error},
        middleware=[request_id_middleware],
        before_send=[security_headers(production=settings.is_production)],
        cors_config=cors,
        openapi_config=openapi_config(),
        request_max_body_size=settings.max_request_bytes,
        state=State(
            {"settings": settings, "verifier": verifier, "db_config": db_config, "limits": limits, "drain": drain}
        ),
        on_startup=[start_draining_on_sigterm, tune_garbage_collector_on_startup],
        on_shutdown=[close_hosted_chatkit, close_limits],
        logging_config=None,
        debug=False,
    )
