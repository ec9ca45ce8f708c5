"""Reading a transcription answer's `usage` (OpenAI's two shapes, or anything a lenient server sends):
what is not a finite, non-negative number counts as zero and never fails the dictation."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.audio.transcription import Transcription

from app.services.usage import Tokens, TranscriptionUsage


def test_tokens_as_the_sdk_parses_them() -> None:
    answer = Transcription.model_validate(
        {
            "text": "hi",
            "usage": {
                "type": "tokens",
                "input_tokens": 57,
                "output_tokens": 11,
                "total_tokens": 68,
                "input_token_details": {"audio_tokens": 52, "text_tokens": 5},
            },
        }
    )
    usage = TranscriptionUsage.of(answer.usage)
    assert usage == TranscriptionUsage(tokens=Tokens(input=57, output=11), audio_ms=0, reported=True)
    assert usage.tokens.billed == 68


def test_seconds_as_the_sdk_parses_them_are_whole_milliseconds() -> None:
    answer = Transcription.model_validate({"text": "hi", "usage": {"type": "duration", "seconds": 3.2504}})
    usage = TranscriptionUsage.of(answer.usage)
    assert (usage.tokens, usage.audio_ms, usage.audio_seconds, usage.reported) == (Tokens(), 3250, 3.25, True)


@pytest.mark.parametrize(
    "reported",
    [
        None,
        {},
        {"type": "duration"},
        {"type": "duration", "seconds": "12"},
        {"type": "duration", "seconds": float("nan")},
        {"type": "duration", "seconds": float("inf")},
        {"type": "duration", "seconds": -4},
        {"type": "duration", "seconds": 1e308},  # finite, but not in milliseconds
        {"type": "tokens", "input_tokens": True, "output_tokens": -1},
        {"type": "tokens", "input_tokens": None},
        "unexpected",
    ],
)
def test_missing_or_malformed_usage_is_zero(reported: Any) -> None:
    assert TranscriptionUsage.of(reported) == TranscriptionUsage()
