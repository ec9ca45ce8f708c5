"""One turn per thread at a time (issue 27, item 1), over real HTTP.

Concurrent submits on one thread (two tabs, a double click, a retried request) must each be
answered once, for the message they were sent with: a second `threads.add_user_message` waits
behind the running turn and is answered after it, in order; a second answer to the same client
tool call, or a second retry while one runs, is a 409 problem before any stream opens. Never a
500, never a broken stream, never the newest message answered twice.

Runs against two granian workers on PostgreSQL (the turn lock must hold across processes, which
an in-process lock would not) and against the embedded default, one worker on SQLite.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from chatkit.types import ThreadMetadata
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from testkit.chatkit import add_user_message, threads_create

from app.agents.chatkit.turns import TurnLocks
from app.core.context import RequestContext
from app.core.errors import Conflict
from app.settings import Settings
from app.store.chatkit_store import ChatKitStore
from tests.support.chatkit_client import ChatKitClient, StreamResult
from tests.support.production import headers_for, kill_server, open_stream, token
from tests.support.servers import LiveServer, ServerPool, unique_user

NAMES = ["Alpha", "Bravo", "Charlie"]
# Paces the offline model's deltas so a turn lasts long enough for the submits to overlap.
MODEL_DELAY_MS = "15"


@pytest.fixture(params=["sqlite-one-worker", pytest.param("postgres-two-workers", marks=pytest.mark.postgres)])
def turn_server(request: pytest.FixtureRequest, live_servers: ServerPool) -> LiveServer:
    """One server per backend (from the run's pool; each test uses users of its own, and the tests
    of one process run one at a time, so only a test's own requests race on it): two workers on
    PostgreSQL, one on SQLite, and a paced offline model."""
    env = {"OFFLINE_MODEL_DELAY_MS": MODEL_DELAY_MS, "RATE_LIMIT_CHAT_PER_MINUTE": "1000", "LOG_LEVEL": "warning"}
    if request.param == "postgres-two-workers":
        request.getfixturevalue("postgres_url")  # skips (or fails under REQUIRE_POSTGRES) without PostgreSQL
        return live_servers.get({**env, "WORKERS": "2"}, database="postgres")
    return live_servers.get(env)


def _user(name: str) -> str:
    return unique_user(f"turns-{name}")


async def _items(client: ChatKitClient, thread_id: str) -> list[dict[str, Any]]:
    listed = await client.items(thread_id, order="asc", limit=100)
    assert listed.status == 200, listed.body
    data: list[dict[str, Any]] = listed.body["data"]
    return data


def _answers_by_message(items: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """Each user message's text, and the text of the assistant messages stored after it (before the next one)."""
    turns: list[tuple[str, list[str]]] = []
    for item in items:
        if item["type"] == "user_message":
            turns.append((" ".join(part.get("text", "") for part in item["content"]), []))
        elif item["type"] == "assistant_message" and turns:
            turns[-1][1].append("".join(part["text"] for part in item["content"]))
    return turns


async def _task_titles(http: httpx.AsyncClient, user: str) -> list[str]:
    listing = await http.get("/api/tasks", headers={"Authorization": f"Bearer {token(user)}"})
    assert listing.status_code == 200, listing.text
    return sorted(task["title"] for task in listing.json()["items"])


def _refused_as_problem(result: StreamResult) -> bool:
    return (
        result.status == 409
        and result.headers.get("content-type", "").startswith("application/problem+json")
        and "turn" in str(result.body.get("detail", "")).lower()
    )


async def test_concurrent_messages_on_one_thread_each_get_their_own_answer(turn_server: LiveServer) -> None:
    user = _user("tabs")
    async with httpx.AsyncClient(base_url=turn_server.base_url, timeout=120) as http:
        # Two: one runs, one queues (a third would be refused while one waits, see below).
        tabs = [ChatKitClient(http, token(user), time_zone="UTC") for _ in range(2)]
        started = await tabs[0].create_thread("hello")
        assert started.status == 200 and not started.of_type("error")
        thread_id = started.thread_id
        names = ["Alpha", "Bravo"]
        sent = await asyncio.gather(
            *(tab.send(thread_id, f"add a task {name}") for tab, name in zip(tabs, names, strict=True))
        )
        for name, result in zip(names, sent, strict=True):
            # Queued behind the turn before it, never refused: each tab's message is answered.
            assert result.status == 200, (name, result.status, result.body)
            assert not result.of_type("error"), (name, result.of_type("error"))
            assert name in result.assistant_text(), (name, result.assistant_text())
        assert await _task_titles(http, user) == names

        turns = _answers_by_message(await _items(tabs[0], thread_id))
        # In the order the turns ran (whichever tab came first), each message once.
        assert turns[0][0] == "hello"
        assert sorted(text for text, _ in turns[1:]) == [f"add a task {name}" for name in names], turns
        for text, answers in turns:
            assert len(answers) == 1, (text, answers)  # one answer per message, stored right after it
            if text.startswith("add a task "):
                assert text.removeprefix("add a task ") in answers[0], (text, answers)


async def test_one_pending_client_tool_call_is_answered_once(turn_server: LiveServer) -> None:
    user = _user("tool")
    async with httpx.AsyncClient(base_url=turn_server.base_url, timeout=120) as http:
        # No Time-Zone header, and the page offers get_time_zone: the assistant asks it.
        page = ChatKitClient(http, token(user), client_tools="get_time_zone")
        asked = await page.create_thread("add a task to buy milk tomorrow")
        assert asked.status == 200 and not asked.of_type("error")
        last = [e.item for e in asked.events if e.type == "thread.item.done"][-1]
        assert (last.type, last.name, last.status) == ("client_tool_call", "get_time_zone", "pending")

        params = {"thread_id": asked.thread_id, "result": {"time_zone": "Asia/Karachi"}}
        answers = await asyncio.gather(*(page.request("threads.add_client_tool_output", params) for _ in range(4)))
        statuses = sorted(a.status for a in answers)
        assert statuses == [200, 409, 409, 409], [(a.status, a.body) for a in answers]
        resumed = next(a for a in answers if a.status == 200)
        assert not resumed.of_type("error"), resumed.of_type("error")
        for refused in (a for a in answers if a.status == 409):
            assert refused.headers["content-type"].startswith("application/problem+json"), refused.headers
        assert await _task_titles(http, user) == ["Buy milk"]

        items = await _items(page, asked.thread_id)
        assert [i["type"] for i in items].count("client_tool_call") == 1
        assert len(_answers_by_message(items)[0][1]) == 1, items


async def test_concurrent_retries_of_one_message_store_one_answer(turn_server: LiveServer) -> None:
    user = _user("retry")
    async with httpx.AsyncClient(base_url=turn_server.base_url, timeout=120) as http:
        page = ChatKitClient(http, token(user), time_zone="UTC")
        started = await page.create_thread("show my tasks")
        assert started.status == 200 and not started.of_type("error")
        message = next(e.item for e in started.events if e.type == "thread.item.done" and e.item.type == "user_message")

        params = {"thread_id": started.thread_id, "item_id": message.id}
        retries = await asyncio.gather(*(page.request("threads.retry_after_item", params) for _ in range(4)))
        assert all(r.status in (200, 409) for r in retries), [(r.status, r.body) for r in retries]
        assert any(r.status == 200 for r in retries)
        for retry in retries:
            if retry.status == 200:
                assert not retry.of_type("error"), retry.of_type("error")
            else:
                assert _refused_as_problem(retry), (retry.headers, retry.body)

        turns = _answers_by_message(await _items(page, started.thread_id))
        assert len(turns) == 1 and len(turns[0][1]) == 1, turns


async def test_a_new_threads_turn_holds_the_thread_once_its_id_is_out(turn_server: LiveServer) -> None:
    user = _user("new")
    async with httpx.AsyncClient(base_url=turn_server.base_url, timeout=120) as http:
        other_tab = ChatKitClient(http, token(user), time_zone="UTC")
        # "help": a long answer, paced by the offline model, so the turn is still running below.
        async with open_stream(http, threads_create("help"), headers_for(user)) as (opened, events):
            assert opened.status == 200
            async for event in events:
                if event.type == "thread.item.done" and event.item.type == "user_message":
                    message = event.item
                    break
            params = {"thread_id": message.thread_id, "item_id": message.id}
            retried = await other_tab.request("threads.retry_after_item", params)
            assert _refused_as_problem(retried), (retried.status, retried.body)
            async for _ in events:
                pass
        assert not opened.of_type("error")
        turns = _answers_by_message(await _items(other_tab, message.thread_id))
        assert len(turns) == 1 and len(turns[0][1]) == 1, turns


async def test_one_message_queues_per_thread_and_a_further_one_is_refused(turn_server: LiveServer) -> None:
    user = _user("queue")
    workers = int(turn_server.env.get("WORKERS", "1"))
    async with httpx.AsyncClient(base_url=turn_server.base_url, timeout=120) as http:
        tab = ChatKitClient(http, token(user), time_zone="UTC")
        started = await tab.create_thread("hello")
        assert started.status == 200, started.body
        thread_id = started.thread_id
        async with open_stream(http, add_user_message(thread_id, "help"), headers_for(user)) as (running, events):
            async for event in events:
                if event.type == "thread.item.updated":
                    break  # the model is answering: the turn holds the thread
            names = ["Alpha", "Bravo", "Charlie"]
            sends = [asyncio.create_task(tab.send(thread_id, f"add a task {name}")) for name in names]
            # At most one queues per worker; the others are refused before any stream opens.
            expected_refusals = len(names) - workers
            refused: list[StreamResult] = []
            pending = set(sends)
            while len(refused) < expected_refusals and pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                refused += [task.result() for task in done if task.result().status == 409]
            assert len(refused) >= expected_refusals, [task.result().status for task in sends if task.done()]
            # The running turn and the queued one hold two of the user's four stream slots: the
            # user can still start a conversation (before, the queued messages took all four: 429).
            elsewhere = await tab.create_thread("hello")
            assert elsewhere.status == 200, (elsewhere.status, elsewhere.body)
            async for _ in events:
                pass
        assert not running.of_type("error")
        results = await asyncio.gather(*sends)
        assert all(result.status in (200, 409) for result in results), [r.status for r in results]
        for refusal in (result for result in results if result.status == 409):
            assert refusal.headers["content-type"].startswith("application/problem+json")
            assert "already waiting" in refusal.body["detail"], refusal.body
        answered = [name for name, result in zip(names, results, strict=True) if result.status == 200]
        for name, result in zip(names, results, strict=True):
            if result.status == 200:
                assert not result.of_type("error") and name in result.assistant_text(), result.of_type("error")
        assert await _task_titles(http, user) == sorted(answered)


async def test_a_queued_message_whose_thread_filled_while_it_waited_is_refused(turn_server: LiveServer) -> None:
    user = _user("full")
    url = turn_server.env["DATABASE_URL"]
    quota = Settings.from_env(turn_server.env).quota_items_per_thread
    workers = int(turn_server.env.get("WORKERS", "1"))
    engine = create_async_engine(url)
    try:
        async with httpx.AsyncClient(base_url=turn_server.base_url, timeout=120) as http:
            tab = ChatKitClient(http, token(user), time_zone="UTC")
            started = await tab.create_thread("hello")
            assert started.status == 200, started.body
            thread_id = started.thread_id
            items = await _items(tab, thread_id)
            # A turn running elsewhere (another instance) holds the thread: what arrives now queues.
            key = {"user": user, "thread": thread_id}
            async with engine.begin() as connection:
                await connection.execute(
                    text(
                        "UPDATE chat_threads SET turn_lease = 'elsewhere', turn_lease_expires_at = :until "
                        "WHERE user_id = :user AND id = :thread"
                    ),
                    key | {"until": dt.datetime.now(dt.UTC) + dt.timedelta(seconds=60)},
                )
            sends = [asyncio.create_task(tab.send(thread_id, f"add a task {name}")) for name in NAMES[: workers + 1]]
            # At most one waits per worker; the rest are refused before their stream opens. Which
            # worker takes which connection is the server's choice (two may land on one worker), so
            # only the count is certain: more messages than workers means at least one refusal.
            done, _ = await asyncio.wait(sends, return_when=asyncio.FIRST_COMPLETED)
            assert {task.result().status for task in done} == {409}, [task.result().body for task in done]
            # The turn elsewhere fills the thread (to QUOTA_ITEMS_PER_THREAD), then ends.
            async with engine.begin() as connection:
                await connection.execute(
                    text(
                        "INSERT INTO chat_items (user_id, id, thread_id, type, seq, created_at, data) "
                        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :more) "
                        "SELECT user_id, id || '-' || CAST(i AS TEXT), thread_id, type, seq, created_at, data "
                        "FROM chat_items, n WHERE user_id = :user AND thread_id = :thread AND id = :item"
                    ),
                    key | {"more": quota - len(items), "item": items[0]["id"]},
                )
                await connection.execute(
                    text(
                        "UPDATE chat_threads SET turn_lease = NULL, turn_lease_expires_at = NULL "
                        "WHERE user_id = :user AND id = :thread"
                    ),
                    key,
                )
            results = await asyncio.gather(*sends)
            refused = [result for result in results if result.status == 409]
            queued = [result for result in results if result.status != 409]
            assert refused and queued, [result.status for result in results]
            for result in refused:
                assert "already waiting" in result.body["detail"], result.body
            for result in queued:
                assert result.status == 200, (result.status, result.body)
                errors = result.of_type("error")
                assert errors and "limit of" in errors[0].message, result.events
            assert await _task_titles(http, user) == []  # the waiting message was never answered
    finally:
        await engine.dispose()


