"""The Agents SDK's agent identity map, without a signature per agent when every name is unique.

The SDK names each agent reachable from a run's starting agent with a stable key (for resumable run
state and the sandbox's sessions): `_build_agent_identity_map`. It builds that map at least twice
per turn (the run's sandbox runtime at start, the tool-use snapshot after each model response), and
orders every group of same-named agents by a signature of the agent's whole configuration
(instructions, model settings, each tool's JSON schema, handoffs) — also for a group of one, where
there is nothing to order: `sorted` calls its key for every element. With our two agents that was
~1.8 ms of a provider-path turn's ~16 ms of fixed CPU (bench/deltas.py `--profile`, `short.prof`).

When every name in the graph is unique (ours always are: the orchestrator and the Urdu specialist)
the library's result is each agent under its own name, in its traversal order; `install` returns
exactly that then, and leaves every other graph to the library's code. tests/unit/test_agent_identity.py
pins the equality against the library's own function.
"""

from __future__ import annotations

from typing import Any

import agents._run_state_agent_identity as identity

_library_map = identity._build_agent_identity_map


def agent_identity_map(initial_agent: Any) -> dict[str, Any]:
    """The library's `_build_agent_identity_map(initial_agent)`, computed directly when names are unique."""
    ordered = list(identity._iter_agent_graph(initial_agent))
    by_name = {agent.name: agent for agent in ordered}
    if len(by_name) == len(ordered):
        return by_name  # each agent alone in its name group: its key is its name (the library's rule)
    return _library_map(initial_agent)


def install() -> None:
    """`agent_identity_map` in place of the library's (its `_build_agent_identity_keys_by_id`, which
    the run loop and the sandbox runtime call, looks the map builder up by name at every call)."""
    identity._build_agent_identity_map = agent_identity_map


__all__ = ["agent_identity_map", "install"]
