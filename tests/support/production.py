"""Helpers for the production tests (faults, cluster, load): tokens, direct database reads,
streaming reads that can stop half-way, and killing a server's process tree."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import psutil
from testkit.chatkit import json_headers
from testkit.postgres import fetch
from testkit.processes import alive, child_pids

from tests.support.auth import token
from tests.support.chatkit_client import EVENT_ADAPTER
from tests.support.servers import LiveServer


def listening_workers(server: LiveServer, port: int) -> set[int]:
    """Granian's workers: the children that hold the listening socket (not helper processes)."""
    found: set[int] = set()
    for pid in child_pids(server.process.pid):
        try:
            connections = psutil.Process(pid).net_connections(kind="tcp")
        except psutil.Error:
            continue
        if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in connections):
            found.add(pid)
    return found


def headers_for(user: str) -> dict[str, str]:
    return json_headers(token(user))


# ---- the database, read directly (not through the server under test) ---------------------------------


async def db_fetch(database_url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    return await fetch(database_url, query, *args)


async def terminate_server_connections(database_url: str) -> int:
    """`pg_terminate_backend` every other connection to the database: the server's pooled ones.

    What a PostgreSQL restart or failover leaves behind: a pool of dead connections while the
    database itself is up again.
    """
    rows = await db_fetch(
        database_url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    return sum(1 for row in rows if row[0])


@dataclass
class StoredRows:
    """What a load run's users left in the database, read directly, by user id."""

    items: dict[str, set[tuple[str, str]]]  # (thread id, item id)
    threads: dict[str, list[str]]
    tasks: dict[str, list[tuple[str, bool]]]  # (title, completed)
    item_count: int


async def stored_rows(database_url: str, user_prefix: str) -> StoredRows:
    """Items, threads and tasks of every user whose id starts with `user_prefix`."""
    pattern = user_prefix + "%"
    items: dict[str, set[tuple[str, str]]] = defaultdict(set)
    rows = await db_fetch(database_url, "SELECT user_id, thread_id, id FROM chat_items WHERE user_id LIKE $1", pattern)
    for row in rows:
        items[row["user_id"]].add((row["thread_id"], row["id"]))
    threads: dict[str, list[str]] = defaultdict(list)
    for row in await db_fetch(database_url, "SELECT user_id, id FROM chat_threads WHERE user_id LIKE $1", pattern):
        threads[row["user_id"]].append(row["id"])
    tasks: dict[str, list[tuple[str, bool]]] = defaultdict(list)
    query = "SELECT user_id, title, completed FROM tasks WHERE user_id LIKE $1 ORDER BY user_id, number"
    for row in await db_fetch(database_url, query, pattern):
        tasks[row["user_id"]].append((row["title"], row["completed"]))
    return StoredRows(items=items, threads=threads, tasks=tasks, item_count=len(rows))


async def stored_items(database_url: str, user_id: str, thread_id: str) -> list[dict[str, Any]]:
    """The thread's items as stored, in ChatKit order, each as its JSON document."""
    rows = await db_fetch(
        database_url,
        "SELECT data FROM chat_items WHERE user_id = $1 AND thread_id = $2 ORDER BY created_at, seq",
        user_id,
        thread_id,
    )
    return [row["data"] if isinstance(row["data"], dict) else json.loads(row["data"]) for row in rows]


# ---- streams read event by event -------------------------------------------------------------------------


@dataclass
class Stream:
    status: int = 0
    content_type: str = ""
    events: list[Any] = field(default_factory=list)
    keepalives: int = 0
    broken: BaseException | None = None  # the transport failed before the body ended

    def of_type(self, kind: str) -> list[Any]:
        return [e for e in self.events if e.type == kind]

    @property
    def thread_id(self) -> str:
        return str(self.of_type("thread.created")[0].thread.id)

    @property
    def deltas(self) -> int:
        return sum(
            1
            for e in self.events
            if e.type == "thread.item.updated" and e.update.type == "assistant_message.content_part.text_delta"
        )

    def done_items(self) -> list[Any]:
        return [e.item for e in self.events if e.type == "thread.item.done"]


async def post_as_a_browser(
    http: httpx.AsyncClient, url: str, *, json: Any, headers: dict[str, str]
) -> tuple[httpx.Response, int]:
    """POST, sent once more when the connection dropped before any answer came (a reset or a close
    under a reused keep-alive connection), as browsers do; the answer and how many were resent (0
    or 1). A load test that uses it must also check that every stored row is one a user was shown:
    had the first copy reached TaskPilot after all, its rows would fail that check."""
    try:
        return await http.post(url, json=json, headers=headers), 0
    except (httpx.ReadError, httpx.RemoteProtocolError):
        return await http.post(url, json=json, headers=headers), 1


@asynccontextmanager
async def open_stream(
    http: httpx.AsyncClient, body: dict[str, Any], headers: dict[str, str]
) -> AsyncIterator[tuple[Stream, AsyncIterator[Any]]]:
    """POST /chatkit and iterate its events as they arrive; leaving the block closes the connection."""
    result = Stream()
    async with http.stream("POST", "/chatkit", json=body, headers=headers) as response:
        result.status = response.status_code
        result.content_type = response.headers.get("content-type", "")

        async def events() -> AsyncIterator[Any]:
            if not result.content_type.startswith("text/event-stream"):
                await response.aread()
                return
            try:
                async for line in response.aiter_lines():
                    if line.startswith(":"):
                        result.keepalives += 1
                    elif line.startswith("data: "):
                        event = EVENT_ADAPTER.validate_json(line[len("data: ") :])
                        result.events.append(event)
                        yield event
            except (httpx.TransportError, httpx.StreamError) as exc:
                result.broken = exc

        yield result, events()


# ---- processes ----------------------------------------------------------------------------------------


def kill_server(server: LiveServer) -> None:
    """SIGKILL the granian main process and its workers (a crash: nothing runs any cleanup)."""
    pids = [server.process.pid, *child_pids(server.process.pid)]
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    server.process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(pid) for pid in pids[1:]):
        time.sleep(0.05)