# PostgreSQL only: the failure is injected as PostgreSQL's "cannot connect now" (a 503); no SQLite
# error reads as "the database is unavailable" (a trigger's is a 500).
@pytest.mark.parametrize(
    "turn_server", [pytest.param("postgres-two-workers", marks=pytest.mark.postgres)], indirect=True
)
async def test_a_new_thread_whose_stream_fails_before_its_first_event_is_deleted(turn_server: LiveServer) -> None:
    url = turn_server.env["DATABASE_URL"]
    user = _user("orphan")
    name = f"fail_save_{uuid.uuid4().hex[:8]}"
    # The library's save of the new thread (the upsert after the reservation, right before
    # `thread.created`) fails for this user only, as a database refusing connections does
    # (57P03, cannot_connect_now): the 503 a load balancer re-sends.
    ddl = [
        f"CREATE FUNCTION {name}() RETURNS trigger AS $$ BEGIN "
        "RAISE EXCEPTION 'injected' USING ERRCODE = 'cannot_connect_now'; END $$ LANGUAGE plpgsql",
        f"CREATE TRIGGER {name} BEFORE UPDATE OF data ON chat_threads FOR EACH ROW "
        f"WHEN (NEW.user_id = '{user}') EXECUTE FUNCTION {name}()",
    ]
    drop = [f"DROP TRIGGER {name} ON chat_threads", f"DROP FUNCTION {name}()"]
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            for statement in ddl:
                await connection.exec_driver_sql(statement)
        async with httpx.AsyncClient(base_url=turn_server.base_url, timeout=120) as http:
            page = ChatKitClient(http, token(user), time_zone="UTC")
            failed = await page.create_thread("hello")
            assert failed.status == 503 and not failed.events, (failed.status, failed.body)
            listed = await page.request("threads.list", {"limit": 10})
            assert listed.status == 200 and listed.body["data"] == [], listed.body
    finally:
        async with engine.begin() as connection:
            for statement in drop:
                await connection.exec_driver_sql(statement)
        await engine.dispose()


