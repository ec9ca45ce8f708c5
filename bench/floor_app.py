"""The floor: the least any server can do for a TaskPilot turn, as a bare ASGI app (no framework).

For every request it reads the body, writes the same number of rows to PostgreSQL that a real
TaskPilot turn writes (raw asyncpg, one autocommit INSERT per TaskPilot INSERT/UPDATE statement,
each carrying as many bytes of parameters), and streams the bytes of a captured TaskPilot
response, frame by frame, with each write placed before the frame it preceded in TaskPilot.
No parsing, no auth, no model, no event conversion: what is left is HTTP, the database round
trips and the bytes on the wire, served by the same granian with the same flags.

Configured by `bench.turns` through the environment:
    FLOOR_PLAN          path of a JSON file {"frames": [str, ...], "steps": [["write", bytes] | ["frame", index]]}
    FLOOR_DATABASE_DSN  asyncpg DSN of the benchmark database
    FLOOR_POOL_SIZE     connections in the pool (TaskPilot's DATABASE_POOL_SIZE + DATABASE_MAX_OVERFLOW)

Run with `granian --interface asgi --factory bench.floor_app:create_app`.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS floor_writes (
    user_id text NOT NULL,
    id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    data jsonb NOT NULL,
    PRIMARY KEY (user_id, id)
)
"""
INSERT = "INSERT INTO floor_writes (user_id, id, data) VALUES ($1, $2, $3)"
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def _payload(size: int) -> str:
    """A JSON document of about `size` bytes."""
    return json.dumps({"pad": "x" * max(0, size - 12)})


def create_app() -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    plan = json.loads(Path(os.environ["FLOOR_PLAN"]).read_text())
    frames = [frame.encode() for frame in plan["frames"]]
    steps: list[tuple[str, Any]] = []
    for kind, value in plan["steps"]:
        steps.append((kind, _payload(int(value)) if kind == "write" else int(value)))
    dsn = os.environ["FLOOR_DATABASE_DSN"]
    pool_size = int(os.environ.get("FLOOR_POOL_SIZE", "20"))
    state: dict[str, Any] = {}

    async def lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                pool = await asyncpg.create_pool(dsn, min_size=1, max_size=pool_size)
                await pool.execute(CREATE_TABLE)
                state["pool"] = pool
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if "pool" in state:
                    await state["pool"].close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        more = True
        while more:
            message = await receive()
            more = bool(message.get("more_body", False))
        if scope["path"] != "/chatkit":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        pool: asyncpg.Pool = state["pool"]
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        user = "floor"
        for kind, value in steps:
            if kind == "write":
                await pool.execute(INSERT, user, uuid.uuid4().hex, value)
            else:
                await send({"type": "http.response.body", "body": frames[value], "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app
