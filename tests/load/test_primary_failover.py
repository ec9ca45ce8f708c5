"""Fault: the primary PostgreSQL dies under live traffic and its synchronous standby is promoted.

A primary and a standby on loopback ports (testkit/replication.py: `initdb`, `pg_basebackup -R`,
deploy/postgresql-replication.conf: `synchronous_commit = on` with the standby named in
`synchronous_standby_names`). TaskPilot connects with a multi-host DATABASE_URL
(`host=primary&host=standby&target_session_attrs=read-write`), so a fresh connection goes to
whichever of the two accepts writes: nothing is reconfigured and nothing restarts.

During 20 live streams and REST writes the primary is stopped hard (`pg_ctl stop -m immediate`:
every backend killed, no checkpoint), then the standby is promoted. Checked:
- while no primary exists, requests are answered 503 problem+json with Retry-After (retryable),
  streams in flight end with a retryable `error` frame or complete, never a cut connection or a 500;
  `/ready` reports the database unreachable, then ready again;
- the same server process serves again within RECOVERY_BOUND_SECONDS of the promotion;
- every thread item a client saw done and every task answered 201 is on the new primary, once.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field

import httpx
import pytest
from testkit.chatkit import threads_create as create_body
from testkit.postgres import create_database
from testkit.replication import postgres_bin_dir, replicated_postgres

from tests.conftest import create_schema
from tests.support.production import db_fetch, headers_for, open_stream, token

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.skipif(postgres_bin_dir() is None, reason="PostgreSQL's server binaries are not installed"),
]

STREAMS = 20
REST_WRITERS = 4
OUTAGE_SECONDS = 1.5  # between the primary's death and the promotion (an operator's or a tool's reaction)
RECOVERY_BOUND_SECONDS = 15.0


@dataclass
class Traffic:
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    acknowledged_items: dict[str, set[tuple[str, str]]] = field(default_factory=dict)  # user -> (thread, item)
    acknowledged_tasks: dict[str, list[str]] = field(default_factory=dict)  # user -> titles answered 201
    statuses: list[tuple[float, int, str]] = field(default_factory=list)  # (time, status, what)
    streams_completed: int = 0
    streams_errored: int = 0
    streams_refused: int = 0
    broken: list[str] = field(default_factory=list)
    acks: list[tuple[float, str, str]] = field(default_factory=list)
    in_flight: int = 0  # streams open (status 200, not yet ended) right now
    ready: list[tuple[float, int, str]] = field(default_factory=list)


async def _streams(http: httpx.AsyncClient, user: str, traffic: Traffic) -> None:
    seen = traffic.acknowledged_items.setdefault(user, set())
    while not traffic.stop.is_set():
        async with open_stream(http, create_body("help"), headers_for(user)) as (stream, events):
            traffic.in_flight += stream.status == 200
            try:
                async for _event in events:
                    pass
            finally:
                traffic.in_flight -= stream.status == 200
        traffic.statuses.append((time.monotonic(), stream.status, "stream"))
        if stream.status != 200:
            assert stream.status == 503, stream.status
            traffic.streams_refused += 1
            await asyncio.sleep(0.2)
            continue
        if stream.broken is not None:
            traffic.broken.append(repr(stream.broken))
        for item in stream.done_items():
            seen.add((item.thread_id, item.id))
        errors = stream.of_type("error")
        if errors:
            assert all(e.allow_retry for e in errors), errors
            traffic.streams_errored += 1
        else:
            traffic.streams_completed += 1


async def _rest_writes(http: httpx.AsyncClient, user: str, traffic: Traffic) -> None:
    rest = {"Authorization": f"Bearer {token(user)}"}
    titles = traffic.acknowledged_tasks.setdefault(user, [])
    n = 0
    while not traffic.stop.is_set():
        n += 1
        title = f"task {n}"
        response = await http.post("/api/tasks", json={"title": title}, headers=rest)
        traffic.statuses.append((time.monotonic(), response.status_code, "rest"))
        if response.status_code == 201:
            titles.append(title)
            traffic.acks.append((time.monotonic(), user, title))
        else:
            assert response.status_code == 503, response.text
            assert response.headers["content-type"].startswith("application/problem+json")
            assert int(response.headers["retry-after"]) >= 1
        await asyncio.sleep(0.05)


async def _watch_ready(http: httpx.AsyncClient, traffic: Traffic) -> None:
    while not traffic.stop.is_set():
        try:
            response = await http.get("/ready", timeout=5)
        except httpx.TimeoutException:
            traffic.ready.append((time.monotonic(), 0, "no answer"))
            continue
        traffic.ready.append((time.monotonic(), response.status_code, response.json().get("database", "")))
        await asyncio.sleep(0.1)


async def test_primary_dies_standby_is_promoted_and_nothing_acknowledged_is_lost(live_server_factory) -> None:
    with replicated_postgres() as pair:
        primary_url = await create_database(pair.url(), "taskpilot")
        await create_schema(primary_url)
        failover_url = pair.url("taskpilot", hosts=(pair.primary, pair.standby))
        server = live_server_factory(
            {"DATABASE_URL": failover_url, "OFFLINE_MODEL_DELAY_MS": "50", "LOG_LEVEL": "warning"},
            migrate=False,
        )
        traffic = Traffic()
        run = uuid.uuid4().hex[:6]
        limits = httpx.Limits(max_connections=STREAMS + REST_WRITERS + 4)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30, limits=limits) as http:
            workers = [
                *(asyncio.create_task(_streams(http, f"fo-{run}-s{n}", traffic)) for n in range(STREAMS)),
                *(asyncio.create_task(_rest_writes(http, f"fo-{run}-r{n}", traffic)) for n in range(REST_WRITERS)),
                asyncio.create_task(_watch_ready(http, traffic)),
            ]
            # Streams and writes under way: most streams open (mid-answer) and writes acknowledged.
            deadline = time.monotonic() + 20
            while traffic.in_flight < STREAMS * 3 // 4 or len(traffic.acks) < REST_WRITERS:
                assert time.monotonic() < deadline, f"traffic did not start: {traffic.in_flight} streams open"
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            killed_at = time.monotonic()
            streams_at_kill = traffic.in_flight
            await asyncio.to_thread(pair.stop_hard, pair.primary)  # the clients keep sending meanwhile
            await asyncio.sleep(OUTAGE_SECONDS)
            promoted_at = time.monotonic()
            await asyncio.to_thread(pair.promote, pair.standby)
            # Recovered: a REST write answered 201 after the promotion.
            recovered_at = None
            while recovered_at is None:
                assert time.monotonic() - promoted_at < RECOVERY_BOUND_SECONDS, "no write succeeded after promotion"
                await asyncio.sleep(0.05)
                recovered_at = next((t for t, s, w in traffic.statuses if t > promoted_at and s == 201), None)
            await asyncio.sleep(0.5)  # traffic on the new primary
            traffic.stop.set()
            await asyncio.wait_for(asyncio.gather(*workers), timeout=30)
            assert server.process.poll() is None

        new_primary = pair.url("taskpilot", hosts=(pair.standby,))
        lost_items = 0
        for user, seen in traffic.acknowledged_items.items():
            rows = await db_fetch(new_primary, "SELECT thread_id, id FROM chat_items WHERE user_id = $1", user)
            stored = [(r["thread_id"], r["id"]) for r in rows]
            assert len(stored) == len(set(stored))
            lost_items += len(seen - set(stored))
        lost_tasks = 0
        for user, titles in traffic.acknowledged_tasks.items():
            rows = await db_fetch(new_primary, "SELECT title FROM tasks WHERE user_id = $1", user)
            stored_titles = [r["title"] for r in rows]
            wrong = [(title, stored_titles.count(title)) for title in titles if stored_titles.count(title) != 1]
            lost_tasks += len(wrong)
            if wrong:
                print("not stored once:", user, wrong, "acknowledged:", titles, "stored:", stored_titles)

    outage = [(t, s) for t, s, _ in traffic.statuses if s != 200 and s != 201]
    ready_down = [t for t, s, db in traffic.ready if s == 503 and db == "unreachable"]
    ready_up_again = [t for t, s, _ in traffic.ready if s == 200 and t > promoted_at]
    figures = {
        "acknowledged_items": sum(len(v) for v in traffic.acknowledged_items.values()),
        "acknowledged_tasks": sum(len(v) for v in traffic.acknowledged_tasks.values()),
        "lost_items": lost_items,
        "lost_tasks": lost_tasks,
        "first_success_after_promotion_s": round(recovered_at - promoted_at, 2),
        "writes_refused_s": round(max((t for t, _ in outage), default=killed_at) - killed_at, 2),
        "ready_after_promotion_s": round(min(ready_up_again) - promoted_at, 2) if ready_up_again else None,
        "refused_503": len(outage),
        "streams_completed": traffic.streams_completed,
        "streams_error_frame": traffic.streams_errored,
        "streams_refused_503": traffic.streams_refused,
        "broken": len(traffic.broken),
        "streams_open_at_kill": streams_at_kill,
    }
    print("failover figures:", json.dumps(figures))
    print("acks:", [(round(t - killed_at, 2), u[-3:], title) for t, u, title in traffic.acks if abs(t - killed_at) < 5])
    print("ready:", [(round(t - killed_at, 2), s, db) for t, s, db in traffic.ready if t > killed_at - 0.5][:40])
    print("outage:", [(round(t - killed_at, 2), s) for t, s in outage])
    assert lost_items == 0 and lost_tasks == 0, figures
    assert figures["acknowledged_items"] > STREAMS and figures["acknowledged_tasks"] > REST_WRITERS, figures
    assert not traffic.broken, traffic.broken
    assert streams_at_kill >= STREAMS // 2, figures
    assert {s for _, s in outage} <= {503}, outage
    assert ready_down, "/ready never reported the outage"
    assert ready_up_again, "/ready did not recover"
