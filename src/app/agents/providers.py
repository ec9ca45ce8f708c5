"""Model selection (`MODEL_PROVIDER`): OpenAI Responses, any OpenAI-compatible Chat Completions
endpoint, or the offline model that needs no key.

Everything here is plain Agents SDK: a `ModelProvider` the runner asks for models by name.
"""

from __future__ import annotations

from dataclasses import dataclass

from agents import set_tracing_disabled
from agents.models.interface import Model, ModelProvider
from agents.models.openai_provider import OpenAIProvider
from openai import AsyncOpenAI

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
    client = AsyncOpenAI(
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
