"""OpenAI's ChatKit sessions API, for hosted mode: mint and cancel sessions for a workflow.

One `HostedChatKit` per app holds one `AsyncOpenAI` client, made on first use and closed on
shutdown. Every SDK failure becomes a `UpstreamError` carrying the status TaskPilot
should answer and a `detail` written here, because OpenAI's own messages may quote the
workflow id or a masked API key and must never reach a caller or a log line.

No Litestar here: the service in `app.services.hosted_sessions` decides what the errors mean for HTTP.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

import httpx2
import msgspec
import openai
from openai import AsyncOpenAI

if TYPE_CHECKING:
    # Only the shapes of the params, checked by mypy: `openai.types.beta` is ~0.3 s of CPU to import
    # (every beta model), which each server worker paid at start-up for four TypedDicts.
    from openai.types.beta.chatkit import (
        ChatSessionChatKitConfigurationParam,
        ChatSessionExpiresAfterParam,
        ChatSessionRateLimitsParam,
        ChatSessionWorkflowParam,
    )

from app.core.errors import UpstreamError
from app.ops import metrics
from app.ops.openai_failures import OpenAIFailureKind, describe_openai_failure
from app.settings import Settings

log = logging.getLogger("app.hosted")

DEFAULT_BASE_URL = "https://api.openai.com/v1"
# One quick retry rides out a dropped connection or a one-off 5xx; more would keep a browser
# waiting on a page load that its own retry logic handles better.
MAX_RETRIES = 1


# What `beta.chatkit.sessions.*` send with every call.
CHATKIT_BETA_HEADER = {"OpenAI-Beta": "chatkit_beta=v1"}


class _MintedWorkflow(msgspec.Struct):
    version: str | None = None


class UpstreamSession(msgspec.Struct, frozen=True, kw_only=True):
    """A session OpenAI minted: the fields of its `ChatSession` TaskPilot reads (the rest is
    ignored), decoded straight from OpenAI's answer. What a caller receives is the contract's
    `ChatKitSession`, made from this by `app.services.hosted_sessions`."""

    session_id: str = msgspec.field(name="id")
    client_secret: str
    expires_at: dt.datetime  # OpenAI sends a Unix timestamp: decoded as an aware UTC datetime
    workflow: _MintedWorkflow | None = None

    @property
    def workflow_version(self) -> str | None:
        return self.workflow.version if self.workflow else None


# Not strict: OpenAI's `expires_at` is a Unix timestamp, which only a lax decoder turns into a datetime.
_SESSION_DECODER = msgspec.json.Decoder(UpstreamSession, strict=False)


class UpstreamSessionGone(Exception):
    """OpenAI does not know the session any more (expired and purged, or never existed)."""


class _SessionsClient(AsyncOpenAI):
    def _should_retry(self, response: httpx2.Response) -> bool:
        # On a 429 the SDK would sleep out OpenAI's Retry-After (up to two minutes) while the
        # browser waits; answer at once instead and pass the Retry-After on.
        if response.status_code == 429:
            return False
        return bool(super()._should_retry(response))


class HostedChatKit:
    """Mints and cancels ChatKit sessions for the configured Agent Builder workflow."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: AsyncOpenAI | None = None

    @property
    def missing(self) -> list[str]:
        return self.settings.hosted_sessions_missing

    def client(self) -> AsyncOpenAI:
        if self._client is None:
            key = self.settings.openai_api_key
            if not key:
                raise UpstreamError("OPENAI_API_KEY is not set", failure="unavailable")
            self._client = _SessionsClient(
                api_key=key.get(),
                # Explicit, so an OPENAI_BASE_URL the settings did not validate is never picked up.
                base_url=self.settings.openai_base_url or DEFAULT_BASE_URL,
                timeout=self.settings.openai_timeout_seconds,
                max_retries=MAX_RETRIES,
            )
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    def create_params(self, user_id: str) -> dict[str, Any]:
        """The `sessions.create` arguments for `user_id`, from settings."""
        s = self.settings
        if not s.chatkit_workflow_id:
            raise UpstreamError("CHATKIT_WORKFLOW_ID is not set", failure="unavailable")
        workflow: ChatSessionWorkflowParam = {"id": s.chatkit_workflow_id.get()}
        if s.chatkit_workflow_version:
            workflow["version"] = s.chatkit_workflow_version
        configuration: ChatSessionChatKitConfigurationParam = {
            "file_upload": {"enabled": s.chatkit_file_upload_enabled},
            "history": {"enabled": s.chatkit_history_enabled},
            "automatic_thread_titling": {"enabled": s.chatkit_automatic_thread_titling},
        }
        params: dict[str, Any] = {
            "user": user_id,
            "workflow": workflow,
            "chatkit_configuration": configuration,
        }
        if s.chatkit_session_ttl_seconds:
            expires: ChatSessionExpiresAfterParam = {
                "anchor": "created_at",
                "seconds": s.chatkit_session_ttl_seconds,
            }
            params["expires_after"] = expires
        if s.chatkit_session_max_requests_per_minute:
            limits: ChatSessionRateLimitsParam = {
                "max_requests_per_1_minute": s.chatkit_session_max_requests_per_minute
            }
            params["rate_limits"] = limits
        return params

    async def create(self, user_id: str) -> UpstreamSession:
        params = self.create_params(user_id)
        try:
            # The SDK's `beta.chatkit.sessions.create` (same client: auth, retries, timeouts, errors)
            # minus its pure-Python walk of the request params and build of the whole ChatSession
            # model: 0.63 -> 0.35 ms of CPU per mint. The params are plain JSON already, and the
            # few fields read here are checked by msgspec, which the SDK would not do.
            response = await self.client().post(
                "/chatkit/sessions", body=params, options={"headers": CHATKIT_BETA_HEADER}, cast_to=httpx2.Response
            )
        except openai.OpenAIError as exc:
            raise _translate(exc, operation="create", user_id=user_id) from None
        try:
            session = _SESSION_DECODER.decode(response.content)
        except msgspec.DecodeError as exc:
            log.warning(
                "openai chatkit session create answered a body without a usable session",
                extra={"fields": {"user_id": user_id, "error": str(exc)[:200]}},
            )
            metrics.UPSTREAM_ERRORS.labels(kind="bad_response").inc()
            raise UpstreamError(
                "OpenAI answered the ChatKit session request with a body that holds no usable session; "
                "retry in a few seconds. If it keeps happening, the operator must check OPENAI_BASE_URL.",
                failure="rejected",
            ) from None
        if session.workflow_version is None and self.settings.chatkit_workflow_version:
            # The version this server asked for, when OpenAI's answer does not name one.
            session = msgspec.structs.replace(
                session, workflow=_MintedWorkflow(version=self.settings.chatkit_workflow_version)
            )
        return session

    async def cancel(self, session_id: str, *, user_id: str) -> None:
        """Cancel `session_id` upstream; `UpstreamSessionGone` when OpenAI no longer knows it."""
        try:
            await self.client().beta.chatkit.sessions.cancel(session_id)
        except openai.NotFoundError:
            raise UpstreamSessionGone(session_id) from None
        except openai.OpenAIError as exc:
            raise _translate(exc, operation="cancel", user_id=user_id) from None