async def test_a_thread_whose_client_went_away_mid_answer_takes_the_next_message_at_once(
    turn_server: LiveServer,
) -> None:
    """Closing the tab mid-answer must free the thread then, not when the turn's lease expires
    (CHATKIT_TURN_LEASE_SECONDS, 30 s here): the person who reopens it and writes again is answered
    at once. (It waited the whole lease: a second cancellation of the cut stream, delivered while
    it released the lease, cancelled the release.)"""
    user = _user("gone")
    async with httpx.AsyncClient(base_url=turn_server.base_url, timeout=60) as http:
        async with open_stream(http, threads_create("help"), headers_for(user)) as (stream, events):
            async for _event in events:
                if stream.deltas == 3:
                    break  # the tab is closed mid-answer
        assert stream.thread_id
    # A read timeout far below the 30 s lease: a lease left held would fail this request.
    async with httpx.AsyncClient(base_url=turn_server.base_url, timeout=10) as http:
        again = await ChatKitClient(http, token(user), time_zone="UTC").send(stream.thread_id, "add a task Echo")
        assert again.status == 200 and not again.of_type("error"), (again.status, again.body)
        assert "Echo" in again.assistant_text()


async def test_a_thread_whose_turn_died_with_its_server_takes_messages_again(
    live_server_factory: Any, tmp_path: Path
) -> None:
    # Servers of its own: this one is killed mid-turn (SIGKILL, nothing cleans up), and a second
    # one on the same database must answer that thread once the dead turn's lease has expired.
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/crash.db",
        "CHATKIT_TURN_LEASE_SECONDS": "3",
        "OFFLINE_MODEL_DELAY_MS": "400",  # a turn long enough to be killed in the middle of
        "LOG_LEVEL": "warning",
    }
    user = _user("crash")
    first = live_server_factory(env)
    async with httpx.AsyncClient(base_url=first.base_url, timeout=60) as http:
        started = await ChatKitClient(http, token(user), time_zone="UTC").create_thread("hello")
        assert started.status == 200, started.body
        thread_id = started.thread_id
        async with open_stream(http, add_user_message(thread_id, "show my tasks"), headers_for(user)) as (_, events):
            async for event in events:
                if event.type == "thread.item.updated":
                    break  # the model is answering: the turn holds the thread's lease
            kill_server(first)
    with sqlite3.connect(tmp_path / "crash.db") as db:
        left = db.execute("SELECT turn_lease FROM chat_threads WHERE id = ?", (thread_id,)).fetchone()
    assert left is not None and left[0] is not None  # the dead turn's lease is still there

    second = live_server_factory(env, migrate=False)
    async with httpx.AsyncClient(base_url=second.base_url, timeout=60) as http:
        page = ChatKitClient(http, token(user), time_zone="UTC")
        again = await page.send(thread_id, "add a task Delta")
        assert again.status == 200 and not again.of_type("error"), (again.status, again.body)
        assert "Delta" in again.assistant_text()


