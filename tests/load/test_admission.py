"""Admission control: a worker refuses turns at the door and never fails one it admitted.

- `Admission` itself: the limit, the bounded wait (slots handed to the oldest waiter), refusals
  as 503 with Retry-After, a slot released exactly once, a cancelled waiter passing its slot on.
- A live server (one worker, CHATKIT_MAX_STREAMS=5) offered 20 turns at once, on SQLite and on
  PostgreSQL: 5 stream and complete, 15 get a 503 problem+json with Retry-After before any
  stream opens and leave nothing in the database; `/ready` says `saturated` meanwhile, the
  refusals are counted in `/metrics`, and once the streams end the worker admits turns again.
- A store call that finds every pooled connection busy waits and runs again, instead of failing
  the stream it belongs to.
- One user's share (CHATKIT_MAX_STREAMS_PER_USER): past it that user gets a 429 before any stream
  opens, while the other users still find free slots and `/ready` stays ready.
- The adaptive limit (on by default): an idle worker admits its floor, under the ceiling, and
  `/ready` and `/metrics` report that limit, the ceiling and the measured event-loop lag (its
  rules are unit-tested on given lag samples: tests/unit/test_adaptive_limit.py).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from testkit.chatkit import threads_create
from testkit.postgres import fetch

from app.core.context import RequestContext
from app.core.errors import ServiceUnavailable, TooManyRequests
from app.ops import metrics
from app.ops.admission import Admission
from app.store.chatkit_store import ChatKitStore
from app.store.models import Base
from tests.support.production import headers_for, open_stream

pytestmark = pytest.mark.timeout(120)

LIMIT = 5
OFFERED = 20


# ---- Admission on its own ------------------------------------------------------------------------------


async def test_admits_up_to_the_limit_then_refuses_with_retry_after() -> None:
    admission = Admission(2)
    first, second = await admission.admit(), await admission.admit()
    assert admission.open == 2 and admission.saturated
    with pytest.raises(ServiceUnavailable) as refused:
        await admission.admit()
    assert refused.value.retry_after is not None and refused.value.retry_after >= 1
    assert "nothing was saved" in refused.value.detail
    first.release()
    first.release()  # a second release of the same slot changes nothing
    assert admission.open == 1 and not admission.saturated
    third = await admission.admit()
    assert admission.open == 2
    second.release()
    third.release()
    assert admission.open == 0


async def test_a_waiting_turn_gets_the_next_free_slot_in_arrival_order() -> None:
    admission = Admission(1, wait_seconds=5, max_waiting=2)
    held = await admission.admit()
    order: list[str] = []

    async def wait(name: str) -> None:
        slot = await admission.admit()
        order.append(name)
        await asyncio.sleep(0.01)
        slot.release()

    waiters = [asyncio.create_task(wait("a")), asyncio.create_task(wait("b"))]
    await asyncio.sleep(0.05)
    assert admission.waiting == 2 and order == []
    # A newcomer does not jump the queue while others wait, even at the moment a slot frees.
    held.release()
    await asyncio.gather(*waiters)
    assert order == ["a", "b"]
    assert admission.open == 0 and admission.waiting == 0


async def test_the_wait_is_bounded_in_time_and_in_length() -> None:
    admission = Admission(1, wait_seconds=0.1, max_waiting=1)
    held = await admission.admit()
    waiter = asyncio.create_task(admission.admit())
    await asyncio.sleep(0.02)
    with pytest.raises(ServiceUnavailable):  # the queue is full: refused at once
        await admission.admit()
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable):  # waited its 0.1 s, then refused
        await waiter
    assert time.monotonic() - started < 1.0
    assert admission.waiting == 0
    held.release()
    assert admission.open == 0


async def test_a_cancelled_waiter_that_was_handed_a_slot_passes_it_on() -> None:
    admission = Admission(1, wait_seconds=5, max_waiting=2)
    held = await admission.admit()
    first = asyncio.create_task(admission.admit())
    second = asyncio.create_task(admission.admit())
    await asyncio.sleep(0.02)
    held.release()  # handed to `first`...
    first.cancel()  # ...whose client leaves before it resumes
    with pytest.raises(asyncio.CancelledError):
        await first
    slot = await asyncio.wait_for(second, timeout=1)
    assert admission.open == 1
    slot.release()
    assert admission.open == 0


async def test_one_user_holds_no_more_than_their_share_of_the_slots() -> None:
    admission = Admission(10, per_user=2)
    first, second = await admission.admit("alice"), await admission.admit("alice")
    with pytest.raises(TooManyRequests) as refused:
        await admission.admit("alice")
    assert refused.value.retry_after >= 1
    assert "2 answers" in refused.value.detail and "nothing was saved" in refused.value.detail
    others = [await admission.admit("bob"), await admission.admit("bob")]
    assert admission.open == 4 and not admission.saturated
    first.release()
    first.release()  # a second release gives back nothing more
    assert admission.streams_of("alice") == 1
    third = await admission.admit("alice")  # a finished stream frees its share at once
    for slot in (second, third, *others):
        slot.release()
    assert admission.open == 0 and admission.streams_of("alice") == admission.streams_of("bob") == 0


async def test_a_users_waiting_turns_count_against_their_share() -> None:
    admission = Admission(1, wait_seconds=5, max_waiting=5, per_user=2)
    held = await admission.admit("alice")
    waiting = asyncio.create_task(admission.admit("alice"))
    await asyncio.sleep(0.02)
    # One open and one waiting: a third would take the queue's places from other users.
    with pytest.raises(TooManyRequests):
        await admission.admit("alice")
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert admission.streams_of("alice") == 1  # the cancelled wait gave its share back
    held.release()
    assert admission.open == 0 and admission.streams_of("alice") == 0


async def test_a_share_of_zero_leaves_only_the_worker_limit() -> None:
    admission = Admission(3, per_user=0)
    slots = [await admission.admit("alice") for _ in range(3)]
    with pytest.raises(ServiceUnavailable):
        await admission.admit("alice")
    for slot in slots:
        slot.release()
    assert admission.open == 0


# ---- a live server offered four times its limit ----------------------------------------------------------


async def _threads_of(database_url: str, user_prefix: str) -> int:
    query = "SELECT count(*) FROM chat_threads WHERE user_id LIKE '" + user_prefix + "%'"
    if database_url.startswith("sqlite"):
        path = database_url.split("///", 1)[1]
        with sqlite3.connect(path) as connection:
            return int(connection.execute(query).fetchone()[0])
    return int((await fetch(database_url, query))[0][0])


async def _items_of(database_url: str, user_prefix: str) -> int:
    query = "SELECT count(*) FROM chat_items WHERE user_id LIKE '" + user_prefix + "%'"
    if database_url.startswith("sqlite"):
        path = database_url.split("///", 1)[1]
        with sqlite3.connect(path) as connection:
            return int(connection.execute(query).fetchone()[0])
    return int((await fetch(database_url, query))[0][0])


def _metric(text: str, name: str, labels: str = "") -> float:
    for line in text.splitlines():
        if line.startswith(name + labels + " ") or (not labels and line.startswith(name + " ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_a_worker_refuses_beyond_its_limit_before_any_stream_and_completes_every_admitted_one(
    live_server_factory: Any, server_database_url: str
) -> None:
    server = live_server_factory(
        {
            "DATABASE_URL": server_database_url,
            "CHATKIT_MAX_STREAMS": str(LIMIT),
            "CHATKIT_ADMISSION_WAIT_SECONDS": "0",
            # "help" streams ~40 deltas: at 60 ms each, every admitted stream is still open when
            # the last of the 20 turns arrives.
            "OFFLINE_MODEL_DELAY_MS": "60",
            "RATE_LIMIT_CHAT_PER_MINUTE": "100000",
        }
    )
    prefix = f"adm-{uuid.uuid4().hex[:8]}-"
    users = [f"{prefix}{n}" for n in range(OFFERED)]
    outcomes: list[dict[str, Any]] = []
    saturated_seen: list[dict[str, Any]] = []
    pool_in_use: list[float] = []
    limits = httpx.Limits(max_connections=OFFERED + 5, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60, limits=limits) as http:

        async def turn(user: str) -> None:
            started = time.monotonic()
            async with open_stream(http, threads_create("help"), headers_for(user)) as (stream, events):
                answered = time.monotonic() - started
                async for _ in events:
                    pass
            outcomes.append({"user": user, "stream": stream, "answered_s": answered})

        async def watch_ready() -> None:
            for _ in range(100):
                response = await http.get("/ready")
                if response.status_code == 503 and response.json()["status"] == "saturated":
                    saturated_seen.append({"headers": dict(response.headers), "body": response.json()})
                    # Mid-answer, the open streams wait on the model: none may hold a connection.
                    await asyncio.sleep(0.3)
                    for _ in range(10):
                        exposition = (await http.get("/metrics")).text
                        pool_in_use.append(_metric(exposition, "taskpilot_db_pool_connections", '{state="in_use"}'))
                        await asyncio.sleep(0.1)
                    return
                await asyncio.sleep(0.02)

        await asyncio.gather(watch_ready(), *(turn(user) for user in users))

        accepted = [o for o in outcomes if o["stream"].status == 200]
        refused = [o for o in outcomes if o["stream"].status != 200]
        assert len(accepted) == LIMIT, [o["stream"].status for o in outcomes]
        assert len(refused) == OFFERED - LIMIT
        for outcome in accepted:
            stream = outcome["stream"]
            assert stream.broken is None, "an admitted stream was cut"
            assert not stream.of_type("error"), "an admitted stream failed"
            assert stream.deltas > 0
            assert any(item.type == "assistant_message" for item in stream.done_items())
        for outcome in refused:
            stream = outcome["stream"]
            assert stream.status == 503
            assert stream.content_type.startswith("application/problem+json")
            assert stream.events == []
            assert outcome["answered_s"] < 2.0  # refused at the door, not after a wait

        # Every admitted stream has ended by now, so the worker admits (and streams) again.
        async with open_stream(http, threads_create("help"), headers_for(f"{prefix}probe")) as (probe, events):
            async for _ in events:
                pass
        assert probe.status == 200 and not probe.of_type("error")

        # Nothing of a refused turn was written; every admitted one is stored whole.
        assert await _threads_of(server_database_url, prefix) == LIMIT + 1
        assert await _items_of(server_database_url, prefix) >= 2 * LIMIT

        assert saturated_seen, "/ready never reported the worker saturated"
        # A stream that held its connection while waiting would show it in use in every sample.
        # A sample may catch store writes in flight: on SQLite the streams' opening writes queue on
        # its one writer, so the first sample once caught all LIMIT of them (CI, 2026-12-07).
        assert len(pool_in_use) == 10, pool_in_use
        assert pool_in_use.count(0.0) >= 7, f"streams held database connections while waiting: {pool_in_use}"
        seen = saturated_seen[0]
        assert seen["body"]["streams"]["limit"] == LIMIT and seen["body"]["streams"]["open"] == LIMIT
        assert int(seen["headers"]["retry-after"]) >= 1
        ready = await http.get("/ready")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        assert ready.json()["streams"] == {"open": 0, "limit": LIMIT, "waiting": 0}

        exposition = (await http.get("/metrics")).text
        assert _metric(exposition, "taskpilot_chatkit_turns_refused_total", '{reason="capacity"}') == OFFERED - LIMIT
        assert _metric(exposition, "taskpilot_chatkit_stream_capacity") == LIMIT


async def test_a_refusal_is_problem_json_with_retry_after_and_says_what_to_do(live_server_factory: Any) -> None:
    server = live_server_factory(
        {"CHATKIT_MAX_STREAMS": "1", "CHATKIT_ADMISSION_WAIT_SECONDS": "0", "OFFLINE_MODEL_DELAY_MS": "50"}
    )
    async with (
        httpx.AsyncClient(base_url=server.base_url, timeout=30) as http,
        open_stream(http, threads_create("help"), headers_for("adm-holder")) as (held, events),
    ):
        assert held.status == 200
        first = await anext(events)  # the stream is open and holds the only slot
        assert first.type == "thread.created"
        refused = await http.post("/chatkit", json=threads_create("help"), headers=headers_for("adm-other"))
        # A request that opens no stream is never refused for capacity.
        listed = await http.post(
            "/chatkit", json={"type": "threads.list", "params": {}}, headers=headers_for("adm-other")
        )
        async for _ in events:
            pass
    assert refused.status_code == 503
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert int(refused.headers["retry-after"]) >= 1
    problem = refused.json()
    assert problem["status"] == 503
    assert "again" in problem["detail"] and "nothing was saved" in problem["detail"]
    assert listed.status_code == 200


# ---- the pool: a checkout that times out is retried -----------------------------------------------------


async def test_a_store_call_that_finds_the_pool_exhausted_runs_again(database_url: str) -> None:
    engine = create_async_engine(database_url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.drop_all)
        await connection.run_sync(Base.metadata.create_all)
    store: ChatKitStore[RequestContext] = ChatKitStore(async_sessionmaker(engine, expire_on_commit=False))
    context = RequestContext(user_id="adm-pool")
    retries = metrics.STORE_RETRIES.labels(reason="pool_exhausted")
    before = retries._value.get()
    try:
        from chatkit.types import ThreadMetadata

        from app.core.clock import utcnow

        thread = ThreadMetadata(id=store.generate_thread_id(context), created_at=utcnow())
        held = await engine.connect()  # the pool's only connection, busy for 0.3 s
        await held.exec_driver_sql("SELECT 1")

        async def release_later() -> None:
            await asyncio.sleep(0.3)
            await held.close()

        releaser = asyncio.create_task(release_later())
        await store.save_thread(thread, context)  # first checkout times out at 0.2 s; the retry gets it
        await releaser
        assert (await store.load_thread(thread.id, context)).id == thread.id
        assert retries._value.get() == before + 1
    finally:
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.drop_all)
        await engine.dispose()


# ---- one user cannot fill a worker ---------------------------------------------------------------------


async def test_one_user_cannot_fill_a_worker(live_server_factory: Any) -> None:
    share = 2
    server = live_server_factory(
        {
            "CHATKIT_MAX_STREAMS": "4",
            "CHATKIT_MAX_STREAMS_PER_USER": str(share),
            "CHATKIT_ADMISSION_WAIT_SECONDS": "0",
            # "help" streams ~40 deltas: at 100 ms each, the streams below stay open for seconds.
            "OFFLINE_MODEL_DELAY_MS": "100",
        }
    )
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http, AsyncExitStack() as held:
        # Each stream's event iterator is kept: a dropped one would close its stream.
        open_streams = [
            await held.enter_async_context(open_stream(http, threads_create("help"), headers_for("share-alice")))
            for _ in range(share)
        ]
        for stream, events in open_streams:
            assert stream.status == 200
            assert (await anext(events)).type == "thread.created"  # open, holding its slot

        refused = await http.post("/chatkit", json=threads_create("help"), headers=headers_for("share-alice"))
        assert refused.status_code == 429, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert int(refused.headers["retry-after"]) >= 1
        problem = refused.json()
        assert f"{share} answers" in problem["detail"] and "Wait for one of them to finish" in problem["detail"]
        assert "nothing was saved" in problem["detail"]

        # Another user still gets a stream, and the worker still says it takes more.
        bob, bob_events = await held.enter_async_context(
            open_stream(http, threads_create("help"), headers_for("share-bob"))
        )
        assert bob.status == 200
        assert (await anext(bob_events)).type == "thread.created"
        ready = await http.get("/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["status"] == "ready"
        assert ready.json()["streams"]["open"] == share + 1

        # A request that opens no stream is never refused for the share.
        listed = await http.post(
            "/chatkit", json={"type": "threads.list", "params": {}}, headers=headers_for("share-alice")
        )
        assert listed.status_code == 200, listed.text

        exposition = (await http.get("/metrics")).text
    assert _metric(exposition, "taskpilot_chatkit_turns_refused_total", '{reason="user_share"}') == 1


# ---- the adaptive limit, as a live worker reports it ---------------------------------------------------


async def test_a_worker_starts_at_the_adaptive_floor_under_its_ceiling_and_reports_its_lag(
    live_server_factory: Any,
) -> None:
    server = live_server_factory({"CHATKIT_MIN_STREAMS": "7", "CHATKIT_ADMISSION_WAIT_SECONDS": "0"})
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        # Idle, the limit is not in use: it stays at the floor however smooth the loop is.
        await asyncio.sleep(1.2)  # two of the sampler's windows
        ready = await http.get("/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["streams"] == {"open": 0, "limit": 7, "waiting": 0}
        exposition = (await http.get("/metrics")).text
    assert _metric(exposition, "taskpilot_chatkit_stream_capacity") == 7
    assert _metric(exposition, "taskpilot_chatkit_stream_ceiling") == 1000  # the default CHATKIT_MAX_STREAMS
    # Measured, not asserted against a time: how late the loop is depends on the machine's load.
    assert "taskpilot_event_loop_lag_seconds " in exposition
    assert _metric(exposition, "taskpilot_event_loop_lag_seconds") >= 0.0
