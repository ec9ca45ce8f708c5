"""Token accounting and the daily token budget over real HTTP (issue 32), against the fake model
servers (Chat Completions and Responses), whose every answer reports different token counts.

A turn with two tool round trips and a title: `taskpilot_model_tokens_total{model,kind}` grows by
exactly what the fake reported, and so does the user's `usage` row (read with `taskpilot usage
export`); with `QUOTA_TOKENS_PER_USER_PER_DAY` set, the turn after 80% carries a notice, and the turn
after the budget is a 429 problem naming it and when it resets, before any stream.
"""

from __future__ import annotations

import datetime as dt
import json

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.agents.offline.planner import Reply, ToolCall
from app.services.usage import hashed_user
from tests.support.auth import server_token
from tests.support.chatkit_client import ChatKitClient
from tests.support.fake_model_server import FakeModelServer
from tests.support.servers import run_cli, unique_user

KINDS = ("input", "cached_input", "output", "reasoning")
# First turn: 3 model calls and a title (answers 1-4 of the fake): 4,070 input + 210 output tokens.
# Second turn: 1 call (answer 5): 1,035 + 65. So after the first turn 85.6% of 5,000 is spent (a
# notice), after the second 5,380 (the third is refused).
BUDGET = 5000


def _env(provider: str, fake: FakeModelServer) -> dict[str, str]:
    common = {"OPENAI_BASE_URL": fake.base_url, "QUOTA_TOKENS_PER_USER_PER_DAY": str(BUDGET)}
    if provider == "openai-compatible":
        return {**common, "MODEL_PROVIDER": provider, "MODEL_API_KEY": fake.api_key, "MODEL": "mimo-v2-flash"}
    return {**common, "MODEL_PROVIDER": "openai", "OPENAI_API_KEY": fake.api_key, "MODEL": "gpt-5-mini"}


def tokens_counted(text: str, model: str) -> dict[str, float]:
    counted = dict.fromkeys(KINDS, 0.0)
    for family in text_string_to_metric_families(text):
        if family.name == "taskpilot_model_tokens":
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.labels.get("model") == model:
                    counted[sample.labels["kind"]] = sample.value
    return counted


def summed(usages: list[dict[str, int]]) -> dict[str, int]:
    return {kind: sum(u[kind] for u in usages) for kind in KINDS}