# ---- the lease's waiting, in process (the same store calls the server makes) ----------------------


async def test_a_queued_turn_gets_the_thread_when_the_running_one_releases_it(session_maker: Any) -> None:
    store: ChatKitStore[RequestContext] = ChatKitStore(session_maker)
    alice = RequestContext(user_id="alice")
    await store.save_thread(ThreadMetadata(id="thr_q", created_at=dt.datetime.now(dt.UTC)), alice)
    locks = TurnLocks(store, lease_seconds=30)
    running, queued, pointless = (locks.lease("thr_q", alice) for _ in range(3))
    assert await running.try_claim()
    assert not await queued.try_claim()

    async def gone() -> None:
        raise Conflict("answered meanwhile")

    with pytest.raises(Conflict):  # a waiter whose reason to run went away gives up
        await pointless.claim(still_wanted=gone)
    waiting = asyncio.create_task(queued.claim())
    await asyncio.sleep(0)  # let it try once and start waiting
    assert not waiting.done()
    async with running.kept():
        pass  # the running turn ends: released
    await waiting
    assert queued.held and not running.held
    assert not await pointless.try_claim()
    await queued.release()
    assert await pointless.try_claim()
    assert not locks._released and not locks._waiting  # nothing left behind per thread


class _AnswerLost:
    """The real store, except that a claim's answer never comes back after its UPDATE committed
    (what a disconnect cancelling the claim at that moment leaves)."""

    def __init__(self, store: ChatKitStore[RequestContext]) -> None:
        self.store = store
        self.committed = asyncio.Event()

    async def claim_turn(self, thread_id: str, lease: str, seconds: float, context: Any) -> bool:
        await self.store.claim_turn(thread_id, lease, seconds, context)
        self.committed.set()
        await asyncio.Event().wait()  # cancelled here
        raise AssertionError("unreachable")

    async def renew_turn(self, thread_id: str, lease: str, seconds: float, context: Any) -> bool:
        return await self.store.renew_turn(thread_id, lease, seconds, context)

    async def release_turn(self, thread_id: str, lease: str, context: Any) -> None:
        await self.store.release_turn(thread_id, lease, context)