# What each kind of failure (`app.ops.openai_failures`) means for a ChatKit session request.
_WORDS: dict[OpenAIFailureKind, str] = {
    "timeout": "OpenAI did not answer in time while handling the ChatKit session; retry in a few seconds. "
    "If it keeps happening, the operator can raise OPENAI_TIMEOUT_SECONDS.",
    "unreachable": "OpenAI could not be reached to handle the ChatKit session; retry in a few seconds. "
    "If it persists, the operator must check the server's outbound network and OPENAI_BASE_URL.",
    "auth": "The server's OpenAI credentials were rejected. Retrying will not help: the operator must "
    "check OPENAI_API_KEY and that its project may use ChatKit and the configured workflow.",
    "quota": "The server's OpenAI account has no quota left for ChatKit sessions. "
    "The operator must check the OpenAI project's billing and limits.",
    "rate_limit": "OpenAI is rate-limiting this server's ChatKit sessions; retry in {retry_after} seconds.",
    "not_found": "OpenAI did not find the ChatKit workflow or endpoint. The operator must check "
    "CHATKIT_WORKFLOW_ID, CHATKIT_WORKFLOW_VERSION and OPENAI_BASE_URL.",
    "server_error": "OpenAI failed while handling the ChatKit session (HTTP {status}); retry in a few seconds.",
    "refused": "OpenAI refused the ChatKit session request (HTTP {status}). The operator must check "
    "CHATKIT_WORKFLOW_ID, CHATKIT_WORKFLOW_VERSION and the CHATKIT_* session settings.",
    "unreadable": "OpenAI's answer to the ChatKit session request could not be understood; retry, and if it "
    "persists the operator must check OPENAI_BASE_URL.",
}
# OpenAI answers "Workflow with id 'wf_…' not found." both for a wrong id and for a key from
# another project than the workflow's (the usual cause when the id looks right).
_WORKFLOW_NOT_FOUND = (
    "OpenAI found no ChatKit workflow with the configured id. Retrying will not help: the "
    "operator must check CHATKIT_WORKFLOW_ID (and CHATKIT_WORKFLOW_VERSION, if set), and that "
    "OPENAI_API_KEY belongs to the OpenAI project that owns the workflow."
)


def _translate(exc: openai.OpenAIError, *, operation: str, user_id: str) -> UpstreamError:
    """What to tell the caller about an SDK failure. Never OpenAI's message: it may quote secrets."""
    failure = describe_openai_failure(exc)
    assert failure is not None  # an OpenAIError always has a kind
    fields = {"operation": operation, "user_id": user_id, **(failure.log_fields or {})}
    log.warning("openai chatkit session %s failed", operation, extra={"fields": fields})
    metrics.UPSTREAM_ERRORS.labels(kind=failure.metric_label).inc()
    words = _WORDS
    if failure.kind == "not_found" and isinstance(exc, openai.APIStatusError) and _names_workflow(exc):
        words = {**_WORDS, "not_found": _WORKFLOW_NOT_FOUND}
    return failure.upstream_error(words)


def _names_workflow(exc: openai.APIStatusError) -> bool:
    """Whether OpenAI's error is about the workflow. Read to classify only, never relayed."""
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body)
    texts = [exc.message]
    if isinstance(error, dict):
        texts += [str(error.get("param") or ""), str(error.get("code") or "")]
    return any("workflow" in text.lower() for text in texts)
