"""`notice` and `progress_update` events over real HTTP, against a live granian process: a slow
model, a retried model call, a nearly spent chat rate limit or attachment quota, a batch of task
tools, and the attachments of a message being read. Each case has its control: the same server
without the condition sends nothing of the kind."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.agents.offline.planner import Reply, ToolCall
from app.settings import SettingsError
from tests.conftest import make_settings
from tests.support.chatkit_client import ChatKitClient, StreamResult
from tests.support.fake_model_server import FakeModelServer, Slow, ToolCalls
from tests.support.payloads import NOTES
from tests.support.servers import run_cli


def _compatible(fake: FakeModelServer) -> dict[str, str]:
    return {
        "MODEL_PROVIDER": "openai-compatible",
        "OPENAI_BASE_URL": fake.base_url,
        "MODEL_API_KEY": fake.api_key,
        "MODEL": "mimo-v2-flash",
    }


def _token(server: Any, user: str) -> str:
    return run_cli(["token", "--user", user], server.env).stdout.strip()


def _first_message_index(result: StreamResult) -> int:
    return next(
        n
        for n, event in enumerate(result.events)
        if event.type == "thread.item.added" and event.item.type == "assistant_message"
    )


def _add(title: str) -> ToolCall:
    return ToolCall("add_task", {"title": title, "description": None, "priority": None, "due_date": None, "tags": None})


def test_model_slow_notice_seconds_must_be_positive(tmp_path: Path) -> None:
    for bad in ("0", "-1", "soon"):
        with pytest.raises(SettingsError, match="MODEL_SLOW_NOTICE_SECONDS"):
            make_settings(tmp_path, MODEL_SLOW_NOTICE_SECONDS=bad)
    assert make_settings(tmp_path).model_slow_notice_seconds == 8.0
    assert make_settings(tmp_path, MODEL_SLOW_NOTICE_SECONDS="2.5").model_slow_notice_seconds == 2.5


async def test_a_silent_model_gets_one_notice_per_turn_and_a_prompt_one_none(
    live_server_factory: Any, fake_model: Any
) -> None:
    # Thresholds with room for a busy machine: the prompt answer is well under it.
    fake = fake_model([Reply("Quick answer."), Slow(4.5, Reply("Slow answer."))])
    server = live_server_factory({**_compatible(fake), "MODEL_SLOW_NOTICE_SECONDS": "1.5"})
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        client = ChatKitClient(http, _token(server, "alice"))
        quick = await client.create_thread("hello")
        assert quick.status == 200 and quick.assistant_text() == "Quick answer."
        assert quick.of_type("notice") == []

        slow = await client.send(quick.thread_id, "hello again")
    assert slow.status == 200 and not slow.of_type("error")
    assert slow.assistant_text() == "Slow answer."
    notices = slow.of_type("notice")
    # Silent three times the threshold, told once.
    assert len(notices) == 1, notices
    assert notices[0].level == "info"
    assert "taking longer than usual" in notices[0].message
    assert slow.events.index(notices[0]) < _first_message_index(slow)


@pytest.mark.parametrize(("status", "reason"), [(500, "failed to answer (500)"), (429, "rate-limiting")])
async def test_a_retried_model_call_is_announced(
    live_server_factory: Any, fake_model: Any, status: int, reason: str
) -> None:
    fake = fake_model([Reply("First answer."), status, Reply("Answer after the retry.")])
    server = live_server_factory(_compatible(fake))
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        client = ChatKitClient(http, _token(server, "alice"))
        first = await client.create_thread("hello")
        assert first.of_type("notice") == []  # no retry, no notice

        retried = await client.send(first.thread_id, "hello again")
    assert retried.status == 200 and not retried.of_type("error")
    assert retried.assistant_text() == "Answer after the retry."
    notices = retried.of_type("notice")
    assert len(notices) == 1, notices
    assert notices[0].level == "warning"
    assert reason in notices[0].message and "retry 1 of 1" in notices[0].message
    assert re.search(r"trying again in \d+ s", notices[0].message)
    assert retried.events.index(notices[0]) < _first_message_index(retried)


@pytest.mark.parametrize("counters", ["memory", "redis"])
async def test_the_chat_rate_limit_warns_from_80_percent_used(
    live_server_factory: Any, request: pytest.FixtureRequest, counters: str
) -> None:
    env = {"RATE_LIMIT_CHAT_PER_MINUTE": "5"}
    if counters == "redis":  # the budget comes from the Lua script, timed by Redis's clock
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
    server = live_server_factory(env)
    user = f"alice-{uuid.uuid4().hex}"  # Redis is shared with other runs: a key no one else uses
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        client = ChatKitClient(http, _token(server, user))
        turns = [await client.create_thread("hello")]
        thread_id = turns[0].thread_id
        for _ in range(4):
            turns.append(await client.send(thread_id, "list my tasks"))
        refused = await client.send(thread_id, "list my tasks")
        other = ChatKitClient(http, _token(server, f"bob-{uuid.uuid4().hex}"))
        bob = await other.create_thread("hello")

    assert [turn.status for turn in turns] == [200] * 5
    assert refused.status == 429
    assert [len(turn.of_type("notice")) for turn in turns] == [0, 0, 0, 1, 1]
    fourth, fifth = turns[3].of_type("notice")[0], turns[4].of_type("notice")[0]
    for notice in (fourth, fifth):
        assert notice.level == "warning" and notice.title == "Message limit nearly reached"
        assert "(limit: 5 per minute)" in notice.message and "One more becomes available every 12 s" in notice.message
        back = re.search(r"full allowance is back in (\d+) s", notice.message)
        assert back is not None and 30 <= int(back.group(1)) <= 60, notice.message
    assert "You can send 1 more message right now" in fourth.message
    assert "This was your last message for now" in fifth.message
    # Right after the turn's first event, before the answer.
    assert turns[3].events[1] == fourth
    assert bob.of_type("notice") == []  # another user's budget is untouched


async def test_several_task_tools_at_once_stream_progress(live_server_factory: Any, fake_model: Any) -> None:
    fake = fake_model(
        [
            _add("One task"),
            Reply("Added one."),
            ToolCalls([_add("Buy milk"), _add("Call mum"), _add("Pay rent")]),
            Reply("Added three."),
        ]
    )
    server = live_server_factory(_compatible(fake))
    token = _token(server, "alice")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        client = ChatKitClient(http, token)
        single = await client.create_thread("add one task")
        batch = await client.send(single.thread_id, "add buy milk, call mum and pay rent")
        listed = await http.get("/api/tasks", headers={"Authorization": f"Bearer {token}"})

    assert single.of_type("progress_update") == []  # one call: its workflow task says enough
    assert batch.status == 200 and batch.assistant_text() == "Added three."
    assert [event.text for event in batch.of_type("progress_update")] == [
        "Adding 3 tasks…",
        "Added 1 of 3 tasks…",
        "Added 2 of 3 tasks…",
        "Added 3 of 3 tasks…",
    ]
    # Each call of the batch finishes its own workflow task.
    workflow = next(e.item for e in batch.events if e.type == "thread.item.done" and e.item.type == "workflow").workflow
    assert [task.status_indicator for task in workflow.tasks] == ["complete"] * 3
    finished = [re.fullmatch(r"Added #(\d) (.+)", task.title or "") for task in workflow.tasks]
    assert all(finished), [task.title for task in workflow.tasks]
    # The three run together: which gets which number is the database's order, not the model's.
    assert sorted(int(m.group(1)) for m in finished if m) == [2, 3, 4]
    assert [m.group(2) for m in finished if m] == ["Buy milk", "Call mum", "Pay rent"]
    assert listed.status_code == 200
    assert sorted(task["title"] for task in listed.json()["items"]) == ["Buy milk", "Call mum", "One task", "Pay rent"]


async def _upload(http: httpx.AsyncClient, token: str, name: str, content: bytes) -> str:
    created = await http.post(
        "/chatkit",
        json={"type": "attachments.create", "params": {"name": name, "size": len(content), "mime_type": "text/plain"}},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert created.status_code == 200, created.text
    descriptor = created.json()["upload_descriptor"]
    put = await http.request(descriptor["method"], descriptor["url"], content=content, headers=descriptor["headers"])
    assert put.status_code == 200, put.text
    return str(created.json()["id"])


async def test_attachments_are_read_with_progress_and_a_nearly_full_storage_warns(
    live_server_factory: Any, tmp_path: Path
) -> None:
    server = live_server_factory(
        {"ATTACHMENT_STORAGE_URL": str(tmp_path / "blobs"), "QUOTA_ATTACHMENT_BYTES_PER_USER": "1000"}
    )
    token = _token(server, "alice")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        client = ChatKitClient(http, token)
        small = await _upload(http, token, "notes.txt", NOTES)
        first = await client.create_thread("add a task to buy milk", attachments=[small])
        plain = await client.send(first.thread_id, "list my tasks")
        large = await _upload(http, token, "more.txt", b"x" * 800)
        nearly_full = await client.send(first.thread_id, "add a task to read more", attachments=[large])

    assert first.status == 200 and not first.of_type("error")
    assert [e.text for e in first.of_type("progress_update")] == ["Reading 1 attachment…"]
    assert first.of_type("notice") == []  # 6% of the quota
    assert plain.of_type("progress_update") == [] and plain.of_type("notice") == []

    assert [e.text for e in nearly_full.of_type("progress_update")] == ["Reading 1 attachment…"]
    notices = nearly_full.of_type("notice")
    assert len(notices) == 1, notices
    stored = len(NOTES) + 800
    assert notices[0].level == "warning" and notices[0].title == "Attachment storage nearly full"
    assert f"{stored * 100 // 1000}% of your storage" in notices[0].message
