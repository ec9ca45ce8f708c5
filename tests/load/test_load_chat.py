"""Load: 200 concurrent users, 5 chat turns each, against one server (2 workers) on PostgreSQL.

Every turn must answer 200 with no `error` event, and the database must then hold exactly what
the users were shown: per user one thread whose stored items are exactly the items streamed as
done, and exactly the tasks their turns created (the first one completed).

200 concurrent users are more streams than the two workers admit (CHATKIT_MAX_STREAMS): a turn
refused at the door (503 with Retry-After) is sent again after the wait, as a ChatKit user
would, and must have left nothing behind (one thread per user, no stray items).

This is a correctness test under concurrency (pool contention, id generation, ordering), not a
benchmark: it prints its throughput but asserts no timing (bench/ measures performance).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from testkit.chatkit import add_user_message as message_body
from testkit.chatkit import threads_create as create_body
from testkit.pgbouncer import pgbouncer_binary, running_pgbouncer

from tests.conftest import create_schema
from tests.support.chatkit_client import parse_sse
from tests.support.production import headers_for, post_as_a_browser, stored_rows

USERS = 200
TURNS = [
    "add a task to buy milk",
    "add a task to call the plumber",
    "show my tasks",
    "mark 1 done",
    "add a task to pay rent",
]
EXPECTED_TASKS = {("Buy milk", True), ("Call the plumber", False), ("Pay rent", False)}


@dataclass
class UserRun:
    user: str
    thread_id: str = ""
    statuses: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    refused: int = 0
    resent: int = 0  # requests whose connection dropped before any answer, sent once more


MAX_ATTEMPTS = 60


async def _chat(http: httpx.AsyncClient, run: UserRun) -> None:
    headers = headers_for(run.user)
    for turn, text in enumerate(TURNS):
        body = create_body(text) if turn == 0 else message_body(run.thread_id, text)
        for _ in range(MAX_ATTEMPTS):
            try:
                response, resent = await post_as_a_browser(http, "/chatkit", json=body, headers=headers)
            except httpx.HTTPError as exc:
                run.errors.append(f"turn {turn}: {type(exc).__name__}: {exc!r} {exc.__cause__!r}")
                return
            run.resent += resent
            if response.status_code != 503 or "retry-after" not in response.headers:
                break
            run.refused += 1
            await asyncio.sleep(float(response.headers["retry-after"]))
        run.statuses.append(response.status_code)
        if response.status_code != 200:
            run.errors.append(f"turn {turn}: HTTP {response.status_code}: {response.text[:200]}")
            return
        # Plain JSON, not pydantic: the client shares the two cores with the server.
        events = [json.loads(frame) for frame in parse_sse(response.text)[0]]
        if turn == 0:
            run.thread_id = events[0]["thread"]["id"]
        for event in events:
            if event["type"] == "error":
                run.errors.append(f"turn {turn}: error event {event.get('message')}")
            elif event["type"] == "thread.item.done":
                run.done.append(event["item"]["id"])
            elif event["type"] == "thread.item.removed":
                run.removed.append(event["item_id"])


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    "through",
    [
        "direct",
        pytest.param(
            "pgbouncer",
            marks=pytest.mark.skipif(pgbouncer_binary() is None, reason="pgbouncer is not installed"),
        ),
    ],
)
async def test_200_users_5_turns_each_lose_nothing(live_server_factory, fresh_postgres_url: str, through: str) -> None:
    """`pgbouncer`: the same load through PgBouncer in transaction mode with 10 server connections
    for the two workers' 50 (`DATABASE_STATEMENT_CACHE=false`, deploy/pgbouncer.ini)."""
    await create_schema(fresh_postgres_url)
    with contextlib.ExitStack() as stack:
        database_url, pooler = fresh_postgres_url, {}
        if through == "pgbouncer":
            bouncer = stack.enter_context(running_pgbouncer(fresh_postgres_url, pool_size=10))
            database_url, pooler = bouncer.url(fresh_postgres_url), {"DATABASE_STATEMENT_CACHE": "false"}
        await _load(live_server_factory, fresh_postgres_url, {"DATABASE_URL": database_url, **pooler})


async def _load(live_server_factory: Any, fresh_postgres_url: str, database: dict[str, str]) -> None:
    server = live_server_factory(
        {
            **database,
            # Two workers use both cores; 2 x 25 connections at most leaves PostgreSQL's default 100
            # room for everything else running beside this test.
            "WORKERS": "2",
            "DATABASE_POOL_SIZE": "20",
            "DATABASE_MAX_OVERFLOW": "5",
            "RATE_LIMIT_CHAT_PER_MINUTE": "1000",
            "LOG_LEVEL": "warning",
        },
        migrate=False,
        # Not in the coverage figure: every path of these turns is covered by the live layer, and
        # branch tracing slows Python code by well over half (importing the app: 4.4 s of CPU
        # plain, 7.2 s traced), on the two cores the 200 clients share with the server.
        measured=False,
    )
    prefix = f"load-{uuid.uuid4().hex[:8]}-"
    runs = [UserRun(user=f"{prefix}{n:03d}") for n in range(USERS)]
    limits = httpx.Limits(max_connections=USERS, max_keepalive_connections=USERS)
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=120, limits=limits) as http:
        await asyncio.gather(*(_chat(http, run) for run in runs))
    seconds = time.monotonic() - started
    refused = sum(run.refused for run in runs)
    dropped = sum(run.resent for run in runs)
    print(
        f"\n{USERS * len(TURNS)} turns by {USERS} concurrent users in {seconds:.1f} s "
        f"({refused} refused, resent; {dropped} met a dropped connection, resent)"
    )

    errors = [f"{run.user}: {error}" for run in runs for error in run.errors]
    assert not errors, f"{len(errors)} errors, first: {errors[:5]}"
    assert all(run.statuses == [200] * len(TURNS) for run in runs)

    stored = await stored_rows(fresh_postgres_url, prefix)
    expected_rows = 0
    for run in runs:
        expected = set(run.done) - set(run.removed)
        assert len(run.done) == len(set(run.done)), f"{run.user}: an item id was streamed as done twice"
        assert stored.threads[run.user] == [run.thread_id], run.user
        assert stored.items[run.user] == {(run.thread_id, item) for item in expected}, run.user
        tasks = stored.tasks[run.user]
        assert set(tasks) == EXPECTED_TASKS and len(tasks) == 3, (run.user, tasks)
        expected_rows += len(expected)
    assert stored.item_count == expected_rows
    # Each turn stores at least the user's message and the assistant's answer.
    assert expected_rows >= USERS * len(TURNS) * 2
