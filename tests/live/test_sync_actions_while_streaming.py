"""A synchronous widget action (`threads.sync_custom_action`) while a reply streams on the same thread,
over real HTTP: the running turn holds the thread's turn lease (a retry is a 409 meanwhile), and the
action is still answered, changes the task and redraws its widget; the turn then ends as usual.

The model is a fake whose answer the test holds back (`Held`), so the turn is provably still running
(waiting on its model call) when the action is sent: no timing is assumed. The client sends only
`Authorization` (and the JSON content type), as a stock ChatKit front end does.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from app.agents.offline.planner import Reply, ToolCall
from tests.support.auth import server_token
from tests.support.chatkit_client import ChatKitClient, parse_sse
from tests.support.fake_model_server import FakeModelServer, Held
from tests.support.widgets import find, widgets


def _compatible(fake: FakeModelServer) -> dict[str, str]:
    return {
        "MODEL_PROVIDER": "openai-compatible",
        "OPENAI_BASE_URL": fake.base_url,
        "MODEL_API_KEY": fake.api_key,
        "MODEL": "fake-model",
    }


async def test_a_sync_action_completes_a_task_while_a_reply_streams_on_its_thread(
    live_server_factory, fake_model
) -> None:
    held = Held(Reply("Here is what I think about your week."))
    fake = fake_model([ToolCall("list_tasks", {}), Reply("You have one open task."), held])
    server = live_server_factory(_compatible(fake))
    token = server_token(server.env, "ivy")
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
        ivy = ChatKitClient(http, token)
        milk = (await http.post("/api/tasks", json={"title": "Buy milk"}, headers=auth)).json()
        listed = await ivy.create_thread("show my tasks")
        thread = listed.thread_id
        (widget,) = widgets(listed)
        (done,) = [
            b["onClickAction"]
            for b in find(widget.widget.model_dump(mode="json", exclude_none=True), "Button")
            if b["label"] == "Done"
        ]
        assert done["streaming"] is False

        # A second turn on the thread, held inside its model call.
        body = {"type": "threads.add_user_message", "params": {"thread_id": thread, "input": _text("how is my week?")}}
        frames: list[str] = []
        async with http.stream("POST", "/chatkit", content=json.dumps(body), headers=ivy.headers) as streaming:
            assert streaming.status_code == 200
            reader = asyncio.create_task(_read(streaming, frames))
            assert await asyncio.to_thread(held.reached.wait, 30), "the turn never reached its model call"

            # The turn holds the thread: a retry is refused...
            question = await _streamed_user_message(frames)
            retry = await ivy.request("threads.retry_after_item", {"thread_id": thread, "item_id": question["id"]})
            assert retry.status == 409, retry.body
            # ...but the synchronous action is answered at once, with the redrawn widget.
            action = {"type": done["type"], "payload": done["payload"]}
            answer = await ivy.request(
                "threads.sync_custom_action", {"thread_id": thread, "item_id": widget.id, "action": action}
            )
            assert answer.status == 200, answer.body
            redrawn = answer.body["updated_item"]["widget"]
            assert next(b["label"] for b in find(redrawn, "Button")) == "Reopen"
            task = (await http.get(f"/api/tasks/{milk['id']}", headers=auth)).json()
            assert task["completed"] is True
            assert not reader.done(), "the turn ended before its model answered"

            held.release.set()
            await reader

        events = [json.loads(frame) for frame in frames]
        assert not [e for e in events if e["type"] == "error"], events
        said = [
            e["item"] for e in events if e["type"] == "thread.item.done" and e["item"]["type"] == "assistant_message"
        ]
        assert [part["text"] for item in said for part in item["content"]] == ["Here is what I think about your week."]

        # The thread reads as it happened: the list (as the action redrew it), the question, the answer.
        items = (await ivy.items(thread, order="asc", limit=50)).body["data"]
        (stored,) = [item for item in items if item["id"] == widget.id]
        assert next(b["label"] for b in find(stored["widget"], "Button")) == "Reopen"
        assert [item["type"] for item in items][-2:] == ["user_message", "assistant_message"]


async def _streamed_user_message(frames: list[str]) -> dict[str, Any]:
    """The user message the stream announced (stored before the model is called)."""
    for _ in range(600):
        for frame in frames[:-1] if frames else []:  # the last one may still be arriving
            event = json.loads(frame)
            if event["type"] == "thread.item.done" and event["item"]["type"] == "user_message":
                return dict(event["item"])
        for frame in frames[-1:]:
            if frame.endswith("}") and '"user_message"' in frame:
                event = json.loads(frame)
                if event["type"] == "thread.item.done":
                    return dict(event["item"])
        await asyncio.sleep(0.05)
    raise AssertionError(f"no user message in {frames}")


def _text(text: str) -> dict[str, Any]:
    return {"content": [{"type": "input_text", "text": text}], "attachments": [], "inference_options": {}}


async def _read(response: httpx.Response, frames: list[str]) -> None:
    """The stream's data frames, kept in `frames` as they arrive."""
    buffer = ""
    async for chunk in response.aiter_text():
        buffer += chunk
        found, _ = parse_sse(buffer)
        frames[:] = found
