"""Model selection (`MODEL_PROVIDER`): OpenAI Responses, any OpenAI-compatible Chat Completions
endpoint, or the offline model that needs no key.

Everything here is plain Agents SDK: a `ModelProvider` the runner asks for models by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from agents import set_tracing_export_api_key
from agents.models.default_models import get_default_model
from agents.models.interface import Model, ModelProvider
from agents.models.openai_provider import OpenAIProvider
from agents.tracing import get_trace_provider, set_trace_provider
from agents.tracing.processors import default_processor
from agents.tracing.provider import DefaultTraceProvider
from openai import AsyncOpenAI, omit
from openai.resources.chat import AsyncChat, AsyncCompletions
from openai.resources.responses import AsyncResponses
from openai.types.responses import ResponseStreamEvent
from openai.types.shared import Reasoning

from app.agents.chat_transport import LeanChatCompletionsModel
from app.agents.chatkit import notices
from app.agents.offline.model import OfflineModel
from app.agents.stream_events import tagged_stream_event
from app.agents.transport import LeanResponsesModel, Transport


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """What the agents need to know about the model, without importing the settings module."""

    provider: str  # offline | openai | openai-compatible
    model: str
    api_key: str | None = None
    base_url: str | None = None
    timeout_seconds: float = 30.0
    max_retries: int = 1
    offline_delay_ms: int = 0
    # The Agents SDK's own traces to OpenAI (AGENTS_TRACING=openai), sent with this key.
    tracing: bool = False
    tracing_api_key: str | None = None
    # lean: our own transport (`app.agents.transport`, `app.agents.chat_transport`); openai: the openai client.
    transport: str = "openai"


_JSON_SCALARS = (str, int, float, bool, type(None))


def _plain_json(value: object) -> bool:
    """Only dicts, lists and JSON scalars all the way down: what the openai client's request
    transform leaves exactly as it is."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain_json(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain_json(v) for v in value)
    return isinstance(value, _JSON_SCALARS)


