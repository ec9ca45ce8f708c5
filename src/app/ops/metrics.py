"""Prometheus metrics (prometheus-client), framework-free so agents/ and stores can record them.

With several granian workers each process has its own counters; set `PROMETHEUS_MULTIPROC_DIR`
(an empty directory shared by the workers) and `/metrics` aggregates them all.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from app.ops.openai_failures import describe_openai_failure

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_TURN = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 80, 160)

HTTP_REQUESTS = Counter("taskpilot_http_requests", "HTTP requests answered", ["method", "route", "status"])
HTTP_LATENCY = Histogram(
    "taskpilot_http_request_duration_seconds",
    "Time from request to the end of the response (whole stream for SSE)",
    ["method", "route"],
    buckets=_LATENCY,
)
ACTIVE_STREAMS = Gauge(
    "taskpilot_chatkit_active_streams", "ChatKit event streams currently open", multiprocess_mode="livesum"
)
STREAM_CAPACITY = Gauge(
    "taskpilot_chatkit_stream_capacity",
    "ChatKit streams the workers admit at once (CHATKIT_MAX_STREAMS per worker)",
    multiprocess_mode="livesum",
)
STREAMS_WAITING = Gauge(
    "taskpilot_chatkit_streams_waiting", "ChatKit turns waiting for a free stream slot", multiprocess_mode="livesum"
)
TURNS_REFUSED = Counter(
    "taskpilot_chatkit_turns_refused",
    "ChatKit turns refused before a stream opened: no free stream slot (capacity, 503), shutting down "
    "(draining, 503), or the user already holds their share of slots (user_share, 429)",
    ["reason"],
)
TIME_TO_FIRST_EVENT = Histogram(
    "taskpilot_chatkit_time_to_first_event_seconds", "From request to the first SSE frame", buckets=_LATENCY
)
TURN_DURATION = Histogram(
    "taskpilot_chatkit_turn_duration_seconds", "One assistant turn, model and tools included", buckets=_TURN
)
TOOL_CALLS = Counter("taskpilot_tool_calls", "Task tool calls by tool and outcome", ["tool", "outcome"])
# Tokens the provider reported for every model call (answer, tool round trips, title, dictation), by
# model and kind: input, cached_input (part of input), output, reasoning (part of output). Exposed as *_total.
MODEL_TOKENS = Counter("taskpilot_model_tokens", "Model tokens used, by model and kind", ["model", "kind"])
# Seconds of dictated audio a transcription model billed by duration (whisper-1) reported; token-billed
# ones (gpt-4o-transcribe) report tokens instead (MODEL_TOKENS), and add 0 here.
TRANSCRIPTION_SECONDS = Counter(
    "taskpilot_transcription_seconds", "Dictated audio transcribed, in seconds, by model", ["model"]
)
# Every model call (each response of a turn, each title, each dictation) by model and outcome: `ok` or
# the kind of error.
MODEL_CALLS = Counter(
    "taskpilot_model_calls", "Model calls by model and outcome (ok or kind of error)", ["model", "outcome"]
)
MODEL_ERRORS = Counter("taskpilot_model_errors", "Failed assistant turns by kind of error", ["kind"])
SESSIONS_MINTED = Counter("taskpilot_hosted_sessions_minted", "Hosted ChatKit sessions minted", ["operation"])
UPSTREAM_ERRORS = Counter("taskpilot_hosted_upstream_errors", "OpenAI session API failures by kind", ["kind"])
STORE_RETRIES = Counter(
    "taskpilot_store_retries", "ChatKit store calls run again: connection lost or pool exhausted", ["reason"]
)
# Feedback given on the assistant's answers (ChatKit's thumbs), one per item; a changed vote counts again.
FEEDBACK = Counter("taskpilot_feedback", "Feedback given on the assistant's answers, by kind", ["kind"])
RATE_LIMITED = Counter("taskpilot_rate_limited", "Requests refused by a rate limit", ["limit"])
RATE_LIMITS_DEGRADED = Gauge(
    "taskpilot_rate_limits_degraded",
    "1 while Redis is unreachable and rate limits are counted in this instance's memory",
    multiprocess_mode="livemax",
)


class PoolCollector(Collector):
    """Database pool usage, read at scrape time from each registered SQLAlchemy pool."""

    def __init__(self) -> None:
        self.sources: list[Callable[[], Any]] = []

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily("taskpilot_db_pool_connections", "Database connections by state", labels=["state"])
        pools = [source() for source in self.sources]
        # SQLite's pools have no counters; their connections simply do not show here.
        for state, reader in (("in_use", "checkedout"), ("idle", "checkedin"), ("size", "size")):
            family.add_metric([state], sum(getattr(pool, reader)() for pool in pools if hasattr(pool, reader)))
        yield family


POOLS = PoolCollector()


def _registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        registry.register(POOLS)
        return registry
    from prometheus_client import REGISTRY

    if POOLS not in getattr(REGISTRY, "_collector_to_names", {}):
        REGISTRY.register(POOLS)
    return REGISTRY


def render() -> tuple[bytes, str]:
    """The exposition text and its content type."""
    return generate_latest(_registry()), CONTENT_TYPE_LATEST


def error_kind(exc: BaseException) -> str:
    """A short, bounded label for an exception (never its message)."""
    failure = describe_openai_failure(exc)
    if failure is not None:
        return failure.metric_label
    return "max_turns" if type(exc).__name__ == "MaxTurnsExceeded" else "other"
