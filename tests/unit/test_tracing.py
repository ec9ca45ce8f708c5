"""Tracing's settings and set-up (app.ops.tracing): off builds nothing, on builds one exporter to the
configured endpoint; SQL spans name a statement's kind and a known table, never more; the Agents
SDK's own tracing is on only with AGENTS_TRACING=openai."""

from __future__ import annotations

import pytest
from agents.tracing import get_trace_provider
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy import event
from sqlalchemy.engine import Engine

from app.agents.providers import ProviderConfig, _SdkTraceProvider, build_model_provider
from app.asgi import Services, http_tracing_plugins
from app.ops import tracing
from app.ops.tracing import Tracing, _SqlSpans, build_tracer_provider, statement_span_name
from app.settings import Settings, SettingsError, otlp_headers

pytestmark = pytest.mark.unit

ENDPOINT = "http://127.0.0.1:4318"


def test_tracing_is_off_by_default_and_on_with_the_standard_endpoint() -> None:
    off = Settings.from_env({})
    assert not off.tracing_enabled
    assert (off.otel_exporter_otlp_endpoint, off.otel_service_name, off.agents_tracing) == (None, "taskpilot", "off")
    on = Settings.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT + "/", "OTEL_SERVICE_NAME": "tasks-eu"})
    assert on.tracing_enabled
    assert (on.otel_exporter_otlp_endpoint, on.otel_service_name) == (ENDPOINT, "tasks-eu")
    killed = Settings.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_SDK_DISABLED": "true"})
    assert not killed.tracing_enabled


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT='collector:4318' is invalid"),
        ({"OTEL_SDK_DISABLED": "perhaps"}, "OTEL_SDK_DISABLED='perhaps' is invalid: accepts true or false"),
        ({"AGENTS_TRACING": "on"}, "AGENTS_TRACING='on' is invalid: accepts one of off, openai"),
        ({"AGENTS_TRACING": "openai"}, "OPENAI_API_KEY is missing: AGENTS_TRACING=openai"),
        ({"OTEL_EXPORTER_OTLP_HEADERS": "sk-secret-without-a-key"}, "OTEL_EXPORTER_OTLP_HEADERS is invalid"),
    ],
)
def test_bad_tracing_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(env)
    assert message in str(raised.value)
    assert "sk-secret" not in str(raised.value)  # a header value is a collector's key: never echoed


def test_otlp_headers_are_a_secret_and_the_exporter_posts_below_the_endpoint() -> None:
    """(That the headers reach the collector is tests/live/test_traces.py's.)"""
    settings = Settings.from_env(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer%20k1, x-team=ops"}
    )
    assert "k1" not in repr(settings)
    assert otlp_headers(settings.otel_exporter_otlp_headers.get()) == {"authorization": "Bearer k1", "x-team": "ops"}
    provider = build_tracer_provider(settings)
    assert isinstance(provider, TracerProvider)
    try:
        [processor] = provider._active_span_processor._span_processors
        exporter = processor._batch_processor._exporter  # type: ignore[attr-defined]
        assert exporter._endpoint == ENDPOINT + "/v1/traces"
        assert provider.resource.attributes["service.name"] == "taskpilot"
    finally:
        provider.shutdown()


@pytest.mark.parametrize(
    "env",
    [{}, {"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_SDK_DISABLED": "true"}, {"OTEL_SERVICE_NAME": "x"}],
)
async def test_tracing_off_builds_no_provider_no_exporter_no_hooks(env: dict[str, str]) -> None:
    settings = Settings.from_env(env)
    assert build_tracer_provider(settings) is None
    assert http_tracing_plugins(settings) == []
    worker = Tracing.from_settings(settings, tables=frozenset({"tasks"}))
    worker.start()
    try:
        assert worker.provider is None
        assert tracing.tracer() is None
        assert not isinstance(trace.get_tracer_provider(), TracerProvider)
        assert not event.contains(Engine, "before_cursor_execute", _SqlSpans.before)
        # The helpers the request path calls record nothing and cost a function call.
        with tracing.span("anything") as current:
            assert current is None
        assert tracing.start_span(tracing.TURN_SPAN) is None
        assert tracing.ModelCallSpan.start("m", purpose="answer") is None
        assert tracing.statement("SELECT 1", "postgresql") is tracing.statement("INSERT x", "sqlite")  # one no-op
    finally:
        await worker.stop()


