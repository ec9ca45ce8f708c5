"""Faults in the store's writes while a ChatKit stream is open, on a real granian process.

A trigger on `chat_items` makes chosen writes fail the way a database does: an integrity error,
a statement timeout (PostgreSQL's `query_canceled`), and the connection dying mid-write
(`pg_terminate_backend` of its own backend). Which writes fail is chosen by a marker word in the
item's JSON, so the rest of the turn runs normally.

Each fault must (a) end the open stream with a ChatKit `error` event and a clean end of the
body, never a cut connection, and (b) leave no message text, task title or bearer token in the
server's log, with `LOG_CONTENT` off (the default): the driver's error carries the statement's
bound parameters, which are exactly the item's JSON.
"""

from __future__ import annotations

import sqlite3
import uuid
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy.engine import make_url
from testkit.chatkit import add_user_message as message_body
from testkit.chatkit import threads_create as create_body

from tests.support.chatkit_client import ChatKitClient
from tests.support.production import db_fetch, headers_for, open_stream, stored_items, token

pytestmark = pytest.mark.timeout(180)


@dataclass(frozen=True)
class Fault:
    marker: str  # a word that appears only in the items whose write should fail
    postgres_only: bool = False


INTEGRITY = Fault("zebraint")
TIMEOUT = Fault("zebratime", postgres_only=True)
DISCONNECT = Fault("zebracut", postgres_only=True)
USER_WRITE = Fault("zebrauser")  # the user's own message: written after `thread.created` was sent

PG_FAULT_FUNCTION = """
CREATE OR REPLACE FUNCTION taskpilot_test_fault() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE doc text := lower(NEW.data::text);
BEGIN
  IF NEW.data->>'type' = 'user_message' THEN
    IF doc LIKE '%zebrauser%' THEN
      RAISE EXCEPTION 'injected fault' USING ERRCODE = 'unique_violation';
    END IF;
    RETURN NEW;
  END IF;
  IF doc LIKE '%zebraint%' THEN
    RAISE EXCEPTION 'injected fault' USING ERRCODE = 'unique_violation';
  ELSIF doc LIKE '%zebratime%' THEN
    RAISE EXCEPTION 'canceling statement due to statement timeout' USING ERRCODE = 'query_canceled';
  ELSIF doc LIKE '%zebracut%' THEN
    PERFORM pg_terminate_backend(pg_backend_pid());
    PERFORM pg_sleep(5);
  END IF;
  RETURN NEW;
END $$
"""
PG_FAULT_TRIGGERS = [
    "CREATE TRIGGER taskpilot_test_fault_insert BEFORE INSERT ON chat_items "
    "FOR EACH ROW EXECUTE FUNCTION taskpilot_test_fault()",
    "CREATE TRIGGER taskpilot_test_fault_update BEFORE UPDATE ON chat_items "
    "FOR EACH ROW EXECUTE FUNCTION taskpilot_test_fault()",
]
SQLITE_FAULT_TRIGGERS = [
    f"CREATE TRIGGER taskpilot_test_fault_{when.lower()} BEFORE {when} ON chat_items "
    "WHEN (json_extract(NEW.data, '$.type') = 'user_message' AND lower(NEW.data) LIKE '%zebrauser%') "
    "OR (json_extract(NEW.data, '$.type') != 'user_message' AND lower(NEW.data) LIKE '%zebraint%') "
    "BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
    for when in ("INSERT", "UPDATE")
]


async def _install_faults(database_url: str) -> None:
    if database_url.startswith("sqlite"):
        path = make_url(database_url).database
        assert path
        with sqlite3.connect(path) as connection:
            for statement in SQLITE_FAULT_TRIGGERS:
                connection.execute(statement)
        return
    await db_fetch(database_url, PG_FAULT_FUNCTION)
    for statement in PG_FAULT_TRIGGERS:
        await db_fetch(database_url, statement)


def _assert_ended_with_error_event(stream: object) -> None:
    assert stream.status == 200
    broken = stream.broken
    assert broken is None, f"the stream was cut instead of ending with an error event: {broken!r}"
    kinds = [e.type for e in stream.events]
    assert kinds and kinds[-1] == "error", kinds
    assert kinds.count("error") == 1, kinds


async def test_store_write_failures_end_the_stream_with_an_error_event_and_log_no_content(
    live_server_factory, server_database_url: str
) -> None:
    postgres = not server_database_url.startswith("sqlite")
    server = live_server_factory({"DATABASE_URL": server_database_url, "LOG_LEVEL": "info"})
    await _install_faults(server_database_url)
    user = f"faults-{uuid.uuid4().hex[:8]}"
    secret_words: list[str] = [token(user)]
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
        healthy = await ChatKitClient(http, token(user)).create_thread("add a task to water the plants")
        assert healthy.status == 200 and not healthy.of_type("error"), healthy.of_type("error")
        thread = healthy.thread_id

        faults = [f for f in (INTEGRITY, TIMEOUT, DISCONNECT) if postgres or not f.postgres_only]
        for fault in faults:
            # The tool call's workflow item carries the new task's title: its write fails.
            text = f"add a task to feed the {fault.marker}"
            secret_words += [text, f"Feed the {fault.marker}", fault.marker]
            async with open_stream(http, message_body(thread, text), headers_for(user)) as (stream, events):
                async for _event in events:
                    pass
            _assert_ended_with_error_event(stream)
            assert any(e.type == "thread.item.done" for e in stream.events)  # it failed after the stream opened
            assert stream.events[-1].allow_retry is True

        # The user's own message fails to save after `thread.created` went out.
        text = f"remind me about the {USER_WRITE.marker}"
        secret_words += [text, USER_WRITE.marker]
        async with open_stream(http, create_body(text), headers_for(user)) as (stream, events):
            async for _event in events:
                pass
        _assert_ended_with_error_event(stream)
        created = stream.thread_id

        # The thread is still usable after every fault.
        after = await ChatKitClient(http, token(user)).send(thread, "help")
        assert after.status == 200 and not after.of_type("error"), after.of_type("error")

    # What was already produced is saved: each faulty turn's user message, and the created thread.
    if postgres:
        items = await stored_items(server_database_url, user, thread)
        said = [i["content"][0]["text"] for i in items if i["type"] == "user_message"]
        assert said == [
            "add a task to water the plants",
            *(f"add a task to feed the {f.marker}" for f in faults),
            "help",
        ]
        threads = await db_fetch(server_database_url, "SELECT id FROM chat_threads WHERE user_id = $1", user)
        assert created in {r["id"] for r in threads}

    server.stop()
    log = server.log()
    assert "IntegrityError" in log  # the faults were logged, just not their content
    leaked = [word for word in secret_words if word.lower() in log.lower()]
    assert not leaked, f"the server log contains message text, task text or a token: {leaked}"
