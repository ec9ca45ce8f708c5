"""Liveness, readiness and the ChatKit configuration status. Public: no token needed, no secret shown."""

from __future__ import annotations

from litestar import Controller, Response, get
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app import __version__
from app.contracts import ChatKitHealth, HostedModeStatus, Liveness, Readiness, SelfHostedModeStatus
from app.settings import Settings


class HealthController(Controller):
    tags = ["Health"]

    @get("/health", operation_id="GetLiveness", summary="Liveness: the process is up")
    async def liveness(self) -> Liveness:
        return Liveness(status="ok", version=__version__)

    @get(
        "/ready",
        operation_id="GetReadiness",
        summary="Readiness: the database answers",
    )
    async def readiness(self, db_engine: AsyncEngine) -> Response[Readiness]:
        try:
            async with db_engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:  # any driver error means "not ready", and says which kind
            body = Readiness(
                status="unavailable",
                database="unreachable",
                detail=f"database unreachable ({type(exc).__name__}); check DATABASE_URL and that the server runs",
            )
            return Response(body, status_code=503, headers={"Retry-After": "5"})
        return Response(Readiness(status="ready", database="ok"), status_code=200)

    @get(
        "/api/chatkit/health",
        operation_id="GetChatKitHealth",
        summary="Which ChatKit modes are configured (no secret values)",
    )
    async def chatkit_health(self, settings: Settings) -> ChatKitHealth:
        missing = settings.hosted_sessions_missing
        hosted = HostedModeStatus(
            ready=not missing,
            missing=missing,
            detail="POST /api/chatkit/sessions mints sessions"
            if not missing
            else f"set {' and '.join(missing)} to mint hosted ChatKit sessions",
        )
        provider = settings.model_provider
        self_hosted = SelfHostedModeStatus(
            ready=True,
            endpoint="/chatkit",
            model_provider=provider,
            model="offline" if provider == "offline" else settings.model,
            detail="the offline assistant answers plain task requests; set OPENAI_API_KEY for a real model"
            if provider == "offline"
            else f"answers with {settings.model} via {provider}",
        )
        return ChatKitHealth(status="ok", hosted=hosted, self_hosted=self_hosted, auth_mode=settings.auth_mode)