async def test_a_claim_cut_short_after_it_committed_is_released(session_maker: Any) -> None:
    store: ChatKitStore[RequestContext] = ChatKitStore(session_maker)
    alice = RequestContext(user_id="alice")
    await store.save_thread(ThreadMetadata(id="thr_cut", created_at=dt.datetime.now(dt.UTC)), alice)
    lossy = _AnswerLost(store)
    cut = TurnLocks(lossy, lease_seconds=30).lease("thr_cut", alice)
    claiming = asyncio.create_task(cut.try_claim())
    await lossy.committed.wait()
    claiming.cancel()
    with pytest.raises(asyncio.CancelledError):
        await claiming
    assert not cut.held
    await cut.release()
    assert await TurnLocks(store, lease_seconds=30).lease("thr_cut", alice).try_claim()


async def test_a_thread_queues_one_turn_per_process(session_maker: Any) -> None:
    store: ChatKitStore[RequestContext] = ChatKitStore(session_maker)
    alice = RequestContext(user_id="alice")
    await store.save_thread(ThreadMetadata(id="thr_one", created_at=dt.datetime.now(dt.UTC)), alice)
    locks = TurnLocks(store, lease_seconds=30)
    running, first, second = (locks.lease("thr_one", alice) for _ in range(3))
    assert await running.try_claim()
    assert locks.queue(first) and first.queued
    assert not locks.queue(second)
    waiting = asyncio.create_task(first.claim())
    await running.release()
    await waiting
    assert not first.queued and locks.queue(second)  # claimed: the thread's queue is free again
    await second.release()  # a queued turn that gives up leaves the queue too
    assert not locks._queued
    await first.release()


