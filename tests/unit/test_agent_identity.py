"""`app.agents.agent_identity`: the Agents SDK's agent identity map, computed directly when every
name in the graph is unique. Each test expects the library's own function's result (its order too)."""

from __future__ import annotations

import copy

import agents._run_state_agent_identity as identity
from agents import Agent, function_tool
from agents.run_internal.tool_use_tracker import AgentToolUseTracker, serialize_tool_use_tracker
from openai.types.shared import Reasoning

from app.agents import agent_identity
from app.agents.assistant import Assistant
from app.agents.providers import OfflineModelProvider


@function_tool
def ping(word: str) -> str:
    """Echo."""
    return word


def _assistant_graph() -> Agent[object]:
    """The graph a turn runs: `Assistant.run`'s per-run copies, the specialist as a handoff."""
    assistant = Assistant(provider=OfflineModelProvider(), model_name="offline", reasoning=Reasoning(effort="low"))
    urdu, orchestrator = copy.copy(assistant.urdu), copy.copy(assistant.orchestrator)
    orchestrator.handoffs = [urdu]
    return orchestrator


def test_installed_in_place_of_the_library_map() -> None:
    import app.agents.assistant  # noqa: F401  (installs it)

    assert identity._build_agent_identity_map is agent_identity.agent_identity_map


def test_unique_names_give_the_library_map() -> None:
    root = _assistant_graph()
    ours = agent_identity.agent_identity_map(root)
    library = agent_identity._library_map(root)
    assert list(ours.items()) == list(library.items())
    assert [agent.name for agent in ours.values()] == [root.name, root.handoffs[0].name]  # type: ignore[union-attr]


def test_duplicate_names_are_left_to_the_library() -> None:
    twin_a = Agent(name="twin", instructions="a", tools=[ping])
    twin_b = Agent(name="twin", instructions="b")
    root = Agent(name="root", handoffs=[twin_b, twin_a])
    ours = agent_identity.agent_identity_map(root)
    assert list(ours.items()) == list(agent_identity._library_map(root).items())
    assert set(ours) == {"root", "twin", "twin#2"}


def test_the_tool_use_snapshot_keys_agents_by_name() -> None:
    root = _assistant_graph()
    tracker = AgentToolUseTracker()
    tracker.add_tool_use(root, ["list_tasks"])
    tracker.add_tool_use(root.handoffs[0], ["add_task"])  # type: ignore[arg-type]
    assert serialize_tool_use_tracker(tracker, starting_agent=root) == {
        root.name: ["list_tasks"],
        root.handoffs[0].name: ["add_task"],  # type: ignore[union-attr]
    }
