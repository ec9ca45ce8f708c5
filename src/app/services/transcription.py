"""Dictation: the audio of ChatKit's `input.transcribe`, checked, then sent to OpenAI's transcription API.

`check()` runs before anything leaves the server: the declared type must be one OpenAI
transcribes, the base64 must be well formed and the audio no larger than TRANSCRIPTION_MAX_BYTES.
`transcribe()` sends it with one `AsyncOpenAI` client (made on first use, closed on shutdown),
at OPENAI_BASE_URL when set, within OPENAI_TIMEOUT_SECONDS. Every SDK failure becomes an
`UpstreamError` whose detail is written here: OpenAI's messages may quote a masked key, and
neither the key nor the audio ever reaches a response or a log line. Each call's outcome and latency
go to the per-model health (`app.ops.model_calls`), and its answer's `usage` (tokens, or seconds of
audio) comes back with the text for the caller to account (`app.services.usage`).

No Litestar here: `app.http.problems` maps the errors to statuses.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import time
from dataclasses import dataclass

import openai
from openai import AsyncOpenAI

from app.core.errors import PayloadTooLarge, ProtocolError, UnsupportedMediaType, UpstreamError
from app.ops import metrics, model_calls
from app.ops.openai_failures import OpenAIFailureKind, describe_openai_failure
from app.services.usage import TranscriptionUsage
from app.settings import Settings

log = logging.getLogger("app.transcription")

DEFAULT_BASE_URL = "https://api.openai.com/v1"
AUDIO_FIELD = "params.audio_base64"
TYPE_FIELD = "params.mime_type"
# The containers OpenAI's transcription API accepts (flac, m4a, mp3, mp4, mpeg, mpga, oga, ogg,
# wav, webm), by the media types browsers and recorders declare for them; the file name sent
# upstream carries the extension OpenAI reads the format from.
AUDIO_TYPES: dict[str, str] = {
    "audio/webm": "webm",
    "video/webm": "webm",
    "audio/ogg": "ogg",
    "audio/oga": "oga",
    "audio/mp4": "mp4",
    "video/mp4": "mp4",
    "audio/m4a": "m4a",
    "audio/x-m4a": "m4a",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/mpga": "mpga",
    "audio/wav": "wav",
    "audio/wave": "wav",
    "audio/x-wav": "wav",
    "audio/vnd.wave": "wav",
    "audio/flac": "flac",
    "audio/x-flac": "flac",
}


@dataclass(frozen=True, slots=True)
class Audio:
    """Checked audio: its bytes, its media type (parameters dropped) and the file name sent upstream."""

    data: bytes
    media_type: str

    @property
    def filename(self) -> str:
        return f"dictation.{AUDIO_TYPES[self.media_type]}"


@dataclass(frozen=True, slots=True)
class Transcription:
    """The text of a dictation and what its transcription cost (zero when the server did not say)."""

    text: str
    usage: TranscriptionUsage


def check_audio(audio_base64: str, mime_type: str, *, max_bytes: int) -> Audio:
    """The audio of one `input.transcribe`, or the error naming the field that is wrong."""
    media_type = mime_type.split(";", 1)[0].strip().lower()
    if media_type not in AUDIO_TYPES:
        raise UnsupportedMediaType(
            f"{TYPE_FIELD} {media_type[:64] or '(empty)'!r} is not an audio type the transcription API accepts: "
            "send webm, ogg, mp4/m4a, mpeg/mp3, wav or flac audio.",
            field=TYPE_FIELD,
        )
    # Refused by its length first, so an oversized body is never decoded.
    if len(audio_base64) > 4 * math.ceil(max_bytes / 3):
        raise _too_large(max_bytes)
    try:
        data = base64.b64decode(audio_base64, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(
            f"{AUDIO_FIELD} is not valid base64: send the audio bytes base64-encoded.", field=AUDIO_FIELD
        ) from None
    if len(data) > max_bytes:
        raise _too_large(max_bytes)
    if not data:
        raise ProtocolError(f"{AUDIO_FIELD} is empty: send the recorded audio.", field=AUDIO_FIELD)
    return Audio(data=data, media_type=media_type)


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"{AUDIO_FIELD} holds more than {max_bytes} bytes of audio (TRANSCRIPTION_MAX_BYTES): record a shorter clip.",
        field=AUDIO_FIELD,
    )


class Transcriber:
    """Turns checked audio into text with TRANSCRIPTION_MODEL."""

    def __init__(self, settings: Settings) -> None:
        if settings.dictation_missing:
            raise ValueError(f"dictation needs {' and '.join(settings.dictation_missing)}")
        self.settings = settings
        self.model = str(settings.transcription_model)
        self.max_bytes = settings.transcription_max_bytes
        self._client: AsyncOpenAI | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Transcriber | None:
        """The transcriber, or None when dictation is not configured (`input.transcribe` is then 501)."""
        return None if settings.dictation_missing else cls(settings)

    def check(self, audio_base64: str, mime_type: str) -> Audio:
        return check_audio(audio_base64, mime_type, max_bytes=self.max_bytes)

    def client(self) -> AsyncOpenAI:
        if self._client is None:
            key = self.settings.openai_api_key
            assert key  # `dictation_missing` is empty
            self._client = AsyncOpenAI(
                api_key=key.get(),
                # Explicit, so an OPENAI_BASE_URL the settings did not validate is never picked up.
                base_url=self.settings.openai_base_url or DEFAULT_BASE_URL,
                timeout=self.settings.openai_timeout_seconds,
                # No retry: a retried upload doubles the wait past OPENAI_TIMEOUT_SECONDS while the
                # person holds the microphone button; they can simply dictate again.
                max_retries=0,
            )
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def transcribe(self, audio: Audio, *, user_id: str | None = None) -> Transcription:
        started = time.perf_counter()
        try:
            result = await self.client().audio.transcriptions.create(
                model=self.model,
                file=(audio.filename, audio.data, audio.media_type),
                response_format="json",
            )
        except openai.OpenAIError as exc:
            model_calls.failed(self.model, exc, time.perf_counter() - started)
            raise _translate(exc, user_id=user_id) from None
        model_calls.record(self.model, "ok", time.perf_counter() - started)
        return Transcription(
            text=str(getattr(result, "text", "") or ""),
            usage=TranscriptionUsage.of(getattr(result, "usage", None)),
        )


# What each kind of failure (`app.ops.openai_failures`) means for a dictation.
_WORDS: dict[OpenAIFailureKind, str] = {
    "timeout": "OpenAI did not transcribe the audio in time; dictate again in a few seconds. If it keeps "
    "happening, the operator can raise OPENAI_TIMEOUT_SECONDS.",
    "unreachable": "OpenAI could not be reached to transcribe the audio; dictate again in a few seconds. If it "
    "persists, the operator must check the server's outbound network and OPENAI_BASE_URL.",
    "auth": "The server's OpenAI credentials were rejected for transcription. Retrying will not help: the "
    "operator must check OPENAI_API_KEY and that its project may use TRANSCRIPTION_MODEL.",
    "quota": "The server's OpenAI account has no quota left for transcription. "
    "The operator must check the OpenAI project's billing and limits.",
    "rate_limit": "OpenAI is rate-limiting this server's transcriptions; dictate again in a little while.",
    "not_found": "OpenAI did not find the transcription model or endpoint. The operator must check "
    "TRANSCRIPTION_MODEL and OPENAI_BASE_URL.",
    "server_error": "OpenAI failed while transcribing the audio (HTTP {status}); dictate again in a few seconds.",
    "refused": "OpenAI refused to transcribe the audio (HTTP {status}): it may be unreadable or "
    "in a format it does not decode; record again. If it persists, the operator must check "
    "TRANSCRIPTION_MODEL.",
    "unreadable": "OpenAI's answer to the transcription request could not be understood; dictate again, and if it "
    "persists the operator must check OPENAI_BASE_URL.",
}


def _translate(exc: openai.OpenAIError, *, user_id: str | None) -> UpstreamError:
    """What to tell the caller about an SDK failure. Never OpenAI's message: it may quote secrets."""
    failure = describe_openai_failure(exc)
    assert failure is not None  # an OpenAIError always has a kind
    fields = {"operation": "transcribe", "user_id": user_id, **(failure.log_fields or {})}
    log.warning("openai transcription failed", extra={"fields": fields})
    metrics.UPSTREAM_ERRORS.labels(kind=failure.metric_label).inc()
    # The upload may have reached OpenAI (a connection can drop after it), which may have done the work.
    return failure.upstream_error(_WORDS, sent=True)
