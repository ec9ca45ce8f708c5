"""POST /chatkit against a real granian process over real HTTP (SQLite file and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
from chatkit.types import AssistantMessageItem, SDKHiddenContextItem
from testkit.chatkit import user_input

from app.agents.offline import replies
from app.core.context import RequestContext
from app.settings import Settings
from app.store.chatkit_store import ChatKitStore
from app.store.db import build_db_config
from tests.support.chatkit_client import EVENT_ADAPTER, ChatKitClient, parse_sse
from tests.support.servers import run_cli


def _token(server: Any, user: str) -> str:
    return run_cli(["token", "--user", user], server.env).stdout.strip()


async def test_end_to_end_stream_matches_what_is_stored(live_server_factory, server_database_url: str) -> None:
    server = live_server_factory({"DATABASE_URL": server_database_url})
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        alice = ChatKitClient(http, _token(server, "alice"), time_zone="UTC")  # as the page sends it
        created = await alice.create_thread("add a task to renew my passport next friday, urgent #travel")
        assert created.status == 200
        # Every frame parses as a ChatKit event (the client already validated them with TypeAdapter).
        assert created.events and all(frame.startswith("{") for frame in created.raw_frames)
        listed = await alice.send(created.thread_id, "what's due this month? show my tasks")
        streamed = [e.item for r in (created, listed) for e in r.events if e.type == "thread.item.done"]
        assert {i.type for i in streamed} >= {"user_message", "workflow", "widget", "assistant_message"}

        stored = await alice.get_thread(created.thread_id)
        assert stored.status == 200
        by_id = {item["id"]: item for item in stored.body["items"]["data"]}
        page = await alice.items(created.thread_id, order="asc", limit=100)
        all_stored = {item["id"]: item for item in page.body["data"]}
        assert [i.id for i in streamed] == list(all_stored)
        for item in streamed:
            expected = json.loads(
                item.model_dump_json(by_alias=True, exclude_none=True, context={"exclude_metadata": True})
            )
            assert all_stored[item.id] == expected, item.type
        assert set(by_id) <= set(all_stored)

        threads = await alice.request("threads.list", {"limit": 10})
        assert [t["id"] for t in threads.body["data"]] == [created.thread_id]
        assert threads.body["data"][0]["title"].startswith("Add a task to renew my passport")

        bob = ChatKitClient(http, _token(server, "bob"))
        assert (await bob.get_thread(created.thread_id)).status == 404
        assert (await bob.send(created.thread_id, "mark 1 done")).status == 404
        assert (await bob.request("threads.delete", {"thread_id": created.thread_id})).status == 404
        assert (await alice.get_thread(created.thread_id)).status == 200


async def test_keepalive_frames_while_the_model_is_slow(live_server_factory) -> None:
    server = live_server_factory({"OFFLINE_MODEL_DELAY_MS": "300", "STREAM_KEEPALIVE_SECONDS": "0.1"})
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        alice = ChatKitClient(http, _token(server, "alice"))
        result = await alice.create_thread("hello")
        assert result.status == 200
        assert result.keepalives >= 3
        assert result.assistant_text() == replies.greeting("en")


async def test_disconnect_keeps_the_partial_answer_and_the_thread_works(live_server_factory, tmp_path) -> None:
    server = live_server_factory({"OFFLINE_MODEL_DELAY_MS": "100"})
    token = _token(server, "alice")
    headers = {"Authorization": f"Bearer {token}"}
    body = {"type": "threads.create", "params": {"input": user_input("help")}}
    thread_id = ""
    deltas = 0
    async with (
        httpx.AsyncClient(base_url=server.base_url, timeout=30) as http,
        http.stream("POST", "/chatkit", json=body, headers=headers) as response,
    ):
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            event = EVENT_ADAPTER.validate_json(line[len("data: ") :])
            if event.type == "thread.created":
                thread_id = event.thread.id
            if event.type == "thread.item.updated" and event.update.type == "assistant_message.content_part.text_delta":
                deltas += 1
                if deltas == 3:
                    break  # the person pressed Stop / closed the tab
    assert thread_id and deltas == 3

    store: ChatKitStore[Any] = ChatKitStore(
        build_db_config(Settings.from_env({"DATABASE_URL": server.env["DATABASE_URL"]}))
    )
    context = RequestContext(user_id="alice")
    full = replies.help_text("en")
    deadline = time.monotonic() + 10
    items: list[Any] = []
    while time.monotonic() < deadline:
        items = (await store.load_thread_items(thread_id, None, 50, "asc", context)).data
        if any(isinstance(i, SDKHiddenContextItem) for i in items):
            break
        await asyncio.sleep(0.1)
    partial = [i for i in items if isinstance(i, AssistantMessageItem)]
    assert len(partial) == 1, [i.type for i in items]
    text = partial[0].content[0].text
    assert text and full.startswith(text) and len(text) < len(full)
    assert any(isinstance(i, SDKHiddenContextItem) and "cancelled" in i.content for i in items)

    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        follow_up = await ChatKitClient(http, token).send(thread_id, "add a task to call the plumber")
        assert follow_up.status == 200
        assert "Added #1 “Call the plumber”" in follow_up.assistant_text()
        assert not follow_up.of_type("error")


def test_bad_requests_are_refused_before_a_stream_over_real_http(live_server_factory) -> None:
    server = live_server_factory({"MAX_REQUEST_BYTES": "4096"})
    headers = {"Authorization": f"Bearer {_token(server, 'alice')}", "Content-Type": "application/json"}
    cases = {
        "malformed": (b"{not json", 400),
        "unknown": (json.dumps({"type": "threads.nope", "params": {}}).encode(), 400),
        "missing": (json.dumps({"type": "items.list", "params": {}}).encode(), 400),
        "foreign": (json.dumps({"type": "items.list", "params": {"thread_id": "thr_nope"}}).encode(), 404),
        "too_large": (
            json.dumps({"type": "threads.create", "params": {"input": user_input("x" * 20_000)}}).encode(),
            413,
        ),
    }
    for kind, (content, status) in cases.items():
        response = httpx.post(f"{server.base_url}/chatkit", content=content, headers=headers, timeout=10)
        assert response.status_code == status, kind
        assert response.headers["content-type"].startswith("application/problem+json"), kind
        assert response.json()["status"] == status
        frames, _ = parse_sse(response.text)
        assert frames == [], kind
