"""The application factory: build the services once, then wire them into Litestar one way.

`create_app(settings)` builds a `Services` container (every long-lived object of the process:
the ChatKit server and its Store, the attachment service, the hosted-sessions client, limits,
the drain, the MCP server) and hands each to the routes as a Litestar dependency. Nothing is
made lazily in a controller, and nothing is reachable through a second path.

One construction style, by room. Below agents/ (store/, services/, ops/, http/) an object that
settings configure is built by its own `X.from_settings(settings)` (or takes `settings` when it
keeps reading them, as `HostedChatKit` does), so what it reads is written once, beside it.
agents/ never sees `Settings`: this module hands the assistant, the ChatKit server, the tools
and the MCP server plain values (`ProviderConfig`, keyword arguments), so they run the same in
tests, bench/ and MCP. Each object is built once here and shared (one `UserLimits` for all).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig, SQLAlchemyPlugin
from agents.models.interface import ModelProvider
from litestar import Litestar, Router
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide

from app.agents.assistant import Assistant
from app.agents.chatkit.actions import TaskActions
from app.agents.chatkit.composer import ComposerChoices
from app.agents.chatkit.server import TaskPilotChatKitServer
from app.agents.chatkit.turns import TurnLocks
from app.agents.history import TaskPilotConverter
from app.agents.mcp import build_task_mcp_server
from app.agents.providers import ProviderConfig, build_model_provider, reasoning_settings
from app.controllers.attachments import AttachmentController
from app.controllers.chatkit import ChatKitController
from app.controllers.health import HealthController
from app.controllers.mcp import AuthenticatedMCP, mcp_route
from app.controllers.pages import page_route_handlers
from app.controllers.sessions import HostedSessionController
from app.controllers.tasks import TaskController
from app.core.clock import Now, utcnow
from app.http.auth import Authenticator, TokenVerifier, caller_before_body, request_context_provider
from app.http.bodies import body_reader
from app.http.client_tools import CLIENT_TOOLS_HEADER
from app.http.middleware import request_id_middleware
from app.http.openapi import BEARER_SECURITY, openapi_config
from app.http.problems import EXCEPTION_HANDLERS
from app.http.proxies import forwarded_client_middleware
from app.http.security import security_headers
from app.http.timeouts import body_read_timeout_middleware
from app.http.timezone import provide_time_zone
from app.ops import metrics
from app.ops.admission import Admission, build_admission
from app.ops.drain import Drain
from app.ops.logging import configure_logging
from app.ops.ratelimit import Limits, build_limits
from app.ops.runtime import tune_garbage_collector_on_startup
from app.ops.tracing import Tracing
from app.services.attachments.service import AttachmentService
from app.services.openai_sessions import HostedChatKit
from app.services.quotas import UserLimits
from app.services.transcription import Transcriber
from app.services.usage import UsageBook
from app.settings import Settings
from app.store.db import SessionMaker, build_db_config
from app.store.models import Base

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from litestar.plugins.opentelemetry import OpenTelemetryPlugin
    from opentelemetry.trace import Span

log = logging.getLogger("app")


def build_chatkit_server(
    settings: Settings,
    session_maker: SessionMaker,
    attachments: AttachmentService,
    model_provider: ModelProvider | None = None,
    now: Now = utcnow,
    transcriber: Transcriber | None = None,
    limits: UserLimits | None = None,
) -> TaskPilotChatKitServer:
    """The self-hosted ChatKit server: Store, attachments, assistant and model provider from settings.

    `model_provider` replaces the configured one (tests pass a scripted model this way); `now`
    the instant "today" is taken from (tests pass a fixed one); `limits` the per-user limits
    (the attachment service's when not given: one `UserLimits` per app).
    """
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
            # Only AGENTS_TRACING=openai: OpenTelemetry being on never turns the SDK's own traces on.
            tracing=settings.agents_tracing == "openai",
            tracing_api_key=settings.openai_api_key.get() if settings.openai_api_key else None,
            transport=settings.model_transport,
        )
    )
    if model_provider is not None:
        provider = model_provider
    assistant = Assistant(
        provider=provider,
        model_name=model_name,
        context_tokens=settings.model_context_tokens,
        title_with_model=settings.model_provider != "offline"
        and model_provider is None
        and settings.thread_titles == "model",
        plain_text_content=settings.model_provider == "openai-compatible",
        reasoning=reasoning_settings(settings.reasoning_effort, settings.reasoning_summary),
        agents_tracing=settings.agents_tracing == "openai",
        converter=TaskPilotConverter(
            attachments,
            image_bytes=settings.attachment_model_image_bytes,
            text_chars=settings.attachment_model_text_chars,
        ),
    )
    return TaskPilotChatKitServer(
        attachments.store,
        assistant,
        TaskActions(session_maker, now=now, default_time_zone=settings.default_time_zone),
        session_maker,
        attachment_store=attachments,
        keepalive_seconds=settings.stream_keepalive_seconds,
        transcriber=transcriber,
        log_content=settings.log_content,
        limits=limits or attachments.limits,
        now=now,
        model_slow_notice_seconds=settings.model_slow_notice_seconds,
        composer=ComposerChoices(default_model=settings.model, models=settings.model_choices),
        turns=TurnLocks(attachments.store, lease_seconds=settings.chatkit_turn_lease_seconds),
        default_time_zone=settings.default_time_zone,
        # Every turn's tokens are recorded; the daily budget is kept only when one is set.
        usage=UsageBook(session_maker, tokens_per_day=settings.quota_tokens_per_user_per_day, now=now),
    )


@dataclass(frozen=True, slots=True)
class Services:
    """Every long-lived object of one app, built once from settings."""

    settings: Settings
    db_config: SQLAlchemyAsyncConfig
    verifier: TokenVerifier
    authenticator: Authenticator
    limits: Limits
    drain: Drain
    admission: Admission
    attachments: AttachmentService
    chatkit_server: TaskPilotChatKitServer
    hosted_chatkit: HostedChatKit
    transcriber: Transcriber | None  # None: dictation is not configured, input.transcribe is 501
    mcp: AuthenticatedMCP
    tracing: Tracing

    @classmethod
    def build(cls, settings: Settings, *, model_provider: ModelProvider | None = None, now: Now = utcnow) -> Services:
        db_config = build_db_config(settings, SQLAlchemyAsyncConfig, before_send_handler="autocommit")
        session_maker = db_config.create_session_maker()
        verifier = TokenVerifier(settings)
        limits = build_limits(settings)
        # One authenticator for every credential check, so failed sign-ins share one budget.
        authenticator = Authenticator(verifier, limits.anonymous)
        user_limits = UserLimits.from_settings(settings)
        attachments = AttachmentService.from_settings(settings, session_maker, limits=user_limits)
        transcriber = Transcriber.from_settings(settings)
        return cls(
            settings=settings,
            db_config=db_config,
            verifier=verifier,
            authenticator=authenticator,
            limits=limits,
            drain=Drain(settings.shutdown_grace_seconds),
            admission=build_admission(settings),
            attachments=attachments,
            chatkit_server=build_chatkit_server(
                settings, session_maker, attachments, model_provider, now, transcriber, limits=user_limits
            ),
            hosted_chatkit=HostedChatKit(settings),
            transcriber=transcriber,
            tracing=Tracing.from_settings(settings, tables=frozenset(Base.metadata.tables)),
            mcp=AuthenticatedMCP(
                build_task_mcp_server(
                    session_maker,
                    now=now,
                    max_tasks=settings.quota_tasks_per_user,
                    default_time_zone=settings.default_time_zone,
                ),
                authenticator,
                max_request_bytes=settings.max_request_bytes,
            ),
        )

    def dependencies(self) -> dict[str, Provide]:
        """Each service as the Litestar dependency of that name."""
        provided: dict[str, Any] = {
            "settings": self.settings,
            "chatkit_server": self.chatkit_server,
            "attachment_service": self.attachments,
            "hosted_chatkit": self.hosted_chatkit,
            "limits": self.limits,
            "drain": self.drain,
            "admission": self.admission,
            "authenticator": self.authenticator,
        }
        return {name: Provide(_constant(value), sync_to_thread=False) for name, value in provided.items()}

    async def on_startup(self, _app: Litestar) -> None:
        # Here, not in create_app: this runs in each worker process, after granian started it.
        self.tracing.start()
        self.drain.install_signal_handlers()
        self.admission.start()  # each worker measures its own event loop

    async def on_shutdown(self, _app: Litestar) -> None:
        steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("admission", self.admission.stop),
            ("turn leases", self.chatkit_server.gate.turns.aclose),
            # The model provider's pooled upstream connections (the lean transport's and the openai
            # client's), closed here rather than left to the process's exit.
            ("model provider", self.chatkit_server.assistant.provider.aclose),
            ("hosted sessions", self.hosted_chatkit.aclose),
        ]
        if self.transcriber is not None:
            steps.append(("transcriber", self.transcriber.aclose))
        steps.append(("rate limits", self.limits.aclose))
        # Last: the spans of everything above reach the collector before the worker exits.
        steps.append(("tracing", self.tracing.stop))
        for name, step in steps:
            # Each step whatever the others did: one that raised skipped the rest (the traces' last flush).
            try:
                await step()
            except Exception as exc:
                log.warning("a shutdown step failed", extra={"fields": {"step": name, "error": type(exc).__name__}})


# Probes and scrapes would be most of the traces and tell nothing.
UNTRACED_PATHS = ["/health", "/ready", "/metrics"]


def http_tracing_plugins(settings: Settings) -> list[OpenTelemetryPlugin]:
    """The span of each HTTP request (the root of its trace), only when tracing is on."""
    if not settings.tracing_enabled:
        return []
    # Imported only when tracing is on: the ASGI instrumentation is not loaded by a server that does not trace.
    from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin

    config = OpenTelemetryConfig(
        exclude=UNTRACED_PATHS,
        # A span per ASGI message would be one per SSE frame of a stream: thousands per turn.
        exclude_spans=["receive", "send"],
        server_request_hook_handler=without_query,
    )
    return [OpenTelemetryPlugin(config)]


def without_query(span: Span, scope: dict[str, Any]) -> None:
    """The request's URL without its query string, whose values may be the user's words (`GET /api/tasks?q=`)."""
    recorded = getattr(span, "attributes", None) or {}
    path = scope.get("path", "")
    for key in ("http.target", "http.url", "url.full"):
        if key in recorded:
            span.set_attribute(key, path)
    if "url.query" in recorded:
        span.set_attribute("url.query", "")


def _constant(value: Any) -> Any:
    def provide() -> Any:
        return value

    return provide


def create_app(
    settings: Settings | None = None, *, model_provider: ModelProvider | None = None, now: Now = utcnow
) -> Litestar:
    settings = settings or Settings.from_env()
    configure_logging(settings)
    services = Services.build(settings, model_provider=model_provider, now=now)
    metrics.POOLS.sources.append(lambda: services.db_config.get_engine().pool)
    authenticate = request_context_provider(services.authenticator)

    api = Router(
        path="/",
        route_handlers=[
            HostedSessionController,
            TaskController,
            # Its own layer for its body: with dictation on, /chatkit takes audio up to
            # TRANSCRIPTION_MAX_BYTES, and `body_reader` holds every other type to MAX_REQUEST_BYTES
            # while the body streams (so Litestar's own limit is off here).
            Router(
                path="/",
                route_handlers=[ChatKitController],
                request_max_body_size=None,
                before_request=body_reader(settings),
            ),
            AttachmentController,
        ],
        security=BEARER_SECURITY,
        guards=[caller_before_body(services.authenticator)],
        dependencies={
            "context": Provide(authenticate),
            "time_zone": Provide(provide_time_zone, sync_to_thread=False),
        },
    )
    cors = (
        CORSConfig(
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            # Mcp-Session-Id and MCP-Protocol-Version: what a browser MCP client sends to /mcp (and
            # reads back the session id from), per the MCP streamable HTTP transport.
            allow_headers=[
                "Authorization",
                "Content-Type",
                "X-Request-ID",
                "Time-Zone",
                CLIENT_TOOLS_HEADER,
                "Mcp-Session-Id",
                "MCP-Protocol-Version",
            ],
            expose_headers=["X-Request-ID", "Retry-After", "Mcp-Session-Id"],
            allow_credentials=True,
            max_age=600,
        )
        if settings.cors_origins
        else None
    )
    return Litestar(
        route_handlers=[HealthController, api, mcp_route(services.mcp), *page_route_handlers(settings)],
        lifespan=[services.mcp.lifespan],
        plugins=[SQLAlchemyPlugin(config=services.db_config), *http_tracing_plugins(settings)],
        dependencies={
            **services.dependencies(),
            "authenticate": Provide(_constant(authenticate), sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        # Outermost first: a 408 for a stalled body still carries its request id and access line.
        middleware=[
            *([forwarded_client_middleware(settings.trusted_proxies)] if settings.trusted_proxies else []),
            request_id_middleware,
            body_read_timeout_middleware(
                settings.http_body_read_timeout_seconds, settings.http_body_total_timeout_seconds
            ),
        ],
        before_send=[security_headers(production=settings.is_production)],
        cors_config=cors,
        openapi_config=openapi_config(),
        request_max_body_size=settings.max_request_bytes,
        # For inspection (tests, operators' hooks) only: routes get services as dependencies.
        state=State({"services": services}),
        on_startup=[services.on_startup, tune_garbage_collector_on_startup],
        on_shutdown=[services.on_shutdown],
        logging_config=None,
        debug=False,
    )
