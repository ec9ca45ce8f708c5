"""What `GET /api/chatkit/health` reports: which ChatKit modes are configured, in words.

No Litestar here. Everything is read from `Settings` and names variables, never their values:
the document is public (a front end reads `auth_mode` before it has a token), so a key, a
workflow id or a secret must never appear in it.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.contracts import (
    AttachmentOptions,
    ChatKitHealth,
    ComposerModelOption,
    ComposerOptions,
    ComposerToolOption,
    HostedModeStatus,
    ModelCallStatus,
    SelfHostedModeStatus,
)
from app.ops.model_calls import last_calls
from app.settings import ATTACHMENT_EXTENSIONS, Settings

SESSIONS_PATH = "/api/chatkit/sessions"
SELF_HOSTED_ENDPOINT = "/chatkit"
# The phrase the original deployment guide's health check shows; kept verbatim at the start of
# the message when hosted mode is configured, so an operator's grep for it still matches.
READY_PHRASE = "ChatKit is properly configured"


def chatkit_health(settings: Settings, composer_tools: Sequence[ComposerToolOption] = ()) -> ChatKitHealth:
    """The document; `composer_tools` are the self-hosted composer's tools (`app.agents.tools.COMPOSER_TOOLS`)."""
    hosted = _hosted(settings)
    self_hosted = _self_hosted(settings, composer_tools)
    return ChatKitHealth(
        status="ok",
        service="chatkit",
        chatkit_ready=hosted.ready,
        message=_message(settings, hosted, self_hosted),
        hosted=hosted,
        self_hosted=self_hosted,
        auth_mode=settings.auth_mode,
    )


def _hosted(settings: Settings) -> HostedModeStatus:
    missing = settings.hosted_sessions_missing
    return HostedModeStatus(
        ready=not missing,
        missing=missing,
        detail=f"POST {SESSIONS_PATH} mints sessions"
        if not missing
        else f"set {' and '.join(missing)} to mint hosted ChatKit sessions",
    )


def _self_hosted(settings: Settings, composer_tools: Sequence[ComposerToolOption]) -> SelfHostedModeStatus:
    provider = settings.model_provider
    return SelfHostedModeStatus(
        ready=True,
        endpoint=SELF_HOSTED_ENDPOINT,
        model_provider=provider,
        model="offline" if provider == "offline" else settings.model,
        detail="the offline assistant answers plain task requests; set OPENAI_API_KEY for a real model"
        if provider == "offline"
        else f"answers with {settings.model} via {provider}",
        dictation=not settings.dictation_missing,
        composer=ComposerOptions(
            tools=list(composer_tools),
            # Offered only when the operator lists them (MODEL_CHOICES): MODEL alone needs no picker.
            models=[
                ComposerModelOption(id=model, label=model, default=model == settings.model)
                for model in settings.model_choices
            ],
        ),
        attachments=AttachmentOptions(
            max_bytes=settings.attachment_max_bytes,
            accept={mime: list(ATTACHMENT_EXTENSIONS[mime]) for mime in settings.attachment_allowed_types},
        ),
        model_calls=[
            ModelCallStatus(
                model=call.model,
                status=call.status,
                latency_ms=None if call.latency_seconds is None else round(call.latency_seconds * 1000, 1),
                at=call.at,
            )
            for call in last_calls()
        ],
    )


def _message(settings: Settings, hosted: HostedModeStatus, self_hosted: SelfHostedModeStatus) -> str:
    if hosted.ready:
        hosted_part = (
            f"{READY_PHRASE}: OPENAI_API_KEY and CHATKIT_WORKFLOW_ID are set, so POST {SESSIONS_PATH} "
            "mints hosted sessions for a signed-in user (bearer token)."
        )
    else:
        names = " and ".join(hosted.missing)
        verb = "is" if len(hosted.missing) == 1 else "are"
        hosted_part = f"Hosted ChatKit is not configured: {names} {verb} not set, so POST {SESSIONS_PATH} answers 503."
    provider = self_hosted.model_provider
    assistant = "the offline assistant" if provider == "offline" else f"{self_hosted.model} via {provider}"
    self_hosted_part = f"The self-hosted ChatKit server at {self_hosted.endpoint} is ready ({assistant})."
    parts = [hosted_part, self_hosted_part]
    if self_hosted.dictation:
        parts.append("Dictation (input.transcribe) uses TRANSCRIPTION_MODEL.")
    if settings.model_choices:
        parts.append(f"The composer offers {len(settings.model_choices)} models (MODEL_CHOICES).")
    if settings.is_production and not settings.chatkit_domain_key:
        parts.append(
            "CHATKIT_DOMAIN_KEY is not set: the page's ChatKit works on localhost only until the domain "
            "is in OpenAI's domain allowlist and its key is set."
        )
    return " ".join(parts)
