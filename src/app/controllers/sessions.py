"""Hosted ChatKit sessions: mint, refresh and cancel. The rules live in `app.services.hosted_sessions`."""

from __future__ import annotations

from collections.abc import AsyncIterator

from litestar import Controller, delete, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from app.contracts import ChatKitSession, ChatKitSessionRefresh
from app.core.context import RequestContext
from app.http.openapi import problem_spec
from app.ops.ratelimit import Limits
from app.services.hosted_sessions import HostedSessionService
from app.services.openai_sessions import HostedChatKit
from app.store.db import commit_before_response

MINT_RESPONSES = {
    400: problem_spec("The body is malformed"),
    401: problem_spec("No valid bearer token"),
    429: problem_spec("This user requested too many sessions; see Retry-After"),
    502: problem_spec("OpenAI rejected the server's credentials or the request, or failed"),
    503: problem_spec(
        "Hosted mode is not configured (the detail names the variables), OpenAI is "
        "unreachable or rate-limiting the server (see Retry-After)"
    ),
    504: problem_spec("OpenAI did not answer in time"),
}
REFRESH_RESPONSES = {
    **MINT_RESPONSES,
    409: problem_spec(
        "The named session was already refreshed, or another refresh is replacing it: use the newer "
        "client secret, or mint a new session"
    ),
}
CANCEL_RESPONSES = {
    **{status: spec for status, spec in MINT_RESPONSES.items() if status != 429},
    404: problem_spec("No session with this id belongs to the user"),
}


async def provide_hosted_sessions(
    db_session: NamedDependency[AsyncSession],
    hosted_chatkit: NamedDependency[HostedChatKit],
    limits: NamedDependency[Limits],
) -> AsyncIterator[HostedSessionService]:
    yield HostedSessionService(db_session, hosted_chatkit, limits.sessions)
    await commit_before_response(db_session)  # not after the 2xx is sent (see there)


class HostedSessionController(Controller):
    path = "/api/chatkit"
    tags = ["Hosted sessions"]
    dependencies = {"hosted_sessions": Provide(provide_hosted_sessions)}

    @post(
        "/sessions",
        operation_id="CreateChatKitSession",
        summary="Mint a ChatKit session for the signed-in user",
        description="Calls OpenAI with the server's API key and workflow; answer it from ChatKit's "
        "`getClientSecret()`. The response never contains the API key or the workflow id.",
        status_code=200,
        responses=MINT_RESPONSES,
    )
    async def create_session(
        self, context: NamedDependency[RequestContext], hosted_sessions: NamedDependency[HostedSessionService]
    ) -> ChatKitSession:
        return await hosted_sessions.mint(context.user_id)

    @post(
        "/sessions/refresh",
        operation_id="RefreshChatKitSession",
        summary="Mint a new session and cancel the one it replaces",
        description="Names the old session by `current_client_secret` or `session_id`; it is cancelled "
        "when the signed-in user owns it. An unknown or foreign one is left alone and a new session "
        "is minted all the same. With no body, this mints a session. A session can be refreshed once: "
        "of concurrent refreshes of one secret exactly one succeeds, the others (and any later refresh "
        "of it) answer 409; use the newer secret, or mint a new session.",
        status_code=200,
        responses=REFRESH_RESPONSES,
    )
    async def refresh_session(
        self,
        context: NamedDependency[RequestContext],
        hosted_sessions: NamedDependency[HostedSessionService],
        data: JSONBody[ChatKitSessionRefresh | None] = None,
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
        self,
        context: NamedDependency[RequestContext],
        hosted_sessions: NamedDependency[HostedSessionService],
        session_id: FromPath[str],
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
        self, context: NamedDependency[RequestContext], hosted_sessions: NamedDependency[HostedSessionService]
    ) -> ChatKitSession:
        return await hosted_sessions.mint(context.user_id)

    @post(
        "/refresh",
        operation_id="RefreshChatKitSessionLegacy",
        summary="Refresh a ChatKit session (older path; use POST /api/chatkit/sessions/refresh)",
        status_code=200,
        deprecated=True,
        responses=REFRESH_RESPONSES,
    )
    async def refresh_session_legacy(
        self,
        context: NamedDependency[RequestContext],
        hosted_sessions: NamedDependency[HostedSessionService],
        data: JSONBody[ChatKitSessionRefresh | None] = None,
    ) -> ChatKitSession:
        return await _refresh(context, hosted_sessions, data)


async def _refresh(
    context: RequestContext, hosted_sessions: HostedSessionService, data: ChatKitSessionRefresh | None
) -> ChatKitSession:
    return await hosted_sessions.refresh(
        context.user_id,
        current_client_secret=data.current_client_secret if data else None,
        session_id=data.session_id if data else None,
    )
