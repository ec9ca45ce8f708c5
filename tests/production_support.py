"""Helpers for the production tests (faults, cluster, load): tokens, direct database reads,
streaming reads that can stop half-way, and killing a server's process tree."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from app.auth import mint_dev_token
from app.settings import Settings
from tests.chatkit_client import EVENT_ADAPTER, user_input
from tests.support import LiveServer


def token(user: str) -> str:
    """A development token (the default development secret, as every test server uses)."""
    return mint_dev_token(Settings(), user)


def headers_for(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user)}", "Content-Type": "application/json"}


def create_body(text: str) -> dict[str, Any]:
    return {"type": "threads.create", "params": {"input": user_input(text)}}


def message_body(thread_id: str, text: str) -> dict[str, Any]:
    return {"type": "threads.add_user_message", "params": {"thread_id": thread_id, "input": user_input(text)}}


# ---- the database, read directly (not through the server under test) ---------------------------------


def asyncpg_dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def db_fetch(database_url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(asyncpg_dsn(database_url), timeout=10)
    try:
        return list(await connection.fetch(query, *args))
    finally:
        await connection.close()


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


def child_pids(pid: int) -> list[int]:
    """Direct and indirect children of `pid` (granian's workers), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces; the fields after its closing parenthesis do not.
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def kill_server(server: LiveServer) -> None:
    """SIGKILL the granian main process and its workers (a crash: nothing runs any cleanup)."""
    pids = [server.process.pid, *child_pids(server.process.pid)]
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    server.process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids[1:]):
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
