"""Fault: PostgreSQL becomes unreachable while the server runs, then comes back.

A TCP proxy sits between the server and PostgreSQL; stopping it resets every connection and
refuses new ones, which is what a database crash or a partition looks like from the server.
While it is down every request is answered quickly with a 503 problem+json (never a 500 or a
hang); when it is back the same process serves again, and nothing written before is lost.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
from sqlalchemy.engine import make_url
from testkit.chatkit import add_user_message as message_body
from testkit.chatkit import threads_create as create_body

from tests.conftest import create_schema
from tests.support.chatkit_client import ChatKitClient
from tests.support.production import (
    db_fetch,
    headers_for,
    open_stream,
    stored_items,
    terminate_server_connections,
    token,
)
from tests.support.tcp_proxy import TcpProxy

# The slowest acceptable answer while the database is down (pool_timeout is 10 s; a refused
# connection should fail far sooner).
OUTAGE_ANSWER_SECONDS = 8.0


def _assert_unavailable(response: httpx.Response, elapsed: float) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    problem = response.json()
    assert problem["status"] == 503 and "database" in problem["detail"].lower()
    assert int(response.headers["retry-after"]) >= 1
    assert elapsed < OUTAGE_ANSWER_SECONDS, elapsed


async def test_database_outage_is_503_and_the_server_recovers_without_restart(
    live_server_factory, fresh_postgres_url: str
) -> None:
    real = make_url(fresh_postgres_url)
    proxy = TcpProxy(real.host or "127.0.0.1", real.port or 5432)
    proxy.start()
    try:
        proxied = real.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        await create_schema(fresh_postgres_url)  # the migrations have tests of their own; this is faster
        server = live_server_factory({"DATABASE_URL": proxied, "LOG_LEVEL": "warning"}, migrate=False)
        user = f"outage-{uuid.uuid4().hex[:8]}"
        rest = {"Authorization": f"Bearer {token(user)}"}
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            chat = ChatKitClient(http, token(user))
            # ---- before: a task over REST, a thread with one turn ----
            task = await http.post("/api/tasks", json={"title": "Written before the outage"}, headers=rest)
            assert task.status_code == 201, task.text
            created = await chat.create_thread("add a task to buy milk")
            assert created.status == 200 and not created.of_type("error")
            before_items = [e.item.id for e in created.events if e.type == "thread.item.done"]

            # ---- the database goes away ----
            proxy.stop()
            for attempt in range(3):  # the first may meet a dead pooled connection, the rest a refusal
                started = time.monotonic()
                response = await http.get("/api/tasks", headers=rest)
                _assert_unavailable(response, time.monotonic() - started)
                started = time.monotonic()
                response = await http.post("/api/tasks", json={"title": f"During {attempt}"}, headers=rest)
                _assert_unavailable(response, time.monotonic() - started)
            for body in (
                {"type": "threads.list", "params": {"limit": 5}},
                message_body(created.thread_id, "show my tasks"),  # streaming: refused before a stream opens
                create_body("add a task to pay rent"),
            ):
                started = time.monotonic()
                response = await http.post("/chatkit", json=body, headers=headers_for(user))
                _assert_unavailable(response, time.monotonic() - started)
                assert "data:" not in response.text
            ready = await http.get("/ready")
            assert ready.status_code == 503 and ready.json()["database"] == "unreachable"
            assert server.process.poll() is None

            # ---- it comes back: the same process serves again ----
            proxy.start()
            deadline = time.monotonic() + 20
            while (await http.get("/ready")).status_code != 200:
                assert time.monotonic() < deadline, "not ready 20 s after the database came back"
                await asyncio.sleep(0.2)
            listed = await http.get("/api/tasks", headers=rest)
            assert listed.status_code == 200, listed.text
            assert [t["title"] for t in listed.json()["items"]] == ["Written before the outage", "Buy milk"]
            continued = await chat.send(created.thread_id, "show my tasks")
            assert continued.status == 200 and not continued.of_type("error"), continued.of_type("error")
            assert "Written before the outage" in continued.assistant_text()
            after = await http.post("/api/tasks", json={"title": "Written after"}, headers=rest)
            assert after.status_code == 201

        # ---- nothing lost, nothing half-written (read past the proxy) ----
        items = await stored_items(fresh_postgres_url, user, created.thread_id)
        done_after = [e.item.id for e in continued.events if e.type == "thread.item.done"]
        assert [i["id"] for i in items] == before_items + done_after
        titles = await db_fetch(fresh_postgres_url, "SELECT title FROM tasks WHERE user_id = $1 ORDER BY number", user)
        assert [r["title"] for r in titles] == ["Written before the outage", "Buy milk", "Written after"]
        threads = await db_fetch(fresh_postgres_url, "SELECT id FROM chat_threads WHERE user_id = $1", user)
        assert [r["id"] for r in threads] == [created.thread_id]
    finally:
        proxy.close()


async def test_database_lost_mid_stream_ends_the_stream_with_an_error_event(
    live_server_factory, fresh_postgres_url: str
) -> None:
    real = make_url(fresh_postgres_url)
    proxy = TcpProxy(real.host or "127.0.0.1", real.port or 5432)
    proxy.start()
    try:
        proxied = real.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        await create_schema(fresh_postgres_url)
        server = live_server_factory(
            {"DATABASE_URL": proxied, "OFFLINE_MODEL_DELAY_MS": "100", "LOG_LEVEL": "warning"}, migrate=False
        )
        user = f"midstream-{uuid.uuid4().hex[:8]}"
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            async with open_stream(http, create_body("help"), headers_for(user)) as (stream, events):
                assert stream.status == 200
                async for _event in events:
                    if stream.deltas == 3:
                        proxy.stop()  # the answer is being written when the database goes away
                        break
                started = time.monotonic()
                async for _event in events:
                    pass
                assert time.monotonic() - started < 15
            assert stream.broken is None, f"the stream died instead of ending: {stream.broken!r}"
            kinds = [e.type for e in stream.events]
            assert kinds[-1] == "error", kinds
            assert stream.events[-1].allow_retry is True

            proxy.start()
            deadline = time.monotonic() + 20
            while (await http.get("/ready")).status_code != 200:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
            chat = ChatKitClient(http, token(user))
            continued = await chat.send(stream.thread_id, "add a task to call the plumber")
            assert continued.status == 200 and not continued.of_type("error")

        # The user's message was written before the outage and is still there, then the next turn.
        items = await stored_items(fresh_postgres_url, user, stream.thread_id)
        users = [i["content"][0]["text"] for i in items if i["type"] == "user_message"]
        assert users == ["help", "add a task to call the plumber"]
        done_before = [i.id for i in stream.done_items()]
        assert set(done_before) <= {i["id"] for i in items}
    finally:
        proxy.close()


async def test_rest_requests_after_the_database_dropped_every_pooled_connection_succeed(
    live_server_factory, fresh_postgres_url: str
) -> None:
    """A PostgreSQL restart (or failover) leaves the pool full of dead connections while the database
    is up again: the first request on one is run again on a fresh connection, not answered 503. The
    quotas (on by default) lock first: that lock is the statement that meets the dead connection."""
    await create_schema(fresh_postgres_url)
    server = live_server_factory({"DATABASE_URL": fresh_postgres_url, "LOG_LEVEL": "warning"}, migrate=False)
    user = f"stale-{uuid.uuid4().hex[:8]}"
    rest = {"Authorization": f"Bearer {token(user)}"}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        created = await http.post("/api/tasks", json={"title": "Before the restart"}, headers=rest)
        assert created.status_code == 201, created.text
        assert (await http.get("/api/tasks", headers=rest)).status_code == 200  # the pool holds connections

        assert await terminate_server_connections(fresh_postgres_url) >= 1
        listed = await http.get("/api/tasks", headers=rest)
        assert listed.status_code == 200, listed.text
        assert [t["title"] for t in listed.json()["items"]] == ["Before the restart"]

        # A write whose first statement meets a dead connection: nothing was written yet, so it runs again.
        assert await terminate_server_connections(fresh_postgres_url) >= 1
        written = await http.post("/api/tasks", json={"title": "After the restart"}, headers=rest)
        assert written.status_code == 201, written.text

        # threads.create reserves its thread under the user's thread-quota lock, its first statement.
        assert await terminate_server_connections(fresh_postgres_url) >= 1
        thread = await ChatKitClient(http, token(user)).create_thread("help")
        assert thread.status == 200 and not thread.of_type("error"), thread.of_type("error")
    threads = await db_fetch(fresh_postgres_url, "SELECT id FROM chat_threads WHERE user_id = $1", user)
    assert [r["id"] for r in threads] == [thread.thread_id]
    titles = await db_fetch(fresh_postgres_url, "SELECT title FROM tasks WHERE user_id = $1 ORDER BY number", user)
    assert [r["title"] for r in titles] == ["Before the restart", "After the restart"]
    # The log names the driver's error, not Advanced Alchemy's wrapper of it.
    retries = [json.loads(line) for line in server.log().splitlines() if "database connection lost" in line]
    assert retries, server.log()[-3000:]
    assert all(r["error"].startswith("asyncpg.") for r in retries), retries
    assert "IntegrityError" not in server.log()


def test_a_database_error_is_named_by_the_drivers_error_not_its_wrappers() -> None:
    """Advanced Alchemy reports a connection closed under a statement as its IntegrityError; the log
    line of the 503 (and of a retry) names what the driver said."""
    from advanced_alchemy.exceptions import IntegrityError
    from asyncpg.exceptions import ConnectionDoesNotExistError
    from sqlalchemy.exc import InterfaceError

    from app.store.connections import connection_died, database_cause

    driver = ConnectionDoesNotExistError("connection was closed in the middle of operation")
    wrapped = IntegrityError("An integrity error occurred")
    wrapped.__cause__ = InterfaceError("SELECT 1", None, driver, connection_invalidated=True)
    wrapped.__cause__.__cause__ = driver  # as SQLAlchemy's asyncpg adapter chains it
    assert database_cause(wrapped) == "asyncpg.ConnectionDoesNotExistError"
    assert connection_died(wrapped)
    assert database_cause(ConnectionRefusedError()) == "ConnectionRefusedError"
