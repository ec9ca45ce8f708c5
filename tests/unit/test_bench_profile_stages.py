"""bench/profiling.py names the stage each sampled frame belongs to; the figures in the issue
notes and docs/benchmarks.md rest on it. Our own `app/agents/` and `app/agents/chatkit/` are app
code, never the Agents SDK (`agents/`) or the ChatKit library (`chatkit/`): a substring match
put 12-15% of a turn's CPU under the wrong library."""

from __future__ import annotations

import pytest
from bench.profiling import summarise_profile


@pytest.mark.parametrize(
    ("frame", "stage"),
    [
        # py-spy prints installed packages from their top-level package on...
        ("run_streamed (agents/run.py:1)", "agents SDK"),
        ("stream_agent_response (chatkit/agents.py:1)", "chatkit library"),
        ("send (httpx/_client.py:1)", "HTTP client (httpx, httpcore, h11, anyio)"),
        ("current_task (asyncio/tasks.py:38)", "asyncio event loop"),
        # ...and ours from app/ on,
        ("send (app/agents/transport.py:1)", "app code (src/app)"),
        ("stream (app/agents/chatkit/stream.py:1)", "app code (src/app)"),
        # or with a full path, cut after site-packages/, src/ or the standard library's directory.
        ("run (/srv/.venv/lib/python3.11/site-packages/agents/run.py:1)", "agents SDK"),
        ("turn (/srv/taskpilot/src/app/agents/chatkit/turn.py:1)", "app code (src/app)"),
        ("dumps (/usr/lib/python3.11/json/encoder.py:1)", "logging / json"),
    ],
)
def test_a_frame_is_counted_under_its_own_library(frame: str, stage: str) -> None:
    summary = summarise_profile([f"main (x.py:1);{frame} 3"])
    assert summary["self_by_stage"] == {stage: 100.0}


def test_self_time_goes_to_the_innermost_known_frame_and_idle_is_apart() -> None:
    summary = summarise_profile(
        [
            "main (x.py:1);run (agents/run.py:1);send (app/agents/transport.py:1);build (unknown.py:1) 3",
            "main (x.py:1);run_forever (asyncio/base_events.py:1);select (selectors.py:1) 5",
        ]
    )
    assert summary["samples_busy"] == 3 and summary["samples_idle"] == 5
    assert summary["self_by_stage"] == {"app code (src/app)": 100.0}
    assert summary["inclusive_by_stage"] == {"app code (src/app)": 100.0, "agents SDK": 100.0}
