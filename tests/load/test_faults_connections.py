"""Fault: PostgreSQL terminates the server's connections (`pg_terminate_backend`) mid-stream.

While a dozen streams are open, connections die two ways: every so often all of the server's
connections are terminated from outside (idle ones in the pool included), and the first write of
each assistant message is killed in the middle (a trigger terminates its own backend, once per
item: it remembers the item through `dblink`, which commits on a connection of its own and so
survives the dying transaction). A write that fails because its connection died is retried on a
fresh connection, so a reply the client received completely is in the database, not lost to an
error at its last write.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url
from testkit.chatkit import threads_create as create_body
from testkit.postgres import asyncpg_dsn

from app.agents.offline import replies
from tests.conftest import create_schema
from tests.support.production import Stream, headers_for, open_stream, stored_items

HELP_TEXT = replies.help_text("en")
STREAMS = 12
pytestmark = pytest.mark.timeout(180)


def _streamed_text(stream: Stream) -> str:
    return "".join(
        e.update.delta
        for e in stream.events
        if e.type == "thread.item.updated" and e.update.type == "assistant_message.content_part.text_delta"
    )


def _cut_once_function(database: str, port: int) -> str:
    remember = f"host=127.0.0.1 port={port} dbname={database} user=postgres application_name=fault-injector"
    return f"""
CREATE OR REPLACE FUNCTION taskpilot_test_cut_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.data->>'type' = 'assistant_message' AND EXISTS (
    SELECT 1 FROM dblink('{remember}',
      format('INSERT INTO cut_once VALUES (%L) ON CONFLICT DO NOTHING RETURNING 1', NEW.id)) AS t(x int)
  ) THEN
    PERFORM pg_terminate_backend(pg_backend_pid());
    PERFORM pg_sleep(5);
  END IF;
  RETURN NEW;
END $$
"""


async def _install_cut_once(database_url: str) -> None:
    url = make_url(database_url)
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await connection.execute("CREATE EXTENSION IF NOT EXISTS dblink")
        await connection.execute("CREATE TABLE cut_once (item_id text PRIMARY KEY)")
        await connection.execute(_cut_once_function(str(url.database), url.port or 5432))
        for when in ("INSERT", "UPDATE"):
            await connection.execute(
                f"CREATE TRIGGER taskpilot_test_cut_once_{when.lower()} BEFORE {when} ON chat_items "
                "FOR EACH ROW EXECUTE FUNCTION taskpilot_test_cut_once()"
            )
    finally:
        await connection.close()


async def test_replies_streamed_completely_are_saved_when_connections_are_terminated(
    live_server_factory, fresh_postgres_url: str
) -> None:
    await create_schema(fresh_postgres_url)
    await _install_cut_once(fresh_postgres_url)
    server = live_server_factory(
        {"DATABASE_URL": fresh_postgres_url, "OFFLINE_MODEL_DELAY_MS": "60", "LOG_LEVEL": "warning"}, migrate=False
    )
    users = [f"terminate-{uuid.uuid4().hex[:8]}" for _ in range(STREAMS)]
    streams: list[tuple[str, Stream]] = []
    finished = asyncio.Event()
    terminated = 0

    async def one(http: httpx.AsyncClient, user: str) -> None:
        async with open_stream(http, create_body("help"), headers_for(user)) as (stream, events):
            streams.append((user, stream))
            async for _event in events:
                pass

    async def terminator() -> None:
        nonlocal terminated
        admin = await asyncpg.connect(asyncpg_dsn(fresh_postgres_url))
        try:
            await asyncio.sleep(0.3)  # the streams have opened
            while not finished.is_set():
                rows = await admin.fetch(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND application_name <> 'fault-injector'"
                )
                terminated += sum(1 for r in rows if r[0])
                await asyncio.sleep(0.5)
        finally:
            await admin.close()

    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
        killing = asyncio.create_task(terminator())
        try:
            await asyncio.gather(*(one(http, user) for user in users))
        finally:
            finished.set()
            await killing
    assert terminated > 0, "no server connection was terminated"

    complete = [(user, s) for user, s in streams if _streamed_text(s) == HELP_TEXT]
    outcomes = [(_streamed_text(s)[:20], [e.type for e in s.events][-2:]) for _, s in streams]
    assert len(complete) >= STREAMS // 2, outcomes
    lost: list[dict[str, Any]] = []
    for user, stream in complete:
        items = await stored_items(fresh_postgres_url, user, stream.thread_id)
        answers = ["".join(c["text"] for c in i["content"]) for i in items if i["type"] == "assistant_message"]
        # Retried, the write succeeds and the turn ends normally: no error after the whole answer.
        if answers != [HELP_TEXT] or stream.of_type("error"):
            lost.append({"thread": stream.thread_id, "stored": answers, "last": [e.type for e in stream.events][-2:]})
    assert not lost, f"{len(lost)} of {len(complete)} replies the client received completely were not saved: {lost}"
    assert server.process.poll() is None
