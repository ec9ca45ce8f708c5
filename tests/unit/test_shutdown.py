"""A worker's shutdown (`Services.on_shutdown`) runs every cleanup step, whichever of them fails."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from agents.models.interface import Model, ModelProvider

from app.asgi import Services
from app.settings import Settings


class _UnclosableProvider(ModelProvider):
    def get_model(self, model_name: str | None) -> Model:  # pragma: no cover - never asked
        raise NotImplementedError

    async def aclose(self) -> None:
        raise RuntimeError("the upstream pool would not close")


async def test_a_failing_step_of_the_shutdown_skips_none_of_the_others(caplog: pytest.LogCaptureFixture) -> None:
    """The model provider is closed early in the shutdown: were its failure raised, the hosted
    sessions' client, the transcriber, the rate limiter's Redis and the last flush of the traces
    were all skipped."""
    services = Services.build(Settings.from_env({}), model_provider=_UnclosableProvider())
    ran: list[str] = []

    def recorded(name: str) -> Any:
        async def step() -> None:
            ran.append(name)

        return step

    object.__setattr__(services.hosted_chatkit, "aclose", recorded("hosted"))
    object.__setattr__(services.limits, "aclose", recorded("limits"))
    object.__setattr__(services.tracing, "stop", recorded("tracing"))
    with caplog.at_level(logging.WARNING):
        await services.on_shutdown(None)  # type: ignore[arg-type]
    assert ran == ["hosted", "limits", "tracing"]
    assert any("RuntimeError" in str(getattr(record, "fields", "")) for record in caplog.records)
