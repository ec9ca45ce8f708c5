"""Liveness, readiness and the ChatKit configuration status. Public: no token needed, no secret shown."""

from __future__ import annotations

import asyncio
import hmac
from typing import Any

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app import __version__
from app.agents.tools import composer_tool_options
from app.contracts import ChatKitHealth, Liveness, Readiness, StreamLoad
from app.core.errors import AuthError
from app.http.auth import Authenticator, client_address
from app.ops.admission import Admission
from app.ops.drain import Drain
from app.ops.health import chatkit_health
from app.ops.metrics import render
from app.ops.ratelimit import RATE_LIMITS_OK, Limits
from app.settings import Settings

READY_TIMEOUT_SECONDS = 3.0


def _load(admission: Admission) -> StreamLoad:
    return StreamLoad(open=admission.open, limit=admission.limit, waiting=admission.waiting)


def _limit_source(admission: Admission) -> str:
    if admission.adaptive is None:
        return "CHATKIT_MAX_STREAMS"
    return (
        f"the adaptive limit: event-loop lag {admission.adaptive.lag_seconds * 1000:.0f} ms, "
        f"ceiling {admission.ceiling} (CHATKIT_MAX_STREAMS)"
    )


class HealthController(Controller):
    tags = ["Health"]

    @get("/health", operation_id="GetLiveness", summary="Liveness: the process is up")
    async def liveness(self) -> Liveness:
        return Liveness(status="ok", version=__version__)

    @get(
        "/ready",
        operation_id="GetReadiness",
        summary="Readiness: the database answers and this worker has a free stream slot",
        description=(
            "200 while the service can work. 503 `saturated` while every ChatKit stream slot of the answering "
            "worker is taken (its adaptive limit, at most CHATKIT_MAX_STREAMS): new turns would be refused, so a "
            "load balancer should send new conversations elsewhere until it is 200 again; REST and open streams "
            "keep working. `streams` reports that worker's open streams, current limit and waiting turns. "
            "`rate_limits` is `degraded (in-memory, "
            "Redis unreachable)` when REDIS_URL is set and Redis does not answer: limits are then enforced per "
            "instance, from memory, until Redis returns."
        ),
        # The 503 body is the same Readiness document, saying what is not ready.
        responses={
            503: ResponseSpec(
                data_container=Readiness,
                description="Shutting down, the database is unreachable, or every stream slot is taken",
                generate_examples=False,
            )
        },
    )
    async def readiness(
        self,
        db_engine: NamedDependency[AsyncEngine],
        drain: NamedDependency[Drain],
        limits: NamedDependency[Limits],
        admission: NamedDependency[Admission],
    ) -> Response[Readiness]:
        rate_limits = await limits.state()
        if drain.draining:
            body = Readiness(
                status="unavailable",
                database="ok",
                rate_limits=rate_limits,
                streams=_load(admission),
                detail="shutting down: finishing open streams",
            )
            return Response(body, status_code=503, headers={"Retry-After": "5"})
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS), db_engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:  # any driver error means "not ready", and says which kind
            body = Readiness(
                status="unavailable",
                database="unreachable",
                rate_limits=rate_limits,
                streams=_load(admission),
                detail=f"database unreachable ({type(exc).__name__}); check DATABASE_URL and that the server runs",
            )
            return Response(body, status_code=503, headers={"Retry-After": "5"})
        streams = _load(admission)  # read at once with the decision: the database check awaited
        if admission.saturated:
            body = Readiness(
                status="saturated",
                database="ok",
                rate_limits=rate_limits,
                streams=streams,
                detail=f"all {streams.limit} stream slots of this worker are taken ({_limit_source(admission)}); "
                "new turns are refused until open ones end",
            )
            return Response(body, status_code=503, headers={"Retry-After": str(admission.retry_after)})
        detail = None
        if rate_limits != RATE_LIMITS_OK:
            detail = "Redis does not answer: rate limits are enforced per instance until it returns; check REDIS_URL"
        body = Readiness(status="ready", database="ok", rate_limits=rate_limits, streams=streams, detail=detail)
        return Response(body, status_code=200)

    @get("/metrics", include_in_schema=False, media_type="text/plain")
    async def metrics(
        self,
        request: Request[Any, Any, Any],
        settings: NamedDependency[Settings],
        authenticator: NamedDependency[Authenticator],
    ) -> Response[bytes]:
        """Prometheus exposition. With METRICS_TOKEN set, scrapers must send it as a bearer token."""
        token = settings.metrics_token
        if token is not None:

            async def check() -> None:
                expected = f"Bearer {token.get()}"
                if not hmac.compare_digest(request.headers.get("authorization", "").encode(), expected.encode()):
                    raise AuthError("send the METRICS_TOKEN as 'Authorization: Bearer <token>'")

            # A wrong scrape token is a failed sign-in like any other (429 past the limit).
            await authenticator.attempt(client_address(request), check)
        body, content_type = render()
        return Response(body, media_type=content_type)

    @get(
        "/api/chatkit/health",
        operation_id="GetChatKitHealth",
        summary="Which ChatKit modes are configured (no secret values)",
    )
    async def chatkit_health(self, settings: NamedDependency[Settings]) -> ChatKitHealth:
        return chatkit_health(settings, composer_tool_options())

    @get(
        "/api/v1/chatkit/health",
        operation_id="GetChatKitHealthLegacy",
        summary="Which ChatKit modes are configured (older path; use GET /api/chatkit/health)",
        description="The path the original TaskPilotAI deployment guide checks; the same document.",
        deprecated=True,
    )
    async def chatkit_health_legacy(self, settings: NamedDependency[Settings]) -> ChatKitHealth:
        return chatkit_health(settings, composer_tool_options())
