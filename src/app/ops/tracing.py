"""OpenTelemetry traces: one trace per request, off unless OTEL_EXPORTER_OTLP_ENDPOINT is set.

With tracing off nothing is built: no tracer provider, no exporter, no SQL hooks, and the helpers
below return at once (`tracer()` is None). With it on, each worker process builds its own provider
when its app starts (`Tracing.start`, after granian forked or spawned it: a batch processor's
thread does not survive a fork) and flushes it when the app shuts down (`Tracing.stop`).

The spans (docs/operations.md, "Traces and usage"):

- the HTTP request (Litestar's OpenTelemetry plugin, built in `app.asgi`), e.g. `POST /chatkit`;
- `chatkit.turn`: one ChatKit turn (app.agents.chatkit.turn), the parent of what follows;
- `model.call`: each model call (an answer's response, each tool round trip, a thread title);
- `tool.call`: each task tool the assistant calls; `mcp.tool_call`: each tool an MCP client calls;
- `<KIND> <table>` (e.g. `SELECT tasks`): each SQL statement, its kind and table only.

What a span may carry is decided here, once: names, counts, models, statuses and durations. Never
the user's words, a task's title, a tool's arguments or results (unless LOG_CONTENT is on), SQL
parameters or statement text, or an exception's message (a provider's may echo the user's text):
failures are recorded by their type name.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from app import __version__
from app.settings import Settings, otlp_headers

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger("app.tracing")

TRACER_NAME = "taskpilot"
TURN_SPAN = "chatkit.turn"
MODEL_CALL_SPAN = "model.call"
TOOL_CALL_SPAN = "tool.call"
MCP_TOOL_CALL_SPAN = "mcp.tool_call"
# How long a worker's shutdown waits for the last spans to reach the collector.
FLUSH_TIMEOUT_MILLIS = 5_000


@dataclass(slots=True)
class _Active:
    """What this process traces with; `tracer` is None while tracing is off."""

    tracer: Tracer | None = None
    log_content: bool = False


_active = _Active()


def tracer() -> Tracer | None:
    """The process's tracer, or None when tracing is off (then record nothing, build nothing)."""
    return _active.tracer


def build_tracer_provider(settings: Settings) -> TracerProvider | None:
    """The provider that exports this process's spans to OTEL_EXPORTER_OTLP_ENDPOINT, or None when
    tracing is off (no endpoint, or OTEL_SDK_DISABLED)."""
    if not settings.tracing_enabled or settings.otel_exporter_otlp_endpoint is None:
        return None
    # Imported only when tracing is on: the SDK and exporter cost nothing to a process that does not trace.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    headers = otlp_headers(settings.otel_exporter_otlp_headers.get()) if settings.otel_exporter_otlp_headers else None
    exporter = OTLPSpanExporter(
        # The standard variable is the collector's base URL; the HTTP exporter posts traces below it.
        endpoint=f"{settings.otel_exporter_otlp_endpoint}/v1/traces",
        headers=headers,
    )
    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.otel_service_name, "service.version": __version__})
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


class Tracing:
    """This worker's tracing: started with the app (`start`), flushed and stopped with it (`stop`)."""

    def __init__(self, settings: Settings, *, tables: frozenset[str] = frozenset()) -> None:
        self.settings = settings
        # The app's table names: a SQL span names its table only when it is one of these, so no
        # other word of a statement can ever reach a span.
        self.tables = tables
        self.provider: TracerProvider | None = None

    @classmethod
    def from_settings(cls, settings: Settings, *, tables: frozenset[str] = frozenset()) -> Tracing:
        return cls(settings, tables=tables)

    @property
    def enabled(self) -> bool:
        return self.settings.tracing_enabled

    def start(self) -> None:
        """Build this process's provider and SQL hooks (nothing when tracing is off)."""
        provider = build_tracer_provider(self.settings)
        if provider is None:
            return
        self.provider = provider
        # Global, so the HTTP middleware (which asks for the global provider) uses it too.
        trace.set_tracer_provider(provider)
        _active.tracer = provider.get_tracer(TRACER_NAME, __version__)
        _active.log_content = self.settings.log_content
        _SqlSpans.install(self.tables)
        log.info(
            "tracing on",
            extra={
                "fields": {
                    # Scheme, host and port only: a URL may carry a collector's credentials.
                    "endpoint": _where(self.settings.otel_exporter_otlp_endpoint),
                    "service": self.settings.otel_service_name,
                }
            },
        )

    async def stop(self) -> None:
        """Export what is still queued, then stop the exporter (in a thread: it may wait on the network)."""
        provider, self.provider = self.provider, None
        if provider is None:
            return
        _SqlSpans.uninstall()
        _active.tracer = None
        await anyio.to_thread.run_sync(provider.force_flush, FLUSH_TIMEOUT_MILLIS)
        await anyio.to_thread.run_sync(provider.shutdown)


