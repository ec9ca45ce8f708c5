"""A `threads.create` turn holds its new thread's turn lease from the write that reserves the
thread (`Gate.reserve`, `ChatKitStore.reserve_thread(turn=...)`), without a claim of its own, and
frees it when the turn ends: in process through the app's own ChatKit server, on both databases."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from testkit import chatkit as bodies

from app.asgi import build_chatkit_server
from app.core.context import RequestContext
from app.services.attachments.service import AttachmentService
from app.settings import Settings
from app.store import driver
from app.store.db import build_db_config


async def test_a_new_threads_turn_runs_under_the_lease_its_thread_was_saved_with(
    engine: AsyncEngine, database_url: str
) -> None:
    settings = Settings.from_env({"DATABASE_URL": database_url})
    config = build_db_config(settings)
    session_maker = config.create_session_maker()
    server = build_chatkit_server(settings, session_maker, AttachmentService.from_settings(settings, session_maker))
    store: Any = server.store
    alice = RequestContext(user_id="alice", time_zone="UTC")
    lease_writes: list[str] = []

    def seen(sql: str) -> None:
        if "turn_lease" in sql:
            lease_writes.append(sql.split(None, 1)[0])

    def on_sqlalchemy(conn: Any, cursor: Any, sql: str, *_: Any) -> None:
        seen(sql)

    def on_driver(sql: str, arguments: Any) -> None:
        seen(sql)

    sync_engine = config.get_engine().sync_engine
    event.listen(sync_engine, "before_cursor_execute", on_sqlalchemy)
    driver.statement_listeners.append(on_driver)
    try:
        result = await server.process(json.dumps(bodies.threads_create("add a task to buy milk")), alice)
        frames = result.json_events.__aiter__()  # type: ignore[union-attr]
        created = json.loads((await frames.__anext__()).split(b"data: ", 1)[1])
        thread_id = created["thread"]["id"]
        # The turn holds its thread from the reservation on: another turn cannot take it.
        assert lease_writes == ["INSERT"]  # saved with the lease, claimed by no UPDATE
        assert not await store.claim_turn(thread_id, "another-turn", 30, alice)
        async for _ in frames:
            pass
    finally:
        event.remove(sync_engine, "before_cursor_execute", on_sqlalchemy)
        driver.statement_listeners.remove(on_driver)
        await config.get_engine().dispose()
    # The reservation, the other turn's failed claim, the release when the turn ended.
    assert lease_writes == ["INSERT", "UPDATE", "UPDATE"]
    assert await store.claim_turn(thread_id, "another-turn", 30, alice)  # free again


async def test_a_reservation_whose_answer_was_lost_leaves_no_thread_behind(
    engine: AsyncEngine, database_url: str
) -> None:
    """The thread's row committed, then the call failed (the connection died during COMMIT, the
    request was cancelled): the thread, holding the new turn's lease, is deleted as a failed
    stream's is (`Gate.drop_reserved_thread`), not left in the user's list, counted against the
    quota and refusing every turn ("a turn is running") until its lease expired."""
    settings = Settings.from_env({"DATABASE_URL": database_url, "QUOTA_THREADS_PER_USER": "1"})
    config = build_db_config(settings)
    session_maker = config.create_session_maker()
    server = build_chatkit_server(settings, session_maker, AttachmentService.from_settings(settings, session_maker))
    store: Any = server.store
    alice = RequestContext(user_id="alice", time_zone="UTC")
    saved = store.reserve_thread

    async def saved_then_lost(*args: Any, **kwargs: Any) -> None:
        await saved(*args, **kwargs)
        raise ConnectionResetError("the answer to COMMIT never came")

    try:
        store.reserve_thread = saved_then_lost
        with pytest.raises(ConnectionResetError):
            await server.process(json.dumps(bodies.threads_create("add a task to buy milk")), alice)
        assert (await store.load_threads(10, None, "desc", alice)).data == []
        # The quota's one thread is still free: the next create goes through and runs.
        del store.reserve_thread
        result = await server.process(json.dumps(bodies.threads_create("add a task to buy milk")), alice)
        async for _ in result.json_events:  # type: ignore[union-attr]
            pass
        assert len((await store.load_threads(10, None, "desc", alice)).data) == 1
    finally:
        await config.get_engine().dispose()