def test_the_start_up_line_names_the_collector_without_its_credentials() -> None:
    assert tracing._where("https://user:s3cret@collector.example:4318/otlp") == "https://collector.example:4318"


def test_tracing_on_adds_the_http_plugin() -> None:
    [plugin] = http_tracing_plugins(Settings.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}))
    assert plugin.config.exclude_spans == ["receive", "send"]


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("SELECT tasks.id FROM tasks WHERE tasks.user_id = ?", ("SELECT tasks", "SELECT", "tasks")),
        ('INSERT INTO "chat_items" (id) VALUES ($1)', ("INSERT chat_items", "INSERT", "chat_items")),
        ("  /* hint */ update usage SET turns = turns + 1", ("UPDATE usage", "UPDATE", "usage")),
        ("BEGIN", ("BEGIN", "BEGIN", None)),
        # A word after FROM that is not one of the app's tables is never named.
        ("SELECT 'x' FROM milkshakes", ("SELECT", "SELECT", None)),
        ("select count(*) from (select 1) as sub", ("SELECT", "SELECT", None)),
    ],
)
def test_a_sql_span_names_the_kind_and_a_known_table_only(
    statement: str, expected: tuple[str, str, str | None]
) -> None:
    assert statement_span_name(statement, frozenset({"tasks", "chat_items", "usage"})) == expected


def test_the_sql_hooks_follow_the_worker() -> None:
    _SqlSpans.install(frozenset({"tasks"}))
    try:
        assert event.contains(Engine, "before_cursor_execute", _SqlSpans.before)
    finally:
        _SqlSpans.uninstall()
    assert not event.contains(Engine, "before_cursor_execute", _SqlSpans.before)


def test_tool_content_only_with_log_content(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing._active, "log_content", False)
    assert tracing.content_attributes("taskpilot.tool.arguments", {"title": "Buy milk"}) == {}
    monkeypatch.setattr(tracing._active, "log_content", True)
    assert tracing.content_attributes("taskpilot.tool.arguments", {"title": "Buy milk"}) == {
        "taskpilot.tool.arguments": "{'title': 'Buy milk'}"
    }


@pytest.mark.parametrize(
    ("env", "sdk_tracing"),
    [
        ({}, False),
        # OpenTelemetry on never turns the SDK's own traces to OpenAI on.
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}, False),
        ({"OPENAI_API_KEY": "sk-test", "AGENTS_TRACING": "off"}, False),
        ({"OPENAI_API_KEY": "sk-test", "AGENTS_TRACING": "openai"}, True),
    ],
)
def test_the_agents_sdk_traces_only_with_agents_tracing_openai(env: dict[str, str], sdk_tracing: bool) -> None:
    services = Services.build(Settings.from_env(env))
    try:
        assert services.chatkit_server.assistant.agents_tracing is sdk_tracing
        assert get_trace_provider()._disabled is not sdk_tracing
    finally:
        # Leave the process as the suite expects it: the SDK's tracing off.
        build_model_provider(ProviderConfig(provider="offline", model="offline"))
    assert get_trace_provider()._disabled


def test_the_sdk_trace_exporter_is_built_only_once_its_tracing_is_on() -> None:
    """Off builds no exporter (an HTTP client: ~0.2 s of each worker's start-up); on adds the SDK's
    default processor once, and it stays through off and on again."""
    from agents.tracing.processors import default_processor

    build_model_provider(ProviderConfig(provider="offline", model="offline"))
    provider = get_trace_provider()
    assert isinstance(provider, _SdkTraceProvider)
    try:
        build_model_provider(ProviderConfig(provider="offline", model="offline", tracing=True, tracing_api_key="sk-t"))
        assert get_trace_provider() is provider
        assert provider.exporting and not provider._disabled
        assert provider._multi_processor._processors == (default_processor(),)
        build_model_provider(ProviderConfig(provider="offline", model="offline"))
        build_model_provider(ProviderConfig(provider="offline", model="offline", tracing=True))
        assert provider._multi_processor._processors == (default_processor(),)
    finally:
        build_model_provider(ProviderConfig(provider="offline", model="offline"))
    assert provider._disabled
