"""Faults while a ChatKit stream is open, against real server processes on PostgreSQL.

- the model provider fails mid-answer (its stream breaks, then it answers 500);
- the client goes away mid-answer;
- the server process is killed (SIGKILL) mid-answer and restarted on the same database;
- the server is asked to stop (SIGTERM) mid-answer: it drains, then cuts the stream cleanly.

Each ends by reading the database directly: what the client was told is done is stored, and
the thread goes on.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from testkit.chatkit import add_user_message as message_body
from testkit.chatkit import threads_create as create_body

from app.agents.offline import replies
from app.agents.offline.model import _chunks
from app.agents.offline.planner import Reply, ToolCall
from tests.conftest import create_schema
from tests.support.chatkit_client import ChatKitClient
from tests.support.fake_model_server import TITLE_MARKER, FakeModelServer
from tests.support.production import db_fetch, headers_for, kill_server, open_stream, stored_items, token

HELP_TEXT = replies.help_text("en")
pytestmark = pytest.mark.timeout(120)


def _user_texts(items: list[dict[str, Any]]) -> list[str]:
    return [i["content"][0]["text"] for i in items if i["type"] == "user_message"]


def _assistant_texts(items: list[dict[str, Any]]) -> list[str]:
    return ["".join(c["text"] for c in i["content"]) for i in items if i["type"] == "assistant_message"]


async def _wait_for_items(
    database_url: str, user: str, thread_id: str, done: Any, timeout: float = 10
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        items = await stored_items(database_url, user, thread_id)
        if done(items) or time.monotonic() > deadline:
            return items
        await asyncio.sleep(0.1)


# ---- (b) the model provider fails mid-stream ------------------------------------------------------------


@dataclass
class BreakAfter:
    """Stream the first `chunks` deltas of `text`, then drop the connection mid-body."""

    text: str
    chunks: int = 3


class BreakingModelServer(FakeModelServer):
    """The fake Chat Completions server, plus a step that breaks its stream half-way."""

    def _chat(self, handler: Any, body: dict[str, Any]) -> None:
        step = self.script[0] if self.script else None
        asks_title = TITLE_MARKER in json.dumps(body.get("messages") or "")
        if not isinstance(step, BreakAfter) or asks_title or not body.get("stream"):
            super()._chat(handler, body)
            return
        self.script.popleft()
        # Chunked transfer without its last chunk: the client sees a truncated body, an error.
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        for index, part in enumerate(_chunks(step.text)[: step.chunks]):
            delta = {"role": "assistant", "content": part} if index == 0 else {"content": part}
            payload = {
                "id": "chatcmpl-broken",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": body.get("model", "fake"),
                "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
            }
            data = f"data: {json.dumps(payload)}\n\n".encode()
            handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            handler.wfile.flush()
            time.sleep(0.05)
        handler.close_connection = True
        handler.connection.shutdown(socket.SHUT_RDWR)


async def test_provider_failing_mid_stream_is_an_error_event_and_nothing_is_lost(
    live_server_factory, fresh_postgres_url: str
) -> None:
    fake = BreakingModelServer(
        [
            ToolCall(
                "add_task",
                {"title": "Buy milk", "description": None, "priority": "medium", "due_date": None, "tags": None},
            ),
            Reply("Added “Buy milk”."),
            BreakAfter("Once upon a time there was a task list that never, ever ended, and then", chunks=3),
            500,
            500,  # the client retries once
            Reply("You're welcome!"),
        ]
    )
    try:
        await create_schema(fresh_postgres_url)
        server = live_server_factory(
            {
                "DATABASE_URL": fresh_postgres_url,
                "MODEL_PROVIDER": "openai-compatible",
                "OPENAI_BASE_URL": fake.base_url,
                "MODEL_API_KEY": fake.api_key,
                "MODEL": "fake-model",
                "LOG_LEVEL": "warning",
            },
            migrate=False,
        )
        user = f"provider-{uuid.uuid4().hex[:8]}"
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
            chat = ChatKitClient(http, token(user))
            first = await chat.create_thread("add a task to buy milk")
            assert first.status == 200 and not first.of_type("error"), first.of_type("error")
            thread = first.thread_id

            async with open_stream(http, message_body(thread, "tell me a story"), headers_for(user)) as (broken, ev):
                async for _event in ev:
                    pass
            assert broken.status == 200 and broken.broken is None
            kinds = [e.type for e in broken.events]
            assert broken.deltas >= 1, kinds  # it failed mid-answer, not before it
            assert kinds[-1] == "error" and kinds.count("error") == 1, kinds
            assert broken.events[-1].allow_retry is True
            partial = "".join(
                e.update.delta
                for e in broken.events
                if e.type == "thread.item.updated" and e.update.type == "assistant_message.content_part.text_delta"
            )

            failed = await chat.send(thread, "are you there?")
            assert [e.type for e in failed.events][-1] == "error"
            assert "test-key" not in json.dumps(failed.raw_frames + [e.model_dump_json() for e in broken.events])

            last = await chat.send(thread, "thanks")
            assert not last.of_type("error") and last.assistant_text() == "You're welcome!"

        items = await stored_items(fresh_postgres_url, user, thread)
        assert _user_texts(items) == ["add a task to buy milk", "tell me a story", "are you there?", "thanks"]
        done = [i.id for r in (first, broken, failed, last) for i in _done(r)]
        assert set(done) <= {i["id"] for i in items}
        assert all(text.strip() for text in _assistant_texts(items))
        assert _assistant_texts(items)[-1] == "You're welcome!"
        # What the client saw of the broken answer is saved, not only the user's message.
        assert partial in _assistant_texts(items)
        # The model saw the whole conversation on the last turn, failed turns included.
        history = json.dumps(fake.requests[-1]["messages"])
        assert "tell me a story" in history and "are you there?" in history
    finally:
        fake.close()


def _done(result: Any) -> list[Any]:
    return [e.item for e in result.events if e.type == "thread.item.done"]


# ---- (c) the client disconnects mid-stream --------------------------------------------------------------


async def test_client_disconnect_keeps_the_partial_answer_on_postgres(
    live_server_factory, fresh_postgres_url: str
) -> None:
    await create_schema(fresh_postgres_url)
    server = live_server_factory(
        {"DATABASE_URL": fresh_postgres_url, "OFFLINE_MODEL_DELAY_MS": "100", "LOG_LEVEL": "warning"}, migrate=False
    )
    user = f"disconnect-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        async with open_stream(http, create_body("help"), headers_for(user)) as (stream, events):
            async for _event in events:
                if stream.deltas == 4:
                    break  # the person closed the tab
        thread = stream.thread_id

        items = await _wait_for_items(
            fresh_postgres_url, user, thread, lambda rows: any(r["type"] == "sdk_hidden_context" for r in rows)
        )
        kinds = [i["type"] for i in items]
        assert kinds.count("assistant_message") == 1, kinds
        partial = _assistant_texts(items)[0]
        assert partial and HELP_TEXT.startswith(partial) and len(partial) < len(HELP_TEXT)
        hidden = [i for i in items if i["type"] == "sdk_hidden_context"]
        assert len(hidden) == 1 and "cancelled" in hidden[0]["content"]
        assert {i.id for i in stream.done_items()} <= {i["id"] for i in items}

        follow_up = await ChatKitClient(http, token(user)).send(thread, "add a task to call the plumber")
        assert follow_up.status == 200 and not follow_up.of_type("error")
        assert "Call the plumber" in follow_up.assistant_text()
    assert server.process.poll() is None


# ---- (d) the server is killed mid-stream ---------------------------------------------------------------------


async def test_sigkill_mid_stream_keeps_every_item_the_client_saw_done(
    live_server_factory, fresh_postgres_url: str
) -> None:
    # The killed server's turn leaves its thread's lease to expire: the shortest lease allowed, so
    # the next turn on the thread (below) waits 3 s for it rather than the default 30.
    env = {"DATABASE_URL": fresh_postgres_url, "LOG_LEVEL": "warning", "CHATKIT_TURN_LEASE_SECONDS": "3"}
    await create_schema(fresh_postgres_url)
    server = live_server_factory({**env, "OFFLINE_MODEL_DELAY_MS": "50"}, migrate=False)
    user = f"sigkill-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        first = await ChatKitClient(http, token(user)).create_thread("add a task to pay rent")
        assert first.status == 200 and not first.of_type("error")
        thread = first.thread_id
        async with open_stream(http, message_body(thread, "help"), headers_for(user)) as (stream, events):
            async for _event in events:
                if stream.deltas == 3:
                    kill_server(server)
            # The body ends without its final chunk: the transport reports it.
            assert stream.broken is not None
    assert server.process.returncode == -signal.SIGKILL

    seen_done = [i.id for r in (first,) for i in _done(r)] + [i.id for i in stream.done_items()]
    assert any(i.type == "user_message" for i in stream.done_items())

    restarted = live_server_factory(env, migrate=False)
    async with httpx.AsyncClient(base_url=restarted.base_url, timeout=30) as http:
        chat = ChatKitClient(http, token(user))
        listed = (await chat.items(thread, order="asc", limit=100)).body["data"]
        assert [i["id"] for i in listed if i["id"] in seen_done] == seen_done
        stored = {i["id"] for i in await stored_items(fresh_postgres_url, user, thread)}
        assert set(seen_done) <= stored
        threads = (await chat.request("threads.list", {"limit": 10})).body["data"]
        assert [t["id"] for t in threads] == [thread]

        after = await chat.send(thread, "show my tasks")
        assert after.status == 200 and not after.of_type("error"), after.of_type("error")
        assert "Pay rent" in after.assistant_text()
        assert [e.type for e in after.events][-1] in {"thread.item.done", "thread.updated", "client_effect"}


# ---- (e) graceful shutdown mid-stream ---------------------------------------------------------------------------


async def test_sigterm_drains_then_cuts_the_stream_with_a_restart_notice(
    live_server_factory, fresh_postgres_url: str
) -> None:
    grace = 1.0
    env = {
        "DATABASE_URL": fresh_postgres_url,
        "OFFLINE_MODEL_DELAY_MS": "150",
        "SHUTDOWN_GRACE_SECONDS": str(grace),
        "LOG_LEVEL": "info",
    }
    await create_schema(fresh_postgres_url)
    server = live_server_factory(env, migrate=False)
    user = f"sigterm-{uuid.uuid4().hex[:8]}"
    late: dict[str, Any] = {}
    async with (
        httpx.AsyncClient(base_url=server.base_url, timeout=30) as http,
        # A second client with a connection already open, as a browser would have.
        httpx.AsyncClient(base_url=server.base_url, timeout=10) as other,
    ):
        assert (await other.get("/health")).status_code == 200
        async with open_stream(http, create_body("help"), headers_for(user)) as (stream, events):
            async for _event in events:
                if stream.deltas == 3 and "signalled" not in late:
                    late["signalled"] = time.monotonic()
                    server.process.send_signal(signal.SIGTERM)
                    await asyncio.sleep(0.2)
                    late["chat"] = await _attempt(
                        other.post("/chatkit", json=create_body("hi"), headers=headers_for(user))
                    )
                    late["ready"] = await _attempt(other.get("/ready"))
        ended = time.monotonic()
    assert stream.broken is None, stream.broken
    last = stream.events[-1]
    assert last.type == "error" and last.message.startswith("The server is restarting"), last
    assert last.allow_retry is True
    # Cut after the grace period, long before the answer would have ended (~35 deltas x 150 ms).
    assert grace - 0.2 <= ended - late["signalled"] < grace + 6
    assert stream.deltas < 30

    server.process.wait(timeout=grace + 20)
    assert server.process.returncode is not None

    # While draining, new streams and readiness were refused (when the request got through at all:
    # granian may already have closed idle connections).
    chat, ready = late["chat"], late["ready"]
    assert isinstance(chat, httpx.Response) or isinstance(ready, httpx.Response), (chat, ready)
    if isinstance(chat, httpx.Response):
        assert chat.status_code == 503, chat.text
        assert chat.headers["content-type"].startswith("application/problem+json")
        assert "retry-after" in chat.headers
    if isinstance(ready, httpx.Response):
        assert ready.status_code == 503, ready.text

    items = await stored_items(fresh_postgres_url, user, stream.thread_id)
    assert _user_texts(items) == ["help"]
    partial = _assistant_texts(items)
    assert len(partial) == 1 and partial[0] and HELP_TEXT.startswith(partial[0]) and len(partial[0]) < len(HELP_TEXT)
    assert any(i["type"] == "sdk_hidden_context" and "cancelled" in i["content"] for i in items)
    assert {i.id for i in stream.done_items()} <= {i["id"] for i in items}
    # The refused request left nothing behind: the one thread is the cut one.
    threads = await db_fetch(fresh_postgres_url, "SELECT id FROM chat_threads WHERE user_id = $1", user)
    assert [r["id"] for r in threads] == [stream.thread_id]


async def _attempt(request: Any) -> httpx.Response | BaseException:
    try:
        response: httpx.Response = await request
    except httpx.HTTPError as exc:
        return exc
    return response