def _where(url: str | None) -> str | None:
    if url is None:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


# ---- spans ------------------------------------------------------------------------------------------


def failed(span: Span, exc: BaseException | str) -> None:
    """Mark `span` failed by the exception's type name (never its message) or a kind of failure."""
    kind = exc if isinstance(exc, str) else type(exc).__name__
    span.set_attribute("error.type", kind)
    span.set_status(Status(StatusCode.ERROR, kind))


@contextmanager
def span(name: str, attributes: Mapping[str, Any] | None = None) -> Iterator[Span | None]:
    """A span around a block, current inside it (so what the block does nests under it); None when
    tracing is off. Use only around awaits, never across a `yield` of an async generator."""
    active = _active.tracer
    if active is None:
        yield None
        return
    with active.start_as_current_span(
        name, attributes=attributes, record_exception=False, set_status_on_exception=False
    ) as current:
        try:
            yield current
        except BaseException as exc:
            failed(current, exc)
            raise


def start_span(name: str, attributes: Mapping[str, Any] | None = None) -> Span | None:
    """A span started now under the current one, not made current (ended by the caller)."""
    active = _active.tracer
    if active is None:
        return None
    return active.start_span(name, attributes=attributes)


@contextmanager
def within(parent: Span | None) -> Iterator[None]:
    """Make `parent` the current span for a block of awaits (what starts inside nests under it,
    tasks created inside included). Never across a `yield` of an async generator."""
    if parent is None:
        yield
        return
    token = otel_context.attach(trace.set_span_in_context(parent))
    try:
        yield
    finally:
        otel_context.detach(token)


def content_attributes(prefix: str, value: Any) -> dict[str, str]:
    """`{prefix: value}` only when LOG_CONTENT is on: arguments and results are the user's data."""
    if not _active.log_content or value is None:
        return {}
    return {prefix: value if isinstance(value, str) else repr(value)}


@dataclass(slots=True)
class ModelCallSpan:
    """One model call's span: started when the call is made, ended with its outcome and tokens."""

    span: Span
    retries_before: int = 0

    @classmethod
    def start(cls, model: str, *, purpose: str, retries_before: int = 0) -> ModelCallSpan | None:
        started = start_span(MODEL_CALL_SPAN, {"gen_ai.request.model": model, "taskpilot.model.purpose": purpose})
        return None if started is None else cls(started, retries_before)

    def end(self, status: str, tokens: Mapping[str, int] | None = None, *, retries_after: int | None = None) -> None:
        """`status`: `ok` or the failure's kind; `tokens`: input, cached_input, output, reasoning."""
        self.span.set_attribute("taskpilot.model.status", status)
        if retries_after is not None:
            self.span.set_attribute("taskpilot.model.retries", max(0, retries_after - self.retries_before))
        for kind, count in (tokens or {}).items():
            self.span.set_attribute(f"gen_ai.usage.{kind}_tokens", int(count))
        if status != "ok":
            failed(self.span, status)
        self.span.end()


@contextmanager
def tool_call(name: str, via: str, arguments: Mapping[str, Any]) -> Iterator[Span | None]:
    """A tool call's span (`tool.call` from the assistant, `mcp.tool_call` from an MCP client), current
    while it runs, so its SQL nests under it. The caller sets the outcome with `tool_outcome`."""
    if _active.tracer is None:
        yield None
        return
    span_name = MCP_TOOL_CALL_SPAN if via == "mcp" else TOOL_CALL_SPAN
    attributes = {"gen_ai.tool.name": name, **content_attributes("taskpilot.tool.arguments", dict(arguments))}
    with span(span_name, attributes) as current:
        try:
            yield current
        except BaseException:
            if current is not None:
                current.set_attribute("taskpilot.tool.outcome", "exception")
            raise