def _untransformed(params: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """`params` with those of `names` that are plain-JSON lists moved to `extra_body`.

    Why: before every request the openai client walks each parameter against its TypedDict type
    (for the aliases, date formats and models it may have to rewrite). The conversation and the
    tool schemas are the big ones, and none of their types declares an alias or a format, so for
    plain JSON the walk changes nothing, but it costs: on the provider path it was ~60% of an
    `add_user_message` turn's CPU on a 20-item thread, growing with the history (bench.turns).
    `extra_body` is merged into the same JSON body untouched (tests/unit/test_responses_client.py
    checks the body is the stock client's); anything else (a pydantic object, an iterator) still
    takes the client's walk.
    """
    untouched = {name: params[name] for name in names if _plain_json_list(params.get(name))}
    if not untouched:
        return params
    return {**params, **dict.fromkeys(untouched, omit), "extra_body": {**untouched, **(params.get("extra_body") or {})}}


def _plain_json_list(value: object) -> bool:
    return isinstance(value, list) and _plain_json(value)


class _PlainBodyResponses(AsyncResponses):
    async def create(self, **params: Any) -> Any:
        return await super().create(**_untransformed(params, ("input", "tools")))


class _PlainBodyCompletions(AsyncCompletions):
    async def create(self, **params: Any) -> Any:
        return await super().create(**_untransformed(params, ("messages", "tools")))


class _PlainBodyChat(AsyncChat):
    @cached_property
    def completions(self) -> AsyncCompletions:
        return _PlainBodyCompletions(self._client)


class ResponsesClient(AsyncOpenAI):
    """The openai client, with each Responses stream event parsed by its tag, and the Responses
    and Chat Completions requests sent without the parameter walk (`_untransformed`). Its
    retries are announced to the turn that waits for them (`_sleep_for_retry`).

    Why: the client validates every streamed event against the ~60-member `ResponseStreamEvent`
    union without its discriminator (the SDK's own tag annotation is invisible to pydantic), so
    pydantic tries the members one by one: ~125 us per event, most of the server's CPU per text
    delta on the provider path (bench.overload). Tagged, the same event is the same model object
    in ~2 us. Anything the tagged union does not accept (an event type newer than this SDK, a
    malformed one) ends where the client's own path would: an event of a known type that does
    not validate (a field missing) is built unvalidated as that type, as the client does after
    first trying, and failing, every member of the union (~350 us); an unknown type takes the
    client's path.
    """

    @cached_property
    def responses(self) -> AsyncResponses:
        return _PlainBodyResponses(self)

    @cached_property
    def chat(self) -> AsyncChat:
        return _PlainBodyChat(self)

    async def _sleep_for_retry(
        self, *, retries_taken: int, max_retries: int, options: Any, response: Any | None
    ) -> None:
        """The client's wait before it retries a failed call (429, 5xx, a dropped connection),
        announced first to the turn the call is made for, so the user is not left in silence."""
        turn = notices.current.get()
        if turn is not None:
            headers = response.headers if response is not None else None
            # About the wait the client picks (the same rule; without Retry-After it adds jitter).
            wait = self._calculate_retry_timeout(max_retries - retries_taken, options, headers)
            status = response.status_code if response is not None else None
            await turn.retrying(attempt=retries_taken + 1, of=max_retries, wait=wait, status=status)
        await super()._sleep_for_retry(
            retries_taken=retries_taken, max_retries=max_retries, options=options, response=response
        )

    def _process_response_data(self, *, data: object, cast_to: Any, response: Any) -> Any:
        if cast_to is ResponseStreamEvent and isinstance(data, dict):
            event = tagged_stream_event(data)
            if event is not None:
                return event
        return super()._process_response_data(data=data, cast_to=cast_to, response=response)


class OfflineModelProvider(ModelProvider):
    def __init__(self, delay_ms: int = 0) -> None:
        self._model = OfflineModel(delay_ms=delay_ms)

    def get_model(self, model_name: str | None) -> Model:
        return self._model


def reasoning_settings(effort: str, summary: str) -> Reasoning | None:
    """The model's reasoning settings (REASONING_EFFORT, REASONING_SUMMARY); None sends none, so the
    model reasons as it does by default and nothing about reasoning is in the request.

    The Responses API takes both (its summary deltas become ChatKit's reasoning workflow in
    `chatkit.agents.stream_agent_response`); the Agents SDK sends Chat Completions only the effort.
    """
    if effort == "off":
        return None
    if summary == "off":
        return Reasoning(effort=effort)  # type: ignore[arg-type]
    return Reasoning(effort=effort, summary=summary)  # type: ignore[arg-type]


class OwnedClientProvider(OpenAIProvider):
    """`OpenAIProvider` over an `AsyncOpenAI` client built for it alone, closed with it.

    The SDK's own `aclose` leaves the client open (it may be shared process-wide); ours is
    not shared, so a worker's shutdown closes its pooled upstream connections too.
    """

    def __init__(self, openai_client: AsyncOpenAI, *, use_responses: bool) -> None:
        super().__init__(openai_client=openai_client, use_responses=use_responses)
        self.owned_client = openai_client

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            await self.owned_client.close()


class LeanProvider(OwnedClientProvider):
    """The `openai` (Responses) or `openai-compatible` (Chat Completions) provider with its model
    requests sent by the lean transport (`MODEL_TRANSPORT=lean`)."""

    def __init__(self, openai_client: AsyncOpenAI, transport: Transport, *, use_responses: bool) -> None:
        super().__init__(openai_client, use_responses=use_responses)
        self.transport = transport
        self.use_responses = use_responses
        self._client_for_checks = openai_client

    async def aclose(self) -> None:
        try:
            await self.transport.aclose()
        finally:
            await super().aclose()

    def get_model(self, model_name: str | None) -> Model:
        name = model_name if model_name is not None else get_default_model()
        if not self.use_responses:
            return LeanChatCompletionsModel(name, self._client_for_checks, self.transport)
        return LeanResponsesModel(
            name, self._client_for_checks, self.transport, model_is_explicit=model_name is not None
        )


class _SdkTraceProvider(DefaultTraceProvider):
    """The Agents SDK's default trace provider, given the SDK's exporter only once its tracing is on.

    The SDK's own provider builds its exporter to OpenAI (an HTTP client, which loads httpcore2 and
    trio) the first time anything asks for the provider, tracing on or off: ~0.2 s of CPU in every
    server worker, for traces a worker with AGENTS_TRACING=off never sends.
    """

    exporting = False

    def export(self) -> None:
        if not self.exporting:
            self.register_processor(default_processor())
            self.exporting = True


_sdk_trace_provider: _SdkTraceProvider | None = None


def configure_sdk_tracing(enabled: bool, api_key: str | None) -> None:
    """The Agents SDK's own traces to OpenAI: off, or on and sent with `api_key`.

    The SDK exports traces to OpenAI unless told otherwise; TaskPilot opts in explicitly.
    """
    global _sdk_trace_provider
    if _sdk_trace_provider is None:
        _sdk_trace_provider = _SdkTraceProvider()
        set_trace_provider(_sdk_trace_provider)
    provider = get_trace_provider()  # ours, unless something replaced it since
    if enabled and isinstance(provider, _SdkTraceProvider):
        provider.export()
    provider.set_disabled(not enabled)
    if enabled and api_key:
        # Not MODEL_API_KEY: an OpenAI-compatible provider's key means nothing to OpenAI's traces.
        set_tracing_export_api_key(api_key)


def build_model_provider(config: ProviderConfig) -> tuple[ModelProvider, str]:
    """The provider and the model name to run agents with."""
    configure_sdk_tracing(config.tracing, config.tracing_api_key)
    if config.provider == "offline":
        return OfflineModelProvider(config.offline_delay_ms), "offline"
    if config.provider not in ("openai", "openai-compatible"):
        raise ValueError(f"unknown model provider {config.provider!r}")
    client = ResponsesClient(
        api_key=config.api_key or "unset",
        base_url=config.base_url,
        timeout=config.timeout_seconds,
        max_retries=config.max_retries,
    )
    use_responses = config.provider == "openai"  # openai-compatible: Chat Completions
    if config.transport == "lean":
        transport = Transport(
            base_url=str(client.base_url),  # the client's: OPENAI_BASE_URL or OpenAI's own
            api_key=config.api_key or "unset",
            timeout_seconds=config.timeout_seconds,
            max_retries=config.max_retries,
            headers=client.default_headers,
        )
        return LeanProvider(client, transport, use_responses=use_responses), config.model
    return OwnedClientProvider(client, use_responses=use_responses), config.model
