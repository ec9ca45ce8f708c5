"""The model transport alone: client CPU per streamed answer and per text delta, stock vs lean.

    python -m bench.transport [--quick] [--chat]

The Agents SDK's Responses model (`stream_response`, as the run loop calls it) reads answers of
FAKE_RESPONSES_DELTAS deltas from `bench/fake_upstream.py` (a process of its own) through each
`MODEL_TRANSPORT` in turn, rounds alternating so both see the same machine; this process's CPU
time is what a TaskPilot worker spends receiving a model's answer, before the SDK's run loop,
ChatKit and the store (bench.turns measures the whole turn). Medians over the rounds.

`--chat`: the same through the `openai-compatible` provider (the SDK's Chat Completions model,
`include_usage` on as the assistant asks) against the stand-in's `/v1/chat/completions`; figures go
to `results/transport_chat.json`.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from agents import ModelSettings
from agents.models.interface import ModelTracing

from app.agents.providers import ProviderConfig, build_model_provider
from bench import report, servers

KEY = "sk-bench-transport"
DELTAS = 200
TRANSPORTS = ("openai", "lean")


async def _answers(model: Any, count: int, chat: bool = False) -> float:
    """CPU seconds of this process to read `count` streamed answers, one after another."""
    started = time.process_time()
    for _ in range(count):
        stream = model.stream_response(
            "Be brief.",
            "what should I do first today?",
            ModelSettings(include_usage=True) if chat else ModelSettings(),
            [],
            None,
            [],
            ModelTracing.DISABLED,
        )
        deltas = 0
        async for event in stream:
            deltas += event.type == "response.output_text.delta"
        if deltas != DELTAS:
            raise RuntimeError(f"expected {DELTAS} deltas, got {deltas}")
    return time.process_time() - started


async def run(quick: bool, chat: bool = False) -> dict[str, Any]:
    rounds, answers = (3, 10) if quick else (7, 40)
    info = report.machine()
    label = f"bench.transport{' --chat' if chat else ''}{' (quick)' if quick else ''}"
    print(f"{label}: {report.describe_machine(info)}", flush=True)
    with servers.scratch_dir("taskpilot-bench-transport-") as scratch:
        fake = servers.start_server(
            "fake-openai",
            "bench.fake_upstream:create_app",
            {"FAKE_OPENAI_KEY": KEY, "FAKE_RESPONSES_DELTAS": str(DELTAS)},
            log_dir=Path(scratch),
        )
        try:
            models = {}
            for transport in TRANSPORTS:
                provider, name = build_model_provider(
                    ProviderConfig(
                        provider="openai-compatible" if chat else "openai",
                        model="gpt-5-mini",
                        api_key=KEY,
                        base_url=f"http://127.0.0.1:{fake.port}/v1",
                        transport=transport,
                    )
                )
                models[transport] = provider.get_model(name)
                await _answers(models[transport], 2, chat)  # warm: connections, imports, caches
            cpu: dict[str, list[float]] = {t: [] for t in TRANSPORTS}
            for _ in range(rounds):
                for transport in TRANSPORTS:
                    cpu[transport].append(await _answers(models[transport], answers, chat) / answers)
        finally:
            fake.stop()
    out: dict[str, Any] = {
        "api": "chat_completions" if chat else "responses",
        "deltas_per_answer": DELTAS,
        "answers_per_round": answers,
        "rounds": rounds,
    }
    for transport in TRANSPORTS:
        per_answer_ms = statistics.median(cpu[transport]) * 1000
        out[transport] = {
            "cpu_ms_per_answer": round(per_answer_ms, 2),
            "cpu_us_per_delta": round(per_answer_ms * 1000 / DELTAS, 1),
        }
        print(
            f"  MODEL_TRANSPORT={transport:6} {out[transport]['cpu_ms_per_answer']:8.2f} ms CPU per answer "
            f"of {DELTAS} deltas, {out[transport]['cpu_us_per_delta']:6.1f} us per delta",
            flush=True,
        )
    out["lean_vs_openai"] = round(out["lean"]["cpu_ms_per_answer"] / out["openai"]["cpu_ms_per_answer"], 2)
    out["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(f"  lean / openai: {out['lean_vs_openai']}x (load average {out['load_average']})", flush=True)
    path = Path(__file__).parent / "results" / ("transport_chat.json" if chat else "transport.json")
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    asyncio.run(run(report.quick_mode(), chat="--chat" in sys.argv[1:]))