@pytest.mark.parametrize("provider", ["openai-compatible", "openai"])
async def test_tokens_are_counted_recorded_and_capped_per_day(live_server_factory, fake_model, provider: str) -> None:
    fake = fake_model(
        [
            ToolCall(
                "add_task", {"title": "Buy milk", "description": None, "priority": None, "due_date": None, "tags": None}
            ),
            ToolCall("list_tasks", {}),
            Reply("Added “Buy milk”; you have one task."),
            Reply("You're welcome!"),
            Reply("(never asked)"),
        ],
        title="Milk shopping",
    )
    server = live_server_factory(_env(provider, fake))
    model = server.env["MODEL"]
    user = unique_user("tokens")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        alice = ChatKitClient(http, server_token(server.env, user))
        before = tokens_counted((await http.get("/metrics")).text, model)

        first = await alice.create_thread("add buy milk, then list my tasks")
        assert first.status == 200 and not first.of_type("error"), first.of_type("error")
        assert first.of_type("thread.updated")[-1].thread.title == "Milk shopping"
        assert len(fake.requests) == 4  # the answer with two tool round trips, and a title
        assert not first.of_type("notice")

        after = tokens_counted((await http.get("/metrics")).text, model)
        sent = summed(fake.usage_sent)
        assert {kind: after[kind] - before[kind] for kind in KINDS} == sent
        assert sent == {"input": 4070, "cached_input": 30, "output": 210, "reasoning": 20}

        # The health document names the last call of the model: its status and latency, no secret.
        health = (await http.get("/api/chatkit/health")).json()
        [last] = health["self_hosted"]["model_calls"]
        assert (last["model"], last["status"]) == (model, "ok") and last["latency_ms"] > 0
        assert fake.api_key not in json.dumps(health)
        calls = {
            s.labels["outcome"]: s.value
            for f in text_string_to_metric_families((await http.get("/metrics")).text)
            if f.name == "taskpilot_model_calls"
            for s in f.samples
            if s.name.endswith("_total") and s.labels["model"] == model
        }
        assert calls == {"ok": 4.0}

        second = await alice.send(first.thread_id, "thanks")
        assert second.assistant_text() == "You're welcome!"
        notices = [n for n in second.of_type("notice") if "token" in n.message]
        assert len(notices) == 1 and "85%" in notices[0].message and "5,000" in notices[0].message

        refused = await alice.send(first.thread_id, "one more thing")
        assert refused.status == 429 and not refused.events
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert "QUOTA_TOKENS_PER_USER_PER_DAY" in refused.body["detail"]
        assert "5,000-token daily budget" in refused.body["detail"]
        midnight = dt.datetime.combine(dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1), dt.time(), dt.UTC)
        assert midnight.strftime("%Y-%m-%d 00:00 UTC") in refused.body["detail"]
        wait = int(refused.headers["retry-after"])
        assert 0 < wait <= 86_400
        assert len(fake.requests) == 5  # the refused turn reached no model
        # A new thread is a new turn too: refused before its thread is reserved.
        assert (await alice.create_thread("hello")).status == 429

    # The user's row of the day: every token the fake reported, two turns, under the answer's model.
    exported = run_cli(["usage", "export", "--format", "jsonl", "--include-user"], server.env)
    rows = [json.loads(line) for line in exported.stdout.splitlines()]
    mine = [row for row in rows if row["user"] == user]
    total = summed(fake.usage_sent)
    assert mine == [
        {
            "day": dt.datetime.now(dt.UTC).date().isoformat(),
            "user": user,
            "model": model,
            "input_tokens": total["input"],
            "cached_input_tokens": total["cached_input"],
            "output_tokens": total["output"],
            "reasoning_tokens": total["reasoning"],
            "turns": 2,
            "transcription_seconds": 0,  # no dictation
        }
    ]
    hashed = run_cli(["usage", "export", "--format", "csv"], server.env)
    assert user not in hashed.stdout and hashed_user(user) in hashed.stdout
    assert hashed.stdout.splitlines()[0] == (
        "day,user,model,input_tokens,cached_input_tokens,output_tokens,reasoning_tokens,turns,transcription_seconds"
    )
    assert '"turn tokens"' in server.log() or "turn tokens" in server.log()


async def test_a_failed_model_call_shows_in_health_and_the_calls_metric(live_server_factory, fake_model) -> None:
    fake = fake_model([429, 429, 429, 429], title=429)
    server = live_server_factory({**_env("openai-compatible", fake), "QUOTA_TOKENS_PER_USER_PER_DAY": "0"})
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
        alice = ChatKitClient(http, server_token(server.env, unique_user("tokens")))
        failed = await alice.create_thread("hello")
        assert failed.status == 200 and failed.of_type("error")
        [last] = (await http.get("/api/chatkit/health")).json()["self_hosted"]["model_calls"]
        assert (last["model"], last["status"]) == ("mimo-v2-flash", "rate_limit")
        metrics_text = (await http.get("/metrics")).text
        # The answer's call, and the title's when it failed before the failed answer cancelled it
        # (the two run side by side).
        assert any(
            f'taskpilot_model_calls_total{{model="mimo-v2-flash",outcome="rate_limit"}} {n}' in metrics_text
            for n in ("1.0", "2.0")
        ), [line for line in metrics_text.splitlines() if "model_calls_total" in line]
        assert 'outcome="ok"' not in metrics_text
    # Nothing was answered, nothing was reported: the failed turn still counts as a turn, of no tokens.
    rows = [
        json.loads(line) for line in run_cli(["usage", "export", "--format", "jsonl"], server.env).stdout.splitlines()
    ]
    assert [(r["input_tokens"], r["output_tokens"], r["turns"]) for r in rows] == [(0, 0, 1)]
