"""Hosted ChatKit sessions: mint, refresh and cancel. The rules live in `app.store.sessions`."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Litestar, Request, delete, post
from litestar.di import Provide
from litestar.openapi.datastructures import ResponseSpec
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import RequestContext
from app.contracts import ChatKitSession, ChatKitSessionRefresh, Problem
from app.errors import PROBLEM_MEDIA_TYPE
from app.hosted import HostedChatKit
from app.ratelimit import RateLimiter
from app.settings import Settings
from app.store.sessions import HostedSessionService, MintedSession

HOSTED_CLIENT_STATE_KEY = "hosted_chatkit"


def _problem(description: str) -> ResponseSpec:
    return ResponseSpec(
        data_container=Problem,
        description=description,
        media_type=PROBLEM_MEDIA_TYPE,
        generate_examples=False,
    )


MINT_RESPONSES = {
    400: _problem("The body is malformed"),
    401: _problem("No valid bearer token"),
    429: _problem("This user requested too many sessions; see Retry-After"),
    502: _problem("OpenAI rejected the server's credentials or the request, or failed"),
    503: _problem(
        "Hosted mode is not configured (the detail names the variables), OpenAI is "
        "unreachable or rate-limiting the server (see Retry-After)"
    ),
    504: _problem("OpenAI did not answer in time"),
}
CANCEL_RESPONSES = {
    **{status: spec for status, spec in MINT_RESPONSES.items() if status != 429},
    404: _problem("No session with this id belongs to the user"),
}


def hosted_chatkit(app: Litestar) -> HostedChatKit:
    """The app's one OpenAI sessions client, made on first use."""
    client: HostedChatKit | None = app.state.get(HOSTED_CLIENT_STATE_KEY)
    if client is None:
        settings: Settings = app.state["settings"]
        client = HostedChatKit(settings)
        app.state[HOSTED_CLIENT_STATE_KEY] = client
    return client


def session_rate_limiter(app: Litestar) -> RateLimiter:
    """The app's per-user mint limit (memory or Redis, see `app.ratelimit.build_limits`)."""
    limiter: RateLimiter = app.state["limits"].sessions
    return limiter


async def close_hosted_chatkit(app: Litestar) -> None:
    """Shutdown hook: close the OpenAI client's connection pool if one was opened."""
    client: HostedChatKit | None = app.state.get(HOSTED_CLIENT_STATE_KEY)
    if client is not None:
        await client.aclose()


def provide_hosted_sessions(request: Request[Any, Any, Any], db_session: AsyncSession) -> HostedSessionService:
    return HostedSessionService(db_session, hosted_chatkit(request.app), session_rate_limiter(request.app))


def _body(session: MintedSession) -> ChatKitSession:
    return ChatKitSession(
        client_secret=session.client_secret, session_id=session.session_id, expires_at=session.expires_at
    )


class HostedSessionController(Controller):
    path = "/api/chatkit"
    tags = ["Hosted sessions"]
    dependencies = {"hosted_sessions": Provide(provide_hosted_sessions, sync_to_thread=False)}

    @post(
        "/sessions",
        operation_id="CreateChatKitSession",
        summary="Mint a ChatKit session for the signed-in user",
        description="Calls OpenAI with the server's API key and workflow; answer it from ChatKit's "
        "`getClientSecret()`. The response never contains the API key or the workflow id.",
        status_code=200,
        responses=MINT_RESPONSES,
    )
    async def create_session(self, context: RequestContext, hosted_sessions: HostedSessionService) -> ChatKitSession:
        return _body(await hosted_sessions.mint(context.user_id))

    @post(
        "/sessions/refresh",
        operation_id="RefreshChatKitSession",
        summary="Mint a new session and cancel the one it replaces",
        description="Names the old session by `current_client_secret` or `session_id`; it is cancelled "
        "when the signed-in user owns it. An unknown or foreign one is left alone and a new session "
        "is minted all the same. With no body, this mints a session.",
        status_code=200,
        responses=MINT_RESPONSES,
    )
    async def refresh_session(
        self,
        context: RequestContext,
        hosted_sessions: HostedSessionService,
        data: ChatKitSessionRefresh | None = None,
    ) -> ChatKitSession:
        return await _refresh(context, hosted_sessions, data)

    @delete(
        "/sessions/{session_id:str}",
        operation_id="CancelChatKitSession",
        summary="Cancel one of the signed-in user's sessions",
        description="Its client secret stops working. Cancelling an already cancelled session is a no-op.",
        status_code=204,
        responses=CANCEL_RESPONSES,
    )
    async def cancel_session(
        self, context: RequestContext, hosted_sessions: HostedSessionService, session_id: str
    ) -> None:
        await hosted_sessions.cancel(context.user_id, session_id)

    @post(
        "/session",
        operation_id="CreateChatKitSessionLegacy",
        summary="Mint a ChatKit session (older path; use POST /api/chatkit/sessions)",
        status_code=200,
        deprecated=True,
        responses=MINT_RESPONSES,
    )
    async def create_session_legacy(
        self, context: RequestContext, hosted_sessions: HostedSessionService
    ) -> ChatKitSession:
        return _body(await hosted_sessions.mint(context.user_id))

    @post(
        "/refresh",
        operation_id="RefreshChatKitSessionLegacy",
        summary="Refresh a ChatKit session (older path; use POST /api/chatkit/sessions/refresh)",
        status_code=200,
        deprecated=True,
        responses=MINT_RESPONSES,
    )
    async def refresh_session_legacy(
        self,
        context: RequestContext,
        hosted_sessions: HostedSessionService,
        data: ChatKitSessionRefresh | None = None,
    ) -> ChatKitSession:
        return await _refresh(context, hosted_sessions, data)


async def _refresh(
    context: RequestContext, hosted_sessions: HostedSessionService, data: ChatKitSessionRefresh | None
) -> ChatKitSession:
    refreshed = await hosted_sessions.refresh(
        context.user_id,
        current_client_secret=data.current_client_secret if data else None,
        session_id=data.session_id if data else None,
    )
    return _body(refreshed)
