"""Two server processes, one PostgreSQL, one Redis: instances are interchangeable.

A thread started on one instance is continued and listed on the other, and the chat rate
limit is one budget across both (Redis), not one per process.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from redis.asyncio import Redis
from testkit.chatkit import add_user_message as message_body

from tests.conftest import create_schema
from tests.support.chatkit_client import ChatKitClient, StreamResult
from tests.support.production import stored_items, token


async def test_two_instances_share_threads_and_the_rate_limit(
    live_server_factory, fresh_postgres_url: str, redis_url: str
) -> None:
    env = {
        "DATABASE_URL": fresh_postgres_url,
        "REDIS_URL": redis_url,
        "RATE_LIMIT_CHAT_PER_MINUTE": "3",
        "LOG_LEVEL": "warning",
    }
    await create_schema(fresh_postgres_url)  # the migrations have tests of their own; this is faster
    one = live_server_factory(env, migrate=False)
    two = live_server_factory(env, migrate=False)
    run = uuid.uuid4().hex[:10]
    walker, limited = f"cluster-{run}-walker", f"cluster-{run}-limited"
    redis = Redis.from_url(redis_url)
    try:
        async with (
            httpx.AsyncClient(base_url=one.base_url, timeout=30) as http_one,
            httpx.AsyncClient(base_url=two.base_url, timeout=30) as http_two,
        ):
            # ---- a thread moves between instances ----
            on_one = ChatKitClient(http_one, token(walker))
            on_two = ChatKitClient(http_two, token(walker))
            created = await on_one.create_thread("add a task to renew the passport")
            assert created.status == 200 and not created.of_type("error")
            continued = await on_two.send(created.thread_id, "show my tasks")
            assert continued.status == 200 and not continued.of_type("error")
            # Instance two sees the task instance one's turn created.
            assert "Renew the passport" in continued.assistant_text()
            for client in (on_one, on_two):
                threads = (await client.request("threads.list", {"limit": 10})).body["data"]
                assert [t["id"] for t in threads] == [created.thread_id]
                items = (await client.items(created.thread_id, order="asc", limit=100)).body["data"]
                streamed = [i.id for r in (created, continued) for i in _done(r)]
                assert [i["id"] for i in items] == streamed
            stored = await stored_items(fresh_postgres_url, walker, created.thread_id)
            assert [i["id"] for i in stored] == streamed

            # ---- one chat budget for both instances ----
            clients = [ChatKitClient(http, token(limited)) for http in (http_one, http_two)]
            first = await clients[0].create_thread("hello")
            assert first.status == 200
            assert (await clients[1].send(first.thread_id, "help")).status == 200
            assert (await clients[0].send(first.thread_id, "show my tasks")).status == 200
            # In-memory limits would admit this (it is instance two's second message).
            refused = await clients[1].raw(message_body(first.thread_id, "one too many"))
            assert refused.status_code == 429, refused.text
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert 1 <= int(refused.headers["retry-after"]) <= 20
            assert (await clients[0].raw(message_body(first.thread_id, "and another"))).status_code == 429
            # Reads stay open on both.
            for client in clients:
                assert (await client.items(first.thread_id)).status == 200
            assert await redis.exists(f"taskpilot:rl:chat:{limited}") == 1
    finally:
        await redis.delete(f"taskpilot:rl:chat:{walker}", f"taskpilot:rl:chat:{limited}")
        await redis.aclose()


def _done(result: StreamResult) -> list[Any]:
    return [e.item for e in result.events if e.type == "thread.item.done"]