class _ReleaseFailsTwice:
    """The real store, except that the first two releases fail (the database away as a turn ends)."""

    def __init__(self, store: ChatKitStore[RequestContext]) -> None:
        self.store = store
        self.failed = 0

    async def claim_turn(self, thread_id: str, lease: str, seconds: float, context: Any) -> bool:
        return await self.store.claim_turn(thread_id, lease, seconds, context)

    async def renew_turn(self, thread_id: str, lease: str, seconds: float, context: Any) -> bool:
        return await self.store.renew_turn(thread_id, lease, seconds, context)

    async def release_turn(self, thread_id: str, lease: str, context: Any) -> None:
        if self.failed < 2:
            self.failed += 1
            raise ConnectionResetError("the database went away")
        await self.store.release_turn(thread_id, lease, context)


async def test_a_release_that_failed_is_tried_again_before_the_lease_expires(session_maker: Any) -> None:
    store: ChatKitStore[RequestContext] = ChatKitStore(session_maker)
    alice = RequestContext(user_id="alice")
    await store.save_thread(ThreadMetadata(id="thr_rel", created_at=dt.datetime.now(dt.UTC)), alice)
    flaky = _ReleaseFailsTwice(store)
    # A lease far longer than the test may wait: the thread must come free by the retried release.
    locks = TurnLocks(flaky, lease_seconds=600)
    running, waiting = locks.lease("thr_rel", alice), locks.lease("thr_rel", alice)
    assert await running.try_claim()
    async with running.kept():
        pass  # the turn ends; its release fails and is tried again in the background
    assert flaky.failed == 1 and len(locks._releasing) == 1
    async with asyncio.timeout(10):
        await waiting.claim()  # woken by the later release, not by the lease's expiry
    assert flaky.failed == 2 and waiting.held and not locks._releasing
    await waiting.release()


async def test_releases_still_being_tried_stop_at_shutdown(session_maker: Any) -> None:
    class _ReleaseNeverWorks(_ReleaseFailsTwice):
        async def release_turn(self, thread_id: str, lease: str, context: Any) -> None:
            raise ConnectionResetError("the database went away")

    store: ChatKitStore[RequestContext] = ChatKitStore(session_maker)
    alice = RequestContext(user_id="alice")
    await store.save_thread(ThreadMetadata(id="thr_down", created_at=dt.datetime.now(dt.UTC)), alice)
    locks = TurnLocks(_ReleaseNeverWorks(store), lease_seconds=600)
    lease = locks.lease("thr_down", alice)
    assert await lease.try_claim()
    await lease.release()
    (retrying,) = locks._releasing
    await locks.aclose()
    assert retrying.cancelled() and not locks._releasing