def tool_outcome(current: Span | None, result: Mapping[str, Any]) -> None:
    """A finished tool call's outcome (`ok`, or `error` and the failing field); its result only with LOG_CONTENT."""
    if current is None:
        return
    ok = bool(result.get("ok"))
    current.set_attribute("taskpilot.tool.outcome", "ok" if ok else "error")
    if not ok and isinstance(result.get("field"), str):
        current.set_attribute("taskpilot.tool.error_field", result["field"])
    for key, value in content_attributes("taskpilot.tool.result", dict(result)).items():
        current.set_attribute(key, value)


# ---- SQL ---------------------------------------------------------------------------------------------

# The statement's first keyword (after any comment): SELECT, INSERT, UPDATE, DELETE, WITH, BEGIN, ...
_KIND = re.compile(r"\s*(?:/\*.*?\*/\s*)*([A-Za-z]+)", re.DOTALL)
# The first table a statement names; kept only when it is one of the app's tables (`Tracing.tables`).
_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE|JOIN)\s+\"?([A-Za-z_][A-Za-z0-9_]*)\"?", re.IGNORECASE)
_SPAN_ATTRIBUTE = "_taskpilot_span"


def statement_span_name(statement: str, tables: frozenset[str]) -> tuple[str, str, str | None]:
    """(span name, kind, table) of a SQL statement: `SELECT tasks`, `SELECT`, `tasks`; never more of it."""
    match = _KIND.match(statement)
    kind = match.group(1).upper() if match else "SQL"
    found = _TABLE.search(statement, 0, 4096)
    table = found.group(1) if found and found.group(1) in tables else None
    return (f"{kind} {table}" if table else kind), kind, table


def _statement_span(active: Tracer, statement: str, system: str, tables: frozenset[str]) -> Span:
    name, kind, table = statement_span_name(statement, tables)
    attributes: dict[str, Any] = {"db.system.name": system, "db.operation.name": kind}
    if table is not None:
        attributes["db.collection.name"] = table
    return active.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)


_NO_SPAN = nullcontext()


def statement(sql: str, system: str) -> AbstractContextManager[Any]:
    """A span around one statement sent past SQLAlchemy (the Store's asyncpg lane, app.store.driver),
    as the cursor events make for every other; nothing (a shared no-op) when tracing is off."""
    active = _active.tracer
    if active is None:
        return _NO_SPAN
    return _ended(_statement_span(active, sql, system, _SqlSpans.tables))


@contextmanager
def _ended(current: Span) -> Iterator[Span]:
    try:
        yield current
    except BaseException as exc:
        failed(current, exc)
        raise
    finally:
        current.end()


class _SqlSpans:
    """A span per statement, from SQLAlchemy's cursor events (every engine of the process)."""

    tables: frozenset[str] = frozenset()
    installed = False

    @classmethod
    def install(cls, tables: frozenset[str]) -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        cls.tables = tables
        if cls.installed:
            return
        event.listen(Engine, "before_cursor_execute", cls.before)
        event.listen(Engine, "after_cursor_execute", cls.after)
        event.listen(Engine, "handle_error", cls.error)
        cls.installed = True

    @classmethod
    def uninstall(cls) -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        if not cls.installed:
            return
        event.remove(Engine, "before_cursor_execute", cls.before)
        event.remove(Engine, "after_cursor_execute", cls.after)
        event.remove(Engine, "handle_error", cls.error)
        cls.installed = False

    @classmethod
    def before(cls, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        active = _active.tracer
        if active is None or context is None:
            return
        current = _statement_span(active, statement, conn.dialect.name, cls.tables)
        if executemany and isinstance(parameters, list | tuple):
            current.set_attribute("db.operation.batch.size", len(parameters))
        setattr(context, _SPAN_ATTRIBUTE, current)

    @classmethod
    def after(cls, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        current: Span | None = getattr(context, _SPAN_ATTRIBUTE, None)
        if current is not None:
            setattr(context, _SPAN_ATTRIBUTE, None)
            current.end()

    @classmethod
    def error(cls, exception_context: Any) -> None:
        context = exception_context.execution_context
        current: Span | None = getattr(context, _SPAN_ATTRIBUTE, None) if context is not None else None
        if current is not None:
            setattr(context, _SPAN_ATTRIBUTE, None)
            failed(current, exception_context.original_exception)
            current.end()
