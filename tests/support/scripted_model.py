"""A scripted Agents SDK model for tests: each call plays the next step of a script.

A step is a `ToolCall`, a `Reply`, or an exception to raise (optionally after some deltas).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from agents.items import ModelResponse
from agents.models.interface import Model, ModelProvider
from agents.usage import Usage

from app.agents.offline.model import _function_call, _message, step_events
from app.agents.offline.planner import Reply, ToolCall


@dataclass
class FailAfter:
    """Stream `text` as deltas, then raise `error` mid-message."""

    text: str
    error: BaseException


class ScriptedModel(Model):
    def __init__(self, script: list[Any], *, delay: float = 0.0) -> None:
        self.script = list(script)
        self.delay = delay
        self.inputs: list[Any] = []

    def _next(self, input: Any) -> Any:
        self.inputs.append(input)
        if not self.script:
            return Reply("(script exhausted)")
        return self.script.pop(0)

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        step = self._next(args[1] if len(args) > 1 else kwargs.get("input"))
        if isinstance(step, BaseException):
            raise step
        item = _function_call(step) if isinstance(step, ToolCall) else _message(step.text)
        return ModelResponse(output=[item], usage=Usage(requests=1), response_id=None)

    async def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:  # type: ignore[override]
        step = self._next(args[1] if len(args) > 1 else kwargs.get("input"))
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, FailAfter):
            count = 0
            async for event in step_events(Reply(step.text), self.delay):
                yield event
                if event.type == "response.output_text.delta":
                    count += 1
                    if count >= 2:
                        raise step.error
            raise step.error
        async for event in step_events(step, self.delay):
            yield event


class ScriptedProvider(ModelProvider):
    def __init__(self, model: Model) -> None:
        self.model = model

    def get_model(self, model_name: str | None) -> Model:
        return self.model
