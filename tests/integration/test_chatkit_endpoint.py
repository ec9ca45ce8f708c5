"""POST /chatkit in-process: every request type, every bad input, isolation, and model failures."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import openai
import pytest
from chatkit.types import (
    ClientToolCallItem,
    StructuredInputFreeform,
    StructuredInputItem,
)
from litestar.testing import AsyncTestClient
from testkit.chatkit import user_input

from app.agents.offline.planner import Reply, ToolCall
from app.asgi import create_app
from app.core.context import RequestContext
from app.http.auth import mint_dev_token
from app.settings import Settings
from app.store.chatkit_store import ChatKitStore
from app.store.db import build_db_config
from tests.conftest import create_schema, make_settings
from tests.support.chatkit_client import ChatKitClient
from tests.support.scripted_model import FailAfter, ScriptedModel, ScriptedProvider


@dataclass
class Chat:
    http: httpx.AsyncClient
    settings: Settings
    alice: ChatKitClient
    bob: ChatKitClient
    store: ChatKitStore[Any]

    def rest(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {mint_dev_token(self.settings, user)}"}


async def _chat(tmp_path: Path, model: ScriptedModel | None = None, **env: Any) -> AsyncIterator[Chat]:
    settings = make_settings(tmp_path, **env)
    await create_schema(settings.database_url)
    app = create_app(settings, model_provider=ScriptedProvider(model) if model else None)
    store: ChatKitStore[Any] = ChatKitStore(build_db_config(settings))
    async with AsyncTestClient(app) as client:
        yield Chat(
            http=client,
            settings=settings,
            # Alice's page says where she is (the Time-Zone header); Bob's front end does not.
            alice=ChatKitClient(client, mint_dev_token(settings, "alice"), time_zone="UTC"),
            bob=ChatKitClient(client, mint_dev_token(settings, "bob")),
            store=store,
        )


@pytest.fixture
async def chat(tmp_path: Path) -> AsyncIterator[Chat]:
    async for value in _chat(tmp_path):
        yield value


ALICE = RequestContext(user_id="alice")
BOB = RequestContext(user_id="bob")


# ---- the happy paths of every request type ------------------------------------------------------


async def test_threads_create_streams_events_and_stores_exactly_what_was_streamed(chat: Chat) -> None:
    result = await chat.alice.create_thread("add a task to buy milk tomorrow, high priority")
    assert result.status == 200
    assert result.headers["content-type"].startswith("text/event-stream")
    assert result.headers["cache-control"] == "no-cache"
    assert result.headers["x-accel-buffering"] == "no"
    kinds = [e.type for e in result.events]
    assert kinds[0] == "thread.created"
    assert "stream_options" in kinds
    assert "client_effect" in kinds
    assert kinds[-1] == "thread.updated"
    assert "Added #1 “Buy milk”" in result.assistant_text()
    effect = result.of_type("client_effect")[0]
    assert effect.name == "tasks.changed" and len(effect.data["ids"]) == 1
    assert result.of_type("thread.updated")[-1].thread.title == "Add a task to buy milk tomorrow, high priority"

    streamed = [e.item for e in result.events if e.type == "thread.item.done"]
    stored = await chat.alice.get_thread(result.thread_id)
    assert stored.status == 200
    stored_items = stored.body["items"]["data"]
    assert [i["id"] for i in stored_items] == [i.id for i in streamed]
    for item, raw in zip(streamed, stored_items, strict=True):
        assert (
            item.model_dump(mode="json", exclude_none=True, by_alias=True, context={"exclude_metadata": True})["type"]
            == raw["type"]
        )
        if item.type == "assistant_message":
            assert raw["content"][0]["text"] == item.content[0].text

    tasks = await chat.http.get("/api/tasks", headers=chat.rest("alice"))
    assert [t["title"] for t in tasks.json()["items"]] == ["Buy milk"]


async def test_add_user_message_continues_the_thread_with_distinct_ids(chat: Chat) -> None:
    first = await chat.alice.create_thread("add buy eggs")
    second = await chat.alice.send(first.thread_id, "show my tasks")
    assert second.status == 200
    assert not second.of_type("thread.created")
    assert "You have 1 open task" in second.assistant_text()
    widgets = [e.item for e in second.events if e.type == "thread.item.done" and e.item.type == "widget"]
    assert len(widgets) == 1 and "Buy eggs" in (widgets[0].copy_text or "")
    items = (await chat.alice.items(first.thread_id, order="asc", limit=50)).body["data"]
    assistant_ids = [i["id"] for i in items if i["type"] == "assistant_message"]
    assert len(assistant_ids) == 2 and len(set(assistant_ids)) == 2


async def test_threads_list_update_and_delete(chat: Chat) -> None:
    ids = [(await chat.alice.create_thread(f"add task number {n}")).thread_id for n in range(3)]
    page = await chat.alice.request("threads.list", {"limit": 2, "order": "desc"})
    assert [t["id"] for t in page.body["data"]] == [ids[2], ids[1]]
    assert page.body["has_more"] is True
    rest = await chat.alice.request("threads.list", {"limit": 2, "order": "desc", "after": page.body["after"]})
    assert [t["id"] for t in rest.body["data"]] == [ids[0]]

    renamed = await chat.alice.request("threads.update", {"thread_id": ids[0], "title": "Groceries"})
    assert renamed.status == 200 and renamed.body["title"] == "Groceries"
    assert (await chat.alice.get_thread(ids[0])).body["title"] == "Groceries"

    deleted = await chat.alice.request("threads.delete", {"thread_id": ids[0]})
    assert deleted.status == 200 and deleted.body == {}
    gone = await chat.alice.get_thread(ids[0])
    assert gone.status == 404


async def test_items_list_pages_and_hides_hidden_context(chat: Chat) -> None:
    thread = (await chat.alice.create_thread("add buy bread")).thread_id
    await chat.alice.send(thread, "show my tasks")
    everything = (await chat.alice.items(thread, order="asc", limit=100)).body["data"]
    first = await chat.alice.items(thread, order="asc", limit=2)
    assert first.body["has_more"] is True
    second = await chat.alice.items(thread, order="asc", limit=100, after=first.body["after"])
    assert [i["id"] for i in first.body["data"] + second.body["data"]] == [i["id"] for i in everything]
    newest = await chat.alice.items(thread, order="desc", limit=1)
    assert newest.body["data"][0]["id"] == everything[-1]["id"]


async def test_items_feedback_is_persisted(chat: Chat) -> None:
    result = await chat.alice.create_thread("hello")
    message = next(e.item for e in result.events if e.type == "thread.item.done" and e.item.type == "assistant_message")
    response = await chat.alice.request(
        "items.feedback", {"thread_id": result.thread_id, "item_ids": [message.id], "kind": "positive"}
    )
    assert response.status == 200
    assert await chat.store.load_feedback(result.thread_id, ALICE) == {message.id: "positive"}
    await chat.alice.request(
        "items.feedback", {"thread_id": result.thread_id, "item_ids": [message.id], "kind": "negative"}
    )
    assert await chat.store.load_feedback(result.thread_id, ALICE) == {message.id: "negative"}


async def test_retry_after_item_replaces_the_answer(chat: Chat) -> None:
    result = await chat.alice.create_thread("what can you do?")
    user_item = next(e.item for e in result.events if e.type == "thread.item.done" and e.item.type == "user_message")
    old_answer = next(
        e.item for e in result.events if e.type == "thread.item.done" and e.item.type == "assistant_message"
    )
    retried = await chat.alice.request(
        "threads.retry_after_item", {"thread_id": result.thread_id, "item_id": user_item.id}
    )
    assert retried.status == 200
    new_answer = next(e.item for e in retried.events if e.type == "thread.item.done")
    assert new_answer.id != old_answer.id
    items = (await chat.alice.items(result.thread_id, order="asc")).body["data"]
    assert [i["id"] for i in items] == [user_item.id, new_answer.id]


async def _widget_for_task_list(chat: Chat) -> tuple[str, Any, str]:
    thread = (await chat.alice.create_thread("add water the plants")).thread_id
    listed = await chat.alice.send(thread, "show my tasks")
    widget = next(e.item for e in listed.events if e.type == "thread.item.done" and e.item.type == "widget")
    task_id = (await chat.http.get("/api/tasks", headers=chat.rest("alice"))).json()["items"][0]["id"]
    return thread, widget, task_id


async def test_custom_action_completes_the_task_and_replaces_the_widget(chat: Chat) -> None:
    thread, widget, task_id = await _widget_for_task_list(chat)
    action = await chat.alice.request(
        "threads.custom_action",
        {"thread_id": thread, "item_id": widget.id, "action": {"type": "task.complete", "payload": {"id": task_id}}},
    )
    assert action.status == 200
    replaced = action.of_type("thread.item.replaced")
    assert len(replaced) == 1 and replaced[0].item.id == widget.id
    assert "[done]" in (replaced[0].item.copy_text or "")
    assert action.of_type("client_effect")[0].data == {"ids": [task_id]}
    task = (await chat.http.get(f"/api/tasks/{task_id}", headers=chat.rest("alice"))).json()
    assert task["completed"] is True
    stored = await chat.store.load_item(thread, widget.id, ALICE)
    assert "[done]" in (stored.copy_text or "")  # type: ignore[union-attr]


async def test_widget_delete_asks_first_and_deletes_only_on_confirm(chat: Chat) -> None:
    thread, widget, task_id = await _widget_for_task_list(chat)

    async def act(kind: str) -> dict[str, Any]:
        response = await chat.alice.request(
            "threads.sync_custom_action",
            {"thread_id": thread, "item_id": widget.id, "action": {"type": kind, "payload": {"id": task_id}}},
        )
        assert response.status == 200, response.body
        assert response.body["updated_item"]["id"] == widget.id
        return cast("dict[str, Any]", response.body["updated_item"])

    def actions(item: dict[str, Any]) -> list[str]:
        return re.findall(r'"type":\s*"(task\.[a-z.]+)"', json.dumps(item["widget"]))

    asked = await act("task.delete")
    assert actions(asked) == ["task.delete.confirm", "task.delete.cancel"]
    assert "cannot be undone" in json.dumps(asked["widget"])
    still = await chat.http.get(f"/api/tasks/{task_id}", headers=chat.rest("alice"))
    assert still.status_code == 200  # asking deletes nothing

    cancelled = await act("task.delete.cancel")
    assert "task.delete" in actions(cancelled) and "task.delete.confirm" not in actions(cancelled)
    assert (await chat.http.get(f"/api/tasks/{task_id}", headers=chat.rest("alice"))).status_code == 200

    await act("task.delete")
    deleted = await act("task.delete.confirm")
    assert "(none)" in deleted["copy_text"]
    missing = await chat.http.get(f"/api/tasks/{task_id}", headers=chat.rest("alice"))
    assert missing.status_code == 404


async def test_add_client_tool_output_completes_the_pending_call_and_responds(chat: Chat) -> None:
    thread = (await chat.alice.create_thread("hello")).thread_id
    call = ClientToolCallItem(
        id="tc_pending1",
        thread_id=thread,
        created_at=dt.datetime.now(dt.UTC),
        name="get_time_zone",
        arguments={},
        call_id="call_1",
        status="pending",
    )
    await chat.store.add_thread_item(thread, call, ALICE)
    response = await chat.alice.request(
        "threads.add_client_tool_output", {"thread_id": thread, "result": {"time_zone": "Asia/Karachi"}}
    )
    assert response.status == 200
    stored = await chat.store.load_item(thread, "tc_pending1", ALICE)
    assert isinstance(stored, ClientToolCallItem)
    assert stored.status == "completed" and stored.output == {"time_zone": "Asia/Karachi"}
    # No pending call any more: a second output is refused before any stream opens.
    again = await chat.alice.request("threads.add_client_tool_output", {"thread_id": thread, "result": {}})
    assert again.status == 409


async def test_add_structured_input_records_answers(chat: Chat) -> None:
    thread = (await chat.alice.create_thread("hello")).thread_id
    question = StructuredInputItem(
        id="si_1",
        thread_id=thread,
        created_at=dt.datetime.now(dt.UTC),
        inputs=[StructuredInputFreeform(id="q1", question="What should the task be called?")],
        status="pending",
    )
    await chat.store.add_thread_item(thread, question, ALICE)
    response = await chat.alice.request(
        "threads.add_structured_input",
        {
            "thread_id": thread,
            "item_id": "si_1",
            "input": {"status": "answered", "answers": {"q1": {"values": ["Call the bank"]}}},
        },
    )
    assert response.status == 200
    assert response.of_type("thread.item.replaced")
    stored = await chat.store.load_item(thread, "si_1", ALICE)
    assert isinstance(stored, StructuredInputItem)
    assert stored.status == "answered"
    assert stored.inputs[0].answer is not None and stored.inputs[0].answer.values == ["Call the bank"]


async def test_input_transcribe_says_it_is_not_configured(chat: Chat) -> None:
    response = await chat.alice.raw(
        {"type": "input.transcribe", "params": {"audio_base64": "AAAA", "mime_type": "audio/webm"}}
    )
    assert response.status_code == 501
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "TRANSCRIPTION_MODEL" in response.json()["detail"]


# ---- bad input is a 4xx before any stream -----------------------------------------------------------


async def test_malformed_json_is_400(chat: Chat) -> None:
    response = await chat.alice.raw(b'{"type": "threads.create", ')
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_unknown_type_is_400_naming_it(chat: Chat) -> None:
    response = await chat.alice.raw({"type": "threads.explode", "params": {}})
    assert response.status_code == 400
    assert "threads.explode" in response.json()["detail"]


async def test_missing_fields_are_400_naming_them(chat: Chat) -> None:
    response = await chat.alice.raw({"type": "threads.add_user_message", "params": {"input": user_input("hi")}})
    assert response.status_code == 400
    body = response.json()
    assert "thread_id" in body["detail"]
    assert any("thread_id" in e["field"] for e in body["errors"])
    empty = await chat.alice.raw({"type": "threads.create", "params": {"input": user_input("   ")}})
    assert empty.status_code == 400 and "empty" in empty.json()["detail"]


async def test_body_too_large_is_413(tmp_path: Path) -> None:
    async for chat in _chat(tmp_path, MAX_REQUEST_BYTES=4096):
        response = await chat.alice.raw({"type": "threads.create", "params": {"input": user_input("x" * 10_000)}})
        assert response.status_code == 413
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_missing_token_is_401(chat: Chat) -> None:
    response = await chat.http.post("/chatkit", json={"type": "threads.list", "params": {}})
    assert response.status_code == 401


async def test_another_users_thread_is_404_for_every_request_type(chat: Chat) -> None:
    result = await chat.alice.create_thread("add a private task")
    thread = result.thread_id
    item = next(e.item for e in result.events if e.type == "thread.item.done" and e.item.type == "user_message")
    before = (await chat.alice.get_thread(thread)).body
    attempts: list[tuple[str, dict[str, Any]]] = [
        ("threads.get_by_id", {"thread_id": thread}),
        ("threads.add_user_message", {"thread_id": thread, "input": user_input("hijack")}),
        ("threads.update", {"thread_id": thread, "title": "mine now"}),
        ("threads.delete", {"thread_id": thread}),
        ("items.list", {"thread_id": thread}),
        ("items.feedback", {"thread_id": thread, "item_ids": [item.id], "kind": "negative"}),
        ("threads.retry_after_item", {"thread_id": thread, "item_id": item.id}),
        ("threads.custom_action", {"thread_id": thread, "action": {"type": "task.delete", "payload": {}}}),
        ("threads.sync_custom_action", {"thread_id": thread, "action": {"type": "task.delete", "payload": {}}}),
        ("threads.add_client_tool_output", {"thread_id": thread, "result": {}}),
        (
            "threads.add_structured_input",
            {"thread_id": thread, "item_id": item.id, "input": {"status": "skipped", "answers": {}}},
        ),
    ]
    for kind, params in attempts:
        response = await chat.bob.request(kind, params)
        assert response.status == 404, kind
        assert response.events == [], kind
    assert (await chat.bob.request("threads.list", {})).body["data"] == []
    assert (await chat.alice.get_thread(thread)).body == before


# ---- failures after the stream opened ---------------------------------------------------------------


def _rate_limited() -> openai.RateLimitError:
    request = httpx.Request("POST", "http://127.0.0.1/v1/responses")
    return openai.RateLimitError(
        "rate limited", response=httpx.Response(429, request=request), body={"error": {"message": "slow down"}}
    )


async def test_model_failure_mid_stream_is_an_error_event_and_the_thread_stays_usable(tmp_path: Path) -> None:
    model = ScriptedModel([FailAfter("This answer will be cut off halfway", _rate_limited()), Reply("Back again.")])
    async for chat in _chat(tmp_path, model):
        result = await chat.alice.create_thread("tell me something")
        assert result.status == 200
        errors = result.of_type("error")
        assert len(errors) == 1
        assert "rate-limited" in errors[0].message
        assert errors[0].allow_retry is True
        stored = (await chat.alice.items(result.thread_id, order="asc")).body["data"]
        assert stored[0]["type"] == "user_message"
        follow_up = await chat.alice.send(result.thread_id, "again?")
        assert follow_up.assistant_text() == "Back again."
        assert not follow_up.of_type("error")


async def test_tool_domain_errors_reach_the_model_not_the_user(tmp_path: Path) -> None:
    model = ScriptedModel([ToolCall("complete_task", {"task": "99"}), Reply("That task does not exist.")])
    async for chat in _chat(tmp_path, model):
        result = await chat.alice.create_thread("complete 99")
        assert not result.of_type("error")
        assert result.assistant_text() == "That task does not exist."
        tool_output = model.inputs[1][-1]
        assert tool_output["type"] == "function_call_output"
        assert '"ok":false' in tool_output["output"] and "#99" in tool_output["output"]


async def test_fake_ids_from_chat_completions_are_replaced(tmp_path: Path) -> None:
    from app.agents.offline import model as offline

    original = offline.prefixed_id

    def fake_message_ids(prefix: str) -> str:
        return "__fake_id__" if prefix == "msg" else original(prefix)

    offline.prefixed_id = fake_message_ids  # the SDK's Chat Completions path names every message this way
    try:
        model = ScriptedModel([Reply("first"), Reply("second")])
        async for chat in _chat(tmp_path, model):
            first = await chat.alice.create_thread("one")
            second = await chat.alice.send(first.thread_id, "two")
            ids = [
                e.item.id
                for r in (first, second)
                for e in r.events
                if e.type == "thread.item.done" and e.item.type == "assistant_message"
            ]
            assert len(set(ids)) == 2 and "__fake_id__" not in ids
            assert all(getattr(e, "item_id", "") != "__fake_id__" for r in (first, second) for e in r.events)
            texts = [
                i["content"][0]["text"]
                for i in (await chat.alice.items(first.thread_id, order="asc")).body["data"]
                if i["type"] == "assistant_message"
            ]
            assert texts == ["first", "second"]
    finally:
        offline.prefixed_id = original


async def test_message_text_reaches_logs_only_with_log_content(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret_words = "my bank pin is 4921"
    caplog.set_level("DEBUG")
    (tmp_path / "off").mkdir()
    (tmp_path / "on").mkdir()
    async for chat in _chat(tmp_path / "off"):
        await chat.alice.create_thread(f"add a task to remember {secret_words}")
    assert secret_words not in _logged(caplog)
    caplog.clear()
    async for chat in _chat(tmp_path / "on", LOG_CONTENT="true"):
        await chat.alice.create_thread(f"add a task to remember {secret_words}")
    assert secret_words in _logged(caplog)


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    """The log lines as TaskPilot writes them (JSON with their structured fields)."""
    from app.ops.logging import JsonFormatter

    formatter = JsonFormatter()
    return "\n".join(formatter.format(record) for record in caplog.records)


async def test_a_failure_after_the_first_frame_ends_the_stream_with_an_error_frame() -> None:
    from app.controllers.chatkit import FAILURE_FRAME, with_keepalive

    async def frames() -> AsyncIterator[bytes]:
        yield b'data: {"type":"thread.created"}\n\n'
        raise RuntimeError("a bug in our code")

    received = [frame async for frame in with_keepalive(frames(), 5.0)]
    assert received == [b'data: {"type":"thread.created"}\n\n', FAILURE_FRAME]


async def test_a_failure_before_the_first_frame_is_raised_for_an_http_error() -> None:
    from app.controllers.chatkit import with_keepalive

    async def frames() -> AsyncIterator[bytes]:
        raise RuntimeError("the database is down")
        yield b""  # pragma: no cover - makes this an async generator

    with pytest.raises(RuntimeError):
        _ = [frame async for frame in with_keepalive(frames(), 5.0)]
