"""The last model call of each model, for `GET /api/chatkit/health`, and the calls by outcome
(`taskpilot_model_calls_total{model,outcome}`).

A call is an answer's model response (each tool round trip is one), a thread title or a dictation's
transcription. The status is `ok` or the failure's kind (`app.ops.metrics.error_kind`: `rate_limit`,
`timeout`, `auth`, ...), never its message. Kept in this process's memory: with several workers each
answers for its own calls.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass

from app.core.clock import utcnow
from app.ops import metrics


@dataclass(frozen=True, slots=True)
class ModelCall:
    model: str
    status: str
    latency_seconds: float | None
    at: dt.datetime


_last: dict[str, ModelCall] = {}
_lock = threading.Lock()


def record(model: str, status: str, latency_seconds: float | None) -> None:
    metrics.MODEL_CALLS.labels(model=model, outcome=status).inc()
    with _lock:
        _last[model] = ModelCall(model=model, status=status, latency_seconds=latency_seconds, at=utcnow())


def failed(model: str, exc: BaseException, latency_seconds: float | None = None) -> None:
    record(model, metrics.error_kind(exc), latency_seconds)


def last_calls() -> list[ModelCall]:
    """The last call of each model this process called, by model name."""
    with _lock:
        return sorted(_last.values(), key=lambda call: call.model)
