"""Production guards, unit-level: rate limits (memory and Redis), metrics, security headers.

In-process (Litestar's AsyncTestClient on a SQLite file) except where Redis itself is the
subject; the Redis tests use a key prefix of their own and never flush anything.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from testkit.processes import free_port

from app.asgi import create_app
from app.http.auth import mint_dev_token
from app.http.security import API_CSP
from app.ops.ratelimit import RedisRateLimiter, build_limits
from app.settings import Settings
from tests.conftest import create_schema, make_settings
from tests.support.chatkit_client import ChatKitClient


@asynccontextmanager
async def serve(tmp_path: Path, **env: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    settings = make_settings(tmp_path, LOG_LEVEL="warning", **env)
    await create_schema(settings.database_url)
    async with AsyncTestClient(create_app(settings)) as client:
        yield client, settings


def bearer(settings: Settings, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_dev_token(settings, user)}"}


def assert_too_many(response: httpx.Response, *, at_most: int) -> int:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 429
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= at_most
    return retry_after


# ---- the chat limit -------------------------------------------------------------------------------


async def test_the_fourth_message_in_a_minute_is_429_and_reading_is_not_limited(tmp_path: Path) -> None:
    async with serve(tmp_path, RATE_LIMIT_CHAT_PER_MINUTE=3) as (http, settings):
        alice = ChatKitClient(http, mint_dev_token(settings, "alice"))
        created = await alice.create_thread("add a task to buy milk")
        assert created.status == 200
        for text in ("show my tasks", "mark 1 done"):
            assert (await alice.send(created.thread_id, text)).status == 200
        before = (await http.get("/metrics")).text
        refused = await alice.raw(
            {"type": "threads.add_user_message", "params": {"thread_id": created.thread_id, "input": _input("hi")}}
        )
        # 3 per minute: one every 20 s once the burst is spent.
        assert_too_many(refused, at_most=20)
        after = (await http.get("/metrics")).text
        counted = _sample(after, "taskpilot_rate_limited_total", limit="chat")
        assert counted - _sample(before, "taskpilot_rate_limited_total", limit="chat") == 1
        assert refused.text.count("data:") == 0
        # Nothing of the refused message was stored.
        items = (await alice.items(created.thread_id, limit=100)).body["data"]
        assert sum(1 for i in items if i["type"] == "user_message") == 3

        # Reads and edits are not chat turns: never limited.
        for _ in range(10):
            assert (await alice.request("threads.list", {"limit": 5})).status == 200
            assert (await alice.get_thread(created.thread_id)).status == 200
            assert (await alice.items(created.thread_id)).status == 200
        # The limit is per user.
        bob = ChatKitClient(http, mint_dev_token(settings, "bob"))
        assert (await bob.create_thread("hello")).status == 200


def _input(text: str) -> dict[str, Any]:
    return {"content": [{"type": "input_text", "text": text}], "attachments": [], "inference_options": {}}


async def test_failed_sign_ins_are_limited_per_address(tmp_path: Path) -> None:
    async with serve(tmp_path, RATE_LIMIT_ANONYMOUS_PER_MINUTE=5) as (http, settings):
        bad = {"Authorization": "Bearer not-a-token"}
        statuses = [(await http.get("/api/tasks", headers=bad)).status_code for _ in range(5)]
        assert statuses == [401] * 5
        assert_too_many(await http.get("/api/tasks", headers=bad), at_most=12)
        # Missing and wrongly signed tokens count the same way.
        assert (await http.post("/chatkit", json={"type": "threads.list", "params": {}})).status_code == 429
        # A valid token from the same address is never refused by the failed-sign-in limit.
        good = await http.get("/api/tasks", headers=bearer(settings, "alice"))
        assert good.status_code == 200


async def test_deeply_nested_json_is_a_400_not_a_500(tmp_path: Path) -> None:
    deep = "[" * 5000 + "]" * 5000
    async with serve(tmp_path) as (http, settings):
        headers = {**bearer(settings, "alice"), "Content-Type": "application/json"}
        for path, body in (
            ("/api/tasks", '{"title": "x", "tags": ' + deep + "}"),
            ("/chatkit", '{"type": "threads.list", "params": {}, "metadata": {"a": ' + deep + "}}"),
            ("/chatkit", deep),
        ):
            response = await http.post(path, content=body, headers=headers)
            assert response.status_code == 400, (path, response.text)
            assert "nested too deeply" in response.json()["detail"]


# ---- metrics ----------------------------------------------------------------------------------------


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if "{" in line else {}
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_metrics_count_a_turn_and_the_token_is_enforced(tmp_path: Path) -> None:
    async with serve(tmp_path, METRICS_TOKEN="scrape-secret-123") as (http, settings):
        scrape = {"Authorization": "Bearer scrape-secret-123"}
        assert (await http.get("/metrics")).status_code == 401
        assert (await http.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
        before = (await http.get("/metrics", headers=scrape)).text

        alice = ChatKitClient(http, mint_dev_token(settings, "alice"))
        assert (await alice.create_thread("add a task to water the plants")).status == 200
        after_response = await http.get("/metrics", headers=scrape)
        assert after_response.status_code == 200
        assert after_response.headers["content-type"].startswith("text/plain")
        after = after_response.text

        def grew(name: str, **labels: str) -> float:
            return _sample(after, name, **labels) - _sample(before, name, **labels)

        assert grew("taskpilot_http_requests_total", method="POST", route="/chatkit", status="200") == 1
        assert grew("taskpilot_chatkit_turn_duration_seconds_count") == 1
        assert grew("taskpilot_chatkit_time_to_first_event_seconds_count") == 1
        assert grew("taskpilot_tool_calls_total", tool="add_task", outcome="ok") == 1
        assert _sample(after, "taskpilot_chatkit_active_streams") == 0
        assert "taskpilot_db_pool_connections" in after


async def test_metrics_are_open_without_a_token(tmp_path: Path) -> None:
    async with serve(tmp_path) as (http, _settings):
        response = await http.get("/metrics")
        assert response.status_code == 200
        assert "taskpilot_http_requests_total" in response.text


# ---- security headers ---------------------------------------------------------------------------------

COMMON_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "content-security-policy": API_CSP.decode(),
}


async def test_security_headers_on_api_answers_of_every_kind(tmp_path: Path) -> None:
    async with serve(tmp_path) as (http, settings):
        alice = bearer(settings, "alice")
        answers = {
            "json": await http.get("/api/tasks", headers=alice),
            "problem": await http.get("/api/tasks"),
            "unmatched": await http.get("/no/such/route"),
            "stream": await http.post(
                "/chatkit", json={"type": "threads.create", "params": {"input": _input("hello")}}, headers=alice
            ),
            "health": await http.get("/health"),
        }
        assert answers["stream"].headers["content-type"].startswith("text/event-stream")
        for kind, response in answers.items():
            for name, value in COMMON_HEADERS.items():
                assert response.headers.get(name) == value, (kind, name)
            assert "strict-transport-security" not in response.headers, kind  # development: no TLS promised


async def test_hsts_in_production(tmp_path: Path) -> None:
    secret = "s" * 40
    production = {"APP_ENV": "production", "ALLOW_SQLITE_IN_PRODUCTION": "true", "AUTH_JWT_SECRET": secret}
    async with serve(tmp_path, **production) as (http, _settings):
        response = await http.get("/health")
        assert response.headers["strict-transport-security"].startswith("max-age=")
        assert response.headers["x-frame-options"] == "DENY"


# ---- Redis -----------------------------------------------------------------------------------------------


async def _delete_prefix(client: Redis, prefix: str) -> None:
    keys = [key async for key in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)


async def test_redis_limiter_admits_exactly_the_limit_under_concurrency(redis_url: str) -> None:
    prefix = f"taskpilot-test:{uuid.uuid4().hex}:"
    # Two clients stand for two instances sharing one Redis.
    first = Redis.from_url(redis_url, max_connections=60)
    second = Redis.from_url(redis_url, max_connections=60)
    try:
        limiters = [RedisRateLimiter(client, limit=10, prefix=prefix) for client in (first, second)]
        results = await asyncio.gather(*(limiters[n % 2].acquire("user-1") for n in range(50)))
        admitted = [r for r in results if r is None]
        assert len(admitted) == 10
        waits = [r for r in results if r is not None]
        assert all(0 < w <= 60 for w in waits)
        # Another key has its own budget.
        assert await limiters[0].acquire("user-2") is None
    finally:
        await _delete_prefix(first, prefix)
        await first.aclose()
        await second.aclose()


async def test_redis_down_falls_back_to_in_memory_limits(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    limiter = RedisRateLimiter(Redis.from_url(dead, socket_connect_timeout=0.5, socket_timeout=0.5), limit=1)
    results = [await limiter.acquire("alice") for _ in range(3)]
    assert results[0] is None
    assert all(wait is not None and 0 < wait <= 60 for wait in results[1:])
    assert limiter.health.degraded
    assert "Redis unreachable" in caplog.text

    # The whole service keeps chatting when its limiter's Redis is gone, within the limit.
    async with serve(tmp_path, REDIS_URL=dead, RATE_LIMIT_CHAT_PER_MINUTE=1) as (http, settings):
        alice = ChatKitClient(http, mint_dev_token(settings, "alice"))
        first = await alice.create_thread("add a task to buy milk")
        assert first.status == 200
        assert not first.of_type("error")
        refused = await alice.raw(
            {"type": "threads.add_user_message", "params": {"thread_id": first.thread_id, "input": _input("hi")}}
        )
        assert_too_many(refused, at_most=60)


async def test_settings_with_redis_build_redis_limiters(redis_url: str) -> None:
    limits = build_limits(Settings.from_env({"REDIS_URL": redis_url, "RATE_LIMIT_CHAT_PER_MINUTE": "2"}))
    try:
        assert isinstance(limits.chat, RedisRateLimiter)
        user = f"limits-{uuid.uuid4().hex}"
        assert [await limits.chat.acquire(user) is None for _ in range(3)] == [True, True, False]
    finally:
        await _delete_prefix(limits.redis, f"taskpilot:rl:chat:{user}")
        await limits.aclose()


# ---- the item quota closes a thread -----------------------------------------------------------------


async def test_a_thread_closed_at_the_item_quota_reopens_once_a_turn_finds_room(tmp_path: Path) -> None:
    """Closed (`Thread.status`) by the turn that filled it; after QUOTA_ITEMS_PER_THREAD is raised, a
    client that sends anyway (a stock one ignores the status) is answered, and the thread is open again."""
    async with serve(tmp_path, QUOTA_ITEMS_PER_THREAD=2, RATE_LIMIT_CHAT_PER_MINUTE=0) as (http, settings):
        alice = ChatKitClient(http, mint_dev_token(settings, "alice"))
        created = await alice.create_thread("help")
        assert created.status == 200
        closed = created.of_type("thread.updated")[-1].thread.status
        assert closed.type == "closed" and "limit of 2 items" in (closed.reason or "")
        assert (await alice.send(created.thread_id, "help")).status == 429
    async with serve(tmp_path, QUOTA_ITEMS_PER_THREAD=100, RATE_LIMIT_CHAT_PER_MINUTE=0) as (http, settings):
        alice = ChatKitClient(http, mint_dev_token(settings, "alice"))
        assert (await alice.get_thread(created.thread_id)).body["status"]["type"] == "closed"
        sent = await alice.send(created.thread_id, "help")
        assert sent.status == 200 and not sent.of_type("error"), sent.raw_frames
        assert sent.of_type("thread.updated")[-1].thread.status.type == "active"
        assert (await alice.get_thread(created.thread_id)).body["status"] == {"type": "active"}
