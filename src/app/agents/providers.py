"""Model selection (`MODEL_PROVIDER`): OpenAI Responses, any OpenAI-compatible Chat Completions
endpoint, or the offline model that needs no key.

Everything here is plain Agents SDK: a `ModelProvider` the runner asks for models by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from agents import set_tracing_disabled
from agents.models.interface import Model, ModelProvider
from agents.models.openai_provider import OpenAIProvider
from openai import AsyncOpenAI
from openai.types.responses import ResponseStreamEvent
from pydantic import Field, TypeAdapter, ValidationError

from app.agents.offline.model import OfflineModel


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
    tracing: bool = False


def _tagged_stream_events() -> TypeAdapter[Any]:
    """`ResponseStreamEvent` as a union pydantic picks the member of by its `type` tag."""
    union = get_args(ResponseStreamEvent)[0] if get_origin(ResponseStreamEvent) is Annotated else ResponseStreamEvent
    members = get_args(union)
    tagged: Any = Annotated[Union[members], Field(discriminator="type")]  # noqa: UP007 (members is a runtime tuple)
    return TypeAdapter(tagged)


_STREAM_EVENT = _tagged_stream_events()


class ResponsesClient(AsyncOpenAI):
    """The openai client, with each Responses stream event parsed by its tag.

    Why: the client validates every streamed event against the ~60-member `ResponseStreamEvent`
    union without its discriminator (the SDK's own tag annotation is invisible to pydantic), so
    pydantic tries the members one by one: ~125 us per event, most of the server's CPU per text
    delta on the provider path (bench.overload). Tagged, the same event is the same model object
    in ~2 us. Anything the tagged union does not accept (an event type newer than this SDK, a
    malformed one) takes the client's own path, so behaviour is unchanged.
    """

    def _process_response_data(self, *, data: object, cast_to: Any, response: Any) -> Any:
        if cast_to is ResponseStreamEvent and isinstance(data, dict):
            try:
                return _STREAM_EVENT.validate_python(data)
            except ValidationError:
                pass
        return super()._process_response_data(data=data, cast_to=cast_to, response=response)


class OfflineModelProvider(ModelProvider):
    def __init__(self, delay_ms: int = 0) -> None:
        self._model = OfflineModel(delay_ms=delay_ms)

    def get_model(self, model_name: str | None) -> Model:
        return self._model


def build_model_provider(config: ProviderConfig) -> tuple[ModelProvider, str]:
    """The provider and the model name to run agents with."""
    # The Agents SDK exports traces to OpenAI unless told otherwise; TaskPilot opts in explicitly.
    set_tracing_disabled(not config.tracing)
    if config.provider == "offline":
        return OfflineModelProvider(config.offline_delay_ms), "offline"
    client = ResponsesClient(
        api_key=config.api_key or "unset",
        base_url=config.base_url,
        timeout=config.timeout_seconds,
        max_retries=config.max_retries,
    )
    if config.provider == "openai":
        return OpenAIProvider(openai_client=client, use_responses=True), config.model
    if config.provider == "openai-compatible":
        return OpenAIProvider(openai_client=client, use_responses=False), config.model
    raise ValueError(f"unknown model provider {config.provider!r}")
