"""What `Assistant.run` hands the Agents SDK: its own shallow copies of the agents (the shared ones
never change) and a run configuration copied from the one built once (the composer's model on it,
the usage and reasoning settings always)."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any

import pytest
from agents import FunctionTool
from openai.types.shared import Reasoning

from app.agents import assistant as assistant_module
from app.agents.assistant import Assistant, TurnContext
from app.agents.chatkit.composer import NO_CHOICE, TurnChoice
from app.agents.chatkit.structured_input import ASK_USER
from app.agents.chatkit.time_zone import GET_TIME_ZONE
from app.agents.providers import OfflineModelProvider


class _Runner:
    """Stands in for `agents.Runner`: records what each run was started with."""

    def __init__(self) -> None:
        self.runs: list[dict[str, Any]] = []

    def run_streamed(self, starting_agent: Any, input: Any, **kwargs: Any) -> object:
        self.runs.append({"agent": starting_agent, "input": input, **kwargs})
        return object()


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> _Runner:
    fake = _Runner()
    monkeypatch.setattr(assistant_module, "Runner", fake)
    return fake


def _assistant() -> Assistant:
    assistant = Assistant(provider=OfflineModelProvider(), model_name="offline", reasoning=Reasoning(effort="low"))

    async def no_history(*args: Any, **kwargs: Any) -> list[Any]:
        return []

    assistant.history = no_history  # type: ignore[method-assign]
    return assistant


def _turn(client_tools: tuple[str, ...] = ()) -> TurnContext:
    return TurnContext.model_construct(
        user_id="alice", request_context=SimpleNamespace(client_tools=client_tools), time_zone=None
    )


def _fields(agent: Any) -> dict[str, Any]:
    return {f.name: getattr(agent, f.name) for f in dataclasses.fields(agent)}


async def test_each_run_gets_its_own_agents_and_the_shared_ones_never_change(runner: _Runner) -> None:
    assistant = _assistant()
    orchestrator_before, urdu_before = _fields(assistant.orchestrator), _fields(assistant.urdu)
    choice = TurnChoice(tool="list_tasks", arguments={"status": "open"})

    await assistant.run(SimpleNamespace(), _turn((GET_TIME_ZONE,)), choice)  # type: ignore[arg-type]
    await assistant.run(SimpleNamespace(), _turn(), NO_CHOICE)  # type: ignore[arg-type]

    first, second = runner.runs
    for run in (first, second):
        orchestrator = run["agent"]
        assert orchestrator is not assistant.orchestrator
        (urdu,) = orchestrator.handoffs
        assert urdu is not assistant.urdu and urdu.name == assistant.urdu.name
    assert first["agent"] is not second["agent"]
    assert first["agent"].handoffs[0] is not second["agent"].handoffs[0]
    # The first run's changes (a forced tool with fixed arguments, the time zone tool) are its own.
    assert first["agent"].model_settings.tool_choice == "list_tasks"
    assert [t.name for t in first["agent"].tools][-1] == GET_TIME_ZONE
    assert first["agent"].tool_use_behavior == {"stop_at_tool_names": [ASK_USER, GET_TIME_ZONE]}
    fixed = next(t for t in first["agent"].tools if isinstance(t, FunctionTool) and t.name == "list_tasks")
    assert fixed not in assistant.orchestrator.tools
    assert _fields(assistant.orchestrator) == orchestrator_before
    assert _fields(assistant.urdu) == urdu_before
    assert assistant.orchestrator.handoffs == [assistant.urdu]
    # A run without changes shares every setting of the shared agents (a shallow copy), bar the handoff.
    plain = _fields(second["agent"])
    assert plain.pop("handoffs") == [second["agent"].handoffs[0]]
    shared = _fields(assistant.orchestrator)
    shared.pop("handoffs")
    assert all(plain[name] is value for name, value in shared.items())
    assert all(getattr(second["agent"].handoffs[0], name) is value for name, value in urdu_before.items())


async def test_each_run_config_has_the_usage_and_reasoning_settings_and_its_own_model(runner: _Runner) -> None:
    assistant = _assistant()

    await assistant.run(SimpleNamespace(), _turn(), TurnChoice(model="gpt-chosen"))  # type: ignore[arg-type]
    await assistant.run(SimpleNamespace(), _turn(), NO_CHOICE)  # type: ignore[arg-type]

    chosen, default = (run["run_config"] for run in runner.runs)
    assert chosen is not default
    assert (chosen.model, default.model) == ("gpt-chosen", None)
    for config in (chosen, default):
        assert config.model_provider is assistant.provider
        assert config.model_settings.include_usage is True
        assert config.model_settings.reasoning == Reasoning(effort="low")
        assert config.tracing_disabled is True
    assert [run["max_turns"] for run in runner.runs] == [12, 12]
